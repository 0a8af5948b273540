"""``evo show``: everything recorded about one member of a run, as rich tables (or ``--json``).

Thin: the facts come from :mod:`evo.report.show` (one dict, so the view and ``--json`` cannot
disagree); this module prints them. torch is imported only for ``--torch``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from evo.cli.runs import _console, _pct, _spread
from evo.report.show import budget_rows


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
    for label, text in budget_rows(d["budget"], d["compute"]):
        summary.add_row(label, text)
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
    shown = {"exports": ("id", "format", "status", "bytes", "accuracy", "parity",
                         "microcontroller", "path", "reason"),
             "measurements": ("id", "format", "target", "protocol", "median_ms", "bytes",
                              "source")}
    for name in ("exports", "measurements"):
        if d[name]:
            table = Table(title=name.capitalize())
            keys = [k for k in shown[name] if any(k in row for row in d[name])]
            for key in keys:
                table.add_column(key, overflow="fold")
            for row in d[name]:
                table.add_row(*[_metric(k, row.get(k)) for k in keys])
            console.print(table)


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
