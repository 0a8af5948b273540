"""The ``rungs`` table and the training states beside it: every rung result of successive
halving, and the files a promoted candidate continues from.

Why a table of its own: with ``--fidelity halving`` one evaluation key is trained in segments,
one per rung (1, 3, 5 epochs for ``--epochs 5``), and the promotion decisions at each rung's
barrier are recomputed from these rows on every ``ask`` and after every resume; a rung result
is never trained twice (the primary key is ``(key, rung)``). The ``evaluations`` row of a key
stays what the rest of evo reads: its final result, or ``stopped`` with the highest rung it
reached (:meth:`RungQueries.settle_evaluation` writes it).

Training states (``states/<key[:24]>-e<n>.pt``, named by :mod:`evo.run.layout`) are written by
the driver with the result that brings them; only the newest state of a candidate that may
still continue (one stopped at a rung) is kept: :func:`drop_superseded_states` and
:func:`sweep_states` remove the rest.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.run import layout
from evo.run.individuals import CHUNK, Evaluation, dumps
from evo.run.status import Status

if TYPE_CHECKING:
    from evo.run.store import RunStore


@dataclass(frozen=True)
class RungResult:
    """One rung of one candidate's training: scored after ``epochs`` epochs (the candidate's
    own epochs, its recipe multiplier applied), with the state to continue from (``None``:
    the training is complete or did not end ok)."""

    key: str
    rung: int
    epochs: int
    status: str
    objectives: dict[str, float]
    metrics: dict[str, Any]
    state: str | None
    individual_id: int


def rung_of(row: sqlite3.Row) -> RungResult:
    return RungResult(key=row["key"], rung=row["rung"], epochs=row["epochs"],
                      status=row["status"], objectives=json.loads(row["objectives"]),
                      metrics=json.loads(row["metrics"]), state=row["state"],
                      individual_id=row["individual_id"])


class RungQueries:
    """Reads and writes of ``rungs``, and the one write of a halving key's evaluation (a part
    of ``RunStore``)."""

    conn: sqlite3.Connection

    def add_rung(self, conn: sqlite3.Connection, result: RungResult) -> None:
        """Store one rung result (a second result for the same key and rung is ignored: a
        rung result is never replaced)."""
        conn.execute(
            "INSERT OR IGNORE INTO rungs (key, rung, epochs, status, objectives, metrics, state,"
            " individual_id, created) VALUES (?,?,?,?,?,?,?,?,?)",
            (result.key, result.rung, result.epochs, str(result.status),
             dumps(result.objectives), dumps(result.metrics), result.state,
             result.individual_id, time.time()))

    def rung_results(self, keys: list[str] | None = None) -> dict[tuple[str, int], RungResult]:
        """Rung results by ``(key, rung)``, of ``keys`` (default: every key)."""
        if keys is None:
            return {(r.key, r.rung): r for r in map(rung_of, self.conn.execute(
                "SELECT * FROM rungs"))}
        found: dict[tuple[str, int], RungResult] = {}
        items = sorted(set(keys))
        for start in range(0, len(items), CHUNK):
            part = items[start : start + CHUNK]
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(f"SELECT * FROM rungs WHERE key IN ({marks})", part):
                found[(row["key"], row["rung"])] = rung_of(row)
        return found

    def count_rungs(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM rungs").fetchone()[0])

    def settle_evaluation(self, conn: sqlite3.Connection, ev: Evaluation) -> None:
        """Store ``ev`` as its key's evaluation: a new row, or the existing row (of a candidate
        stopped in an earlier generation and continued now) rewritten with the new outcome,
        keeping the individual that first trained it and its source."""
        conn.execute(
            "INSERT INTO evaluations (key, individual_id, status, reason, objectives, metrics,"
            " device, threads, seconds, weights, source, created)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(key) DO UPDATE SET"
            " status=excluded.status, reason=excluded.reason, objectives=excluded.objectives,"
            " metrics=excluded.metrics, device=excluded.device, threads=excluded.threads,"
            " seconds=excluded.seconds, weights=excluded.weights",
            (ev.key, ev.individual_id, ev.status, ev.reason, dumps(ev.objectives),
             dumps(ev.metrics), ev.device, ev.threads, ev.seconds, ev.weights, ev.source,
             time.time()))


def read_state(run_dir: Path, name: str) -> bytes:
    """The bytes of a stored training state (a run-folder-relative name from run.db)."""
    return layout.resolve_stored(run_dir, name).read_bytes()


def drop_superseded_states(run_dir: Path, rows: list[RungResult], keep: str | None) -> None:
    """Delete the state files of ``rows`` (one key's rung results) other than ``keep``: a
    candidate continues only from its newest state, and a finished one from none."""
    for row in rows:
        if row.state and row.state != keep:
            layout.resolve_stored(run_dir, row.state).unlink(missing_ok=True)


def sweep_states(store: RunStore) -> None:
    """On resume: remove state files nothing can continue from (unfinished temporaries, a
    state whose row a kill kept from being committed, states of finished candidates, and
    older states of stopped ones), left by a kill between a commit and a deletion."""
    folder = layout.states_dir(store.run_dir)
    if not folder.is_dir():
        return
    evaluations = store.evaluations()
    newest: dict[str, RungResult] = {}
    for (key, rung), row in store.rung_results().items():
        if key not in newest or rung > newest[key].rung:
            newest[key] = row
    keep = {Path(row.state).name for key, row in newest.items() if row.state and (
        key not in evaluations or evaluations[key].status == Status.STOPPED)}
    for path in folder.iterdir():
        if path.is_file() and path.name not in keep:
            path.unlink(missing_ok=True)
