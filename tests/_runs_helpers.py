"""Shared pieces for the tests of living with runs: one tiny real search on digits per pytest
session (shared by every test file that asks for it), copies of it for tests that write, and
the CLI called in-process so exit codes and output can be checked cheaply."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from evo.config import SearchConfig
from evo.nas.problem import problem_factory
from evo.run.front import front_of
from evo.run.store import Evaluation, RunStore
from evo.search.loop import run_search

TINY = dict(grammar="cnn_topology", dataset="digits", population=4, generations=1, epochs=1,
            seed=5, export=(), bench=())


def _finished(run_dir: Path) -> bool:
    if not (run_dir / "run.db").is_file():
        return False
    conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='status'").fetchone()
    finally:
        conn.close()
    return row is not None and row[0] == '"finished"'


def tiny_digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished real search (4 members x 2 generations, 1 epoch each, digits, CPU), made
    once per session. Treat it as read-only: copy it (``copy_run``) before writing."""
    run_dir = tmp_path_factory.getbasetemp() / "tiny-digits-run"
    if not _finished(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        run_search(SearchConfig(**TINY, run_dir=str(run_dir)), problem_factory=problem_factory())
    return run_dir


def copy_run(run_dir: Path, dest: Path) -> Path:
    """A private copy of a run (without its lock file) that a test may write to."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns(".lock"))
    return dest


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``evo ARGS`` in this process: (exit code, stdout, stderr)."""
    from evo.cli.app import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err


def front_objectives(run_dir: Path) -> list[tuple[str, dict[str, float]]]:
    """The stored front of a run as (evaluation key, objectives), read-only."""
    store = RunStore.open(run_dir, write=False)
    try:
        return [(ev.key, ev.objectives) for _ind, ev in front_of(store)]
    finally:
        store.close(checkpoint=False)


def stored_evaluations(run_dir: Path) -> dict[str, Evaluation]:
    """Every evaluation a run stored, by key, read-only."""
    store = RunStore.open(run_dir, write=False)
    try:
        return store.evaluations()
    finally:
        store.close(checkpoint=False)
