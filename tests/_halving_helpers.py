"""Shared pieces for successive-halving tests: a search over synthetic learning curves, a
snapshot of everything that defines its outcome, and a script a test can kill at any moment."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.search.contract import Listener
from evo.search.loop import run_search
from evo.search.synthetic import CurveProblem
from tests._search_helpers import snapshot


def halving_config(grammar: Path, run_dir: Path, **kw: Any) -> SearchConfig:
    base: dict[str, Any] = dict(grammar=str(grammar), population=6, generations=4, seed=2,
                                epochs=5, fidelity="halving", run_dir=str(run_dir), export=(),
                                bench=())
    base.update(kw)
    return SearchConfig(**base)


def run_curves(config: SearchConfig | None, *, resume: Path | None = None,
               changes: dict | None = None, listeners: tuple[Listener, ...] = (),
               delay: float = 0.0, stop_token: str | None = None,
               fail_token: str | None = None) -> Path:
    """A search (or its resume) over :class:`CurveProblem` (5 epochs per candidate)."""
    def factory(_config: SearchConfig, _run_dir: Path) -> CurveProblem:
        return CurveProblem(delay=delay, fail_token=fail_token, epochs=5, stop_token=stop_token)

    return run_search(config, resume=resume, changes=changes, listeners=listeners,
                      problem_factory=factory)


def halving_snapshot(run_dir: Path) -> dict:
    """The outcome of a run, rung results and compute included (no times)."""
    out = snapshot(run_dir)
    conn = sqlite3.connect(run_dir / "run.db")
    try:
        out["rungs"] = conn.execute(
            "SELECT key, rung, epochs, status, objectives, state, individual_id FROM rungs"
            " ORDER BY key, rung").fetchall()
        out["evaluation_rows"] = conn.execute(
            "SELECT key, individual_id, status, reason, weights FROM evaluations ORDER BY key"
        ).fetchall()
        out["compute"] = conn.execute(
            "SELECT value FROM state WHERE key='compute'").fetchall()
    finally:
        conn.close()
    out["states"] = sorted(p.name for p in (run_dir / "states").glob("*"))
    return out


# Run as a script: a halving search that a test can kill at any moment.
#   python -m tests._halving_helpers RUN_DIR GRAMMAR WORKERS [resume]
if __name__ == "__main__":
    run_dir, grammar, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    resume = sys.argv[4:] == ["resume"]
    config = halving_config(grammar, run_dir, population=8, generations=2, workers=workers)
    run_curves(None if resume else config, resume=run_dir if resume else None,
               changes={"workers": workers} if resume else None, delay=0.03)
