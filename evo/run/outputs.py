"""The ``exports`` and ``measurements`` tables: what the commands after a search recorded.

Why here: ``evo export`` writes an export row per artifact, ``evo bench`` (and ``--import``) a
measurement row per latency; ``evo front``, ``evo show`` and ``evo bench`` read them back. The
SQL and the decoding of their JSON columns live in one place; :class:`evo.run.store.RunStore`
inherits these queries. Whether an export's files are really in place is
:func:`evo.run.exports.checked_exports`'s job.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from typing import Any

from evo.run.individuals import dumps


class OutputQueries:
    """Reads and writes of ``exports`` and ``measurements`` (a part of ``RunStore``)."""

    conn: sqlite3.Connection

    # -- exports ---------------------------------------------------------------------------
    def add_export(self, conn: sqlite3.Connection, *, individual_id: int, format: str,
                   status: str, reason: str | None, path: str, bytes: int | None,
                   accuracy: float | None, parity: float | None, details: dict[str, Any]) -> int:
        """One export row (one artifact of one member); ``details`` is the full result row,
        written with ``str`` for what JSON cannot hold."""
        cur = conn.execute(
            "INSERT INTO exports (individual_id, format, status, reason, path, bytes,"
            " accuracy, parity, details, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (individual_id, format, status, reason, path, bytes, accuracy, parity,
             json.dumps(details, sort_keys=True, default=str), time.time()))
        return int(cur.lastrowid)

    def exports(self) -> list[dict[str, Any]]:
        """Every export row, oldest first, with ``details`` decoded and the ``eval_key`` of its
        member (files are checked against them by ``evo.run.exports.checked_exports``)."""
        rows = self.conn.execute(
            "SELECT e.*, i.eval_key AS eval_key FROM exports e LEFT JOIN individuals i"
            " ON i.id = e.individual_id ORDER BY e.id").fetchall()
        return [{**dict(row), "details": json.loads(row["details"])} for row in rows]

    def export_staging(self) -> set[str]:
        """The staging folders committed export rows name (see ``evo.run.exports``); decoded
        by Python, whose JSON reads the NaN a parity value may hold."""
        rows = self.conn.execute("SELECT details FROM exports WHERE details LIKE '%\"staging\"%'")
        named = (json.loads(row[0]).get("staging") for row in rows)
        return {str(name) for name in named if name}

    # -- measurements ----------------------------------------------------------------------
    def add_measurement(self, conn: sqlite3.Connection, *, individual_id: int | None,
                        format: str | None, target: str, protocol: str, host: dict[str, Any],
                        median_ms: float | None, bytes: int | None, details: dict[str, Any],
                        source: str) -> int:
        """One latency record; ``details`` is the full measurement, ``host`` the machine."""
        cur = conn.execute(
            "INSERT INTO measurements (individual_id, format, target, protocol, host, median_ms,"
            " bytes, details, source, created) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (individual_id, format, target, protocol, dumps(host), median_ms, bytes,
             dumps(details), source, time.time()))
        return int(cur.lastrowid)

    def measurements(self) -> list[dict[str, Any]]:
        """Every latency record in insertion order, with ``eval_key`` of its individual and
        ``host``/``details`` decoded."""
        rows = self.conn.execute(
            "SELECT m.*, i.eval_key AS eval_key FROM measurements m LEFT JOIN individuals i"
            " ON i.id = m.individual_id ORDER BY m.id").fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["host"] = json.loads(row["host"])
            item["details"] = json.loads(row["details"])
            out.append(item)
        return out

    def member_measurements(self, member: int) -> list[dict[str, Any]]:
        """The latency records of one individual, oldest first, as ``evo show`` lists them:
        every column, ``details`` decoded, ``host`` as its stored JSON text."""
        rows = self.conn.execute("SELECT * FROM measurements WHERE individual_id = ?"
                                 " ORDER BY id", (member,)).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            if isinstance(item.get("details"), str):
                with contextlib.suppress(json.JSONDecodeError):
                    item["details"] = json.loads(item["details"])
            out.append(item)
        return out
