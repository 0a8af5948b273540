"""``evo report``: one HTML page about a run, readable without the terminal, and its figures.

Thin: :func:`evo.report.html_report.write_report` does the work; matplotlib is imported only
inside the command, so ``evo --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    run_dir: Path = typer.Argument(..., help="Run folder written by evo search."),
    out: Optional[Path] = typer.Option(  # noqa: UP045 (typer reads typing.Optional)
        None, "--out", help="Folder for the page and its figures (default: RUN_DIR/report; "
        "created when missing)."),
) -> None:
    """Write an HTML report of a run: fronts, progress, compute, exports.

    One self-contained file (figures inside it, no network needed to view
    it): every evaluated network and the front, the fronts of successive
    generations, hypervolume and training compute per generation, size on
    disk and latency of exported members, the member table, configuration,
    host and the next commands to run. The figures are also written beside
    it as SVG files. It only reads the run, so it works while a search runs.
    """
    from evo.report.html_report import write_report

    written = write_report(run_dir, out)
    typer.echo(f"report: {written.page}")
    if written.figures:
        names = ", ".join(path.name for path in written.figures)
        typer.echo(f"figures: {names} (in {written.page.parent})")
    typer.echo("open it in any browser; it needs no network and no other file")
