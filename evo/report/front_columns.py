"""The columns the steps after a search add to ``evo front`` rows: a retrain's test accuracy,
the exports, the latencies measured after export.

Why in reports: a column only reads what a step recorded in run.db (through :mod:`evo.run`),
so the steps (:mod:`evo.post`) and the table can change apart. The columns come in the order the
steps run (``evo.post.postsearch.steps``); none overwrites a searched value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evo.report.front_measured import add_latency_column
from evo.run.exports import latest_exports
from evo.run.retrains import latest_retrains
from evo.run.store import RunStore

FrontColumn = Callable[[RunStore, list[dict[str, Any]]], None]


def front_columns() -> list[FrontColumn]:
    """Columns post-search steps add to ``evo front`` rows, in step order."""
    return [add_test_accuracy, add_export_column, add_latency_column]


def add_test_accuracy(store: RunStore, rows: list[dict[str, Any]]) -> None:
    """Front column: the newest retrain of each member's network (test accuracy mean and
    sample standard deviation over seeds, and the number of test images behind them)."""
    latest = latest_retrains(store)
    for row in rows:
        ind = store.individual(int(row["member"]))
        record = latest.get(ind.eval_key) if ind is not None and ind.eval_key else None
        if record is None:
            continue
        row.update({
            "test_accuracy": record.test_accuracy_mean,
            "test_accuracy_std": record.test_accuracy_std,
            "test_images": record.test_total,
            "retrain_seeds": record.seeds,
            "retrain_epochs": record.epochs,
            "retrained_weights": record.weights,
        })


def add_export_column(store: RunStore, rows: list[dict[str, Any]]) -> None:
    """Front column: each member's newest export per format (``exports`` in ``--json``, a
    short ``export`` column in the table)."""
    latest = latest_exports(store)
    for row in rows:
        ind = store.individual(int(row["member"]))
        formats = latest.get(ind.eval_key or "") if ind is not None else None
        if not formats:
            continue
        row["exports"] = {
            name: {"status": item["status"], "bytes": item["bytes"],
                   "accuracy": item["accuracy"], "path": item["path"], "reason": item["reason"]}
            for name, item in formats.items()
        }
        ok = [name for name, item in formats.items() if item["status"] == "ok"]
        failed = [name for name, item in formats.items() if item["status"] != "ok"]
        text = ", ".join(ok) if len(ok) <= 2 else f"{len(ok)} formats ok"
        if failed:
            text = (text + "; " if ok else "") + f"FAILED {', '.join(failed)}"
        row.setdefault("extra", {})["export"] = text
