"""What a readable ``run.db`` is: its schema, its version, and the check every open runs first.

Why a check before use: a damaged file used to surface as a traceback deep inside a command
(``database disk image is malformed``, a ``JSONDecodeError``, ``no such table``), and a resume
once trained a whole generation into a truncated file before crashing. Every open now checks
the file through a read-only connection (which never checkpoints a write-ahead log into it) and
stops with one line that says what is wrong and what can still be read; nothing is written to a
file that fails.

The check is SQLite's ``quick_check`` (page structure), the tables and ``meta`` keys every
command relies on, the schema version, and every stored text and JSON value decoding (a flipped
byte inside a row passes ``quick_check`` but breaks a command later).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from evo.errors import EvoError

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS individuals (
    id INTEGER PRIMARY KEY,
    generation INTEGER NOT NULL,
    origin TEXT NOT NULL,
    genome TEXT NOT NULL,
    phenotype TEXT,
    valid INTEGER NOT NULL,
    used_codons INTEGER NOT NULL,
    depth INTEGER NOT NULL,
    nodes INTEGER NOT NULL,
    parents TEXT NOT NULL,
    eval_key TEXT,
    reason TEXT,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS individuals_key ON individuals(eval_key);
CREATE TABLE IF NOT EXISTS evaluations (
    key TEXT PRIMARY KEY,
    individual_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    objectives TEXT NOT NULL,
    metrics TEXT NOT NULL,
    device TEXT,
    threads INTEGER,
    seconds REAL,
    weights TEXT,
    source TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY,
    population TEXT NOT NULL,
    ranks TEXT NOT NULL,
    crowding TEXT NOT NULL,
    violation TEXT NOT NULL,
    hypervolume REAL,
    evaluations INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    created REAL NOT NULL,
    rng TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS retrains (
    id INTEGER PRIMARY KEY,
    individual_id INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    seeds INTEGER NOT NULL,
    test_accuracy_mean REAL NOT NULL,
    test_accuracy_std REAL NOT NULL,
    test_correct TEXT NOT NULL,
    test_total INTEGER NOT NULL,
    weights TEXT,
    metrics TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS exports (
    id INTEGER PRIMARY KEY,
    individual_id INTEGER,
    format TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    path TEXT,
    bytes INTEGER,
    accuracy REAL,
    parity REAL,
    details TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    individual_id INTEGER,
    format TEXT,
    target TEXT NOT NULL,
    protocol TEXT NOT NULL,
    host TEXT NOT NULL,
    median_ms REAL,
    bytes INTEGER,
    details TEXT NOT NULL,
    source TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rungs (
    key TEXT NOT NULL,
    rung INTEGER NOT NULL,
    epochs INTEGER NOT NULL,
    status TEXT NOT NULL,
    objectives TEXT NOT NULL,
    metrics TEXT NOT NULL,
    state TEXT,
    individual_id INTEGER NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (key, rung)
);
"""

# Every run has these from its creation; a run without one is damaged.
REQUIRED_TABLES = ("meta", "individuals", "evaluations", "generations", "state")
# Tables the commands after a search fill; a writer creates a missing one, a reader sees it empty.
LATER_TABLES = ("retrains", "exports", "measurements", "rungs")
REQUIRED_META = ("schema_version", "config", "grammar_text", "grammar_source")
# Columns holding JSON, per table; ``meta`` and ``state`` rows are named by their key.
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "meta": ("value",), "state": ("value",), "individuals": ("genome", "parents"),
    "evaluations": ("objectives", "metrics"),
    "generations": ("population", "ranks", "crowding", "violation", "rng"),
    "retrains": ("test_correct", "metrics"), "exports": ("details",),
    "measurements": ("host", "details"), "rungs": ("objectives", "metrics"),
}
_HINT = ("restore the run folder from a copy (run.db together with run.db-wal), or salvage the "
         "readable rows with `sqlite3 run.db .recover`")


class RunDamaged(EvoError):
    """run.db fails its check: one line naming the damage and what is still readable."""

    def __init__(self, db: Path, problem: str, readable: str) -> None:
        self.problem = problem
        self.readable = readable
        super().__init__(f"{db}: not a readable evo run database: {problem}; nothing was "
                         f"written to it ({readable})", _HINT)


def check_run(conn: sqlite3.Connection, db: Path) -> set[str]:
    """Raise ``RunDamaged`` (or ``EvoError`` for another schema version) unless the database
    behind the read-only ``conn`` is whole; returns the names of its tables."""
    try:
        problem, tables = _structure(conn)
        if problem is None:
            check_version(conn, db)
            problem = _missing(conn, tables) or _undecodable(conn, tables)
    except sqlite3.DatabaseError as exc:
        problem, tables = str(exc), set()
    if problem is not None:
        raise RunDamaged(db, problem, readable(conn))
    return tables


