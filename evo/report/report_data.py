"""Everything ``evo report`` shows, read from a run once, as plain values.

Why apart from the drawing and the HTML: gathering touches only :mod:`evo.run` (through the
front plot's and front table's own readers, so the report says what ``evo front`` says), can be
tested without matplotlib, and the page and the figures draw from one snapshot of the run
instead of each opening it at a slightly different moment.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo.report.front_measured import in_search, latency_label, preferred
from evo.report.front_plot import PlotData, plot_data
from evo.report.front_table import front_rows
from evo.report.runs import run_status
from evo.run.exports import latest_exports
from evo.run.per_generation import (
    GenerationCompute,
    GenerationFront,
    generation_fronts,
    training_compute,
)
from evo.run.store import RunStore


@dataclass(frozen=True)
class ExportedFile:
    """One format of one exported member, as its newest export row records it."""

    member: int
    format: str
    status: str  # ok | failed | missing (files not in place)
    bytes: int | None
    reason: str | None
    accuracy: float | None  # on the run's test split at the executed precision
    samples: int | None  # images behind ``accuracy``


@dataclass(frozen=True)
class Latency:
    """A member's latency on one target in one format, measured after export (the search's
    own timings are not among them): median with its p10-p90 spread."""

    member: int
    target: str  # the target, with @host when measured on another machine
    format: str
    protocol: str
    median_ms: float
    p10_ms: float | None
    p90_ms: float | None
    runs: int | None


@dataclass(frozen=True)
class ReportData:
    """One snapshot of a run for the report page and its figures."""

    run_dir: Path
    title: str
    status: str
    plot: PlotData
    fronts: tuple[GenerationFront, ...]
    compute: tuple[GenerationCompute, ...]
    exports: tuple[ExportedFile, ...]
    latencies: tuple[Latency, ...]
    members: tuple[dict[str, Any], ...]  # evo front's rows: the last front
    config: dict[str, Any]
    dataset: dict[str, Any]
    problem: str | None  # what a run without a dataset evaluated (a synthetic problem)
    search_host: dict[str, Any]  # device, threads and library versions of the search
    measurement_hosts: tuple[dict[str, Any], ...]
    created: float | None
    updated: float | None
    commands: tuple[tuple[str, str], ...] = field(default=())  # (command, why)


def _exports(store: RunStore) -> tuple[ExportedFile, ...]:
    found = []
    for formats in latest_exports(store).values():
        for name, row in formats.items():
            scored = (row["details"] or {}).get("accuracy") or {}
            found.append(ExportedFile(int(row["individual_id"]), name, str(row["status"]),
                                      row["bytes"], row["reason"], row["accuracy"],
                                      scored.get("samples")))
    return tuple(sorted(found, key=lambda e: (e.member, e.format)))


def _latencies(store: RunStore) -> tuple[tuple[Latency, ...], tuple[dict[str, Any], ...]]:
    """Latencies measured after export (one per member, target and format: the full protocol
    over the quick one, then the newest) and the machines they were measured on."""
    measurements = store.measurements()
    if not measurements:
        return (), ()
    from hardware.host import describe_host

    local = describe_host().fingerprint
    evaluations = store.evaluations()
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    hosts: dict[str, dict[str, Any]] = {}
    for m in measurements:
        ev = evaluations.get(m["eval_key"] or "")
        if ev is None or m["median_ms"] is None or in_search(m, ev.metrics.get("onnx")):
            continue
        label = latency_label(m["target"], m["host"], local)
        groups.setdefault((ev.key, label, str(m["format"])), []).append(m)
        hosts[str(m["host"].get("fingerprint"))] = m["host"]
    found = []
    for (_key, label, name), items in groups.items():
        best = preferred(items)
        stats = (best["details"] or {}).get("latency") or {}
        found.append(Latency(int(best["individual_id"]), label, name, str(best["protocol"]),
                             float(best["median_ms"]), stats.get("p10_ms"), stats.get("p90_ms"),
                             stats.get("n")))
    found.sort(key=lambda item: (item.member, item.target, item.format))
    return tuple(found), tuple(hosts.values())


def gather(run_dir: Path) -> ReportData:
    """Read everything the report shows from the run in ``run_dir``."""
    run_dir = Path(run_dir)
    rows, _info = front_rows(run_dir)  # also the one clear error for a folder without a run
    store = RunStore.open(run_dir, write=False)
    try:
        plot = plot_data(store)
        problem = store.meta("problem") or {}
        latencies, hosts = _latencies(store)
        data = ReportData(
            run_dir=run_dir, title=plot.title,
            status=run_status(run_dir, store.meta("status")), plot=plot,
            fronts=tuple(generation_fronts(store)), compute=tuple(training_compute(store)),
            exports=_exports(store), latencies=latencies, members=tuple(rows),
            config=store.meta("config") or {},
            dataset=problem.get("dataset") or {}, problem=problem.get("problem"),
            search_host={"device": problem.get("device_type"),
                         "threads": problem.get("threads"),
                         "versions": store.meta("versions") or {}},
            measurement_hosts=hosts, created=store.meta("created"),
            updated=store.meta("updated"))
    finally:
        store.close(checkpoint=False)
    return dataclasses.replace(data, commands=next_commands(data))


def _round_up(value: float) -> float:
    """``value`` rounded up to two significant digits (a budget that the value meets)."""
    from math import ceil, floor, log10

    if value <= 0:
        return value
    step = 10 ** (floor(log10(value)) - 1)
    return ceil(value / step - 1e-9) * step


def next_commands(data: ReportData) -> tuple[tuple[str, str], ...]:
    """What to run next on this run, in the order the steps go, each with why."""
    members = data.members
    run = shlex.quote(str(data.run_dir))
    commands: list[tuple[str, str]] = []
    if data.status in ("interrupted", "running"):
        commands.append((f"evo search --resume {run}",
                         "the search did not finish; this continues it where it stopped"))
    untested = [r for r in members if r.get("test_accuracy") is None]
    if untested:
        commands.append((f"evo retrain {run} --seeds 3",
                         f"{len(untested)} of {len(members)} front members have no test accuracy "
                         "yet: this trains the front on train+validation and scores it on test"))
    ok = [e for e in data.exports if e.status == "ok"]
    exported = {e.member for e in ok}
    if any(r["member"] not in exported for r in members):
        commands.append((f"evo export {run} --front --format all",
                         "ONNX and OpenVINO IR files of the front (FP32, FP16, INT8), each "
                         "checked for parity and scored on the test split"))
    if ok and not data.latencies:
        commands.append((f"evo bench {run}", "size on disk and latency of every exported file "
                         "on this machine's targets"))
    local = [lat for lat in data.latencies if "@" not in lat.target]
    if local:
        target = max(sorted({lat.target for lat in local}),
                     key=lambda t: sum(lat.target == t for lat in local))
        on_target = [lat for lat in local if lat.target == target]
        latency = _round_up(max(lat.median_ms for lat in on_target))
        size = _round_up(max(e.bytes or 0 for e in ok) / 1000) if ok else None
        budget = f" --max-latency {latency:g}ms" + (f" --max-bytes {size:g}kB" if size else "")
        commands.append((f"evo pick {run} --target {target}{budget}",
                         "the members and formats that meet a deployment budget (these limits "
                         "admit every one measured here; tighten them to yours)"))
    elif ok:
        commands.append((f"evo pick {run} --target ort:cpu --max-latency 2ms",
                         "the members that meet a latency budget (after evo bench)"))
    if members:
        best = max(members, key=lambda r: r.get("val_accuracy") or 0.0)
        commands.append((f"evo show {run} {best['member']}",
                         f"everything about member {best['member']}, the front's most accurate "
                         "on validation (--torch prints its PyTorch code)"))
    commands.append((f"evo report {run}", "this page again, after any of the above"))
    return tuple(commands)
