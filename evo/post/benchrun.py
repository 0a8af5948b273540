"""Latency of a run's exported members, measured here or imported from an edge device.

Why this module exists: ``hardware`` measures model files and knows nothing of runs, and the
``export`` step records files without timing them. This joins the two: it finds each member's
exported files in ``run.db`` (the newest export of each format), measures them on targets, and
records every result in the ``measurements`` table, where ``evo front`` (see
:mod:`evo.report.front_measured`) and ``evo bench RUN_DIR`` read them. Results measured on an edge
box are brought in by :mod:`evo.post.bench_import`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.run.layout import model_file_name, resolve_stored
from evo.run.store import RunStore

if TYPE_CHECKING:
    from hardware.host import HostInfo
    from hardware.latency import Measurement
    from hardware.targets import TargetInfo

Say = Callable[[str], None]
BYTES_PER_MB = 1_000_000


@dataclass(frozen=True)
class ExportedModel:
    """One exported artifact of a member, as recorded in the ``exports`` table."""

    export_id: int
    member: int
    eval_key: str
    format: str  # export format name: onnx, ir-fp32, onnx-int8, ...
    path: Path  # the model file (.onnx or .xml)
    size_bytes: int | None
    test_accuracy: float | None
    files: tuple[dict[str, Any], ...]  # manifest entries: name, bytes, sha256

    @property
    def kind(self) -> str:
        """``ir``, ``tflite`` or ``onnx``: what a runtime has to read (hardware.models' names)."""
        suffix = self.path.suffix.lower()
        return {".xml": "ir", ".tflite": "tflite"}.get(suffix, "onnx")

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.member, "format": self.format, "path": str(self.path),
                "size_bytes": self.size_bytes,
                "size_mb": None if self.size_bytes is None else self.size_bytes / BYTES_PER_MB,
                "test_accuracy": self.test_accuracy}


def exported_models(store: RunStore, eval_keys: Iterable[str] | None = None,
                    latest: bool = True) -> list[ExportedModel]:
    """Exported artifacts with status ok, by member and format order; ``latest`` keeps only
    the newest export of each format per network (an older one's files were overwritten)."""
    from evo.run.exports import export_problem, repair

    repair(store)  # finish the swaps of a killed export first
    wanted = None if eval_keys is None else set(eval_keys)
    chosen: dict[tuple[str, str], dict[str, Any]] = {}
    every: list[dict[str, Any]] = []
    for row in store.exports():
        if row["eval_key"] is None or (wanted is not None and row["eval_key"] not in wanted):
            continue
        chosen[(row["eval_key"], row["format"])] = row
        every.append(row)
    out = []
    for row in chosen.values() if latest else every:
        if row["status"] != "ok" or not row["path"]:
            continue
        details = row["details"]
        if export_problem(store.run_dir, row["path"], details) is not None:
            continue  # its files are missing or not yet in place (an interrupted export)
        files = tuple(details.get("files") or ())
        model_file = model_file_name([str(f["name"]) for f in files])
        if model_file is None:
            continue
        out.append(ExportedModel(
            export_id=int(row["id"]), member=int(row["individual_id"]),
            eval_key=row["eval_key"], format=row["format"],
            path=resolve_stored(store.run_dir, row["path"]) / model_file,
            size_bytes=row["bytes"], test_accuracy=row["accuracy"], files=files))
    return sorted(out, key=lambda m: (m.member, _format_order(m.format), m.export_id))


def _format_order(name: str) -> int:
    from export.formats import ALL_FORMATS

    return ALL_FORMATS.index(name) if name in ALL_FORMATS else len(ALL_FORMATS)


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class PairResult:
    """One (exported model, target) pair: measured, failed, or not applicable (IR on ort)."""

    model: ExportedModel
    target: str
    measurement: Measurement | None = None
    error: str | None = None
    reused: bool = False  # an earlier identical measurement (same file, target, protocol)

    @property
    def status(self) -> str:
        if self.measurement is not None:
            return "ok"
        return "not applicable" if self.error is None else "failed"


@dataclass(frozen=True)
class RunBench:
    """Everything ``evo bench RUN_DIR`` measured, one row per (model, target)."""

    run_dir: Path
    protocol: str
    threads: int
    host: HostInfo
    targets: tuple[TargetInfo, ...]
    models: tuple[ExportedModel, ...]
    pairs: tuple[PairResult, ...] = field(default=())

    @property
    def failures(self) -> list[PairResult]:
        return [p for p in self.pairs if p.status == "failed"]

    def pair(self, model: ExportedModel, target: str) -> PairResult | None:
        for p in self.pairs:
            if p.model == model and p.target == target:
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        models = []
        for model in self.models:
            latency: dict[str, Any] = {}
            for info in self.targets:
                p = self.pair(model, info.name)
                if p is None:
                    continue
                entry: dict[str, Any] = {"status": p.status, "error": p.error}
                if p.measurement is not None:
                    m = p.measurement
                    entry.update(median_ms=m.latency.median_ms, p90_ms=m.latency.p90_ms,
                                 reused=p.reused, measurement=m.to_dict())
                latency[info.name] = entry
            models.append({**model.to_dict(), "latency": latency})
        return {"run_dir": str(self.run_dir), "protocol": self.protocol,
                "threads": self.threads, "host": self.host.to_dict(),
                "targets": [t.to_dict() for t in self.targets], "models": models}

    def csv_rows(self) -> list[dict[str, Any]]:
        """One flat row per (model, target), units in the column names."""
        rows = []
        for p in self.pairs:
            base = {"member": p.model.member, "export_format": p.model.format,
                    "test_accuracy": p.model.test_accuracy, "status": p.status,
                    "error": p.error, "target": p.target}
            if p.measurement is not None:
                rows.append({**base, **p.measurement.row()})
            else:
                rows.append({**base, "model": str(p.model.path),
                             "size_bytes": p.model.size_bytes})
        return rows


