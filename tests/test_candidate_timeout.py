"""``--candidate-timeout`` holds even inside one slow training step: the candidate runs in a
worker the driver kills at the deadline, and the timeout is the candidate's final result."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from evo.search.executors import hard_limit

ROOT = Path(__file__).resolve().parents[1]
# One training step of this network on 224x224 images takes seconds on one thread (12 s on
# the development machine): far past a 1 s limit that the between-steps check would only
# notice after it.
SLOW = "conv(16, k=15) relu conv(64, k=15) relu gap | batch_size=8"


def test_one_slow_step_cannot_outlive_the_candidate_timeout(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "large.npz"
    np.savez(data, x=rng.integers(0, 256, (40, 224, 224), dtype=np.uint8),
             y=np.arange(40) % 2)
    grammar = tmp_path / "slow.bnf"
    grammar.write_text(f'<net> ::= "{SLOW}"\n')
    run_dir = tmp_path / "run"
    began = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "evo", "search", "--dataset", str(data), "--grammar",
         str(grammar), "--population", "2", "--generations", "0", "--epochs", "1",
         "--candidate-timeout", "1", "--no-export", "--no-bench", "--quiet",
         "--run-dir", str(run_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    wall = time.monotonic() - began
    assert out.returncode == 0, out.stderr
    conn = sqlite3.connect(run_dir / "run.db")
    rows = conn.execute("SELECT status, reason, seconds FROM evaluations").fetchall()
    conn.close()
    assert len(rows) == 1, rows
    status, reason, seconds = rows[0]
    assert status == "failed" and reason.startswith("timeout: stopped after"), reason
    assert "1 s --candidate-timeout" in reason
    assert seconds < hard_limit(1.0) + 1.5, seconds
    assert wall < 60, wall
