"""Latencies measured on an edge device, brought into the run they belong to
(``evo bench --import``).

Why apart from :mod:`evo.post.benchrun`: a results file written by ``python -m hardware bench
--out`` on another machine names model files, not members; each measurement is matched to an
exported artifact of the run by the sha256 of its files and recorded with that device's host,
so ``evo front`` can show it beside (never instead of) what was measured here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.errors import EvoError
from evo.post.benchrun import ExportedModel, exported_models, record_measurement
from evo.run.layout import export_hint
from evo.run.store import RunStore

if TYPE_CHECKING:
    from hardware.host import HostInfo
    from hardware.latency import Measurement
    from hardware.runner import BenchFailure


@dataclass(frozen=True)
class ImportOutcome:
    """What ``evo bench --import`` did with a results file."""

    source: Path
    host: HostInfo
    imported: tuple[tuple[ExportedModel, Measurement], ...]
    already: tuple[tuple[ExportedModel, Measurement], ...]  # identical rows were there
    unmatched: tuple[Measurement, ...]
    failures: tuple[BenchFailure, ...]  # pairs the device could not measure

    def to_dict(self) -> dict[str, Any]:
        def pair(model: ExportedModel, m: Measurement) -> dict[str, Any]:
            return {**model.to_dict(), "target": m.target, "median_ms": m.latency.median_ms,
                    "p90_ms": m.latency.p90_ms, "protocol": m.protocol.name,
                    "measurement": m.to_dict()}

        return {"source": str(self.source), "host": self.host.to_dict(),
                "imported": [pair(*p) for p in self.imported],
                "already_imported": [pair(*p) for p in self.already],
                "unmatched": [{"model": m.model.path, "sha256": m.model.sha256,
                               "target": m.target} for m in self.unmatched],
                "device_failures": [f.to_dict() for f in self.failures]}


def model_digest(model: ExportedModel) -> str | None:
    """The sha256 ``hardware`` computes for this artifact (over all its files, model file
    first), or None when it cannot be known.

    For a single-file ONNX that is the manifest's sha256 of the file; for IR (``.xml`` +
    ``.bin``) it is computed from the files on disk, once they are checked against the
    manifest's per-file sha256 (so a file overwritten by a later export is not mistaken for
    this one).
    """
    if len(model.files) == 1:
        return str(model.files[0]["sha256"])
    from export.manifest import file_entry
    from hardware.errors import HardwareError
    from hardware.models import inspect_model

    folder = model.path.parent
    for entry in model.files:
        path = folder / entry["name"]
        if not path.is_file():
            return None
        actual = file_entry(path)
        if actual.sha256 != entry["sha256"] or actual.bytes != entry["bytes"]:
            return None
    try:
        return inspect_model(model.path).sha256
    except HardwareError:
        return None


def import_results(run_dir: Path, results_file: Path) -> ImportOutcome:
    """Bring a results file written by ``python -m hardware bench --out`` into the run.

    Each measurement is matched to an exported artifact of the run by the sha256 of its model
    files and recorded with ``source = 'import'`` and the device's host description. Importing
    the same file twice adds nothing. None matching at all is an error (exit code 2).
    """
    from hardware.runner import BenchResults

    results = BenchResults.load(results_file)
    run_dir = Path(run_dir)
    store = RunStore.open(run_dir, write=True)
    try:
        by_digest: dict[str, ExportedModel] = {}
        for model in exported_models(store, latest=False):  # newest export wins a tie
            digest = model_digest(model)
            if digest is not None:
                by_digest[digest] = model
        seen = {(row["individual_id"], row["format"], row["target"],
                 row["details"].get("measured_utc"), row["host"].get("fingerprint"))
                for row in store.measurements() if row["source"] == "import"}
        imported, already, unmatched = [], [], []
        for m in results.measurements:
            model = by_digest.get(m.model.sha256)
            if model is None:
                unmatched.append(m)
                continue
            key = (model.member, model.format, m.target, m.measured_utc, m.host.fingerprint)
            if key in seen:
                already.append((model, m))
                continue
            record_measurement(store, model, m, "import")
            seen.add(key)
            imported.append((model, m))
        if results.measurements and not imported and not already:
            names = ", ".join(sorted({Path(m.model.path).name for m in unmatched}))
            raise EvoError(
                f"{results_file}: none of its models ({names}) is an exported model of "
                f"{run_dir} (matched by the sha256 of the files)",
                f"measure the files under {export_hint(run_dir)} exactly as exported; a "
                "re-export replaces them")
        return ImportOutcome(Path(results_file), results.host, tuple(imported), tuple(already),
                             tuple(unmatched), results.failures)
    finally:
        store.close()