def _structure(conn: sqlite3.Connection) -> tuple[str | None, set[str]]:
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(20)").fetchall()]
    if rows != ["ok"]:
        found = [line.strip() for row in rows for line in row.splitlines()
                 if line.strip() and not line.startswith("***")]
        more = f" and {len(found) - 1} more problems" if len(found) > 1 else ""
        return f"SQLite's quick_check found {found[0][:100] if found else 'damage'}{more}", set()
    tables = {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "meta" not in tables:
        return "its meta table is missing", tables
    return None, tables


def check_version(conn: sqlite3.Connection, db: Path) -> None:
    """Refuse a run written under another schema version, naming both versions."""
    from evo import __version__

    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    try:
        version = json.loads(row[0]) if row is not None else None
    except (json.JSONDecodeError, TypeError):
        version = None
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunDamaged(db, "its schema version is missing or malformed (meta.schema_version)",
                         readable(conn))
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise EvoError(f"{db}: written by a newer evo (run schema version {version}; evo "
                       f"{__version__} reads version {SCHEMA_VERSION}); nothing was changed",
                       "upgrade evo (pip install -U evo-edge-nas) to open this run")
    raise EvoError(f"{db}: written by an older evo (run schema version {version}; evo "
                   f"{__version__} reads version {SCHEMA_VERSION} and has no migration from "
                   f"{version}); nothing was changed",
                   f"open it with the evo that wrote it ({_writer(conn)})")


def _writer(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key='versions'").fetchone()
    try:
        return f"evo {json.loads(row[0])['evo']}"
    except (TypeError, KeyError, json.JSONDecodeError):
        return "its version is not recorded"


def _missing(conn: sqlite3.Connection, tables: set[str]) -> str | None:
    absent = [t for t in REQUIRED_TABLES if t not in tables]
    if absent:
        return f"table {', '.join(absent)} is missing"
    keys = {str(r[0]) for r in conn.execute("SELECT key FROM meta")}
    absent = [k for k in REQUIRED_META if k not in keys]
    if absent:
        return f"meta {', '.join(absent)} is missing"
    return None


def _undecodable(conn: sqlite3.Connection, tables: set[str]) -> str | None:
    """The first stored value that is not UTF-8 text or, in a JSON column, not JSON.

    SQLite's ``json_valid`` screens the JSON columns fast; the few values it rejects are
    decoded by Python, whose JSON also accepts the NaN and Infinity that ``json.dumps`` writes.
    """
    previous = conn.text_factory, conn.row_factory
    conn.text_factory, conn.row_factory = bytes, None
    try:
        for table, json_columns in JSON_COLUMNS.items():
            if table not in tables:
                continue
            problem = _table_problem(conn, table, json_columns)
            if problem is not None:
                return problem
    finally:
        conn.text_factory, conn.row_factory = previous
    return None


def _table_problem(conn: sqlite3.Connection, table: str,
                   json_columns: tuple[str, ...]) -> str | None:
    columns = [_text(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")
               if _text(r[2]).upper() == "TEXT"]
    texts = [c for c in columns if c not in json_columns]
    label = "key" if table in ("meta", "state") else "rowid"
    if texts:
        for row in conn.execute(f"SELECT {label}, {', '.join(texts)} FROM {table}"):
            for name, value in zip(texts, row[1:], strict=True):
                if isinstance(value, bytes) and not _is_text(value):
                    return f"{_where(table, row[0])}: {name} is not valid text"
    for name in json_columns:
        for key, value in conn.execute(f"SELECT {label}, {name} FROM {table}"
                                       f" WHERE NOT json_valid({name})"):
            try:
                json.loads(value.decode("utf-8") if isinstance(value, bytes) else str(value))
            except UnicodeDecodeError:
                return f"{_where(table, key)}: {name} is not valid text"
            except json.JSONDecodeError as exc:
                return (f"{_where(table, key)}: {name} is not valid JSON ({exc.msg} at "
                        f"character {exc.pos})")
    return None


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _is_text(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _where(table: str, key: object) -> str:
    key = _text(key) if isinstance(key, bytes) else key
    return f"{table} {key!r}" if table in ("meta", "state") else f"{table} row {key}"


def readable(conn: sqlite3.Connection) -> str:
    """What can still be read, table by table: the recoverable part of a damaged run."""
    counts, lost = [], []
    for table in REQUIRED_TABLES[1:4] + LATER_TABLES:
        try:
            count = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        except sqlite3.DatabaseError:
            lost.append(table)
            continue
        if count or table in REQUIRED_TABLES:
            counts.append(f"{count} {table}")
    parts = ["still readable: " + (", ".join(counts) if counts else "nothing")]
    if lost:
        parts.append("unreadable: " + ", ".join(lost))
    return "; ".join(parts)


def add_missing_later_tables(conn: sqlite3.Connection, tables: set[str]) -> None:
    """For a reader: the later tables a run lacks, as empty temporary tables (never written to
    the file), so commands see "no retrains/exports/measurements" instead of an error."""
    for statement in SCHEMA.split(";"):
        words = statement.split()
        if len(words) > 5 and words[:2] == ["CREATE", "TABLE"] and words[5] in LATER_TABLES \
                and words[5] not in tables:
            conn.execute(statement.replace("CREATE TABLE IF NOT EXISTS",
                                           "CREATE TEMP TABLE", 1))