def bench_run(
    run_dir: Path,
    targets: str | Sequence[str] | None = None,
    protocol: str = "full",
    threads: int = 1,
    *,
    eval_keys: Iterable[str] | None = None,
    skip_done: bool = False,
    on_result: Callable[[PairResult], None] | None = None,
) -> RunBench:
    """Measure every exported model of the run (default: each member's newest export per
    format) on ``targets`` (default: ``ort:cpu`` and ``ov:CPU`` where installed) and record
    each result in ``measurements`` as it lands.

    Holds the run lock throughout (a running search makes this "run in progress"). IR files
    are not applicable to onnxruntime targets. ``skip_done`` reuses a stored measurement of
    the same file bytes on the same target fingerprint with the same protocol and threads.
    """
    from hardware.errors import HardwareError
    from hardware.host import describe_host
    from hardware.latency import Measurement, get_protocol, measure
    from hardware.models import inspect_model
    from hardware.runner import default_targets
    from hardware.targets import not_applicable, parse_targets, resolve_target

    if threads < 1:
        raise EvoError(f"--threads must be >= 1, got {threads}", "pass --threads 1 or more")
    chosen = get_protocol(protocol)
    wanted = default_targets() if targets is None else parse_targets(targets)
    infos = tuple(resolve_target(t) for t in wanted)
    run_dir = Path(run_dir)
    store = RunStore.open(run_dir, write=True)
    try:
        models = exported_models(store, eval_keys)
        if not models:
            raise EvoError(f"{run_dir}: no exported members to measure",
                           f"export them first: evo export {run_dir}")
        previous = _previous(store) if skip_done else {}
        pairs: list[PairResult] = []
        for model in models:
            for info in infos:
                result: PairResult
                if not_applicable(info.target, model.kind) is not None:
                    result = PairResult(model, info.name)
                else:
                    try:
                        sha = inspect_model(model.path).sha256
                        key = (model.eval_key, model.format, info.fingerprint, chosen.name,
                               threads, sha)
                        if key in previous:
                            result = PairResult(model, info.name,
                                                Measurement.from_dict(previous[key]), reused=True)
                        else:
                            m = measure(model.path, info, chosen, threads)
                            record_measurement(store, model, m, "local")
                            result = PairResult(model, info.name, m)
                    except HardwareError as exc:
                        result = PairResult(model, info.name, error=str(exc))
                pairs.append(result)
                if on_result is not None:
                    on_result(result)
        return RunBench(run_dir, chosen.name, threads, describe_host(), infos, tuple(models),
                        tuple(pairs))
    finally:
        store.close()


def record_measurement(store: RunStore, model: ExportedModel, m: Measurement,
                       source: str) -> None:
    """One ``measurements`` row for ``model`` (``source``: ``local`` or ``import``)."""
    with store.transaction() as conn:
        store.add_measurement(
            conn, individual_id=model.member, format=model.format, target=m.target,
            protocol=m.protocol.name, host=m.host.to_dict(), median_ms=m.latency.median_ms,
            bytes=m.model.size_bytes, details=m.to_dict(), source=source)


def _previous(store: RunStore) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Stored local measurements by (network, format, target fingerprint, protocol, threads,
    file sha256)."""
    out = {}
    for row in store.measurements():
        d = row["details"]
        if row["source"] != "local" or not isinstance(d, dict) or "model" not in d:
            continue
        out[(row["eval_key"], row["format"], d.get("target_fingerprint"),
             row["protocol"], d.get("threads"), d["model"].get("sha256"))] = d
    return out


# ---------------------------------------------------------------- after a search


def bench_step(run_dir: Path, config: SearchConfig, say: Say) -> None:
    """Measure the exported front on ``config.bench`` with the quick protocol (one thread).

    Runs after the search has closed its executor, so no training worker competes for the
    CPU. Targets of the default list that this machine lacks are skipped with a note; results
    already measured for the same files (a resumed run) are reused.
    """
    if not config.bench:
        return
    if not config.export:
        say("bench: skipped, nothing was exported (--no-export)")
        return
    from evo.run.front import front_of
    from hardware.errors import HardwareError
    from hardware.targets import resolve_target

    present = []
    for name in config.bench:
        try:
            present.append(resolve_target(name).name)
        except HardwareError as exc:
            say(f"bench: {name} skipped: {exc.message}")
    if not present:
        return
    store = RunStore.open(run_dir, write=False)
    try:
        keys = [ev.key for _ind, ev in front_of(store)]
    finally:
        store.close(checkpoint=False)
    say(f"bench: exported front on {', '.join(present)} (quick protocol, 1 thread, batch 1)")

    def report(p: PairResult) -> None:
        if p.measurement is not None:
            note = " (measured before)" if p.reused else ""
            say(f"  member {p.model.member} {p.model.format} on {p.target}: "
                f"{p.measurement.latency.median_ms:.4f} ms median{note}")
        elif p.error is not None:
            say(f"  member {p.model.member} {p.model.format} on {p.target}: failed: {p.error}")

    started = time.perf_counter()
    try:
        bench_run(run_dir, present, "quick", 1, eval_keys=keys, skip_done=True,
                  on_result=report)
    except EvoError as exc:
        say(f"bench: {exc.message}")
        return
    say(f"bench: done in {time.perf_counter() - started:.1f} s")
