"""The front as a picture: every evaluated candidate, error against parameters (``evo front
--plot``).

The picture is for choosing a member, so it shows what a choice needs: where the whole search
went (every evaluated network, not just survivors), which networks are on the front (highlighted
and labelled with the member id that ``evo show`` and ``evo retrain`` take), which were
infeasible (marked, not hidden), the test error of retrained members beside their validation
error, and the hypervolume with the bounds it was computed on (a hypervolume without its
bounds compares nothing).

The data is gathered by :func:`plot_data` (plain, testable) and drawn by :func:`plot_front`;
matplotlib is imported only there, with the Agg backend, so no display is ever needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.objectives import Constraint
from evo.retrain import latest_retrains
from evo.search import front_of
from evo.store import RunStore

FORMATS = (".png", ".svg")


@dataclass(frozen=True)
class Point:
    """One evaluated network on the plot (the member id is the individual that trained it)."""

    member: int
    params: float
    error: float
    kind: str  # feasible | infeasible (misses a constraint) | skipped (not trained) | failed


@dataclass(frozen=True)
class FrontPoint:
    member: int
    params: float
    error: float
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
    invalid: int  # individuals with no network (invalid derivation or phenotype)
    val_images: int | None
    constraints: tuple[str, ...] = field(default=())
    limits: tuple[tuple[str, float, str], ...] = field(default=())  # drawable: params, error

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
        if self.invalid:
            notes.append(f"{self.invalid} invalid individuals have no network and are not shown")
        skipped = sum(p.kind == "skipped" for p in self.points)
        failed = sum(p.kind == "failed" for p in self.points)
        if skipped or failed:
            notes.append("not trained / failed networks are drawn at error 1")
        return text + ("\n" + "; ".join(notes) + "." if notes else "")


def plot_data(store: RunStore) -> PlotData:
    """Everything the plot draws, read from run.db."""
    constraints = tuple(Constraint(**c) for c in store.meta("constraints") or [])
    evaluations = store.evaluations()
    points = []
    for ev in sorted(evaluations.values(), key=lambda e: e.individual_id):
        params = ev.objectives.get("params")
        if params is None:
            continue
        if ev.status == "ok":
            violation = sum(c.violation(ev.objectives.get(c.name)) for c in constraints)
            kind = "feasible" if violation == 0 else "infeasible"
            error = float(ev.objectives.get("error", 1.0))
        else:
            kind = "skipped" if ev.status == "skipped" else "failed"
            error = 1.0
        points.append(Point(ev.individual_id, float(params), error, kind))
    retrains = latest_retrains(store)
    front = []
    for ind, ev in front_of(store):
        if "params" not in ev.objectives:
            continue
        record = retrains.get(ev.key)
        front.append(FrontPoint(
            ind.id, float(ev.objectives["params"]), float(ev.objectives.get("error", 1.0)),
            None if record is None else 1.0 - record.test_accuracy_mean,
            None if record is None else record.test_total,
            None if record is None else record.seeds))
    last = store.last_generation()
    gen = store.generation(last) if last is not None else None
    config = store.meta("config") or {}
    dataset = ((store.meta("problem") or {}).get("dataset") or {}).get("name")
    val_sizes = {ev.metrics.get("val_total") for ev in evaluations.values()} - {None}
    invalid = int(store.conn.execute(
        "SELECT COUNT(*) FROM individuals WHERE eval_key IS NULL").fetchone()[0])
    grammar = str(config.get("grammar", "?"))
    grammar = Path(grammar).name if "/" in grammar else grammar
    title = f"{store.run_dir.name}: {grammar} on {dataset or 'synthetic'}"
    return PlotData(
        title=title, points=tuple(points), front=tuple(front),
        hypervolume=None if gen is None else gen["hypervolume"],
        scales=tuple(store.meta("objective_scales") or []),
        objectives=tuple(config.get("objectives") or ()), invalid=invalid,
        val_images=max(val_sizes) if len(val_sizes) == 1 else None,
        constraints=tuple(c.text for c in constraints),
        limits=tuple((c.name, c.limit, c.text) for c in constraints
                     if c.name in ("params", "error")),
    )


_STYLE = {
    "feasible": {"marker": "o", "color": "#9aa5b1", "label": "evaluated"},
    "infeasible": {"marker": "x", "color": "#d9534f", "label": "infeasible (misses a constraint)"},
    "skipped": {"marker": "x", "color": "#a94442", "label": "infeasible, not trained"},
    "failed": {"marker": "v", "color": "#f0ad4e", "label": "training failed"},
}


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
    _draw(data, path)
    return data


def _draw(data: PlotData, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # Text stays text in SVG (searchable, and member ids can be found in the file).
    with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig, ax = plt.subplots(figsize=(8, 5.6), dpi=150)
        try:
            for kind, style in _STYLE.items():
                pts = [p for p in data.points if p.kind == kind]
                if pts:
                    ax.scatter([p.params for p in pts], [p.error for p in pts], s=18,
                               marker=style["marker"], color=style["color"], alpha=0.8,
                               label=f"{style['label']} ({len(pts)})", zorder=2)
            front = sorted(data.front, key=lambda f: f.params)
            if front:
                xs, ys = [f.params for f in front], [f.error for f in front]
                if set(data.objectives) == {"error", "params"}:
                    ax.step(xs, ys, where="post", color="#1f77b4", linewidth=1.2, zorder=3)
                ax.scatter(xs, ys, s=46, color="#1f77b4", edgecolor="black", linewidth=0.6,
                           label=f"front, validation error ({len(front)})", zorder=4)
                for f in front:
                    ax.annotate(f"#{f.member}", (f.params, f.error), textcoords="offset points",
                                xytext=(5, 5), fontsize=8, color="#0b3d91", zorder=5)
                tested = [f for f in front if f.test_error is not None]
                if tested:
                    for f in tested:
                        ax.plot([f.params, f.params], [f.error, f.test_error], color="#2ca02c",
                                linewidth=0.8, zorder=3)
                    images = {f.test_images for f in tested}
                    on = f", {images.pop()} images" if len(images) == 1 else ""
                    ax.scatter([f.params for f in tested], [f.test_error for f in tested],
                               s=40, marker="D", facecolor="none", edgecolor="#2ca02c",
                               label=f"front, test error after retrain ({len(tested)}{on})",
                               zorder=4)
            for name, limit, text in data.limits:
                draw = ax.axvline if name == "params" else ax.axhline
                draw(limit, color="#d9534f", linestyle="--", linewidth=0.9, label=text, zorder=1)
            ax.set_xscale("log")
            ax.set_xlabel("parameters (count, log scale)")
            ax.set_ylabel("error (1 - accuracy)")
            ax.set_title(data.title)
            ax.grid(True, which="both", alpha=0.25)
            ax.legend(loc="upper right", fontsize=8)
            fig.text(0.01, 0.01, _wrap(data.caption(), 150), fontsize=7, va="bottom")
            fig.tight_layout(rect=(0, 0.08, 1, 1))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format=path.suffix.lower().lstrip("."))
            tmp.replace(path)
        finally:
            plt.close(fig)


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())
