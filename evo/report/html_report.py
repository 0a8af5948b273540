"""``evo report``: one HTML page about a run that a person reads without the terminal, and its
figures as SVG files beside it.

Why one self-contained file: a report is mailed, attached to an issue, opened on a laptop on a
train. So every figure is inside the page as a ``data:`` URI, the style is inline CSS with the
reader's own system fonts, and nothing in it points anywhere: no script, no stylesheet or font
link, no absolute URL in any ``src``, ``href`` or CSS ``url()`` (the links of the page's
contents are ``#fragments``). The figures are also written as files for slides and papers.

What it shows is read through :mod:`evo.report.report_data` (the run itself only through
:mod:`evo.run`) and drawn by :func:`evo.report.front_draw.draw` (the front, as ``evo front
--plot`` draws it) and :mod:`evo.report.report_figures`; the sections are written by
:mod:`evo.report.html_sections`.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

from evo import __version__
from evo.errors import EvoError
from evo.report.html_sections import (
    commands_section,
    config_section,
    exports_section,
    figure_html,
    host_section,
    members_section,
    summary_section,
)
from evo.report.report_data import ReportData, gather
from evo.run.layout import report_dir

PAGE_NAME = "report.html"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif;
       color: #1f2933; background: #ffffff; margin: 0; line-height: 1.45; }
main { max-width: 1100px; margin: 0 auto; padding: 16px 28px 48px; }
header { background: #0b3d91; color: #ffffff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 1.5em; }
header p { margin: 0; opacity: 0.9; }
nav { background: #e4e7eb; padding: 8px 28px; font-size: 0.92em; }
nav a { color: #0b3d91; margin-right: 14px; text-decoration: none; }
h2 { border-bottom: 2px solid #d3dae2; padding-bottom: 4px; margin-top: 36px; color: #0b3d91; }
figure { margin: 12px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e4e7eb; }
figcaption, .note { color: #52606d; font-size: 0.9em; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
th, td { border: 1px solid #d3dae2; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f4f8; }
tr:nth-child(even) td { background: #f8fafc; }
table.members tr td { background: #ffffff; }
table.members tr.phenotype td { border-top: none; color: #52606d; padding-bottom: 8px; }
table.members tbody tr:not(.phenotype) td { border-bottom: none; }
td.num { text-align: right; white-space: nowrap; }
.wide { overflow-x: auto; }
.columns { display: flex; flex-wrap: wrap; gap: 0 24px; align-items: flex-start; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em; }
td code { word-break: break-word; }
pre { background: #f0f4f8; padding: 10px 12px; overflow-x: auto; }
.facts td:first-child { font-weight: 600; white-space: nowrap; }
.status-ok { color: #1e7b34; } .status-bad { color: #b42318; font-weight: 600; }
"""


@dataclass(frozen=True)
class ReportFiles:
    """What ``evo report`` wrote: the page and each figure file."""

    page: Path
    figures: tuple[Path, ...]


def _out_dir(run_dir: Path, out: Path | None) -> Path:
    folder = Path(out) if out is not None else report_dir(run_dir)
    if folder.exists() and not folder.is_dir():
        raise EvoError(f"{folder}: is a file, not a folder", "pass --out a folder (it is "
                       "created when missing)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise EvoError(f"{folder}: cannot write the report there ({exc.strerror})",
                       "pass --out a writable folder") from None
    return folder


def write_report(run_dir: Path, out: Path | None = None) -> ReportFiles:
    """Write the report of the run in ``run_dir`` into ``out`` (default ``RUN_DIR/report``):
    ``report.html`` and its figures as SVG files."""
    run_dir = Path(run_dir)
    data = gather(run_dir)  # before anything is written: a folder without a run is one error
    folder = _out_dir(run_dir, out)
    sections, figures = _figures(data, folder)
    body = "\n".join([
        summary_section(data),
        *sections,
        exports_section(data, figures.get("exports")),
        members_section(data),
        commands_section(data),
        config_section(data),
        host_section(data),
    ])
    page = folder / PAGE_NAME
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text(_page(data, body), encoding="utf-8")
    tmp.replace(page)
    return ReportFiles(page, tuple(figures.values()))


