"""The front as a picture: every evaluated candidate in the objectives the run searched
(``evo front --plot``).

The picture is for choosing a member, so it shows what a choice needs: where the whole search
went (every evaluated network, not just survivors), which networks are on the front (highlighted
and labelled with the member id that ``evo show`` and ``evo retrain`` take), which were
infeasible (marked, not hidden), the test error of retrained members beside their validation
error, and the hypervolume with the bounds it was computed on (a hypervolume without its
bounds compares nothing).

The axes are the searched objectives, with the values the front was selected on (a latency
objective is the in-search median, its p10-p90 spread drawn as a bar on front members): two
objectives are one panel, three or more are one panel per pair. Latencies measured after
export never enter the picture; ``evo front`` shows them in a column of their own.

The data is gathered by :func:`plot_data` (plain, testable) and drawn by
:func:`evo.report.front_draw.draw`; matplotlib is imported only there, with the Agg backend, so no
display is ever needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.moo.objectives import Constraint
from evo.run.counts import Counts, counts_of
from evo.run.front import front_of
from evo.run.retrains import latest_retrains
from evo.run.status import Status
from evo.run.store import Evaluation, RunStore

FORMATS = (".png", ".svg")


class _Values:
    """The two objectives every plot knows by name, read from a point's searched ``values``."""

    values: dict[str, float]

    @property
    def params(self) -> float | None:
        return self.values.get("params")

    @property
    def error(self) -> float | None:
        return self.values.get("error")


@dataclass(frozen=True)
class Point(_Values):
    """One evaluated network on the plot (the member id is the individual that trained it).

    ``values`` holds the searched objectives known for it; a network not trained or failed
    is drawn at error 1 and has no value for what was never measured (a latency)."""

    member: int
    values: dict[str, float]
    kind: str  # feasible | infeasible (misses a constraint) | skipped (not trained) | failed
    # | stopped (training stopped before the full budget: drawn at its error then)


@dataclass(frozen=True)
class FrontPoint(_Values):
    """A front member: its searched values, in-search latency spreads and test error."""

    member: int
    values: dict[str, float]
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (p10, p90)
    test_error: float | None = None
    test_images: int | None = None
    test_seeds: int | None = None


@dataclass(frozen=True)
class PlotData:
    title: str
    points: tuple[Point, ...]
    front: tuple[FrontPoint, ...]
    hypervolume: float | None
    scales: tuple[dict[str, Any], ...]
    objectives: tuple[str, ...]
    counts: Counts  # individuals per outcome (evo.run.counts.OUTCOMES)
    val_images: int | None
    constraints: tuple[str, ...] = field(default=())
    limits: tuple[tuple[str, float, str], ...] = field(default=())  # on a searched objective

    def panels(self) -> tuple[tuple[str, str], ...]:
        """(x, y) objective pairs: one panel for two objectives, one per pair for more;
        error, when searched, is always the vertical axis."""
        pairs = []
        for a, b in combinations(self.objectives, 2):
            pairs.append((b, a) if a == "error" else (a, b))
        return tuple(pairs)

    def missing_note(self) -> str:
        """Which networks a panel cannot place (no value for one of its objectives)."""
        notes = []
        for name in self.objectives:
            missing = sum(name not in p.values for p in self.points)
            if missing:
                notes.append(f"{missing} evaluated networks have no {name} (not trained, or "
                             "failed before it was measured) and are left out of the panels "
                             "that need it")
        return "; ".join(notes) + "." if notes else ""

    def caption(self) -> str:
        """Hypervolume with its bounds, and what the plot leaves out."""
        bounds = ", ".join(
            f"{s['name']} {s['transform']} [{s['lower']:g}, {s['upper']:g}]" for s in self.scales)
        hv = "n/a (no generation yet)" if self.hypervolume is None else f"{self.hypervolume:.4f}"
        text = (f"Hypervolume of the last generation's feasible members: {hv} "
                f"(objectives {', '.join(self.objectives)}, each mapped to [0, 1]: {bounds}; "
                f"reference point 1 in every objective).")
        notes = []
        if self.constraints:
            notes.append(f"constraints {', '.join(self.constraints)}")
        if self.val_images:
            notes.append(f"validation error on {self.val_images} images")
        notes.append(f"individuals: {self.counts.text()}")
        if self.counts.invalid:
            notes.append("invalid ones have no network and are not shown")
        skipped = sum(p.kind == "skipped" for p in self.points)
        failed = sum(p.kind == "failed" for p in self.points)
        if skipped or failed:
            notes.append("skipped and failed networks are drawn at error 1")
        if any(p.kind == "stopped" for p in self.points):
            notes.append("stopped networks (not trained to the full budget) are drawn at their "
                         "error when stopped, never on the front")
        return text + ("\n" + "; ".join(notes) + "." if notes else "")


