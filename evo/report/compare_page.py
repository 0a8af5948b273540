"""The HTML page of ``evo compare``: one self-contained file a person can open anywhere.

Why self-contained: the page is mailed, attached to a ticket or opened on a machine without
network, so the figure is embedded as PNG data, the styles are inline, the fonts are the
reader's own, and nothing on the page points to another address (no link, no script, no
absolute URL: run folders are shown as text, never as links).
"""

from __future__ import annotations

import base64
import json
import os
from html import escape
from pathlib import Path

from evo import __version__
from evo.errors import EvoError
from evo.report.compare import SPREAD, Comparison

NAMES = {"page": "compare.html", "figure": "compare.png", "data": "compare.json"}

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #1b1f24; }
table { border-collapse: collapse; margin: 0.6em 0 1.4em; }
th, td { border: 1px solid #c9d1d9; padding: 0.3em 0.7em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f5f7; }
img { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
.note { color: #57606a; }
code { background: #f3f5f7; padding: 0 0.2em; }
"""


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _row(cells: list[str], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    return "<tr>" + "".join(
        f"<td class=\"num\">{c}</td>" if i in numeric else f"<td>{c}</td>"
        for i, c in enumerate(cells)) + "</tr>"


def _head(names: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>"


def page(cmp: Comparison, png: bytes) -> str:
    """The whole page as text (UTF-8 when written)."""
    image = base64.b64encode(png).decode("ascii")
    runs, groups = len(cmp.runs), len(cmp.groups)
    parts = [
        "<!DOCTYPE html>",
        "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>evo compare: {runs} runs in {groups} groups</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Comparison of {runs} runs in {groups} groups</h1>",
        f"<p>Objectives <code>{escape(','.join(cmp.objectives))}</code>, all minimised. Every "
        "run is rescored from its stored survivors in one normalisation, so runs stored on "
        f"different scales compare: {escape(cmp.normalisation)}.</p>",
        f"<img alt=\"Last fronts with 50 % attainment surfaces, and hypervolume per generation"
        f"\" src=\"data:image/png;base64,{image}\">",
        "<h2>Final hypervolume per group</h2>",
        f"<p>Median over the group's runs; spread is {SPREAD} (only with two runs or more).</p>",
        "<table>", _head(["group", "runs", "median", f"spread ({SPREAD})", "per run"]),
    ]
    for g in cmp.groups:
        spread = "-" if g.low is None else f"{g.low:.4f} - {g.high:.4f}"
        parts.append(_row([escape(g.name), str(len(g.runs)), _num(g.median), spread,
                           ", ".join(f"{v:.4f}" for v in g.final)], {1, 2}))
    parts.append("</table>")
    parts.append("<h2>Mann-Whitney U test (two-sided) of the final hypervolumes</h2>")
    if cmp.tests:
        parts += ["<table>", _head(["groups", "U", "p-value", "smallest possible p"])]
        for t in cmp.tests:
            parts.append(_row([f"{escape(t.first)} vs {escape(t.second)}", f"{t.statistic:g}",
                               f"{t.p_value:.4g}", f"{t.smallest_p:.4g}"], {1, 2, 3}))
        parts.append("</table>")
    else:
        parts.append("<p class=\"note\">No test: it needs two groups with two runs or more.</p>")
    if cmp.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li class=\"note\">{escape(n)}</li>" for n in cmp.notes]
        parts.append("</ul>")
    parts += ["<h2>Runs</h2>", "<table>",
              _head(["group", "run", "generations done", "last front", "final hypervolume"])]
    for r in cmp.runs:
        parts.append(_row([escape(r.group), escape(r.path), str(r.generations[-1]),
                           f"{len(r.front)} members", _num(r.final_hypervolume)], {2, 4}))
    parts += ["</table>",
              f"<p class=\"note\">Written by evo {escape(__version__)} (evo compare).</p>",
              "</body></html>", ""]
    return "\n".join(parts)


def write_outputs(cmp: Comparison, out: Path) -> dict[str, Path]:
    """The page, the figure and the data in ``out``, each written whole or not at all."""
    from evo.report.compare_draw import draw

    files = {kind: Path(out) / name for kind, name in NAMES.items()}
    png = draw(cmp)
    contents = {"page": page(cmp, png).encode("utf-8"), "figure": png,
                "data": (json.dumps(cmp.to_dict(), indent=2) + "\n").encode("utf-8")}
    try:
        Path(out).mkdir(parents=True, exist_ok=True)
        for kind, path in files.items():
            partial = path.with_name(f".{path.name}.partial")
            partial.write_bytes(contents[kind])
            os.replace(partial, path)
    except OSError as exc:
        raise EvoError(f"{out}: cannot write the comparison ({exc.strerror})",
                       "choose a writable folder with --out DIR") from None
    return files
