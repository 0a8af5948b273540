"""Which exported model meets a deployment budget (``evo pick``), from stored figures only.

Why: after ``evo export`` and ``evo bench`` the answer a user needs is one file: the most
accurate member and format that fits the device's latency and size budget. Picking it meant
reading two tables by hand. This joins what the run already holds, through :mod:`evo.run`: each
member's newest export of each format (size on disk, test accuracy at the precision it ran at,
files checked in place) and the latency ``evo bench`` recorded for that file on the target. It
measures nothing, so it answers in a moment, on any machine, and a missing figure is reported
with the command that measures it instead of being guessed.

Which latency counts for a (member, format, target): the rows measured after that export
(an older row timed files that were replaced) on this machine, or on the machine named by
``--target TARGET@HOST`` (the label ``evo front`` gives figures imported from an edge device);
the search's own timing rows are never used; among several, a ``full``-protocol figure beats a
``quick`` one, then the newest (:func:`evo.report.front_measured.preferred`). Quick figures are
eligible, flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.report.front_measured import in_search, latency_label, preferred
from evo.report.pick_budget import Budget, Miss
from evo.run.exports import latest_exports
from evo.run.layout import model_file_name, resolve_stored
from evo.run.store import RunStore
from export.names import IR_FORMATS, LITERT_FORMATS


def _precision(text: str | None) -> str | None:
    """One spelling for the precisions export and hardware record: ``f32``, ``FP32`` ->
    ``fp32``; ``int8+bf16``, ``INT8`` -> ``int8`` (quantised layers decide)."""
    if not text:
        return None
    word = str(text).split()[0].lower()
    if word.startswith("int8"):
        return "int8"
    return {"f32": "fp32", "f16": "fp16"}.get(word, word)


@dataclass(frozen=True)
class Timing:
    """The stored latency of one exported file on the target."""

    median_ms: float
    p10_ms: float | None
    p90_ms: float | None
    protocol: str
    executed_precision: str | None
    host: str | None
    source: str
    measured_utc: str | None


@dataclass(frozen=True)
class Candidate:
    """One member's export in one format, judged against the budget."""

    member: int
    format: str
    path: Path  # the file a runtime loads (.onnx or .xml)
    size_bytes: int | None
    test_accuracy: float | None
    test_samples: int | None
    accuracy_precision: str | None  # what the test accuracy ran at (export's runtime)
    stored_precision: str | None
    timing: Timing | None
    misses: tuple[Miss, ...] = ()
    unknown: tuple[str, ...] = ()  # options whose value is not recorded (not measured)
    best: bool = False

    @property
    def fits(self) -> bool:
        return not self.misses and not self.unknown

    @property
    def quick(self) -> bool:
        return self.timing is not None and self.timing.protocol == "quick"

    @property
    def status(self) -> str:
        if self.misses:
            return "over budget"
        if "--max-latency" in self.unknown:
            return "not measured"
        if self.unknown:
            return "no test accuracy"
        return "fits, quick" if self.quick else "fits"

    @property
    def accuracy_elsewhere(self) -> bool:
        """True when the test accuracy ran at another precision than the target executes."""
        executed = None if self.timing is None else self.timing.executed_precision
        return bool(executed and self.accuracy_precision
                    and executed != self.accuracy_precision)

    def value(self, name: str) -> float | None:
        if name == "median_ms":
            return None if self.timing is None else self.timing.median_ms
        return {"size_bytes": self.size_bytes, "test_accuracy": self.test_accuracy}[name]

    def sort_key(self) -> tuple[float, float, float, int, str]:
        """Most accurate first; then faster, then smaller (unknowns last)."""
        inf = float("inf")
        acc = -self.test_accuracy if self.test_accuracy is not None else inf
        ms = self.timing.median_ms if self.timing is not None else inf
        size = float(self.size_bytes) if self.size_bytes is not None else inf
        return (acc, ms, size, self.member, self.format)

    def to_dict(self) -> dict[str, Any]:
        t = self.timing
        return {
            "member": self.member, "format": self.format, "status": self.status,
            "best": self.best, "path": str(self.path), "size_bytes": self.size_bytes,
            "test_accuracy": self.test_accuracy, "test_samples": self.test_samples,
            "accuracy_precision": self.accuracy_precision,
            "stored_precision": self.stored_precision,
            "executed_precision": None if t is None else t.executed_precision,
            "median_ms": None if t is None else t.median_ms,
            "p10_ms": None if t is None else t.p10_ms,
            "p90_ms": None if t is None else t.p90_ms,
            "protocol": None if t is None else t.protocol,
            "host": None if t is None else t.host, "source": None if t is None else t.source,
            "measured_utc": None if t is None else t.measured_utc,
            "misses": [m.to_dict() for m in self.misses], "unknown": list(self.unknown)}


