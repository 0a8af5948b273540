"""The retrain history of a run: one row and one weights file per retrain, never overwritten.

Why a module of its own: every command that names a retrain (``evo retrain`` writing it,
``evo show`` listing it, ``evo export`` choosing it, ``evo show --torch`` pointing at it) must
agree on three things, so they live here once:

- **Numbering.** Retrains are numbered 1, 2, ... per network in the order they were created
  (the order of their row ids). Members that share an evaluation key are the same network and
  share their retrains. The number is derived, not stored, so runs written before numbering
  existed read the same way.
- **File naming.** A retrain's weights live in ``models/retrained-<member>-<number>.pt``
  (:func:`evo.run.layout.retrain_weights_name`), a name no other retrain can take, so a later
  retrain never replaces an earlier one's weights. Runs of older versions kept one file per
  member (``models/retrained-<member>.pt``, owned by its newest retrain): still read, never
  swept.
- **Attribution.** Weights are trained into a temporary file; :func:`commit_retrain` renames it
  to its final name inside the transaction that inserts the row, right before the commit. A kill
  anywhere before the commit leaves at most a file no row names (swept by
  :func:`sweep_retrain_orphans`, ignored by every reader), never a row that claims weights from
  another training.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.run.layout import (
    is_pending_retrain,
    models_dir,
    parse_retrain_weights_name,
    resolve_stored,
    retrain_weights_name,
    retrain_weights_stored,
)
from evo.run.store import Individual, RunStore

# The file names are the layout's; importers of this module use these names too.
__all__ = ["RetrainRecord", "chosen_retrain", "commit_retrain", "latest_retrains",
           "member_ids_hint", "parse_retrain_weights_name", "retrain_records", "retrain_weights",
           "retrain_weights_name", "sweep_retrain_orphans"]


def member_ids_hint(store: RunStore) -> str:
    """The ids a user may pass, for the hint of an unknown member."""
    count = store.count_individuals()
    return f"member ids of this run are 1 to {count}" if count else "this run has no members yet"


@dataclass(frozen=True)
class RetrainRecord:
    """One row of the ``retrains`` table: a member retrained with ``seeds`` seeds.

    ``number`` is the retrain's place in its network's history (1 = first). The spread is the
    sample standard deviation over seeds; with one seed there is none (``None``), not 0."""

    id: int
    number: int
    member: int
    epochs: int
    seeds: int
    test_accuracy_mean: float
    test_accuracy_std: float | None
    test_correct: tuple[int, ...]
    test_total: int
    weights: str | None
    metrics: dict[str, Any]
    created: float

    @property
    def accuracies(self) -> tuple[float, ...]:
        """Test accuracy of each seed, in seed order."""
        return tuple(c / self.test_total for c in self.test_correct)

    def weights_path(self, run_dir: Path) -> Path | None:
        """The weights file this retrain owns, or ``None`` when the row names none (a retrain
        of an older evo whose file a later retrain replaced)."""
        return resolve_stored(run_dir, self.weights) if self.weights else None

    def label(self, member: int | None = None) -> str:
        """``retrain 2 (3 epochs, 1 seed, train+validation)``; when shown for ``member``, a
        retrain asked for as another member of the same network says so."""
        done_as = f", done as member {self.member}" if member not in (None, self.member) else ""
        return (f"retrain {self.number}{done_as} ({self.epochs} epoch"
                f"{'s' * (self.epochs != 1)}, {self.seeds} seed{'s' * (self.seeds != 1)}, "
                "train+validation)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.number, "id": self.id, "member": self.member,
            "epochs": self.epochs, "seeds": self.seeds,
            "test_accuracy_mean": self.test_accuracy_mean,
            "test_accuracy_std": self.test_accuracy_std,
            "test_accuracies": list(self.accuracies), "test_correct": list(self.test_correct),
            "test_images": self.test_total, "weights": self.weights,
            "metrics": self.metrics, "created": self.created,
        }


# ---------------------------------------------------------------- reading


def _record(row: Any, number: int) -> RetrainRecord:
    seeds = int(row["seeds"])
    return RetrainRecord(
        id=row["id"], number=number, member=row["individual_id"], epochs=row["epochs"],
        seeds=seeds, test_accuracy_mean=row["test_accuracy_mean"],
        # The column is NOT NULL; one seed stores 0.0 there, which is no spread, not a spread.
        test_accuracy_std=row["test_accuracy_std"] if seeds > 1 else None,
        test_correct=tuple(json.loads(row["test_correct"])), test_total=row["test_total"],
        weights=row["weights"], metrics=json.loads(row["metrics"]), created=row["created"],
    )


def _numbered(rows: Sequence[Any]) -> list[tuple[str, RetrainRecord]]:
    """``(network, record)`` per row (rows in id order), numbered within each network."""
    counts: dict[str, int] = {}
    out = []
    for row in rows:
        network = row["eval_key"] or f"member:{row['individual_id']}"
        counts[network] = counts.get(network, 0) + 1
        out.append((network, _record(row, counts[network])))
    return out


def _all_rows(store: RunStore) -> list[Any]:
    return store.conn.execute(
        "SELECT r.*, i.eval_key AS eval_key FROM retrains r"
        " LEFT JOIN individuals i ON i.id = r.individual_id ORDER BY r.id").fetchall()


def retrain_records(store: RunStore, member: int | None = None) -> list[RetrainRecord]:
    """Retrains, oldest first, numbered per network; ``member`` narrows them to one network
    (every individual that shares the member's evaluation key counts: it is the same
    network)."""
    numbered = _numbered(_all_rows(store))
    if member is None:
        return [record for _network, record in numbered]
    ind = store.individual(member)
    if ind is None or ind.eval_key is None:
        return []
    return [record for network, record in numbered if network == ind.eval_key]


def latest_retrains(store: RunStore) -> dict[str, RetrainRecord]:
    """The newest retrain of each network, by evaluation key."""
    return {network: record for network, record in _numbered(_all_rows(store))
            if not network.startswith("member:")}


def chosen_retrain(store: RunStore, member: int, number: int | None = None
                   ) -> RetrainRecord | None:
    """The retrain whose weights stand for ``member``: retrain ``number`` when given, else the
    newest one; ``None`` when the member was never retrained. Never chosen by test accuracy:
    picking on the test split and then reporting it would make the test figure a selection."""
    records = retrain_records(store, member)
    if number is None:
        return records[-1] if records else None
    for record in records:
        if record.number == number:
            return record
    have = (f"its retrains are 1 to {len(records)}" if records
            else "it has not been retrained (evo retrain), so only its search weights exist")
    raise EvoError(f"{store.run_dir}: member {member} has no retrain {number}",
                   f"{have}; see evo show {store.run_dir} {member}")


def retrain_weights(store: RunStore, member: int, number: int | None = None
                    ) -> tuple[RetrainRecord, Path] | None:
    """:func:`chosen_retrain` with its weights file, checked to exist; ``None`` when the member
    was never retrained. A chosen retrain without its file is an error, not a reason to fall
    back to another retrain's weights silently."""
    record = chosen_retrain(store, member, number)
    if record is None:
        return None
    path = record.weights_path(store.run_dir)
    if path is None:
        raise EvoError(f"{store.run_dir}: member {member}'s retrain {record.number} kept no "
                       "weights (an older evo replaced its file with a later retrain's)",
                       "choose another with --retrain N (evo show lists them), or retrain again")
    if not path.is_file():
        raise EvoError(f"{store.run_dir}: member {member}'s retrain {record.number} weights "
                       f"{record.weights} are missing",
                       "the models/ folder was changed; choose another with --retrain N, or "
                       "retrain again (evo retrain)")
    return record, path


