"""The ``individuals`` and ``evaluations`` tables: every genome the search saw, and the stored
outcome of each distinct network (its evaluation key).

Why apart from the store's opening and locking: these are the queries most code needs, typed
(:class:`Individual`, :class:`Evaluation`), and the JSON columns are decoded here once.
:class:`evo.run.store.RunStore` inherits them.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

CHUNK = 500  # ids per ``IN (...)`` query, well under SQLite's parameter limit


def dumps(value: Any) -> str:
    """The JSON text every JSON column stores: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Individual:
    """One genome as the search saw it; ``id`` is the member id every command uses."""

    id: int
    generation: int
    origin: str
    genome: tuple[int, ...]
    phenotype: str | None
    valid: bool
    used_codons: int
    depth: int
    nodes: int
    parents: tuple[int, ...]
    eval_key: str | None
    reason: str | None


@dataclass(frozen=True)
class Evaluation:
    """The stored outcome for one evaluation key (shared by every individual with that key)."""

    key: str
    individual_id: int
    status: str
    reason: str | None
    objectives: dict[str, float]
    metrics: dict[str, Any]
    device: str | None
    threads: int | None
    seconds: float | None
    weights: str | None
    source: str


def individual_of(row: sqlite3.Row) -> Individual:
    return Individual(
        id=row["id"], generation=row["generation"], origin=row["origin"],
        genome=tuple(json.loads(row["genome"])), phenotype=row["phenotype"],
        valid=bool(row["valid"]), used_codons=row["used_codons"], depth=row["depth"],
        nodes=row["nodes"], parents=tuple(json.loads(row["parents"])),
        eval_key=row["eval_key"], reason=row["reason"],
    )


def evaluation_of(row: sqlite3.Row) -> Evaluation:
    return Evaluation(
        key=row["key"], individual_id=row["individual_id"], status=row["status"],
        reason=row["reason"], objectives=json.loads(row["objectives"]),
        metrics=json.loads(row["metrics"]), device=row["device"], threads=row["threads"],
        seconds=row["seconds"], weights=row["weights"], source=row["source"],
    )


class IndividualQueries:
    """Reads and writes of ``individuals`` and ``evaluations`` (a part of ``RunStore``)."""

    conn: sqlite3.Connection

    # -- individuals -----------------------------------------------------------------------
    def add_individual(self, conn: sqlite3.Connection, *, generation: int, origin: str,
                       genome: list[int], phenotype: str | None, valid: bool, used_codons: int,
                       depth: int, nodes: int, parents: tuple[int, ...], eval_key: str | None,
                       reason: str | None) -> int:
        cur = conn.execute(
            "INSERT INTO individuals (generation, origin, genome, phenotype, valid, used_codons,"
            " depth, nodes, parents, eval_key, reason, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (generation, origin, dumps(list(genome)), phenotype, int(valid), used_codons, depth,
             nodes, dumps(list(parents)), eval_key, reason, time.time()),
        )
        return int(cur.lastrowid)

    def individual(self, ident: int) -> Individual | None:
        row = self.conn.execute("SELECT * FROM individuals WHERE id=?", (ident,)).fetchone()
        return individual_of(row) if row else None

    def individuals(self, ids: list[int] | None = None) -> list[Individual]:
        if ids is None:
            rows = self.conn.execute("SELECT * FROM individuals ORDER BY id").fetchall()
            return [individual_of(r) for r in rows]
        by_id = {}
        for chunk in range(0, len(ids), CHUNK):
            part = ids[chunk : chunk + CHUNK]
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(f"SELECT * FROM individuals WHERE id IN ({marks})", part):
                by_id[r["id"]] = individual_of(r)
        return [by_id[i] for i in ids if i in by_id]

    def individuals_of_generation(self, generation: int) -> list[Individual]:
        rows = self.conn.execute(
            "SELECT * FROM individuals WHERE generation=? ORDER BY id", (generation,)
        ).fetchall()
        return [individual_of(r) for r in rows]

    def count_individuals(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM individuals").fetchone()[0])

    def same_network(self, ind: Individual) -> list[int]:
        """Ids of the other individuals with ``ind``'s evaluation key (the same network)."""
        if ind.eval_key is None:
            return []
        return [r[0] for r in self.conn.execute(
            "SELECT id FROM individuals WHERE eval_key = ? AND id != ? ORDER BY id",
            (ind.eval_key, ind.id))]

    def children(self, ind: Individual) -> list[int]:
        """Ids of the individuals bred from ``ind`` (it is among their parents)."""
        return [r[0] for r in self.conn.execute(
            "SELECT id, parents FROM individuals WHERE generation > ? ORDER BY id",
            (ind.generation,)) if ind.id in json.loads(r[1])]

    # -- evaluations -----------------------------------------------------------------------
    def add_evaluation(self, conn: sqlite3.Connection, ev: Evaluation) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO evaluations (key, individual_id, status, reason, objectives,"
            " metrics, device, threads, seconds, weights, source, created)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (ev.key, ev.individual_id, ev.status, ev.reason, dumps(ev.objectives),
             dumps(ev.metrics), ev.device, ev.threads, ev.seconds, ev.weights, ev.source,
             time.time()),
        )

    def evaluation(self, key: str) -> Evaluation | None:
        row = self.conn.execute("SELECT * FROM evaluations WHERE key=?", (key,)).fetchone()
        return evaluation_of(row) if row else None

    def has_evaluations(self, keys: set[str]) -> bool:
        """True when every key has a stored evaluation."""
        found = 0
        items = sorted(keys)
        for chunk in range(0, len(items), CHUNK):
            part = items[chunk : chunk + CHUNK]
            marks = ",".join("?" * len(part))
            found += self.conn.execute(
                f"SELECT COUNT(*) FROM evaluations WHERE key IN ({marks})", part).fetchone()[0]
        return found == len(items)

    def evaluations(self) -> dict[str, Evaluation]:
        rows = self.conn.execute("SELECT * FROM evaluations").fetchall()
        return {r["key"]: evaluation_of(r) for r in rows}

    def count_trained(self) -> int:
        """Evaluations that cost a training (cache hits and warm-start copies excluded)."""
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM evaluations WHERE source='trained'").fetchone()[0])

    def update_evaluation(self, conn: sqlite3.Connection, key: str, *,
                          objectives: dict[str, float], metrics: dict[str, Any],
                          status: str | None = None, reason: str | None = None) -> None:
        """Add measured objectives and metrics to a stored evaluation (merged over the old
        ones); ``status``/``reason`` mark it failed when the measurement could not be made."""
        row = conn.execute("SELECT objectives, metrics, status, reason FROM evaluations"
                           " WHERE key=?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        merged_objectives = {**json.loads(row["objectives"]), **objectives}
        merged_metrics = {**json.loads(row["metrics"]), **metrics}
        conn.execute(
            "UPDATE evaluations SET objectives=?, metrics=?, status=?, reason=? WHERE key=?",
            (dumps(merged_objectives), dumps(merged_metrics), status or row["status"],
             reason if status else row["reason"], key))