def _searched(ev: Evaluation, objectives: tuple[str, ...]) -> dict[str, float]:
    """The searched objective values of an evaluation as the front was selected on them;
    a network not trained or failed stands at error 1."""
    values = {name: float(ev.objectives[name]) for name in objectives
              if ev.objectives.get(name) is not None}
    if "error" in objectives and ev.status not in (Status.OK, Status.STOPPED):
        values["error"] = 1.0
    return values


def _spread(ev: Evaluation, objectives: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    """(p10, p90) of each latency objective the search timed (runs before p10 was kept have
    none)."""
    recorded = ev.metrics.get("latency") or {}
    out = {}
    for name in objectives:
        entry = recorded.get(name.split(":", 1)[1]) if name.startswith("latency:") else None
        if entry and entry.get("p10_ms") is not None and entry.get("p90_ms") is not None:
            out[name] = (float(entry["p10_ms"]), float(entry["p90_ms"]))
    return out


def plot_data(store: RunStore) -> PlotData:
    """Everything the plot draws, read from run.db."""
    constraints = tuple(Constraint(**c) for c in store.meta("constraints") or [])
    config = store.meta("config") or {}
    objectives = tuple(config.get("objectives") or ("error", "params"))
    evaluations = store.evaluations()
    points = []
    for ev in sorted(evaluations.values(), key=lambda e: e.individual_id):
        values = _searched(ev, objectives)
        if ev.status == Status.OK:
            violation = sum(c.violation(ev.objectives.get(c.name)) for c in constraints)
            kind = "feasible" if violation == 0 else "infeasible"
        elif ev.status == Status.STOPPED:
            kind = "stopped"
        else:
            kind = "skipped" if ev.status == Status.SKIPPED else "failed"
        points.append(Point(ev.individual_id, values, kind))
    retrains = latest_retrains(store)
    front = []
    for ind, ev in front_of(store):
        record = retrains.get(ev.key)
        front.append(FrontPoint(
            ind.id, _searched(ev, objectives), _spread(ev, objectives),
            None if record is None else 1.0 - record.test_accuracy_mean,
            None if record is None else record.test_total,
            None if record is None else record.seeds))
    last = store.last_generation()
    gen = store.generation(last) if last is not None else None
    dataset = ((store.meta("problem") or {}).get("dataset") or {}).get("name")
    val_sizes = {ev.metrics.get("val_total") for ev in evaluations.values()} - {None}
    grammar = str(config.get("grammar", "?"))
    grammar = Path(grammar).name if "/" in grammar else grammar
    title = f"{store.run_dir.name}: {grammar} on {dataset or 'synthetic'}"
    return PlotData(
        title=title, points=tuple(points), front=tuple(front),
        hypervolume=None if gen is None else gen["hypervolume"],
        scales=tuple(store.meta("objective_scales") or []),
        objectives=objectives, counts=counts_of(store),
        val_images=max(val_sizes) if len(val_sizes) == 1 else None,
        constraints=tuple(c.text for c in constraints),
        limits=tuple((c.name, c.limit, c.text) for c in constraints if c.name in objectives),
    )


def check_plot_path(path: Path) -> Path:
    """The plot file name, if its format is one we draw (checked before any work)."""
    if path.suffix.lower() not in FORMATS:
        raise EvoError(f"{path}: plot format {path.suffix or '(none)'} is not supported",
                       "end the file name in .png or .svg")
    return path


def plot_front(run_dir: Path, path: Path) -> PlotData:
    """Draw the run's candidates and front to ``path`` (.png or .svg); returns the data drawn."""
    path = check_plot_path(Path(path))
    store = RunStore.open(Path(run_dir), write=False)
    try:
        data = plot_data(store)
    finally:
        store.close(checkpoint=False)
    if not data.points:
        raise EvoError(f"{run_dir}: nothing evaluated yet, nothing to plot",
                       "plot after the first candidates are trained")
    from evo.report.front_draw import draw

    draw(data, path)
    return data
