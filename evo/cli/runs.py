"""``evo runs`` and ``evo retrain``: living with runs after (or while) they search (``evo show``
is :mod:`evo.cli.show`).

Thin: the facts come from :mod:`evo.report.runs` and :mod:`evo.post.retrain`; this module
parses options and prints rich tables (or ``--json``). torch is imported only inside the
commands that need it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
    from evo.cli.show import show  # its own module; registered here to keep the help order

    app.command("runs")(runs)
    app.command("show")(show)
    app.command("retrain")(retrain)


def _console() -> Any:
    from rich.console import Console

    return Console(width=max(120, Console().width))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ago(stamp: float | None) -> str:
    if not stamp:
        return "-"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
    minutes = (time.time() - stamp) / 60
    if minutes < 1:
        ago = "just now"
    elif minutes < 120:
        ago = f"{minutes:.0f} min ago"
    elif minutes < 48 * 60:
        ago = f"{minutes / 60:.0f} h ago"
    else:
        ago = f"{minutes / 1440:.0f} days ago"
    return f"{when}\n({ago})"  # two lines: the runs table stays narrow


# ---------------------------------------------------------------- evo runs

_STATUS_STYLE = {"running": "bold green", "finished": "cyan", "interrupted": "yellow",
                 "busy": "magenta", "unreadable": "red"}


def runs(
    directory: Path = typer.Argument(Path("runs"), help="Folder holding run folders."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every run under DIR: status, generations, counts, best accuracy, smallest model,
    hypervolume, training compute.

    Status: running (its process holds the run lock), finished, interrupted (resume it with
    evo search --resume), busy (finished; another command is writing to it). Individuals are
    counted as trained, cached (result reused), skipped (ruled out by a constraint before
    training), invalid (no network), failed and stopped (trained briefly, not continued).
    Hypervolume is the last generation's, as the search stored it; compute is the epochs,
    training images (img) and seconds of the run's own trainings (keys epochs_trained,
    images_seen, train_seconds of the JSON output).
    """
    from evo.report.runs import list_runs

    summaries = list_runs(directory)
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in summaries], indent=2))
        return
    if not summaries:
        typer.echo(f"no runs under {directory}")
        return
    from rich.table import Table

    table = Table(title=f"Runs under {directory} ({len(summaries)})")
    for col, justify in (("run", "left"), ("status", "left"), ("grammar / dataset", "left"),
                         ("generations", "right"), ("individuals", "left"),
                         ("best val acc", "right"), ("smallest\n(params)", "right"),
                         ("hyper-\nvolume", "right"), ("compute", "right"),
                         ("last update", "left")):
        table.add_column(col, justify=justify, overflow="fold",
                         no_wrap=col in ("status", "generations", "individuals",
                                         "hyper-\nvolume", "compute"))
    for s in summaries:
        style = _STATUS_STYLE.get(s.status, "")
        gens = "-" if s.generations_done is None else \
            f"{s.generations_done} of {s.generations_planned}"
        best = _pct(s.best_accuracy)
        if s.best_accuracy_images:
            best += f" of {s.best_accuracy_images}"
        what = f"{_short(s.grammar)} / {_short(s.dataset)}" if s.status != "unreadable" else \
            (s.note or "")
        status = f"[{style}]{s.status}[/{style}]" if style else s.status
        counts = "-" if s.counts is None else s.counts.text("\n")  # one outcome a line
        hypervolume = "-" if s.hypervolume is None else f"{s.hypervolume:.4f}"
        table.add_row(_relative(s.path, directory), status, what, gens, counts, best,
                      _count(s.smallest_params), hypervolume,
                      _compute(s.epochs_trained, s.images_seen, s.train_seconds),
                      _ago(s.last_update))
    _console().print(table)


def _compute(epochs: int | None, images: int | None, seconds: float | None) -> str:
    """``28 epochs``, ``35,196 img`` (training images processed) and ``41.2 s`` of training
    (``-`` for what a run did not record)."""
    if epochs is None and images is None and seconds is None:
        return "-"
    if seconds is None:
        spent = "-"
    elif seconds < 120:
        spent = f"{seconds:.1f} s"
    elif seconds < 7200:
        spent = f"{seconds / 60:.1f} min"
    else:
        spent = f"{seconds / 3600:.1f} h"
    return (f"{'-' if epochs is None else f'{epochs:,}'} epochs\n"
            f"{'-' if images is None else f'{images:,}'} img\n{spent}")