def _page(data: ReportData, body: str) -> str:
    title = html.escape(data.title)
    links = [("summary", "Summary"), ("front", "Front"), ("generations", "Generations"),
             ("hypervolume", "Hypervolume"), ("compute", "Compute"), ("exports", "Exports"),
             ("members", "Members"), ("next", "Next commands"), ("configuration", "Configuration"),
             ("host", "Host")]
    nav = " ".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in links)
    made = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>evo report: {title}</title>
<style>{STYLE}</style>
</head>
<body>
<header><h1>{title}</h1>
<p>evo report of run <code>{html.escape(str(data.run_dir))}</code>, written {made} by evo
{html.escape(__version__)}</p></header>
<nav>{nav}</nav>
<main>
{body}
</main>
</body>
</html>
"""


def _figures(data: ReportData, folder: Path) -> tuple[list[str], dict[str, Path]]:
    """Draw each figure the run has data for; the HTML sections for the front, generations,
    hypervolume and compute, and every figure file by name."""
    from evo.report import report_figures
    from evo.report.front_draw import draw

    files: dict[str, Path] = {}
    sections = []
    plot = data.plot
    text = '<h2 id="front">The front</h2>\n'
    if plot.points:
        files["front"] = folder / "front.svg"
        draw(plot, files["front"])
        text += figure_html(files["front"], "every evaluated network and the front",
                            "Every evaluated network in the objectives the run searched, on the "
                            "values the front was selected on; the front of the last generation "
                            "highlighted and labelled with the member ids every command takes "
                            "(evo show, evo retrain, evo export). The caption under the plot "
                            "gives the hypervolume with its bounds.")
    else:
        text += '<p class="note">Nothing evaluated yet.</p>'
    sections.append(text)

    text = '<h2 id="generations">The front, generation by generation</h2>\n'
    if any(front.members for front in data.fronts):
        files["generations"] = report_figures.draw_generations(data, folder / "generations.svg")
        text += figure_html(files["generations"], "fronts of successive generations",
                             "The feasible rank-0 members each generation kept, early "
                             "generations faint, the last one dark: where the search moved the "
                             "front.")
    else:
        text += '<p class="note">No generation with a feasible member yet.</p>'
    sections.append(text)

    text = '<h2 id="hypervolume">Hypervolume per generation</h2>\n'
    if any(front.hypervolume is not None for front in data.fronts):
        files["hypervolume"] = report_figures.draw_hypervolume(data, folder / "hypervolume.svg")
        bounds = "; ".join(f"{s['name']} {s['transform']} [{s['lower']:g}, {s['upper']:g}]"
                           for s in plot.scales)
        text += figure_html(files["hypervolume"], "hypervolume per generation",
                             "Hypervolume of each generation's feasible members as the search "
                             "stored it, each objective mapped to [0, 1] "
                             f"({html.escape(bounds)}), reference point 1 in every objective: "
                             "the share of the objective space the front dominates.")
    else:
        text += '<p class="note">No hypervolume stored yet (no generation finished).</p>'
    sections.append(text)

    text = '<h2 id="compute">Training compute per generation</h2>\n'
    if any(c.trained for c in data.compute):
        files["compute"] = report_figures.draw_compute(data, folder / "compute.svg")
        total = sum(c.train_seconds for c in data.compute)
        whole = sum(c.seconds for c in data.compute)
        text += figure_html(files["compute"], "training compute per generation",
                             "Wall time of the training loops of the networks this run trained, "
                             "by the generation each was born in, with the networks and epochs "
                             f"on each bar: {total:.1f} s of training in {whole:.1f} s of "
                             "evaluations (data, training, scoring, measuring). Cache hits and "
                             "warm-start copies cost nothing and are not counted.")
    else:
        text += ('<p class="note">No training time recorded: no evaluation of this run has '
                 "trained a network yet (cache hits, warm-start copies and synthetic problems "
                 "record none).</p>")
    sections.append(text)

    if data.exports or data.latencies:
        files["exports"] = report_figures.draw_exports(data, folder / "exports.svg")
    return sections, files
