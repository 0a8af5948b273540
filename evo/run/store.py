"""The run store: one SQLite file, ``RUN_DIR/run.db``, the single source of truth of a run.

Why SQLite in WAL mode: every result is committed the moment it exists, a reader (``evo front``
while a search runs) never blocks the writer, and a crash at any instant leaves the last
committed state intact. A clean close checkpoints the WAL so a finished run is one file.

:class:`RunStore` opens, locks (:mod:`evo.run.lock`) and closes the run, and holds ``meta`` and
``state``; its table queries live beside it, one module per group of tables
(:mod:`evo.run.individuals`, :mod:`evo.run.generations`, :mod:`evo.run.outputs`,
:mod:`evo.run.rungs`; retrains in :mod:`evo.run.retrains`). docs/run-format.md describes every
table.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.run.check import (
    SCHEMA,
    SCHEMA_VERSION,
    add_missing_later_tables,
    check_run,
)
from evo.run.generations import GenerationQueries
from evo.run.individuals import Evaluation, Individual, IndividualQueries, dumps
from evo.run.layout import DB_NAME, LOCK_NAME, db_path, holds_run, models_dir, new_db_path
from evo.run.lock import RunLock
from evo.run.outputs import OutputQueries
from evo.run.rungs import RungQueries

# Importers of this module use these names; they live in the modules above.
__all__ = ["DB_NAME", "LOCK_NAME", "Evaluation", "Individual", "RunLock", "RunStore"]

# Tables whose rows carry a ``created`` time (the last write of a run is the newest of them).
_TIMED_TABLES = ("individuals", "evaluations", "generations", "retrains", "rungs")
# SQLite result codes of a write the disk refused: SQLITE_FULL (13, any extended code) and the
# write-side SQLITE_IOERR codes (plain, _WRITE, _FSYNC, _DIR_FSYNC, _TRUNCATE, _SHMSIZE); read
# errors are left to the damaged-file messages.
_SQLITE_FULL = 13
_WRITE_IOERRS = (10, 778, 1034, 1290, 1546, 4874)


def disk_error(run_dir: Path, exc: sqlite3.OperationalError, *, creating: bool = False
               ) -> EvoError | None:
    """The one line for a write that failed because the disk is full (SQLITE_FULL) or failing
    (SQLITE_IOERR, e.g. EFBIG past a file size limit); None for any other error. SQLite keeps
    every committed transaction, so the command can be run again once there is space."""
    code = getattr(exc, "sqlite_errorcode", 0)
    if code & 0xFF != _SQLITE_FULL and code not in _WRITE_IOERRS:
        return None
    where = f"cannot write ({exc}): the disk holding {run_dir} is full or failing"
    if creating:
        return EvoError(f"{new_db_path(run_dir)}: {where}; no run was created",
                        "free space there, then start the search again")
    return EvoError(f"{db_path(run_dir)}: {where}; everything committed before is kept",
                    "free space there, then run the command again; a search continues with "
                    f"evo search --resume {run_dir}")


class RunStore(IndividualQueries, GenerationQueries, OutputQueries, RungQueries):
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
            models_dir(run_dir).mkdir(exist_ok=True)
            probe = run_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise EvoError(f"{run_dir}: cannot write the run folder ({exc.strerror})",
                           "choose a writable --run-dir") from None
        if holds_run(run_dir):
            raise EvoError(f"{run_dir}: already holds a run",
                           f"continue it with --resume {run_dir}, or choose another --run-dir")
        lock = RunLock(run_dir)
        lock.acquire()
        fresh = new_db_path(run_dir)
        fresh.unlink(missing_ok=True)
        conn = sqlite3.connect(fresh, isolation_level=None)
        try:
            conn.executescript(SCHEMA)
            conn.execute("BEGIN")
            conn.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                         (dumps(SCHEMA_VERSION),))
            conn.executemany("INSERT INTO meta VALUES (?, ?)",
                             [(k, dumps(v)) for k, v in meta.items()])
            conn.executemany("INSERT INTO state VALUES (?, ?)",
                             [(k, dumps(v)) for k, v in state.items()])
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            lock.release()
            conn.close()
            fresh.unlink(missing_ok=True)
            raise disk_error(run_dir, exc, creating=True) or exc from None
        finally:
            conn.close()
        os.replace(fresh, db_path(run_dir))
        return cls(run_dir, cls._connect(db_path(run_dir)), lock)

    @classmethod
    def open(cls, run_dir: Path, *, write: bool) -> RunStore:
        """An existing run; ``write`` takes the run lock (or fails with "run in progress")."""
        db = db_path(run_dir)
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
            if isinstance(exc, sqlite3.OperationalError) and disk_error(run_dir, exc):
                raise disk_error(run_dir, exc) from None  # the file is fine, the disk is not
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
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as exc:
                raise disk_error(self.run_dir, exc) or exc from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; a full or failing disk ends it as one :class:`EvoError` line
        (:func:`disk_error`), everything committed before it intact."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back already
                    self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if self.conn.in_transaction:
                with suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            raise disk_error(self.run_dir, exc) or exc from None

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
        conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, dumps(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_state(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, dumps(value)))

    def state(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def last_row_time(self) -> float | None:
        """When the newest individual, evaluation, generation or retrain row was written
        (seconds since the epoch), ``None`` in a run without any."""
        times = []
        for table in _TIMED_TABLES:
            try:
                row = self.conn.execute(f"SELECT MAX(created) FROM {table}").fetchone()
            except sqlite3.OperationalError:  # a table an older run lacks
                continue
            if row[0] is not None:
                times.append(float(row[0]))
        return max(times) if times else None