def _short(name: str | None) -> str:
    """A shipped name as is, a path by its file name (the full path is in --json)."""
    if not name:
        return "?"
    return Path(name).name if "/" in name else name


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root)) or "."
    except ValueError:
        return path


def _spread(std: float | None) -> str:
    """A sample standard deviation over seeds in points; one seed has none (not 0)."""
    return "—" if std is None else f"± {std * 100:.2f} points"


# ---------------------------------------------------------------- evo retrain


def retrain(
    run_dir: Path = typer.Argument(..., help="Run folder written by evo search."),
    member: Optional[list[int]] = typer.Option(  # noqa: UP045 (typer reads typing.Optional)
        None, "--member", help="Member id to retrain; repeat for several (default: the front)."),
    epochs: Optional[int] = typer.Option(  # noqa: UP045
        None, "--epochs", help="Training epochs (default: the run's --final-epochs, else its "
        "--epochs), times the recipe's multiplier."),
    seeds: int = typer.Option(1, "--seeds", help="Independent trainings per member; the "
                              "first one's weights are kept as this retrain's own file."),
    device: Optional[str] = typer.Option(  # noqa: UP045
        None, "--device", help="auto, cpu, cuda, cuda:N (default: the run's)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (progress "
                                 "lines go to stderr)."),
    max_memory: Optional[str] = typer.Option(  # noqa: UP045
        None, "--max-memory", help="Memory one training may use, e.g. 8GB (default: the run's "
        "--max-memory, else three quarters of this machine's); a member estimated above it "
        "fails before it is built."),
) -> None:
    """Retrain members on train+validation and record their test accuracy.

    Mean and spread over seeds, with the number of test images behind each figure. Every
    retrain is kept, numbered per member, with its own weights file (evo show lists them; evo
    export uses the newest unless --retrain N). Takes the run lock: exits 2 with "run in
    progress" while a search (or another retrain) runs.
    """
    from evo.post.postsearch import retrain_printer
    from evo.post.retrain import retrain as run_retrain

    def say(text: str) -> None:
        typer.echo(text, err=as_json)

    outcomes = run_retrain(run_dir, member or None, epochs=epochs, seeds=seeds, device=device,
                           listener=retrain_printer(say), max_memory=max_memory)
    if as_json:
        typer.echo(json.dumps([o.to_dict() for o in outcomes], indent=2, default=str))
    else:
        _print_retrains(run_dir, outcomes)
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


def _print_retrains(run_dir: Path, outcomes: list[Any]) -> None:
    from rich.table import Table

    table = Table(title=f"Retrained members of {run_dir} (train+validation, scored on test)")
    for col, justify in (("member", "right"), ("retrain", "right"), ("params", "right"),
                         ("val acc", "right"), ("test acc mean", "right"), ("spread", "right"),
                         ("per seed", "left"), ("epochs", "right"), ("weights", "left")):
        table.add_column(col, justify=justify, overflow="fold")
    totals = set()
    for o in outcomes:
        val = _pct(o.val_accuracy) + (f" of {o.val_images}" if o.val_images else "")
        r = o.record
        if o.status == "failed" or r is None:
            table.add_row(str(o.member), "-", _count(o.params), val, f"failed: {o.reason}",
                          "", "", "", "")
            continue
        totals.add(r.test_total)
        table.add_row(str(o.member), str(r.number), _count(o.params), val,
                      f"{r.test_accuracy_mean:.2%} of {r.test_total}",
                      _spread(r.test_accuracy_std), ", ".join(_pct(a) for a in r.accuracies),
                      str(r.epochs), r.weights or "-")
    console = _console()
    console.print(table)
    for total in sorted(totals):
        console.print(f"Each test figure rests on {total} images: one image moves accuracy by "
                      f"{100 / total:.2f} points; spread is the sample standard deviation over "
                      "seeds (— for one seed: no spread).")