# ---------------------------------------------------------------- writing


def sweep_retrain_orphans(store: RunStore) -> list[Path]:
    """Delete what a killed retrain left: pending weights, and files named by
    :func:`retrain_weights_name` that no row names (renamed, then killed before the commit).
    Call only while holding the run lock. Files of older runs' naming are never touched."""
    models = models_dir(store.run_dir)
    if not models.is_dir():
        return []
    named = {row[0] for row in store.conn.execute(
        "SELECT weights FROM retrains WHERE weights IS NOT NULL")}
    removed = []
    for path in models.iterdir():
        if not path.is_file():
            continue
        orphan = (parse_retrain_weights_name(path.name) is not None
                  and retrain_weights_stored(path) not in named)
        if is_pending_retrain(path) or orphan:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable before the row that names its result is committed."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def commit_retrain(store: RunStore, ind: Individual, epochs: int,
                   per_seed: Sequence[Mapping[str, Any]], total: int, pending: Path | None,
                   metrics: Mapping[str, Any]) -> RetrainRecord:
    """Record one finished retrain and give it its weights, in one step.

    Inside one write transaction: number the retrain, insert its row naming
    ``retrain_weights_name(member, number)``, rename ``pending`` to that name, then commit. A
    kill before the rename leaves only the pending file; a kill between rename and commit
    leaves a file no row names (swept later). An error before the commit rolls the row back
    and removes the renamed file."""
    accuracies = [float(s["test_accuracy"]) for s in per_seed]
    mean = statistics.fmean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0  # NOT NULL column
    correct = [int(s["test_correct"]) for s in per_seed]
    final: Path | None = None
    try:
        with store.transaction() as conn:
            number = 1 + int(conn.execute(
                "SELECT COUNT(*) FROM retrains r JOIN individuals i ON i.id = r.individual_id"
                " WHERE i.eval_key = ?", (ind.eval_key,)).fetchone()[0])
            weights = retrain_weights_name(ind.id, number) if pending is not None else None
            if weights is not None and conn.execute(
                    "SELECT 1 FROM retrains WHERE weights = ?", (weights,)).fetchone():
                raise EvoError(f"{store.run_dir}: {weights} already belongs to another retrain",
                               "run.db was edited by hand; restore it from a copy")
            cur = conn.execute(
                "INSERT INTO retrains (individual_id, epochs, seeds, test_accuracy_mean,"
                " test_accuracy_std, test_correct, test_total, weights, metrics, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (ind.id, epochs, len(per_seed), mean, std, json.dumps(correct), total,
                 weights, json.dumps(dict(metrics), sort_keys=True), time.time()))
            row = conn.execute("SELECT * FROM retrains WHERE id = ?",
                               (cur.lastrowid,)).fetchone()
            if pending is not None and weights is not None:
                final = resolve_stored(store.run_dir, weights)
                os.replace(pending, final)
                _fsync_dir(final.parent)
    except Exception:
        # Not committed: the row is rolled back, so the file it would have named goes too.
        if final is not None:
            final.unlink(missing_ok=True)
        raise
    return _record(row, number)
