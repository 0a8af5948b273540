"""``evo compare``: several runs, grouped by label, on one figure and one HTML page.

Thin: :mod:`evo.report.compare` computes (and imports moocore and scipy only when called),
:mod:`evo.report.compare_page` writes the page and figure (matplotlib is imported there); this
module parses options and prints a table (or ``--json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)


def compare(
    run: list[Path] = typer.Argument(..., help="Run folders to compare (two or more, or one "
                                     "group's seeds)."),
    label: Optional[list[str]] = typer.Option(  # noqa: UP045 (typer reads typing.Optional)
        None, "--label", help="NAME=RUN,RUN: one group of runs (seeds of one set-up) under a "
        "name; a RUN may be a pattern ('runs/topo-*', quoted); repeat for each group. A run no "
        "label names is a group of its own."),
    out: Path = typer.Option(Path("comparison"), "--out", help="Folder for compare.html, "
                             "compare.png and compare.json (made if missing)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (the files "
                                 "are written as well)."),
) -> None:
    """Fronts and hypervolume per generation of several runs, on one figure and one page.

    Every run is rescored in one normalisation (for error,params: x = (log10 params - 2) / 4
    clipped to [0, 1], y = validation error, reference (1, 1)). With two runs or more in a
    group: median and min-max spread of the final hypervolume, a two-sided Mann-Whitney U test
    between groups, and each group's 50 % attainment surface. Runs must share objectives.
    """
    from evo.report.compare import compare_runs
    from evo.report.compare_page import write_outputs

    result = compare_runs(run, label or [])
    files = write_outputs(result, out)
    if as_json:
        data = result.to_dict()
        data["files"] = {kind: str(path) for kind, path in files.items()}
        typer.echo(json.dumps(data, indent=2))
        return
    _print(result, files)


def _print(result: Any, files: dict[str, Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(120, Console().width))
    table = Table(title=f"Final hypervolume of {len(result.runs)} runs in "
                        f"{len(result.groups)} groups (objectives {','.join(result.objectives)})")
    for col, justify in (("group", "left"), ("runs", "right"), ("median", "right"),
                         ("spread (min-max)", "right"), ("per run", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    for g in result.groups:
        spread = "-" if g.low is None else f"{g.low:.4f} - {g.high:.4f}"
        table.add_row(g.name, str(len(g.runs)), f"{g.median:.4f}", spread,
                      ", ".join(f"{v:.4f}" for v in g.final))
    console.print(table)
    say = _say(console)
    say(f"normalisation: {result.normalisation}")
    for t in result.tests:
        say(f"Mann-Whitney U (two-sided), {t.first} vs {t.second}: U = {t.statistic:g}, "
            f"p = {t.p_value:.4g} (the smallest p these group sizes allow: {t.smallest_p:.4g})")
    for note in result.notes:
        say(f"note: {note}")
    say(f"wrote {files['page']} (figure {files['figure']}, data {files['data']})")


def _say(console: Any) -> Any:
    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    return say
