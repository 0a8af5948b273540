"""The figures of ``evo report`` beside the front plot: the fronts of successive generations,
hypervolume and training compute per generation, and size and latency of exported members.

Why their own module: the page (:mod:`evo.report.html_report`) only arranges what these draw,
and matplotlib is imported here only, inside the functions, with the Agg backend, so neither
``evo --help`` nor a machine without a display pays for it. Each figure is an SVG file (text
kept as text, no date, fixed ids: the same run gives the same file) written to a temporary
name and renamed into place.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from evo.report.front_draw import FRONT_COLOR, axis_label, is_log
from evo.report.report_data import ExportedFile, Latency, ReportData

RC = {"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "evo-report",
      "axes.spines.top": False, "axes.spines.right": False}
TARGET_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")


@contextmanager
def _figure(rows: int, cols: int, size: tuple[float, float]) -> Iterator[tuple[Any, Any]]:
    """A matplotlib figure with the report's style, closed afterwards."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.rc_context(RC):
        fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
        try:
            yield fig, axes
        finally:
            plt.close(fig)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="svg", metadata={"Date": None})
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- fronts, generation by generation


def draw_generations(data: ReportData, path: Path) -> Path:
    """Each generation's front in the searched objectives, early ones faint and light, the
    last one dark (a staircase with two objectives): how the front moved."""
    panels = data.plot.panels()
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    size = (7.5, 4.6) if len(panels) == 1 else (4.6 * cols, 3.8 * rows + 0.6)
    fronts = [f for f in data.fronts if f.members]
    last = len(fronts) - 1
    with _figure(rows, cols, size) as (fig, axes):
        import matplotlib.pyplot as plt
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        cmap = plt.get_cmap("viridis_r")
        top = max((f.generation for f in fronts), default=1) or 1
        norm = Normalize(vmin=0, vmax=top)
        flat = list(axes.flat)
        for ax, (x, y) in zip(flat, panels, strict=False):
            for index, front in enumerate(fronts):
                points = sorted((ev.objectives[x], ev.objectives[y]) for _m, ev in front.members
                                if x in ev.objectives and y in ev.objectives)
                if not points:
                    continue
                share = index / last if last > 0 else 1.0
                color = cmap(norm(front.generation))
                alpha = 0.25 + 0.75 * share
                xs, ys = zip(*points, strict=True)
                if len(panels) == 1:
                    ax.step(xs, ys, where="post", color=color, alpha=alpha,
                            linewidth=2.0 if index == last else 1.0)
                ax.scatter(xs, ys, s=30 if index == last else 14, color=color, alpha=alpha,
                           edgecolor="black" if index == last else "none", linewidth=0.5,
                           zorder=3 if index == last else 2)
            for name, setter, labeller in ((x, ax.set_xscale, ax.set_xlabel),
                                           (y, ax.set_yscale, ax.set_ylabel)):
                log = is_log(data.plot, name)
                if log:
                    setter("log")
                labeller(axis_label(name, log))
            ax.grid(True, which="both", alpha=0.25)
        for ax in flat[len(panels):]:
            ax.set_visible(False)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=flat[: len(panels)],
                           fraction=0.04, pad=0.02)
        bar.set_label("generation (faint: early, dark: last)")
        from matplotlib.ticker import MaxNLocator

        bar.locator = MaxNLocator(integer=True)
        bar.update_ticks()
        fig.suptitle(f"{data.title}: the front of each generation", fontsize=10)
        return _save(fig, path)


# ---------------------------------------------------------------- per generation


def draw_hypervolume(data: ReportData, path: Path) -> Path:
    """Hypervolume of each generation's feasible members, as the search stored it."""
    with _figure(1, 1, (7.5, 3.4)) as (fig, axes):
        ax = axes[0][0]
        known = [(f.generation, f.hypervolume) for f in data.fronts if f.hypervolume is not None]
        if known:
            xs, ys = zip(*known, strict=True)
            ax.plot(xs, ys, marker="o", markersize=4, color=FRONT_COLOR)
            ax.annotate(f"{ys[-1]:.4f}", (xs[-1], ys[-1]), textcoords="offset points",
                        xytext=(4, -12), fontsize=8)
        missing = [f.generation for f in data.fronts if f.hypervolume is None]
        if missing:
            ax.text(0.01, 0.02, f"no feasible member in generation(s) "
                    f"{', '.join(map(str, missing))}", transform=ax.transAxes, fontsize=7)
        ax.set_xlabel("generation")
        ax.set_ylabel("hypervolume (objectives in [0, 1])")
        _integer_ticks(ax)
        ax.grid(True, alpha=0.25)
        ax.set_title(f"{data.title}: hypervolume per generation", fontsize=10)
        fig.tight_layout()
        return _save(fig, path)


