"""``evo runs``, ``evo show`` and ``evo retrain``: living with runs after (or while) they search.

Thin: the facts come from :mod:`evo.report.runs`, :mod:`evo.report.show` and
:mod:`evo.post.retrain`; this module
parses options and prints rich tables (or ``--json``). torch is imported only inside the
commands that need it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer


def register(app: typer.Typer) -> None:
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
    training), invalid (no network) and failed. Hypervolume is the last generation's, as the
    search stored it; compute is the epochs and seconds of the run's own trainings.
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
                      _compute(s.epochs_trained, s.train_seconds), _ago(s.last_update))
    _console().print(table)


def _compute(epochs: int | None, seconds: float | None) -> str:
    """``28 epochs`` over ``41.2 s`` of training (``-`` for what a run did not record)."""
    if epochs is None and seconds is None:
        return "-"
    if seconds is None:
        spent = "-"
    elif seconds < 120:
        spent = f"{seconds:.1f} s"
    elif seconds < 7200:
        spent = f"{seconds / 60:.1f} min"
    else:
        spent = f"{seconds / 3600:.1f} h"
    return f"{'-' if epochs is None else f'{epochs:,}'} epochs\n{spent}"


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


# ---------------------------------------------------------------- evo show


def show(
    run_dir: Path = typer.Argument(..., help="Run folder written by evo search."),
    member: int = typer.Argument(..., help="Member id (as in evo front)."),
    torch_code: bool = typer.Option(False, "--torch", help="Print standalone PyTorch source "
                                    "of the member's network instead (redirect it to a .py)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Everything about one member: phenotype, layers, recipe, metrics, history.

    Also its retrains, exports and measurements; --torch prints standalone PyTorch source.
    """
    if torch_code and not as_json:
        from evo.report.show import member_torch_source

        sys.stdout.write(member_torch_source(run_dir, member, header=True))
        return
    from evo.report.show import member_details, member_torch_source

    details = member_details(run_dir, member)
    if as_json:
        if torch_code:
            details["torch_source"] = member_torch_source(run_dir, member)
        typer.echo(json.dumps(details, indent=2, default=str))
        return
    _print_member(details)


