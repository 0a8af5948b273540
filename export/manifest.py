"""``manifest.json``: everything a deployment needs to know about one artifact, beside it.

A manifest is written after the artifact is checked, so it carries the parity and accuracy
results, the sha256 of every file (to verify a copy on the device) and the source the caller
named (run, member, which weights), verbatim.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from export.errors import ExportError
from export.results import ArtifactResult, FileEntry

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "evo-export-manifest/1"
_CHUNK = 1 << 20


def file_entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return FileEntry(name=path.name, bytes=path.stat().st_size, sha256=digest.hexdigest())


def file_entries(paths: Iterable[Path]) -> tuple[FileEntry, ...]:
    return tuple(file_entry(path) for path in paths)


def build_manifest(
    result: ArtifactResult,
    *,
    input_spec: Mapping[str, Any],
    output_spec: Mapping[str, Any],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    class_names: tuple[str, ...],
    versions: Mapping[str, Any],
    source: Mapping[str, Any],
    tools: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The manifest as a dict; ``versions`` holds the opset or IR version of the format."""
    row = result.to_dict()
    return _json_safe(
        {
            "schema": MANIFEST_SCHEMA,
            "format": result.format,
            "runtime": result.runtime,
            "precision": result.precision,
            "status": result.status,
            "reason": result.reason,
            "files": row["files"],
            "size_bytes": result.size_bytes,
            "size_mb": result.size_mb,
            "size_unit_note": "size_bytes sums every file listed; MB = 10^6 bytes",
            "input": dict(input_spec),
            "output": dict(output_spec),
            "normalisation": {"mean": list(mean), "std": list(std)} if mean else None,
            "class_names": list(class_names),
            **dict(versions),
            "parity": row["parity"],
            "accuracy": row["accuracy"],
            "calibration": row["calibration"],
            "fp32_weight_layers": row["fp32_weight_layers"],
            "notes": row["notes"],
            "source": dict(source),
            "tools": dict(tools),
            **dict(extra or {}),
        }
    )


def write_manifest(directory: Path, manifest: Mapping[str, Any]) -> Path:
    path = directory / MANIFEST_NAME
    text = json.dumps(manifest, indent=2, sort_keys=False, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_manifest(directory_or_file: Path) -> dict[str, Any]:
    path = directory_or_file
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ExportError(f"no manifest at {path}", "export the model first") from error
    except json.JSONDecodeError as error:
        raise ExportError(f"{path} is not valid JSON: {error}", "re-export the model") from error


def verify_files(directory: Path) -> list[str]:
    """Problems with an artifact's files against its manifest (empty when all match)."""
    manifest = read_manifest(directory)
    problems = []
    for entry in manifest.get("files", []):
        path = directory / entry["name"]
        if not path.is_file():
            problems.append(f"{entry['name']}: missing")
            continue
        actual = file_entry(path)
        if actual.bytes != entry["bytes"] or actual.sha256 != entry["sha256"]:
            problems.append(f"{entry['name']}: size or sha256 differs from the manifest")
    return problems


def _json_safe(value: Any) -> Any:
    """Source dicts come from callers verbatim; anything JSON cannot hold becomes its text."""
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    return str(value)
