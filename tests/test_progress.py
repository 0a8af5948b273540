"""What a person sees while a search runs: plain lines when stdout is not a terminal (CI logs,
nohup), live rich bars on a terminal, nothing with --quiet; per-epoch events from in-process
training; the figures behind the status line."""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

from evo.config import SearchConfig
from evo.problem import TrainingProblem
from evo.progress import LineReporter, make_reporter
from evo.rich_progress import RichReporter, SearchStats
from evo.runner import run_search
from evo.search import Job, Search, derive_seed
from evo.synthetic import SyntheticProblem
from tests._search_helpers import blocks_file, synthetic_factory

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
ANSI = re.compile(r"\x1b\[")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _config(tmp_path: Path, name: str = "run", **kw) -> SearchConfig:
    base = dict(grammar=str(blocks_file(tmp_path)), population=6, generations=3, seed=1,
                run_dir=str(tmp_path / name))
    base.update(kw)
    return SearchConfig(**base)


def test_cli_search_output_is_plain_lines_when_stdout_is_not_a_terminal(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run(
        [sys.executable, "-m", "evo", "search", "--grammar", "cnn_topology", "--population", "2",
         "--generations", "1", "--epochs", "1", "--final-epochs", "1", "--no-export",
         "--no-bench", "--run-dir", str(run_dir)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert not ANSI.search(out.stdout) and "\r" not in out.stdout
    lines = out.stdout.splitlines()
    table_at = next(i for i, line in enumerate(lines) if "Pareto front" in line)
    progress = lines[:table_at]
    stamped = [line for line in progress if re.match(r"\[\s*\d+\.\d+s\] ", line)]
    assert stamped[0].endswith("workers 1") and "initial population: 2 individuals" in stamped[1]
    assert any("generation 1 done: front" in line for line in stamped)
    assert any(line.endswith("search finished: 1 generations done") for line in stamped)
    # Then the --final-epochs retrain, one line per member, and the front with test accuracy.
    assert any(line.startswith("final retrain") for line in progress)
    retrained = [line for line in progress if "test images) in" in line]
    conn = sqlite3.connect(run_dir / "run.db")
    rows = conn.execute("SELECT COUNT(*) FROM retrains").fetchone()[0]
    conn.close()
    assert rows == len(retrained) >= 1
    assert "test acc (retrained)" in out.stdout


def test_make_reporter_picks_the_view_for_the_stream():
    assert make_reporter(True, _Terminal())[0] is None
    listener, display = make_reporter(False, io.StringIO())
    assert isinstance(listener, LineReporter) and display is not listener
    listener, display = make_reporter(False, _Terminal())
    assert isinstance(listener, RichReporter) and display is listener


def test_line_reporter_prints_one_plain_line_per_event(tmp_path):
    stream = io.StringIO()
    run_search(_config(tmp_path), listeners=(LineReporter(stream),),
               problem_factory=synthetic_factory())
    text = stream.getvalue()
    assert not ANSI.search(text)
    lines = text.splitlines()
    assert all(re.match(r"\[\s*\d+\.\d+s\] ", line) for line in lines)
    assert sum("done: front" in line for line in lines) == 4
    results = [line for line in lines if "  member " in line]
    conn = sqlite3.connect(tmp_path / "run" / "run.db")
    evaluated = conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    conn.close()
    assert len(results) == evaluated


def test_rich_reporter_draws_a_whole_search_on_a_terminal(tmp_path):
    stream = _Terminal()
    console = Console(file=stream, force_terminal=True, width=120)
    reporter = RichReporter(console=console)
    with reporter:
        run_search(_config(tmp_path), listeners=(reporter,),
                   problem_factory=synthetic_factory())
    text = stream.getvalue()
    assert ANSI.search(text)  # a terminal gets the live view
    plain = ANSI.sub("", text)
    for expected in ("initial population: 6 individuals", "generation 3 done: front",
                     "search finished: 3 generations done", "  member 1: val acc"):
        assert expected in plain
    assert "display error" not in plain
    stats = reporter.stats
    assert stats.done == stats.planned == 24 and stats.front >= 1
    conn = sqlite3.connect(tmp_path / "run" / "run.db")
    trained, hits, failures, hv = conn.execute(
        "SELECT (SELECT COUNT(*) FROM evaluations), SUM(cache_hits), SUM(failures),"
        " (SELECT hypervolume FROM generations ORDER BY generation DESC LIMIT 1)"
        " FROM generations").fetchone()
    conn.close()
    assert (stats.trained, stats.cache_hits, stats.failures) == (trained, hits, failures)
    assert stats.hypervolume == hv
    status = stats.text()
    assert f"front {stats.front}" in status and f"hypervolume {hv:.4f}" in status
    assert f"cache hits {hits}" in status and "ETA 0s" in status


def test_rich_reporter_picks_up_a_resumed_run_mid_generation(tmp_path):
    config = _config(tmp_path)
    search = Search.create(tmp_path / "run", config, SyntheticProblem())
    jobs = search.ask()
    evaluate = SyntheticProblem().evaluator()
    search.tell(evaluate(jobs[0]))
    search.tell(evaluate(jobs[1]))
    search.close("interrupted")
    reporter = RichReporter(console=Console(file=_Terminal(), force_terminal=True))
    with reporter:
        reporter("start", {"run_dir": str(tmp_path / "run"), "config": config, "workers": 1})
        task = reporter.progress.tasks[-1]
        assert task.description == "initial population"
        assert (task.completed, task.total) == (2, 6)
    assert reporter.stats.trained == 2 and reporter.stats.done == 2
    assert reporter.stats.done_at_start == 2 and reporter.stats.planned == 24


def test_eta_is_the_mean_pace_times_what_is_left():
    stats = SearchStats()
    stats.planned, stats.done_at_start, stats.done = 10, 2, 6
    now = stats.started + 40.0  # 4 individuals in 40 s: 10 s each, 4 left
    assert stats.eta_seconds(now) == 40.0
    stats.max_time_s = 50.0
    assert stats.eta_seconds(now) == 10.0  # the time limit comes first
    assert "ETA 10s" in stats.text(now)
    fresh = SearchStats()
    assert fresh.eta_seconds() is None and "ETA -" in fresh.text()


def test_serial_training_reports_each_epoch_without_changing_the_result(tmp_path):
    events: list[tuple[str, dict]] = []
    config = SearchConfig(grammar="cnn_topology", epochs=2, seed=3)
    phenotype = "conv(8, k=3) bn relu maxpool(2) gap"
    plain = TrainingProblem(config, tmp_path / "a")
    watched = TrainingProblem(config, tmp_path / "b",
                              progress=lambda kind, data: events.append((kind, data)))
    key, text = plain.candidate(phenotype)
    job = Job(7, key, text, derive_seed(3, key))
    started = time.perf_counter()
    a = plain.evaluator()(job)
    b = watched.evaluator()(job)
    assert time.perf_counter() - started < 60
    assert a.status == b.status == "ok"
    assert a.objectives == b.objectives and a.metrics["loss_curve"] == b.metrics["loss_curve"]
    assert [k for k, _d in events] == ["candidate", "epoch", "epoch"]
    assert events[0][1] == {"member": 7, "epochs": 2}
    assert [d["epoch"] for _k, d in events[1:]] == [1, 2]
    assert events[-1][1]["val_accuracy"] == b.metrics["val_accuracy"]
    assert events[-1][1]["loss"] == b.metrics["loss_curve"][-1]
    # Workers receive a pickled evaluator: the listener stays in the driver.
    parallel = TrainingProblem(config.replace(workers=2), tmp_path / "c",
                               progress=lambda kind, data: None)
    assert parallel.evaluator().progress is None
