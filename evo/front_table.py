"""Front rows beyond the search's own: test accuracy of retrained members, and the CSV form.

``evo front`` builds one dict per front member; post-search steps add their columns through
:func:`evo.postsearch.front_columns`. This module supplies the retrain column and writes the
rows as CSV for spreadsheets and papers (one row per member, units in the column names).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evo.retrain import latest_retrains
from evo.store import RunStore

RETRAIN_KEYS = ("test_accuracy", "test_accuracy_std", "test_images", "retrain_seeds",
                "retrain_epochs", "retrained_weights")

# CSV columns in this order first; every other scalar key of the rows follows, sorted.
_CSV_FIRST = ("member", "generation", "params", "macs", "val_accuracy", "val_images",
              *RETRAIN_KEYS[:-1], "phenotype", "weights", "retrained_weights")


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


def format_test_accuracy(row: dict[str, Any]) -> str:
    """``96.30% ± 0.52 points of 270 (3 seeds)`` (sample std over seeds, in percentage
    points), or ``-`` for a member not retrained."""
    acc = row.get("test_accuracy")
    if acc is None:
        return "-"
    seeds = row.get("retrain_seeds") or 1
    spread = f" ± {row['test_accuracy_std'] * 100:.2f} points" if seeds > 1 else ""
    return f"{acc:.2%}{spread} of {row.get('test_images')} ({seeds} seed{'s' * (seeds > 1)})"


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    keys: set[str] = set()
    extras: set[str] = set()
    for row in rows:
        keys.update(k for k, v in row.items() if not isinstance(v, dict | list))
        extras.update(row.get("extra", {}))
    first = list(_CSV_FIRST)
    rest = sorted(keys - set(first))
    return first + rest + [f"extra:{e}" for e in sorted(extras)]


def write_csv(rows: list[dict[str, Any]], path: Path, objectives: Iterable[str] = ()) -> Path:
    """Write the front rows to ``path`` (written to a temporary file, then renamed). Accuracies
    are fractions in [0, 1]; params and MACs are counts; objective values get their own
    ``objective:NAME`` columns."""
    path = Path(path)
    objectives = list(objectives)
    columns = _columns(rows) + [f"objective:{name}" for name in objectives]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            values = []
            for col in columns:
                if col.startswith("extra:"):
                    value = row.get("extra", {}).get(col[len("extra:"):])
                elif col.startswith("objective:"):
                    value = (row.get("objectives") or {}).get(col[len("objective:"):])
                else:
                    value = row.get(col)
                if isinstance(value, dict | list):
                    value = json.dumps(value, sort_keys=True)
                values.append("" if value is None else value)
            writer.writerow(values)
    tmp.replace(path)
    return path