def _print_member(d: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    ev = d["evaluation"] or {}
    hist = d["history"]
    console.rule(f"member {d['member']} of {d['run_dir']}")
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    summary.add_row("phenotype", " ".join((d["phenotype"] or "(none)").split()))
    if d["network"]:
        summary.add_row("network (resolved)", d["network"]["canonical_text"])
    if d["reason"]:
        summary.add_row("invalid", d["reason"])
    g = d["genome"]
    summary.add_row("genome", f"{g['length']} codons, {g['used_codons']} used, tree depth "
                    f"{g['tree_depth']}, {g['tree_nodes']} nodes")
    parents = ", ".join(
        f"{p['member']} (gen {p['generation']}, val acc {_pct(p['val_accuracy'])})"
        for p in hist["parents"]) or "none"
    summary.add_row("history", f"born in generation {hist['generation']} ({hist['origin']}); "
                    f"parents: {parents}")
    survived = hist["survived_generations"]
    summary.add_row("survived", ("generations " + ", ".join(map(str, survived))) if survived
                    else "no generation")
    summary.add_row("on last front", "yes" if hist["on_last_front"] else "no")
    if hist["same_network_as"]:
        summary.add_row("same network as", ", ".join(map(str, hist["same_network_as"])))
    if hist["children"]:
        summary.add_row("children", ", ".join(map(str, hist["children"])))
    if ev:
        m = ev["metrics"]
        acc = m.get("val_accuracy")
        acc_text = "-" if acc is None else (f"{acc:.2%} ({m.get('val_correct')} of "
                                           f"{m.get('val_total')} validation images)")
        summary.add_row("evaluation", f"{ev['status']}{': ' + ev['reason'] if ev['reason'] else ''}"
                        f" ({ev['source']}, member {ev['evaluated_as_member']})")
        summary.add_row("validation accuracy", acc_text)
        summary.add_row("weights", ev["weights"] or "-")
    console.print(summary)

    if d["network"]:
        net = d["network"]
        table = Table(title=f"Layers for {net['dataset']} input "
                            f"{'x'.join(map(str, net['input_shape']))} (C x H x W), "
                            f"{net['num_classes']} classes")
        for col, justify in (("#", "right"), ("layer", "left"), ("output (C x H x W)", "left"),
                             ("params", "right"), ("MACs", "right")):
            table.add_column(col, justify=justify)
        for row in net["layers"]:
            table.add_row(str(row["index"]), row["layer"],
                          "x".join(map(str, row["output_shape"])), f"{row['params']:,}",
                          f"{row['macs']:,}")
        table.add_row("", "total", "", f"{net['params']:,}", f"{net['macs']:,}")
        console.print(table)
        recipe = Table(title="Training recipe")
        recipe.add_column("setting")
        recipe.add_column("value")
        for key, value in net["recipe"].items():
            recipe.add_row(key, str(value))
        recipe.add_row("epochs budget (search)", f"{d['budget']['epochs']} x epochs_mult")
        console.print(recipe)
        for note in net["resolution_notes"] + net["dropped"]:
            console.print(f"note: {note}")
    elif d["no_network"]:
        console.print(f"no layer table: {d['no_network']}")

    if ev:
        metrics = Table(title="Recorded evaluation metrics")
        metrics.add_column("metric")
        metrics.add_column("value", overflow="fold")
        for key, value in sorted(ev["objectives"].items()):
            metrics.add_row(f"objective {key}", _metric(key, value))
        for key, value in sorted(ev["metrics"].items()):
            metrics.add_row(key, _metric(key, value))
        for key in ("device", "threads", "seconds"):
            if ev.get(key) is not None and key not in ev["metrics"]:
                metrics.add_row(key, _metric(key, ev[key]))
        console.print(metrics)

    if d["retrains"]:
        _print_member_retrains(console, d["retrains"])
    # The full records (details JSON) are in `evo show --json`; the tables keep what a person
    # compares: format, status, size, accuracy, parity, latency.
    shown = {"exports": ("id", "format", "status", "bytes", "accuracy", "parity", "path",
                         "reason"),
             "measurements": ("id", "format", "target", "protocol", "median_ms", "bytes",
                              "source")}
    for name in ("exports", "measurements"):
        if d[name]:
            table = Table(title=name.capitalize())
            keys = [k for k in shown[name] if k in d[name][0]]
            for key in keys:
                table.add_column(key, overflow="fold")
            for row in d[name]:
                table.add_row(*[_metric(k, row.get(k)) for k in keys])
            console.print(table)


def _spread(std: float | None) -> str:
    """A sample standard deviation over seeds in points; one seed has none (not 0)."""
    return "—" if std is None else f"± {std * 100:.2f} points"


def _print_member_retrains(console: Any, retrains: list[dict[str, Any]]) -> None:
    """Every retrain of the member's network, numbered, each with its own weights file; the
    newest is what evo export uses unless --retrain N names another."""
    from rich.table import Table

    table = Table(title="Retrains (train+validation, scored on the test split)")
    files = [r["weights"] or "(not kept)" for r in retrains]
    for col in ("retrain", "member", "epochs", "seeds", "test acc mean", "spread (std)",
                "per seed", "weights file", "export"):
        width = max(map(len, files)) if col == "weights file" else None
        table.add_column(col, overflow="fold", min_width=width)
    for r, weights in zip(retrains, files, strict=True):
        if r["weights"] and not r["weights_present"]:
            weights += " (missing)"
        table.add_row(str(r["retrain"]), str(r["member"]), str(r["epochs"]), str(r["seeds"]),
                      f"{_pct(r['test_accuracy_mean'])} of {r['test_images']}",
                      _spread(r["test_accuracy_std"]),
                      ", ".join(_pct(a) for a in r["test_accuracies"]), weights,
                      "default" if r["export_default"] else "")
    console.print(table)
    console.print("evo export uses the newest retrain unless --retrain N names another; spread "
                  "is the sample standard deviation over seeds (— for one seed); (not kept): "
                  "an older evo replaced that file with a later retrain's.", highlight=False,
                  soft_wrap=True)


def _metric(key: str, value: Any) -> str:
    """A recorded value with its unit where the name says it."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if key.endswith("accuracy"):
            return f"{value:.4f} ({value:.2%})"
        if key.endswith("seconds") or key == "seconds":
            return f"{value:.2f} s"
        if key.endswith("_ms"):
            return f"{value:.3f} ms"
        if key in ("params", "macs"):
            return f"{value:,.0f}"
        return f"{value:.6g}"
    if isinstance(value, int) and key.endswith("bytes"):
        return f"{value:,} bytes ({value / 1e6:.3f} MB)"
    if isinstance(value, list) and value and all(isinstance(v, float) for v in value):
        return ", ".join(f"{v:.4g}" for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


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
