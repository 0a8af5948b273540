"""The run format has one owner (evo/run) and one public description (docs/run-format.md).

These tests fail when the schema and its documentation drift apart, when a file name written
by evo/run/layout.py cannot be read back by it, or when code outside evo/run speaks SQL to
run.db or spells out a run folder's file names itself.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from evo.run import layout
from evo.run.check import SCHEMA, SCHEMA_VERSION
from evo.run.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "run-format.md"


def _documented_columns() -> dict[str, set[str]]:
    """Table name -> the column names its section of run-format.md lists (meta and state name
    theirs in the heading)."""
    out: dict[str, set[str]] = {}
    table = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"### (\w+)(?: \((.*)\))?$", line)
        if heading:
            table = heading.group(1)
            out[table] = {re.sub(r"\W", "", part.split()[0])
                          for part in (heading.group(2) or "").split(",") if part.strip()}
        elif table and line.startswith("| `") and table not in ("meta", "state"):
            first_cell = line.split("|")[1]
            out[table].update(re.findall(r"`(\w+)`", first_cell))
    return out


def _schema_columns() -> dict[str, set[str]]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(SCHEMA)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: {r[1] for r in conn.execute(f"PRAGMA table_info({t})")} for t in tables}


def test_the_format_page_describes_every_table_and_column_of_this_schema_version():
    assert DOC.read_text().splitlines()[0] == f"# The run format (schema version {SCHEMA_VERSION})"
    documented = _documented_columns()
    for table, columns in _schema_columns().items():
        assert table in documented, f"docs/run-format.md has no section for table {table}"
        assert documented[table] == columns, f"table {table}: docs differ from the schema"


def test_a_new_run_has_the_documented_folder_layout(tmp_path):
    store = RunStore.create(tmp_path / "run", {"config": {}}, {"rng": None})
    try:
        assert store.meta("schema_version") == SCHEMA_VERSION
        run_dir = store.run_dir
        assert layout.is_run_dir(run_dir) and layout.db_path(run_dir).name == "run.db"
        assert layout.lock_path(run_dir).is_file() and layout.models_dir(run_dir).is_dir()
    finally:
        store.close()
    # Closed by its writer, a run is these and nothing else (no -wal, no -shm).
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "models", "run.db"]
    text = DOC.read_text()
    for name in (layout.DB_NAME, layout.LOCK_NAME, layout.CONFIG_NAME, layout.MODELS_DIR,
                 layout.EXPORT_DIR, layout.STAGING_PREFIX):
        assert name in text


def test_every_name_the_layout_writes_it_reads_back(tmp_path):
    key = "4b1b935e88fe6a77cb29fb45f3adfc5f7967af61494e5821822fb00d585daeae"
    weights = layout.candidate_weights_path(tmp_path, key)
    onnx = layout.candidate_onnx_path(tmp_path, key)
    assert layout.relative_name(tmp_path, weights) == "models/4b1b935e88fe6a77cb29fb45.pt"
    assert layout.candidate_key_prefix(weights) == layout.candidate_key_prefix(onnx) == key[:24]
    assert layout.candidate_key_prefix(layout.temporary_path(weights)) == key[:24]
    assert layout.is_temporary(layout.temporary_path(onnx)) and not layout.is_temporary(onnx)

    retrained = layout.retrain_weights_name(14, 2)
    assert layout.parse_retrain_weights_name(retrained) == (14, 2)
    assert layout.candidate_key_prefix(Path(retrained)) is None  # never swept as a candidate's
    assert layout.retrain_weights_stored(layout.resolve_stored(tmp_path, retrained)) == retrained
    pending = layout.pending_retrain_path(tmp_path, 14)
    assert layout.is_pending_retrain(pending) and layout.is_temporary(pending)
    assert layout.parse_retrain_weights_name(pending.name) is None

    base = layout.export_dir(tmp_path)
    staging = layout.staging_dir(base, 7)
    assert layout.is_staging_dir(staging) and not layout.is_staging_dir(base / "7")
    assert layout.staging_final_dir(staging) == layout.export_member_dir(base, 7)
    assert layout.staging_writer_pid(staging) is not None
    assert layout.stored_path(tmp_path, staging / "onnx") == str(
        staging.relative_to(tmp_path) / "onnx")
    assert layout.model_file_name(["manifest.json", "model.bin", "model.xml"]) == "model.xml"


SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE FROM|PRAGMA)\b|\.conn\b|\.execute\(")
# A run folder's names spelled out: a path joined with one, the database's own name, a file
# name built from a key (``f"{key}.pt"``) or a suffix tested by hand.
LAYOUT = re.compile(r"""/ ?["'](run\.db|\.lock|config\.toml|models|export)["']"""
                    r"""|["'](run\.db|\.lock|config\.toml)["']|\}\.(pt|onnx)["']|["']\.(pt|onnx)["']""")
# evo.config is a foundation below evo.run (it may not import it); its messages name the file a
# run's configuration is copied to.
LAYOUT_EXEMPT = ("evo/config.py",)


def _outside_run() -> list[Path]:
    return [p for p in sorted((ROOT / "evo").rglob("*.py"))
            if p.relative_to(ROOT / "evo").parts[0] != "run"]


def _hits(pattern: re.Pattern[str], exempt: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in _outside_run():
        rel = str(path.relative_to(ROOT))
        if rel in exempt:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line.split("#", 1)[0]):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_only_evo_run_speaks_sql_to_run_db():
    assert _hits(SQL) == []


def test_only_evo_run_names_the_files_of_a_run_folder():
    assert _hits(LAYOUT, LAYOUT_EXEMPT) == []


def test_the_fences_see_what_they_fence():
    """The two checks above match the code they forbid (else they could never fail)."""
    assert SQL.search('rows = store.conn.execute("SELECT * FROM exports")')
    for line in ('path = run_dir / "models" / name', 'db = run_dir / "run.db"',
                 'name = f"{key[:24]}.pt"', 'if path.suffix == ".onnx":'):
        assert LAYOUT.search(line), line
    assert not LAYOUT.search('values["export"] = ()')
