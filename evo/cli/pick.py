"""``evo pick RUN_DIR --target T [--max-latency] [--max-bytes] [--min-accuracy] [--format]``:
the exported model that meets a deployment budget.

Thin: the choosing lives in :mod:`evo.report.pick` (stored figures only, nothing measured);
this module parses options, calls it and prints one table in the style of ``evo bench`` (or
``--json``). Exit 0 with a best candidate, 1 when nothing meets the budget (the message says
which limit binds and by how much), 2 for bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from evo.report.pick import Candidate, Pick

_STYLE = {"fits": "green", "fits, quick": "yellow", "not measured": "dim",
          "no test accuracy": "dim"}


def register(app: typer.Typer) -> None:
    app.command("pick")(pick)


def pick(
    run_dir: Path = typer.Argument(..., help="Run folder written by evo search, exported "
                                   "(evo export) and measured (evo bench)."),
    target: str = typer.Option(..., "--target", "-t", help="Where the model will run, e.g. "
                               "ov:CPU or ort:cpu; TARGET@HOST for figures imported from "
                               "another machine (as evo front labels them)."),
    max_latency: str | None = typer.Option(None, "--max-latency", metavar="TIME",
                                           help="Largest median latency, e.g. 2ms or 500us."),
    max_bytes: str | None = typer.Option(None, "--max-bytes", metavar="SIZE",
                                         help="Largest size on disk, e.g. 50kB "
                                         "(kB = 10^3 bytes) or 1.5MB."),
    min_accuracy: str | None = typer.Option(None, "--min-accuracy", metavar="ACCURACY",
                                            help="Smallest test accuracy: 0.9 or 90%."),
    formats: str | None = typer.Option(None, "--format", metavar="FORMATS",
                                       help="Only these export formats, comma-separated, "
                                       "e.g. ir-int8 or onnx,ir-fp32."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Choose the most accurate exported model that meets a latency and size budget, from the
    run's stored measurements (docs/latency.md)."""
    from evo.report.pick import pick as choose
    from evo.report.pick_budget import parse_budget

    budget = parse_budget(max_latency, max_bytes, min_accuracy, formats)
    result = choose(run_dir, target, budget)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_pick(result)
    if result.best is None:
        raise typer.Exit(1)


def _row(c: Candidate) -> list[str]:
    t = c.timing
    acc = "-" if c.test_accuracy is None else f"{c.test_accuracy * 100:.2f}"
    if c.accuracy_elsewhere:
        acc += "*"
    spread = "-"
    if t is not None and t.p10_ms is not None and t.p90_ms is not None:
        spread = f"{t.p10_ms:.4f}–{t.p90_ms:.4f}"
    executed = "?" if t is None else (t.executed_precision or "?")
    status = c.status
    return ["★" if c.best else "", str(c.member), c.format,
            f"[{_STYLE.get(status, 'red')}]{status}[/]",
            "-" if c.size_bytes is None else f"{c.size_bytes / 1e3:.2f}", acc,
            "-" if t is None else f"{t.median_ms:.4f}", spread,
            f"{c.stored_precision or '?'}→{executed}"]


def print_pick(result: Pick) -> None:
    """The table of candidates that are not over budget, the best one marked, then what a
    person needs next: its path, what is flagged, what is missing and how to measure it."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"{result.run_dir} on {result.target}: {result.budget.text()}",
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for column in ("", "member", "format", "status", "size\n(kB)", "test acc\n(%)",
                   "median\n(ms)", "p10–p90\n(ms)", "precision\n(stored→run)"):
        left = column in {"", "member", "format", "status"}
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for c in result.shown:
        table.add_row(*_row(c))
    console = _console()
    if result.shown:
        console.print(table)
    for line in _notes(result):
        console.print(line, highlight=False, markup=False, soft_wrap=True)


def _notes(result: Pick) -> list[str]:
    lines = []
    best = result.best
    if best is not None:
        acc = "-" if best.test_accuracy is None else f"{best.test_accuracy * 100:.2f} %"
        ms = "not measured" if best.timing is None else f"{best.timing.median_ms:.4f} ms"
        size = "-" if best.size_bytes is None else f"{best.size_bytes / 1e3:.2f} kB"
        lines += [f"★ best: member {best.member} {best.format} (test accuracy {acc}, median "
                  f"{ms} on {result.target}, {size})", f"path: {best.path}"]
    else:
        lines += _nothing_fits(result)
    over = result.over_budget
    if over and best is not None:
        counts = ", ".join(f"{option} {n}" for option, n, _ in result.binding() if n)
        lines.append(f"over budget: {len(over)} of {len(result.candidates)} candidates "
                     f"({counts}); --json lists them")
    command = result.measure_command()
    if any(c.quick for c in result.shown):
        lines.append("quick: latency of the quick protocol (for ranking inside a search); "
                     f"for figures to rely on: {command}")
    missing = result.not_measured
    if missing:
        names = ", ".join(f"member {c.member} {c.format}" for c in missing)
        lines.append(f"not measured on {result.target}: {names}; measure them: {command}")
    if result.elsewhere:
        lines.append(f"also measured on other machines: {', '.join(result.elsewhere)} "
                     "(pick with --target TARGET@HOST)")
    for u in result.unusable:
        lines.append(f"not a candidate: member {u['member']} {u['format']} ({u['status']}"
                     f"{': ' + str(u['reason']) if u['reason'] else ''})")
    if any(c.accuracy_elsewhere for c in result.shown):
        lines.append("*: the test accuracy ran at another precision than the target executes "
                     "(evo export scores ONNX files with onnxruntime; see precision)")
    if result.shown:
        lines.append("kB = 10^3 bytes; test acc: the exported file on the run's test split "
                     "(evo export); median and p10–p90: the stored latency (evo bench)")
    return lines


def _nothing_fits(result: Pick) -> list[str]:
    """Which limit binds and by how much, on the candidate nearest the budget."""
    lines = [f"nothing meets the budget on {result.target} ({result.budget.text()})"]
    closest = result.closest
    if closest is not None:
        misses = "; ".join(m.text() for m in closest.misses)
        lines.append(f"closest: member {closest.member} {closest.format} at {misses}")
        binds = ", ".join(f"{option} excludes {n} of {total}"
                          for option, n, total in result.binding() if n)
        lines.append(f"binding: {binds}")
    return lines


def _console() -> Console:
    """A terminal's own width; 120 columns when piped, so logged tables do not wrap at 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 120))
