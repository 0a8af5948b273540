"""Measure many models on many targets, and the results file that carries them elsewhere.

Inputs are checked before anything is timed: a misspelt target, an absent device, a missing or
corrupt file each stop the run with one line at once instead of after minutes of measuring.
Once measuring, a pair that fails (an operation the device lacks) becomes a failure row and the
rest still run: one unsupported model must not cost the whole table. A pair that cannot exist
(OpenVINO IR on an onnxruntime target) is not tried at all: it is listed as not applicable, so a
models x targets cross of ONNX and IR files fails only where a possible pair failed.

The results file is plain JSON (``FORMAT``), written on the device by ``python -m hardware bench
--out`` and read back by ``BenchResults.load`` wherever it is imported; it carries the host
description so imported latencies stay tagged with the machine that produced them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hardware.errors import HardwareError, one_line
from hardware.host import HostInfo, describe_host
from hardware.latency import Measurement, Protocol, get_protocol, measure
from hardware.models import MODEL_SUFFIXES, inspect_model
from hardware.targets import Target, TargetInfo, not_applicable, parse_targets, resolve_target

FORMAT = "evo-hardware-results"
FORMAT_VERSION = 1
DEFAULT_TARGETS = ("ort:cpu", "ov:CPU")


@dataclass(frozen=True)
class BenchFailure:
    """A (model, target) pair that could not be measured, with the one-line reason."""

    model_path: str
    target: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "target": self.target, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchFailure:
        return cls(str(data["model_path"]), str(data["target"]), str(data["error"]))


@dataclass(frozen=True)
class NotApplicable:
    """A (model, target) pair that cannot exist, e.g. OpenVINO IR on onnxruntime; not tried."""

    model_path: str
    target: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"model_path": self.model_path, "target": self.target, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotApplicable:
        return cls(str(data["model_path"]), str(data["target"]), str(data["reason"]))


@dataclass(frozen=True)
class BenchResults:
    """Everything one bench run produced on one host."""

    host: HostInfo
    created_utc: str
    protocol: Protocol
    threads: int
    targets: tuple[TargetInfo, ...]
    measurements: tuple[Measurement, ...]
    failures: tuple[BenchFailure, ...]
    not_applicable: tuple[NotApplicable, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_utc": self.created_utc,
            "host": self.host.to_dict(),
            "protocol": self.protocol.to_dict(),
            "threads": self.threads,
            "targets": [t.to_dict() for t in self.targets],
            "measurements": [m.to_dict() for m in self.measurements],
            "failures": [f.to_dict() for f in self.failures],
            "not_applicable": [n.to_dict() for n in self.not_applicable],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResults:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise HardwareError(
                f'not a results file (no "format": "{FORMAT}")',
                "give a file written by `python -m hardware bench ... --out FILE`",
            )
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise HardwareError(
                f"results file format version {version} is not supported (expected "
                f"{FORMAT_VERSION})",
                "measure again with this version of the hardware package",
            )
        return cls(
            host=HostInfo.from_dict(data["host"]),
            created_utc=str(data["created_utc"]),
            protocol=Protocol.from_dict(data["protocol"]),
            threads=int(data["threads"]),
            targets=tuple(TargetInfo.from_dict(t) for t in data.get("targets", ())),
            measurements=tuple(Measurement.from_dict(m) for m in data["measurements"]),
            failures=tuple(BenchFailure.from_dict(f) for f in data.get("failures", ())),
            not_applicable=tuple(
                NotApplicable.from_dict(n) for n in data.get("not_applicable", ())
            ),
        )

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per (model, target) pair, failures and pairs that cannot exist included
        (``status`` says which: ``ok``, ``failed: ...``, ``not applicable: ...``)."""
        rows = [{**m.row(), "status": "ok"} for m in self.measurements]
        columns = list(rows[0]) if rows else ["model", "target", "status"]
        others = [(f.model_path, f.target, f"failed: {f.error}") for f in self.failures]
        others += [(n.model_path, n.target, f"not applicable: {n.reason}")
                   for n in self.not_applicable]
        for model_path, target, status in others:
            row = dict.fromkeys(columns)
            row.update(model=model_path, target=target, status=status)
            rows.append(row)
        return rows

    def save(self, path: str | Path) -> Path:
        """Write atomically (temporary file + rename): a killed run leaves no half file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(partial, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> BenchResults:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise HardwareError(f"{path}: no such results file", "check the path") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HardwareError(
                f"{path}: not a JSON results file ({one_line(exc)})",
                "give a file written by `python -m hardware bench ... --out FILE`",
            ) from None
        try:
            return cls.from_dict(data)
        except HardwareError as exc:
            raise HardwareError(f"{path}: {exc.message}", exc.hint) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise HardwareError(
                f"{path}: results file is incomplete or damaged ({type(exc).__name__}: {exc})",
                "measure again and copy the whole file",
            ) from None


def default_targets(formats: Iterable[str] = ()) -> tuple[Target, ...]:
    """``ort:cpu`` and ``ov:CPU`` where their runtime is installed (the edge box may lack one),
    and ``litert:cpu`` too when ``formats`` include ``tflite`` (the only runtime that reads it,
    and on an Arm board often the only one installed)."""
    names = [*DEFAULT_TARGETS, *(("litert:cpu",) if "tflite" in formats else ())]
    present = []
    for name in names:
        try:
            present.append(resolve_target(name).target)
        except HardwareError:
            continue
    if not present:
        raise HardwareError(
            "none of onnxruntime, openvino (or ai-edge-litert for .tflite) is installed",
            "pip install onnxruntime, openvino or ai-edge-litert",
        )
    return tuple(present)


def run_bench(
    models: Sequence[str | Path],
    targets: str | Sequence[str | Target] | None = None,
    protocol: str | Protocol = "full",
    threads: int = 1,
    on_result: Callable[[Measurement | BenchFailure], None] | None = None,
) -> BenchResults:
    """Measure every model on every target, in order; ``on_result`` sees each row as it lands.

    An IR file on an onnxruntime target is not applicable (onnxruntime cannot read it): listed in
    ``not_applicable``, never tried, never a failure. When no pair at all can run, that is bad
    input (``HardwareError``) before anything is measured.
    """
    if not models:
        raise HardwareError("no model file given", "pass one or more .onnx or .xml files")
    if threads < 1:
        raise HardwareError(f"threads must be >= 1, got {threads}", "pass --threads 1 or more")
    chosen = get_protocol(protocol)
    suffixes = {MODEL_SUFFIXES.get(Path(path).suffix.lower(), "") for path in models}
    wanted = _targets(targets, suffixes)
    infos = tuple(resolve_target(t) for t in wanted)
    checked = [inspect_model(path) for path in models]  # fail fast on a bad file
    skipped = tuple(
        NotApplicable(model.path, info.name, reason)
        for model in checked
        for info in infos
        if (reason := not_applicable(info.target, model.format)) is not None
    )
    if len(skipped) == len(checked) * len(infos):
        raise HardwareError(
            f"nothing to measure: {skipped[0].reason} and the targets are "
            f"{', '.join(info.name for info in infos)}",
            "add a target that reads these files, e.g. --target ov:CPU or litert:cpu",
        )

    measurements: list[Measurement] = []
    failures: list[BenchFailure] = []
    for model in checked:
        for info in infos:
            if not_applicable(info.target, model.format) is not None:
                continue
            row: Measurement | BenchFailure
            try:
                row = measure(model.path, info, chosen, threads)
            except HardwareError as exc:
                row = BenchFailure(model.path, info.name, str(exc))
            (measurements if isinstance(row, Measurement) else failures).append(row)
            if on_result is not None:
                on_result(row)
    return BenchResults(
        host=describe_host(),
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        protocol=chosen,
        threads=threads,
        targets=infos,
        measurements=tuple(measurements),
        failures=tuple(failures),
        not_applicable=skipped,
    )


def _targets(
    targets: str | Sequence[str | Target] | None, formats: Iterable[str] = ()
) -> tuple[Target, ...]:
    if targets is None:
        return default_targets(formats)
    if isinstance(targets, str):
        return parse_targets(targets)
    parsed: list[Target] = []
    for item in targets:
        for target in (item,) if isinstance(item, Target) else parse_targets(item):
            if target not in parsed:
                parsed.append(target)
    if not parsed:
        raise HardwareError("no target given", "write e.g. --target ort:cpu,ov:CPU")
    return tuple(parsed)
