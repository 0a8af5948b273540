"""Shared pieces for search tests: a blocks grammar file and a synthetic-problem runner."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

from evo.config import SearchConfig
from evo.search.contract import ProblemFactory
from evo.search.loop import run_search
from evo.search.synthetic import SyntheticProblem
from tests.test_grammar import BLOCKS


def blocks_file(tmp: Path) -> Path:
    path = tmp / "blocks.bnf"
    path.write_text(BLOCKS)
    return path


def synthetic_factory(delay: float = 0.0, fail_token: str | None = None) -> ProblemFactory:
    """The synthetic problem as ``run_search`` asks for a problem (config, run folder)."""
    return lambda _config, _run_dir: SyntheticProblem(delay, fail_token)


def run_synthetic(config: SearchConfig | None, *, resume: Path | None = None,
                  changes: dict | None = None, delay: float = 0.0,
                  fail_token: str | None = None) -> Path:
    return run_search(config, resume=resume, changes=changes,
                      problem_factory=synthetic_factory(delay, fail_token))


def read_rows(run_dir: Path, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """Rows from a run's database, opened read-only (a search may be writing to it)."""
    conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def snapshot(run_dir: Path) -> dict:
    """Everything that defines a run's outcome, independent of timing."""
    conn = sqlite3.connect(run_dir / "run.db")
    try:
        individuals = conn.execute(
            "SELECT id, generation, origin, genome, phenotype, valid, parents, eval_key, reason"
            " FROM individuals ORDER BY id").fetchall()
        generations = conn.execute(
            "SELECT generation, population, ranks, crowding, violation, hypervolume"
            " FROM generations ORDER BY generation").fetchall()
        evaluations = conn.execute(
            "SELECT key, status, objectives FROM evaluations ORDER BY key").fetchall()
    finally:
        conn.close()
    return {"individuals": individuals, "generations": generations, "evaluations": evaluations}


# Run as a script: a synthetic search that a test can kill at any moment.
#   python -m tests._search_helpers RUN_DIR GRAMMAR WORKERS [resume]
if __name__ == "__main__":
    run_dir, grammar, workers = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    resume = sys.argv[4:] == ["resume"]
    cfg = SearchConfig(grammar=grammar, population=8, generations=6, seed=3,
                       run_dir=str(run_dir), workers=workers)
    run_synthetic(None if resume else cfg, resume=run_dir if resume else None, delay=0.02)