@dataclass(frozen=True)
class Pick:
    """Every candidate on the target, sorted (most accurate first), the best one marked."""

    run_dir: Path
    target: str  # the label: ov:CPU (this machine) or ov:CPU@HOST
    budget: Budget
    candidates: tuple[Candidate, ...]
    elsewhere: tuple[str, ...] = ()  # labels of the same target measured on other machines
    unusable: tuple[dict[str, Any], ...] = field(default=())  # exports failed or missing

    @property
    def best(self) -> Candidate | None:
        return next((c for c in self.candidates if c.best), None)

    @property
    def shown(self) -> list[Candidate]:
        """The table's rows: every candidate not known to miss the budget."""
        return [c for c in self.candidates if not c.misses]

    @property
    def over_budget(self) -> list[Candidate]:
        return [c for c in self.candidates if c.misses]

    @property
    def not_measured(self) -> list[Candidate]:
        return [c for c in self.candidates if c.timing is None]

    @property
    def closest(self) -> Candidate | None:
        """The candidate nearest the budget: least summed relative miss, all values known."""
        judged = [c for c in self.over_budget if not c.unknown]
        if not judged:
            return None
        return min(judged, key=lambda c: (sum(m.relative for m in c.misses), c.sort_key()))

    def binding(self) -> list[tuple[str, int, int]]:
        """(option, candidates it excludes alone, candidates judged on it) for each limit."""
        out = []
        for lim in self.budget.limits:
            judged = [c for c in self.candidates if c.value(lim.field) is not None]
            excluded = sum(1 for c in judged if any(m.option == lim.option for m in c.misses))
            out.append((lim.option, excluded, len(judged)))
        return out

    def measure_command(self) -> str:
        """How to get the figures this answer lacks (or a full-protocol one for a quick one)."""
        name, _, host = self.target.partition("@")
        if host:
            return (f"on {host}: python -m hardware bench FILES --target {name} --out "
                    f"results.json, then evo bench --import results.json {self.run_dir}")
        return f"evo bench {self.run_dir} --target {name}"

    def to_dict(self) -> dict[str, Any]:
        best, closest = self.best, self.closest
        return {
            "run_dir": str(self.run_dir), "target": self.target, "budget": self.budget.to_dict(),
            "best": None if best is None else best.to_dict(),
            "candidates": [c.to_dict() for c in self.shown],
            "over_budget": [c.to_dict() for c in self.over_budget],
            "not_measured": [{"member": c.member, "format": c.format}
                             for c in self.not_measured],
            "measure_command": self.measure_command() if self.not_measured or any(
                c.quick for c in self.shown) else None,
            "closest": None if best is not None or closest is None else closest.to_dict(),
            "binding": [{"option": o, "excludes": n, "of": total}
                        for o, n, total in self.binding()],
            "measured_elsewhere": list(self.elsewhere), "unusable": list(self.unusable)}


def parse_pick_target(text: str) -> tuple[str, str]:
    """``"OV:cpu@edge1"`` -> (``"ov:CPU@edge1"``, ``"ov:CPU"``): the label and the target."""
    from hardware.errors import HardwareError
    from hardware.targets import parse_target

    name, _, host = str(text).strip().partition("@")
    try:
        target = parse_target(name).name
    except HardwareError as exc:
        raise EvoError(f"--target: {exc.message}", exc.hint) from None
    if "@" in str(text) and not host.strip():
        raise EvoError(f"--target {text!r}: no host after @",
                       "write TARGET or TARGET@HOST as evo front labels it, e.g. ov:CPU@edge1")
    return (f"{target}@{host.strip()}" if host.strip() else target), target


def pick(run_dir: Path, target: str, budget: Budget) -> Pick:
    """The candidates of ``run_dir`` on ``target`` (``TARGET`` or ``TARGET@HOST``) judged
    against ``budget``, from the run's stored exports and measurements only."""
    run_dir = Path(run_dir)
    label, name = parse_pick_target(target)
    store = RunStore.open(run_dir, write=False)
    try:
        exports = latest_exports(store)
        measurements = store.measurements()
        search_onnx = {}
        for key in exports:
            ev = store.evaluation(key)
            search_onnx[key] = None if ev is None else ev.metrics.get("onnx")
    finally:
        store.close(checkpoint=False)
    rows = [row for by_format in exports.values() for row in by_format.values()]
    usable, unusable = _usable(run_dir, rows, name, budget)
    timings, elsewhere = _timings(measurements, exports, search_onnx, label, name)
    judged = [_judge(run_dir, row, timings.get((row["eval_key"], row["format"])), budget)
              for row in usable]
    judged.sort(key=Candidate.sort_key)
    best = next((i for i, c in enumerate(judged) if c.fits), None)
    if best is not None:
        judged[best] = replace(judged[best], best=True)
    if "@" in label and label not in elsewhere and not any(c.timing for c in judged):
        shown = ", ".join(sorted(elsewhere)) or "none"
        raise EvoError(f"--target {label}: nothing of {run_dir} was measured there",
                       f"{name} figures of this run are labelled: {shown}")
    return Pick(run_dir, label, budget, tuple(judged),
                tuple(sorted(lab for lab in elsewhere if lab != label)), tuple(unusable))


