"""The rows of ``evo front``: one per front member, in the objectives the front was selected on.

The searched objectives come first and as the search saw them (``objectives``; a latency
objective also keeps its in-search spread, p10 and p90, under ``objective_spread``): those are
the numbers the Pareto ranks were computed from. Post-search steps add their own columns
(:mod:`evo.report.front_columns`: test accuracy after a retrain, exports, latencies measured
after export); they never overwrite a searched value. Phenotypes are given as canonical
architecture text and counts as integers (:mod:`evo.report.readable`). This module also writes
the rows as CSV for spreadsheets and papers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evo.report.front_columns import front_columns
from evo.report.readable import canonical_phenotype, integral_counts
from evo.run.store import Evaluation, RunStore

LATENCY_PREFIX = "latency:"
RETRAIN_KEYS = ("test_accuracy", "test_accuracy_std", "test_images", "retrain_seeds",
                "retrain_epochs", "retrained_weights")
SPREAD_KEYS = ("p10_ms", "p90_ms")

# CSV columns in this order first; every other scalar key of the rows follows, sorted.
_CSV_FIRST = ("member", "generation", "params", "macs", "val_accuracy", "val_images",
              *RETRAIN_KEYS[:-1], "phenotype", "phenotype_raw", "weights", "retrained_weights")


def front_rows(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(one dict per front member, facts about the run), JSON-ready; the facts include the
    run's training compute (``images_seen``, ``epochs_trained``), the price of the front."""
    from evo.run.compute import compute_spent
    from evo.run.front import front_of

    store = RunStore.open(Path(run_dir), write=False)
    try:
        config = store.meta("config") or {}
        problem = store.meta("problem") or {}
        objectives = list(config.get("objectives") or ())
        rows = []
        for ind, ev in front_of(store):
            rows.append({
                "member": ind.id,
                "generation": ind.generation,
                "objectives": dict(ev.objectives),
                "objective_spread": searched_spread(ev, objectives),
                "params": ev.objectives.get("params"),
                "macs": ev.objectives.get("macs"),
                "val_accuracy": ev.metrics.get("val_accuracy"),
                "val_images": ev.metrics.get("val_total"),
                "phenotype": canonical_phenotype(ind.phenotype),
                "phenotype_raw": ind.phenotype,
                "weights": ev.weights,
            })
        info = {"run_dir": str(run_dir), "objectives": objectives,
                "status": store.meta("status"), "generations": store.last_generation(),
                "dataset": (problem.get("dataset") or {}).get("name"),
                **compute_spent(store)}  # images_seen, epochs_trained: the run's compute
        for column in front_columns():
            column(store, rows)
    finally:
        store.close(checkpoint=False)
    return integral_counts(rows), info


def searched_spread(ev: Evaluation, objectives: Iterable[str]) -> dict[str, dict[str, Any]]:
    """For each latency objective, what the search recorded beside the median it ranked on:
    p10 and p90 of the timed runs, protocol, threads and number of runs (p10 is None in runs
    written before it was kept)."""
    recorded = ev.metrics.get("latency") or {}
    out = {}
    for name in objectives:
        entry = recorded.get(name[len(LATENCY_PREFIX):]) if name.startswith(LATENCY_PREFIX) \
            else None
        if entry:
            out[name] = {key: entry.get(key)
                         for key in (*SPREAD_KEYS, "protocol", "threads", "runs")}
    return out


def format_test_accuracy(row: dict[str, Any]) -> str:
    """``96.30% ± 0.52 points of 270 (3 seeds)`` (sample std over seeds, in percentage
    points), or ``-`` for a member not retrained."""
    acc = row.get("test_accuracy")
    if acc is None:
        return "-"
    seeds = row.get("retrain_seeds") or 1
    spread = ""
    if seeds > 1 and row.get("test_accuracy_std") is not None:
        spread = f" ± {row['test_accuracy_std'] * 100:.2f} points"
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


def _objective_columns(rows: list[dict[str, Any]], objectives: list[str]) -> list[str]:
    """``objective:NAME`` per searched objective, then ``objective:NAME:p10_ms`` and
    ``...:p90_ms`` for each one with an in-search spread."""
    columns = [f"objective:{name}" for name in objectives]
    for name in objectives:
        if any(name in (row.get("objective_spread") or {}) for row in rows):
            columns += [f"objective:{name}:{key}" for key in SPREAD_KEYS]
    return columns


def _csv_value(row: dict[str, Any], column: str) -> Any:
    if column.startswith("extra:"):
        return row.get("extra", {}).get(column[len("extra:"):])
    if column.startswith("objective:"):
        name = column[len("objective:"):]
        for key in SPREAD_KEYS:
            if name.endswith(":" + key):
                spread = (row.get("objective_spread") or {}).get(name[:-len(key) - 1]) or {}
                return spread.get(key)
        return (row.get("objectives") or {}).get(name)
    return row.get(column)


def write_csv(rows: list[dict[str, Any]], path: Path, objectives: Iterable[str] = ()) -> Path:
    """Write the front rows to ``path`` (written to a temporary file, then renamed). Accuracies
    are fractions in [0, 1]; params, MACs and bytes are integer counts; the searched objective
    values get their own ``objective:NAME`` columns (latency spreads ``objective:NAME:p10_ms``
    and ``:p90_ms``)."""
    path = Path(path)
    columns, table = csv_table(rows, objectives)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for values in table:
            writer.writerow(["" if value is None else value for value in values])
    tmp.replace(path)
    return path


def csv_table(rows: list[dict[str, Any]], objectives: Iterable[str] = ()
              ) -> tuple[list[str], list[list[Any]]]:
    """(column names, one list of values a row): the table ``write_csv`` writes, with None
    where a value is missing, so the Python API's flat rows are the CSV's cells exactly."""
    columns = _columns(rows) + _objective_columns(rows, list(objectives))
    table = []
    for row in rows:
        values = []
        for col in columns:
            value = _csv_value(row, col)
            if isinstance(value, dict | list):
                value = json.dumps(value, sort_keys=True)
            values.append(value)
        table.append(values)
    return columns, table
