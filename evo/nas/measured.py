"""Objectives measured on a candidate's exported model: ``onnx_bytes`` and ``latency:<target>``.

Why they are split between two places: the size comes from an export, which a worker can do
right after training (it needs the trained module, and exports of different candidates do not
disturb each other); a latency must be timed while nothing else runs on the machine, so the
search driver measures it between batches, when every training worker is idle (see
``Search._finish_batch_if_complete``). Latencies belong to one host and one runtime build, so
the targets' fingerprints become part of the run's description and of every evaluation key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.errors import EvoError
from evo.moo.objectives import Constraint
from evo.run.layout import candidate_onnx_path, relative_name, resolve_stored
from evo.run.store import Evaluation
from evo.search.contract import Measured

if TYPE_CHECKING:
    from torch import nn

    from hardware.latency import Measurement
    from hardware.targets import TargetInfo

LATENCY_PREFIX = "latency:"
ONNX_BYTES = "onnx_bytes"
# Inside a search: the quick protocol on one thread (ranks candidates; not a number to publish).
SEARCH_PROTOCOL = "quick"
SEARCH_THREADS = 1
# The TorchScript exporter: 0.03-1 s per small network here, against 3-12 s for dynamo.
SEARCH_EXPORTER = "torchscript"


@dataclass(frozen=True)
class MeasuredNeeds:
    """Which measured quantities a run's objectives and constraints name."""

    onnx_bytes: bool
    targets: tuple[str, ...]  # canonical target names of latency:<target>

    @property
    def any(self) -> bool:
        """Whether candidates need an ONNX file (a latency is timed on it too)."""
        return self.onnx_bytes or bool(self.targets)

    def names(self) -> tuple[str, ...]:
        """Objective names these needs produce."""
        return ((ONNX_BYTES,) if self.onnx_bytes else ()) + tuple(
            LATENCY_PREFIX + t for t in self.targets)


def needs_of(objectives: Iterable[str], constraints: Iterable[Constraint]) -> MeasuredNeeds:
    """The measured quantities named by ``objectives`` and ``constraints``, as parsed once by
    ``SearchConfig.objective_specs`` and ``constraint_specs``."""
    names = list(objectives) + [c.name for c in constraints]
    targets: list[str] = []
    for name in names:
        if name.startswith(LATENCY_PREFIX):
            target = name[len(LATENCY_PREFIX):]
            if target not in targets:
                targets.append(target)
    return MeasuredNeeds(ONNX_BYTES in names, tuple(targets))


def resolve_targets(names: Iterable[str], what: str) -> tuple[TargetInfo, ...]:
    """Each target must be present on this machine; otherwise one line naming those present."""
    from hardware.errors import HardwareError
    from hardware.targets import resolve_target

    infos = []
    for name in names:
        try:
            infos.append(resolve_target(name))
        except HardwareError as exc:
            raise EvoError(f"{what}: {exc.message}", exc.hint) from None
    return tuple(infos)


def check_target_names(names: Iterable[str], what: str) -> tuple[str, ...]:
    """Canonical spelling of target names, refusing malformed ones (no runtime is loaded)."""
    from hardware.errors import HardwareError
    from hardware.targets import parse_target

    out = []
    for name in names:
        try:
            out.append(parse_target(name).name)
        except HardwareError as exc:
            raise EvoError(f"{what}: {exc.message}", exc.hint) from None
    return tuple(out)


