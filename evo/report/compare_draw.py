"""The figure of ``evo compare``: last fronts with 50 % attainment surfaces (left) and
hypervolume per generation (right), one colour per group, all in the comparison's one
normalisation.

Kept apart from :mod:`evo.report.compare` so the numbers can be computed and tested without
matplotlib, which is imported here only (a bare ``Figure`` with the Agg canvas: no display, no
global pyplot state).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from evo.report.compare import Comparison, RunResult

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def staircase(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The boundary of what ``points`` attain (both minimised) inside the unit box: from the
    top edge down to the first point, across and down point by point, out to the right edge."""
    pts = sorted(points)
    if not pts:
        return [], []
    xs, ys = [pts[0][0]], [1.0]
    for i, (x, y) in enumerate(pts):
        xs.append(x)
        ys.append(y)
        nxt = pts[i + 1][0] if i + 1 < len(pts) else 1.0
        xs.append(nxt)
        ys.append(y)
    return xs, ys


def _axis_title(cmp: Comparison, index: int) -> str:
    scale = cmp.scales[index]
    if scale.name == "params" and scale.transform == "log10" and (scale.lower, scale.upper) == \
            (1e2, 1e6):
        return "parameters (x = (log10 params - 2) / 4, clipped)"
    if scale.name == "error" and scale.transform == "linear" and \
            (scale.lower, scale.upper) == (0.0, 1.0):
        return "validation error (1 - accuracy)"
    return f"{scale.name}: {scale.transform} in [{scale.lower:g}, {scale.upper:g}], normalised"


def _front_2d(run: RunResult, axes: tuple[int, int]) -> list[tuple[float, float]]:
    return [(p[axes[0]], p[axes[1]]) for p in run.front_normalised]


def draw(cmp: Comparison, path: Path | None = None) -> bytes:
    """The comparison's figure as PNG bytes (also written to ``path`` when given)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(13, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    fronts, curves = fig.subplots(1, 2)
    for number, group in enumerate(cmp.groups):
        colour = COLOURS[number % len(COLOURS)]
        members = [r for r in cmp.runs if r.group == group.name]
        several = len(members) > 1
        for seed, run in enumerate(members):
            pts = _front_2d(run, cmp.axes)
            marker = MARKERS[(seed if several else number) % len(MARKERS)]
            label = f"{group.name}: last front" if not several else None
            if pts:
                fronts.scatter([p[0] for p in pts], [p[1] for p in pts], color=colour,
                               marker=marker, s=22, alpha=0.55 if several else 0.9, label=label)
                if not several:
                    fronts.plot(*staircase(pts), color=colour, linewidth=1.2)
            curves.plot(run.generations, run.hypervolumes, color=colour, marker=".",
                        linewidth=1.0 if several else 1.6, alpha=0.45 if several else 1.0,
                        label=None if several else group.name)
        if several:
            surface = cmp.attainment.get(group.name)
            if surface:
                fronts.plot(*staircase(surface), color=colour, linewidth=2.4,
                            label=f"{group.name}: 50 % attainment ({len(members)} runs)")
            _median_curve(curves, members, colour, group.name)
    fronts.set_xlim(-0.02, 1.02)
    fronts.set_ylim(-0.02, 1.02)
    fronts.set_xlabel(_axis_title(cmp, cmp.axes[0]))
    fronts.set_ylabel(_axis_title(cmp, cmp.axes[1]))
    if _axis_title(cmp, cmp.axes[0]).startswith("parameters (x ="):
        fronts.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["100", "1k", "10k", "100k", "1M"])
    fronts.set_title("Last fronts (markers: one run each)")
    fronts.grid(alpha=0.3)
    fronts.legend(fontsize=8, loc="upper right")
    curves.set_xlabel("generation")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    curves.set_ylabel("hypervolume (reference point 1 in every objective)")
    curves.set_title("Hypervolume per generation")
    curves.grid(alpha=0.3)
    curves.legend(fontsize=8, loc="lower right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def _median_curve(ax: object, members: list[RunResult], colour: str, name: str) -> None:
    """The group's median hypervolume over the generations all of its runs reached."""
    import numpy as np

    length = min(len(r.hypervolumes) for r in members)
    median = np.median([r.hypervolumes[:length] for r in members], axis=0)
    ax.plot(members[0].generations[:length], median, color=colour,  # type: ignore[attr-defined]
            linewidth=2.4, label=f"{name}: median of {len(members)} runs")
