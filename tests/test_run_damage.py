"""Damaged run files: every command checks run.db before using it, says in one line what is
wrong and what is still readable (exit 2), never writes into a damaged file, and ``evo runs``
lists the other runs; a killed run keeps its finished generations in run.db itself."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.run.store import RunStore
from tests._runs_helpers import cli
from tests._search_helpers import blocks_file, run_synthetic

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished synthetic run (no training: milliseconds), treated as read-only."""
    tmp = tmp_path_factory.mktemp("damage")
    config = SearchConfig(grammar=str(blocks_file(tmp)), population=6, generations=2, seed=1,
                          run_dir=str(tmp / "finished"))
    return run_synthetic(config)


def _copy(run_dir: Path, dest: Path) -> Path:
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def _edit(run_dir: Path, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(run_dir / "run.db")
    conn.execute(sql, params)
    conn.commit()
    conn.close()


def _digests(run_dir: Path) -> dict[str, str]:
    """run.db and its log (the -shm index is a cache SQLite rebuilds when it reads)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run_dir.glob("run.db*")) if p.suffix != ".db-shm"}


def _one_line_exit_2(capsys, *args: str) -> str:
    code, _out, err = cli(capsys, *args)
    assert code == 2, (args, err)
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    return err


def test_random_bytes_over_a_table_page_are_reported_and_never_written(capsys, finished,
                                                                       tmp_path):
    run_dir = _copy(finished, tmp_path / "bytes")
    conn = sqlite3.connect(run_dir / "run.db")
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name='evaluations'").fetchone()
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with (run_dir / "run.db").open("r+b") as handle:
        handle.seek((root[0] - 1) * page)
        handle.write(np.random.default_rng(0).integers(0, 256, 100, dtype=np.uint8).tobytes())
    before = _digests(run_dir)
    for args in (["front", str(run_dir)], ["show", str(run_dir), "1"],
                 ["search", "--resume", str(run_dir)]):
        err = _one_line_exit_2(capsys, *args)
        assert "not a readable evo run database" in err and "nothing was written" in err
        assert "still readable:" in err
    assert _digests(run_dir) == before


def _killed_after(tmp_path: Path, generations: int) -> Path:
    """A real search killed with SIGKILL once ``generations`` generations are recorded."""
    grammar = str(blocks_file(tmp_path))
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "tests._search_helpers", str(run_dir),
                             grammar, "1"], cwd=ROOT)
    deadline = time.monotonic() + 60
    while _generations(run_dir) < generations and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return run_dir


def test_truncated_db_with_its_wal_kept_is_refused_before_any_training(tmp_path):
    """A search killed mid-run, then its run.db cut short while run.db-wal stays: resume must
    stop at once instead of training a generation into the damaged file."""
    run_dir = _killed_after(tmp_path, 2)
    assert (run_dir / "run.db-wal").is_file()
    with (run_dir / "run.db").open("r+b") as handle:
        handle.truncate(2 * 4096)
    before = _digests(run_dir)
    with pytest.raises(EvoError, match="not a readable evo run database"):
        run_synthetic(None, resume=run_dir, delay=0.02)
    assert _digests(run_dir) == before


def _generations(run_dir: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


EDITS = {
    "bad JSON": ("UPDATE evaluations SET metrics='{bad' WHERE rowid=1",
                 "evaluations row 1: metrics is not valid JSON"),
    "config deleted": ("DELETE FROM meta WHERE key='config'", "meta config is missing"),
    "table dropped": ("DROP TABLE generations", "table generations is missing"),
    "bad text": ("UPDATE individuals SET phenotype=CAST(X'80FF' AS TEXT) WHERE id=2",
                 "individuals row 2: phenotype is not valid text"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_hand_edited_rows_give_one_line_and_evo_runs_lists_the_rest(capsys, finished, tmp_path,
                                                                    edit):
    sql, words = EDITS[edit]
    _copy(finished, tmp_path / "runs" / "good")
    bad = _copy(finished, tmp_path / "runs" / "bad")
    _edit(bad, sql)
    before = _digests(bad)
    for args in (["front", str(bad)], ["show", str(bad), "1"],
                 ["search", "--resume", str(bad)]):
        assert words in _one_line_exit_2(capsys, *args)
    assert _digests(bad) == before
    code, out, err = cli(capsys, "runs", str(tmp_path / "runs"), "--json")
    assert code == 0, err
    rows = {Path(r["path"]).name: r for r in json.loads(out)}
    assert rows["good"]["status"] == "finished"
    assert rows["bad"]["status"] == "unreadable" and words in rows["bad"]["note"]


def test_a_later_table_dropped_reads_as_empty_and_is_not_written(capsys, finished, tmp_path):
    run_dir = _copy(finished, tmp_path / "no-exports")
    _edit(run_dir, "DROP TABLE exports")
    before = _digests(run_dir)
    code, _out, err = cli(capsys, "front", str(run_dir))
    assert code == 0, err
    code, _out, err = cli(capsys, "show", str(run_dir), "1", "--json")
    assert code == 0, err
    assert _digests(run_dir) == before


@pytest.mark.parametrize(("version", "words"), [(99, "written by a newer evo (run schema "
                                                     "version 99; evo"),
                                                (0, "written by an older evo (run schema "
                                                    "version 0; evo")])
def test_other_schema_versions_are_refused_naming_both(capsys, finished, tmp_path, version,
                                                      words):
    run_dir = _copy(finished, tmp_path / f"v{version}")
    _edit(run_dir, "UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
    before = _digests(run_dir)
    for args in (["front", str(run_dir)], ["search", "--resume", str(run_dir)]):
        err = _one_line_exit_2(capsys, *args)
        assert words in err and "reads version 1" in err and "nothing was changed" in err
    assert _digests(run_dir) == before


def test_finished_generations_survive_losing_the_wal_after_a_kill(tmp_path):
    """Each generation's end checkpoints the log into run.db: a killed run whose run.db-wal is
    then lost (a partial copy) still holds its finished generations."""
    run_dir = _killed_after(tmp_path, 4)
    assert (run_dir / "run.db-wal").is_file()
    (run_dir / "run.db-wal").unlink()
    (run_dir / "run.db-shm").unlink(missing_ok=True)
    store = RunStore.open(run_dir, write=False)
    try:
        assert (store.last_generation() or 0) >= 2
    finally:
        store.close(checkpoint=False)
