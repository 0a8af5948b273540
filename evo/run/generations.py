"""The ``generations`` table: each generation's survivors with their ranks, crowding and
constraint violation, the generator state after its survival, and its counts.

Why a row per generation: a resumed search starts from the last row (population and random
state), and the front of a run is read from it. :class:`evo.run.store.RunStore` inherits these
queries.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from evo.run.individuals import dumps


class GenerationQueries:
    """Reads and writes of ``generations`` (a part of ``RunStore``)."""

    conn: sqlite3.Connection

    def add_generation(self, conn: sqlite3.Connection, generation: int, population: list[int],
                       ranks: list[int], crowding: list[float], violation: list[float],
                       hypervolume: float | None, evaluations: int, cache_hits: int,
                       failures: int, rng: dict[str, Any]) -> None:
        """One generation's survivors with their ranks and crowding, and the generator state
        after its survival (what the next generation starts from)."""
        conn.execute(
            "INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (generation, dumps(population), dumps(ranks),
             dumps([c if c != float("inf") else "inf" for c in crowding]), dumps(violation),
             hypervolume, evaluations, cache_hits, failures, time.time(), dumps(rng)),
        )

    def generation(self, generation: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM generations WHERE generation=?",
                                (generation,)).fetchone()
        if row is None:
            return None
        return {
            "generation": row["generation"],
            "population": json.loads(row["population"]),
            "ranks": json.loads(row["ranks"]),
            "crowding": [float(c) for c in json.loads(row["crowding"])],
            "violation": json.loads(row["violation"]),
            "hypervolume": row["hypervolume"],
            "evaluations": row["evaluations"],
            "cache_hits": row["cache_hits"],
            "failures": row["failures"],
            "created": row["created"],
            "rng": json.loads(row["rng"]),
        }

    def last_generation(self) -> int | None:
        row = self.conn.execute("SELECT MAX(generation) FROM generations").fetchone()
        return None if row[0] is None else int(row[0])

    def hypervolumes(self) -> list[tuple[int, float | None]]:
        return [(r[0], r[1]) for r in self.conn.execute(
            "SELECT generation, hypervolume FROM generations ORDER BY generation")]