def _usable(run_dir: Path, rows: list[dict[str, Any]], target: str,
            budget: Budget) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The export rows that can be candidates on ``target`` and the failed or missing ones;
    none at all is bad input (one line, with what to run)."""
    if not rows:
        raise EvoError(f"{run_dir}: no exported members",
                       f"export them first: evo export {run_dir}")
    wanted = [r for r in rows if budget.formats is None or r["format"] in budget.formats]
    if not wanted:
        assert budget.formats is not None
        formats = ",".join(budget.formats)
        raise EvoError(f"{run_dir}: no {formats} export",
                       f"export it: evo export {run_dir} --format {formats}")
    on_ort = target.startswith("ort:")
    on_litert = target.lower().startswith(("litert:", "tflite:"))  # reads .tflite, and only it
    runnable = [r for r in wanted if not (on_ort and r["format"] in IR_FORMATS)
                and (r["format"] in LITERT_FORMATS) == on_litert]
    if not runnable and on_litert:
        raise EvoError(f"{run_dir}: no LiteRT export for {target}",
                       f"export it: evo export {run_dir} --format litert,litert-int8")
    if not runnable:
        raise EvoError(f"{run_dir}: no export that {target} runs (OpenVINO IR needs an ov: "
                       "target)", f"export ONNX for onnxruntime: evo export {run_dir} "
                       "--format onnx, or pick on ov:CPU")
    usable = [r for r in runnable if r["status"] == "ok"]
    unusable = [{"member": r["individual_id"], "format": r["format"], "status": r["status"],
                 "reason": r.get("reason")} for r in runnable if r["status"] != "ok"]
    if not usable:
        raise EvoError(f"{run_dir}: no usable export ({len(unusable)} failed or missing)",
                       f"export again: evo export {run_dir}")
    return usable, unusable


def _timings(measurements: list[dict[str, Any]], exports: dict[str, dict[str, dict[str, Any]]],
             search_onnx: dict[str, str | None], label: str,
             target: str) -> tuple[dict[tuple[str, str], Timing], set[str]]:
    """The latency chosen per (network, format) under ``label``, and every label of
    ``target`` that has figures (to point at machines the user may have meant)."""
    relevant = [m for m in measurements if m["target"] == target and m["median_ms"] is not None
                and m["eval_key"] in exports and m["format"] in exports[m["eval_key"]]]
    if not relevant:
        return {}, set()
    from hardware.host import describe_host

    local = describe_host().fingerprint
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    labels: set[str] = set()
    for m in relevant:
        row = exports[m["eval_key"]][m["format"]]
        current = m["created"] >= row["created"] and m["bytes"] in (None, row["bytes"])
        if not current or in_search(m, search_onnx.get(m["eval_key"])):
            continue
        where = latency_label(m["target"], m["host"], local)
        labels.add(where)
        if where == label:
            groups.setdefault((m["eval_key"], m["format"]), []).append(m)
    out = {}
    for key, items in groups.items():
        chosen = preferred(items)
        details = chosen["details"] or {}
        stats = details.get("latency") or {}
        out[key] = Timing(
            median_ms=float(chosen["median_ms"]), p10_ms=stats.get("p10_ms"),
            p90_ms=stats.get("p90_ms"), protocol=str(chosen["protocol"]),
            executed_precision=_precision(details.get("executed_precision")),
            host=(chosen["host"] or {}).get("hostname"), source=str(chosen["source"]),
            measured_utc=details.get("measured_utc"))
    return out, labels


def _judge(run_dir: Path, row: dict[str, Any], timing: Timing | None,
           budget: Budget) -> Candidate:
    details = row["details"] or {}
    accuracy = details.get("accuracy") or {}
    stored = _precision(details.get("precision"))
    folder = resolve_stored(run_dir, row["path"])
    model = model_file_name([str(f.get("name")) for f in details.get("files") or ()])
    candidate = Candidate(
        member=int(row["individual_id"]), format=row["format"],
        path=folder / model if model else folder, size_bytes=row["bytes"],
        test_accuracy=row["accuracy"], test_samples=accuracy.get("samples"),
        accuracy_precision=_precision(accuracy.get("executed_precision")) or stored,
        stored_precision=stored, timing=timing)
    misses, unknown = [], []
    for lim in budget.limits:
        value = candidate.value(lim.field)
        if value is None:
            unknown.append(lim.option)
        elif (miss := lim.miss(float(value))) is not None:
            misses.append(miss)
    return replace(candidate, misses=tuple(misses), unknown=tuple(unknown))
