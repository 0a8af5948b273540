"""The run store: one SQLite file, ``RUN_DIR/run.db``, the single source of truth of a run.

Why SQLite in WAL mode: every result is committed the moment it exists, a reader (``evo front``
while a search runs) never blocks the writer, and a crash at any instant leaves the last
committed state intact. A clean close checkpoints the WAL so a finished run is one file.

Why ``flock`` for the run lock: the kernel drops it when the holder dies, even by SIGKILL, so a
killed run never leaves a stale lock that blocks ``--resume``.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.run.check import (
    SCHEMA,
    SCHEMA_VERSION,
    add_missing_later_tables,
    check_run,
)

DB_NAME = "run.db"
LOCK_NAME = ".lock"


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


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``; released by the kernel if we die."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except IsADirectoryError:
            raise EvoError(f"{self.path}: is a folder, not the run's lock file",
                           f"remove it with rmdir {self.path}; evo makes the lock file itself"
                           ) from None
        except OSError as exc:
            raise EvoError(f"{self.path}: cannot open the run's lock file ({exc.strerror})",
                           "check the run folder's permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EvoError(
                f"{self.path.parent}: run in progress (another evo process holds its lock)",
                "wait for it to finish, or stop it; a killed process releases the lock itself",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def is_held(run_dir: Path) -> bool:
        """True when some live process holds the lock (used by ``evo runs``)."""
        path = run_dir / LOCK_NAME
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


class RunStore:
    """Typed access to ``run.db``; every write is one transaction."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection, lock: RunLock | None) -> None:
        self.run_dir = run_dir
        self.conn = conn
        self.lock = lock

    # -- opening ---------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, meta: dict[str, Any], state: dict[str, Any]) -> RunStore:
        """A new run in ``run_dir``, locked for writing. The database is written complete
        (schema, ``meta``, ``state``) under a temporary name and renamed into place, so a kill
        at any instant leaves either no run or a whole one."""
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "models").mkdir(exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise EvoError(f"{run_dir}: cannot write the run folder ({exc.strerror})",
                           "choose a writable --run-dir") from None
        if (run_dir / DB_NAME).exists():
            raise EvoError(f"{run_dir}: already holds a run",
                           f"continue it with --resume {run_dir}, or choose another --run-dir")
        lock = RunLock(run_dir)
        lock.acquire()
        fresh = run_dir / f"{DB_NAME}.new"
        fresh.unlink(missing_ok=True)
        conn = sqlite3.connect(fresh, isolation_level=None)
        try:
            conn.executescript(SCHEMA)
            conn.execute("BEGIN")
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                         (_dumps(SCHEMA_VERSION),))
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             [(k, _dumps(v)) for k, v in meta.items()])
            conn.executemany("INSERT INTO state VALUES (?, ?)",
                             [(k, _dumps(v)) for k, v in state.items()])
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(fresh, run_dir / DB_NAME)
        return cls(run_dir, cls._connect(run_dir / DB_NAME), lock)

    @classmethod
    def open(cls, run_dir: Path, *, write: bool) -> RunStore:
        """An existing run; ``write`` takes the run lock (or fails with "run in progress")."""
        db = run_dir / DB_NAME
        if not db.is_file():
            raise EvoError(f"{run_dir}: no run here ({DB_NAME} not found)",
                           "pass the folder an `evo search` run wrote (e.g. runs/NAME)")
        lock = None
        if write:
            lock = RunLock(run_dir)
            lock.acquire()
        conn = None
        try:
            # Checked through a read-only connection, which never writes (closing a writer's
            # connection would checkpoint a write-ahead log into a damaged file).
            conn = cls._connect(db, readonly=True)
            tables = check_run(conn, db)
            if write:
                conn.close()
                conn = cls._connect(db)
                conn.executescript(SCHEMA)  # tables added by later versions
            else:
                add_missing_later_tables(conn, tables)
        except BaseException as exc:
            if conn is not None:
                conn.close()
            if lock:
                lock.release()
            if isinstance(exc, sqlite3.DatabaseError):
                raise EvoError(f"{db}: not a readable evo run database ({exc})",
                               "restore the run folder from a copy or start a new run"
                               ) from None
            raise
        return cls(run_dir, conn, lock)

    @staticmethod
    def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30,
                                   isolation_level=None)
        else:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        # Explicit transactions only: `with store.transaction()`.
        return conn

    def checkpoint(self) -> None:
        """Copy the write-ahead log into run.db without waiting for readers (called at each
        generation's end), so a copy of run.db alone, or one whose -wal was lost after a kill,
        still holds every finished generation."""
        if self.lock is not None:
            self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def close(self, checkpoint: bool = True) -> None:
        """Close; a writer checkpoints the WAL so a finished run is the single ``run.db``."""
        if self.lock is not None and checkpoint:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                # Leaving WAL mode removes the -wal and -shm files: a finished run is one file
                # (the next writer switches WAL back on).
                self.conn.execute("PRAGMA journal_mode=DELETE")
            except sqlite3.DatabaseError:
                pass
        self.conn.close()
        if self.lock is not None:
            self.lock.release()

    # -- meta and state --------------------------------------------------------------------
    def set_meta(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, _dumps(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, _dumps(value)))

    def state(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    # -- individuals -----------------------------------------------------------------------
    def add_individual(self, conn: sqlite3.Connection, *, generation: int, origin: str,
                       genome: list[int], phenotype: str | None, valid: bool, used_codons: int,
                       depth: int, nodes: int, parents: tuple[int, ...], eval_key: str | None,
                       reason: str | None) -> int:
        cur = conn.execute(
            "INSERT INTO individuals (generation, origin, genome, phenotype, valid, used_codons,"
            " depth, nodes, parents, eval_key, reason, created) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (generation, origin, _dumps(list(genome)), phenotype, int(valid), used_codons, depth,
             nodes, _dumps(list(parents)), eval_key, reason, time.time()),
        )
        return int(cur.lastrowid)

    @staticmethod
    def _individual(row: sqlite3.Row) -> Individual:
        return Individual(
            id=row["id"], generation=row["generation"], origin=row["origin"],
            genome=tuple(json.loads(row["genome"])), phenotype=row["phenotype"],
            valid=bool(row["valid"]), used_codons=row["used_codons"], depth=row["depth"],
            nodes=row["nodes"], parents=tuple(json.loads(row["parents"])),
            eval_key=row["eval_key"], reason=row["reason"],
        )

    def individual(self, ident: int) -> Individual | None:
        row = self.conn.execute("SELECT * FROM individuals WHERE id=?", (ident,)).fetchone()
        return self._individual(row) if row else None

    def individuals(self, ids: list[int] | None = None) -> list[Individual]:
        if ids is None:
            rows = self.conn.execute("SELECT * FROM individuals ORDER BY id").fetchall()
            return [self._individual(r) for r in rows]
        by_id = {}
        for chunk in range(0, len(ids), 500):
            part = ids[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(f"SELECT * FROM individuals WHERE id IN ({marks})", part):
                by_id[r["id"]] = self._individual(r)
        return [by_id[i] for i in ids if i in by_id]

    def individuals_of_generation(self, generation: int) -> list[Individual]:
        rows = self.conn.execute(
            "SELECT * FROM individuals WHERE generation=? ORDER BY id", (generation,)
        ).fetchall()
        return [self._individual(r) for r in rows]

    def count_individuals(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM individuals").fetchone()[0])

    # -- evaluations -----------------------------------------------------------------------
    def add_evaluation(self, conn: sqlite3.Connection, ev: Evaluation) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO evaluations (key, individual_id, status, reason, objectives,"
            " metrics, device, threads, seconds, weights, source, created)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (ev.key, ev.individual_id, ev.status, ev.reason, _dumps(ev.objectives),
             _dumps(ev.metrics), ev.device, ev.threads, ev.seconds, ev.weights, ev.source,
             time.time()),
        )

    @staticmethod
    def _evaluation(row: sqlite3.Row) -> Evaluation:
        return Evaluation(
            key=row["key"], individual_id=row["individual_id"], status=row["status"],
            reason=row["reason"], objectives=json.loads(row["objectives"]),
            metrics=json.loads(row["metrics"]), device=row["device"], threads=row["threads"],
            seconds=row["seconds"], weights=row["weights"], source=row["source"],
        )

    def evaluation(self, key: str) -> Evaluation | None:
        row = self.conn.execute("SELECT * FROM evaluations WHERE key=?", (key,)).fetchone()
        return self._evaluation(row) if row else None

    def has_evaluations(self, keys: set[str]) -> bool:
        """True when every key has a stored evaluation."""
        found = 0
        items = sorted(keys)
        for chunk in range(0, len(items), 500):
            part = items[chunk : chunk + 500]
            marks = ",".join("?" * len(part))
            found += self.conn.execute(
                f"SELECT COUNT(*) FROM evaluations WHERE key IN ({marks})", part).fetchone()[0]
        return found == len(items)

    def evaluations(self) -> dict[str, Evaluation]:
        rows = self.conn.execute("SELECT * FROM evaluations").fetchall()
        return {r["key"]: self._evaluation(r) for r in rows}

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
            (_dumps(merged_objectives), _dumps(merged_metrics), status or row["status"],
             reason if status else row["reason"], key))

    # -- exports ---------------------------------------------------------------------------
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
            (individual_id, format, target, protocol, _dumps(host), median_ms, bytes,
             _dumps(details), source, time.time()))
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

    # -- generations -----------------------------------------------------------------------
    def add_generation(self, conn: sqlite3.Connection, generation: int, population: list[int],
                       ranks: list[int], crowding: list[float], violation: list[float],
                       hypervolume: float | None, evaluations: int, cache_hits: int,
                       failures: int, rng: dict[str, Any]) -> None:
        """One generation's survivors with their ranks and crowding, and the generator state
        after its survival (what the next generation starts from)."""
        conn.execute(
            "INSERT OR REPLACE INTO generations VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (generation, _dumps(population), _dumps(ranks),
             _dumps([c if c != float("inf") else "inf" for c in crowding]), _dumps(violation),
             hypervolume, evaluations, cache_hits, failures, time.time(), _dumps(rng)),
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