def draw_compute(data: ReportData, path: Path) -> Path:
    """Training-loop seconds spent per generation, with the networks trained and the epochs
    they ran written on each bar (cache hits and warm-start copies cost nothing)."""
    with _figure(1, 1, (7.5, 3.4)) as (fig, axes):
        ax = axes[0][0]
        gens = [c.generation for c in data.compute]
        seconds = [c.train_seconds for c in data.compute]
        ax.bar(gens, seconds, color="#9aa5b1", edgecolor="#52606d", linewidth=0.6)
        if len(gens) <= 30:
            for c in data.compute:
                label = f"{c.trained} net{'s' * (c.trained != 1)}\n{c.epochs} ep"
                ax.annotate(label, (c.generation, c.train_seconds), textcoords="offset points",
                            xytext=(0, 2), ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, max(seconds, default=0) * 1.3 or 1)
        ax.set_xlabel("generation (the one each network was born in)")
        ax.set_ylabel("training time (s, wall)")
        _integer_ticks(ax)
        ax.grid(True, axis="y", alpha=0.25)
        total = sum(seconds)
        ax.set_title(f"{data.title}: training compute per generation "
                     f"(total {total:.1f} s, {sum(c.epochs for c in data.compute)} epochs)",
                     fontsize=10)
        fig.tight_layout()
        return _save(fig, path)


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


# ---------------------------------------------------------------- exported members


def draw_exports(data: ReportData, path: Path) -> Path:
    """Size on disk of each exported file, and latency per target (median, bar p10-p90)."""
    files = [e for e in data.exports if e.status == "ok" and e.bytes]
    latencies = list(data.latencies)
    panels = [p for p, present in (("size", files), ("latency", latencies)) if present]
    rows = max(len(files), len(latencies), 1)
    with _figure(1, max(len(panels), 1), (5.6 * max(len(panels), 1), 1.4 + 0.28 * rows)
                 ) as (fig, axes):
        flat = list(axes.flat)
        for ax, panel in zip(flat, panels, strict=False):
            if panel == "size":
                _sizes(ax, files)
            else:
                _latencies(ax, latencies)
        fig.suptitle(f"{data.title}: exported members", fontsize=10)
        fig.tight_layout()
        return _save(fig, path)


def _sizes(ax: Any, files: list[ExportedFile]) -> None:
    labels = [f"#{e.member} {e.format}" for e in files]
    values = [e.bytes / 1000 for e in files if e.bytes]
    ys = range(len(files))
    ax.barh(ys, values, color=FRONT_COLOR, alpha=0.75)
    for y, value in zip(ys, values, strict=True):
        ax.annotate(f"{value:,.1f} kB", (value, y), textcoords="offset points", xytext=(3, 0),
                    va="center", fontsize=7)
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.3)
    ax.set_xlabel("size on disk (kB, all files of the format)")
    ax.grid(True, axis="x", alpha=0.25)


def _latencies(ax: Any, latencies: list[Latency]) -> None:
    targets = sorted({lat.target for lat in latencies})
    colors = {t: TARGET_COLORS[i % len(TARGET_COLORS)] for i, t in enumerate(targets)}
    for y, lat in enumerate(latencies):
        err = None
        if lat.p10_ms is not None and lat.p90_ms is not None:
            err = [[max(lat.median_ms - lat.p10_ms, 0.0)], [max(lat.p90_ms - lat.median_ms, 0.0)]]
        ax.errorbar([lat.median_ms], [y], xerr=err, fmt="o", color=colors[lat.target],
                    markersize=4, capsize=2, elinewidth=0.9)
    for target in targets:
        ax.plot([], [], "o", color=colors[target], label=target)
    ax.set_yticks(range(len(latencies)),
                  [f"#{lat.member} {lat.format} on {lat.target}"
                   + (" (quick)" if lat.protocol == "quick" else "") for lat in latencies])
    ax.invert_yaxis()
    values = [lat.p90_ms or lat.median_ms for lat in latencies]
    if max(values) > 10 * min(lat.p10_ms or lat.median_ms for lat in latencies):
        ax.set_xscale("log")
    ax.set_xlabel("latency per image (ms, median; bar p10-p90)")
    ax.grid(True, axis="x", which="both", alpha=0.25)
    ax.legend(title="target", fontsize=7, title_fontsize=7, loc="lower right")