def measurement_context(infos: Iterable[TargetInfo]) -> dict[str, Any]:
    """What a latency depends on beyond the network: host, targets, protocol, threads.

    Stored in the run's description and hashed into every evaluation key, so a resume or warm
    start on another machine (or with another runtime version) never reuses a latency.
    """
    from hardware.host import describe_host

    return {
        "host": describe_host().fingerprint,
        "targets": {info.name: info.fingerprint for info in infos},
        "protocol": SEARCH_PROTOCOL,
        "threads": SEARCH_THREADS,
    }


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> int:
    """Write the stripped single-file ONNX of ``model`` atomically; returns its size in bytes.

    The same exporter and ``save_onnx`` (debug metadata stripped, checked, weights inside) as
    ``evo export``'s onnx format, with the TorchScript exporter for speed.
    """
    import copy

    from export.onnx import save_onnx, torch_to_onnx

    reference = copy.deepcopy(model).float().cpu().eval()
    exported = torch_to_onnx(reference, input_shape, exporter=SEARCH_EXPORTER)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        save_onnx(exported.proto, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path.stat().st_size


def export_checkpoint_onnx(checkpoint: Path, path: Path) -> int:
    """Export a stored checkpoint (a warm-start copy, an older evaluation) to ``path``."""
    from evo.net.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    return export_onnx(loaded.model, loaded.input_shape, path)


def time_model(path: Path, info: TargetInfo) -> Measurement:
    """The search's latency of one ONNX file on one target (quick protocol, one thread)."""
    from hardware.latency import measure

    return measure(path, info, SEARCH_PROTOCOL, SEARCH_THREADS)


def measure_evaluation(run_dir: Path, needs: MeasuredNeeds, infos: tuple[TargetInfo, ...],
                       evaluation: Evaluation) -> Measured:
    """Fill what ``evaluation`` lacks of ``needs``: its ONNX size and its latencies.

    The ONNX file the worker wrote is reused; an evaluation without one (a warm-start copy, a
    run started before the objective existed) is exported here from its checkpoint first.
    """
    from hardware.errors import HardwareError

    missing = [name for name in needs.names() if name not in evaluation.objectives]
    if not missing:
        return Measured()
    started = time.perf_counter()
    objectives: dict[str, float] = {}
    metrics: dict[str, Any] = {}
    path = _stored_onnx(run_dir, evaluation)
    if path is None:
        if not evaluation.weights:
            return Measured(failure="no ONNX file and no weights to export it from")
        path = candidate_onnx_path(run_dir, evaluation.key)
        try:
            export_checkpoint_onnx(resolve_stored(run_dir, evaluation.weights), path)
        except Exception as exc:  # an exporter failure is this candidate's, not the run's
            return Measured(failure=f"ONNX export failed: {_first_line(exc)}")
        metrics["onnx"] = relative_name(run_dir, path)
    size = path.stat().st_size
    metrics["onnx_bytes"] = size
    if ONNX_BYTES in missing:
        objectives[ONNX_BYTES] = float(size)
    rows = []
    latency = dict(evaluation.metrics.get("latency") or {})
    for info in infos:
        name = LATENCY_PREFIX + info.name
        if name not in missing:
            continue
        try:
            m = time_model(path, info)
        except HardwareError as exc:
            return Measured(objectives, metrics, tuple(rows),
                            failure=f"latency on {info.name} failed: {exc.message}")
        objectives[name] = m.latency.median_ms
        # The spread beside the median, so `evo front` can tell members apart from noise.
        latency[info.name] = {"median_ms": m.latency.median_ms, "p10_ms": m.latency.p10_ms,
                              "p90_ms": m.latency.p90_ms, "protocol": m.protocol.name,
                              "threads": m.threads, "runs": m.latency.n, "load_ms": m.load_ms}
        rows.append({"format": "onnx", "target": info.name, "protocol": m.protocol.name,
                     "host": m.host.to_dict(), "median_ms": m.latency.median_ms,
                     "bytes": m.model.size_bytes, "details": m.to_dict()})
    if latency:
        metrics["latency"] = latency
    metrics["measure_seconds"] = time.perf_counter() - started
    return Measured(objectives, metrics, tuple(rows))


def _stored_onnx(run_dir: Path, evaluation: Evaluation) -> Path | None:
    stored = evaluation.metrics.get("onnx")
    if not stored:
        return None
    path = resolve_stored(run_dir, stored)
    return path if path.is_file() else None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]
