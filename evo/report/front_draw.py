"""Drawing :class:`evo.report.front_plot.PlotData` with matplotlib: one panel per pair of searched
objectives (a single panel for two).

Kept apart from the data so the data stays importable and testable without matplotlib, which
is imported here only, with the Agg backend (no display needed). Each panel shows every
evaluated network that has both of its values, the front highlighted and labelled with member
ids, constraint limits on its axes, p10-p90 bars on front latencies and, where error is the
vertical axis, the test error of retrained members.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from evo.report.front_plot import FrontPoint, PlotData

STYLE = {
    "feasible": {"marker": "o", "color": "#9aa5b1", "label": "evaluated"},
    "infeasible": {"marker": "x", "color": "#d9534f", "label": "infeasible (misses a constraint)"},
    "skipped": {"marker": "x", "color": "#a94442", "label": "infeasible, not trained"},
    "failed": {"marker": "v", "color": "#f0ad4e", "label": "training failed"},
    "stopped": {"marker": ".", "color": "#b39ddb", "label": "stopped early (error then)"},
}
FRONT_COLOR = "#1f77b4"
TEST_COLOR = "#2ca02c"


def axis_label(name: str, log: bool) -> str:
    """An objective's axis title with its unit (and the scale, when logarithmic)."""
    scale = ", log scale" if log else ""
    if name == "error":
        return "error (1 - accuracy)"
    if name == "params":
        return f"parameters (count{scale})"
    if name == "macs":
        return f"MACs (count{scale})"
    if name == "onnx_bytes":
        return f"ONNX size (bytes{scale})"
    if name.startswith("latency:"):
        return f"latency {name.split(':', 1)[1]} (ms, in search{scale})"
    return name + (f" ({scale[2:]})" if scale else "")


def is_log(data: PlotData, name: str) -> bool:
    """Log axes where the hypervolume maps the objective through log10 (counts, bytes, ms)."""
    for scale in data.scales:
        if scale.get("name") == name:
            return scale.get("transform") == "log10"
    return name != "error"


def draw(data: PlotData, path: Path) -> None:
    """Write the picture of ``data`` to ``path`` (its suffix names the format)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    panels = data.panels()
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    size = (8, 5.6) if len(panels) == 1 else (5.2 * cols, 4.2 * rows + 1.0)
    # Text stays text in SVG (searchable, and member ids can be found in the file).
    with plt.rc_context({"svg.fonttype": "none", "font.size": 9}):
        fig, axes = plt.subplots(rows, cols, figsize=size, dpi=150, squeeze=False)
        try:
            flat = list(axes.flat)
            for index, (x, y) in enumerate(panels):
                _panel(flat[index], data, x, y, legend=index == 0)
            for ax in flat[len(panels):]:
                ax.set_visible(False)
            fig.suptitle(data.title, fontsize=10)
            caption = data.caption()
            missing = data.missing_note()
            if missing:
                caption += "\n" + missing
            if any(f.spread for f in data.front):
                caption += "\nBars on front members: p10-p90 of the in-search latency runs."
            wrapped = _wrap(caption, 150 if len(panels) == 1 else 60 * cols)
            fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom")
            # Room for the caption: about 0.12 inch per line of 7-point text.
            bottom = min(0.4, (0.12 * (wrapped.count("\n") + 1) + 0.15) / size[1])
            fig.tight_layout(rect=(0, bottom, 1, 0.97))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            fig.savefig(tmp, format=path.suffix.lower().lstrip("."))
            tmp.replace(path)
        finally:
            plt.close(fig)


def _panel(ax: Any, data: PlotData, x: str, y: str, legend: bool) -> None:
    for kind, style in STYLE.items():
        pts = [p for p in data.points if p.kind == kind and x in p.values and y in p.values]
        if pts:
            ax.scatter([p.values[x] for p in pts], [p.values[y] for p in pts], s=18,
                       marker=style["marker"], color=style["color"], alpha=0.8,
                       label=f"{style['label']} ({len(pts)})", zorder=2)
    front = sorted((f for f in data.front if x in f.values and y in f.values),
                   key=lambda f: (f.values[x], f.values[y]))
    if front:
        _front(ax, front, x, y, staircase=len(data.objectives) == 2)
    for name, limit, text in data.limits:
        if name == x:
            ax.axvline(limit, color="#d9534f", linestyle="--", linewidth=0.9, label=text,
                       zorder=1)
        elif name == y:
            ax.axhline(limit, color="#d9534f", linestyle="--", linewidth=0.9, label=text,
                       zorder=1)
    for name, set_scale, set_label in ((x, ax.set_xscale, ax.set_xlabel),
                                       (y, ax.set_yscale, ax.set_ylabel)):
        log = is_log(data, name)
        if log:
            set_scale("log")
        set_label(axis_label(name, log))
    ax.grid(True, which="both", alpha=0.25)
    if legend:
        ax.legend(loc="upper right", fontsize=7)


def _front(ax: Any, front: list[FrontPoint], x: str, y: str, staircase: bool) -> None:
    xs, ys = [f.values[x] for f in front], [f.values[y] for f in front]
    if staircase:  # with two objectives the front is exactly this staircase
        ax.step(xs, ys, where="post", color=FRONT_COLOR, linewidth=1.2, zorder=3)
    for f in front:
        xerr = _bar(f, x)
        yerr = _bar(f, y)
        if xerr is not None or yerr is not None:
            ax.errorbar([f.values[x]], [f.values[y]], xerr=xerr, yerr=yerr, fmt="none",
                        ecolor=FRONT_COLOR, elinewidth=0.9, capsize=2, zorder=3)
    label = "front, validation error" if y == "error" else "front"
    ax.scatter(xs, ys, s=46, color=FRONT_COLOR, edgecolor="black", linewidth=0.6,
               label=f"{label} ({len(front)})", zorder=4)
    for f in front:
        ax.annotate(f"#{f.member}", (f.values[x], f.values[y]), textcoords="offset points",
                    xytext=(5, 5), fontsize=8, color="#0b3d91", zorder=5)
    tested = [f for f in front if f.test_error is not None]
    if y == "error" and tested:
        for f in tested:
            ax.plot([f.values[x], f.values[x]], [f.values[y], f.test_error], color=TEST_COLOR,
                    linewidth=0.8, zorder=3)
        images = {f.test_images for f in tested}
        on = f", {images.pop()} images" if len(images) == 1 else ""
        ax.scatter([f.values[x] for f in tested], [f.test_error for f in tested], s=40,
                   marker="D", facecolor="none", edgecolor=TEST_COLOR,
                   label=f"front, test error after retrain ({len(tested)}{on})", zorder=4)


def _bar(f: FrontPoint, name: str) -> list[list[float]] | None:
    """Asymmetric error bar (below, above) from the median to p10 and p90."""
    if name not in f.spread:
        return None
    low, high = f.spread[name]
    value = f.values[name]
    return [[max(value - low, 0.0)], [max(high - value, 0.0)]]


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())
