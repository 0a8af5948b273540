"""What a person sees while a search runs: plain lines when stdout is not a terminal (CI logs,
nohup), live rich bars on a terminal, nothing with --quiet; per-epoch and within-epoch events
from training, in this process or in workers; the figures behind the status line, taken from
the search's events only, and a smoothed ETA."""

from __future__ import annotations

import ast
import dataclasses
import io
import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch
from rich.console import Console

from evo.arch import parse_arch, resolve
from evo.config import SearchConfig
from evo.nas.problem import TrainingProblem, dataset_of
from evo.net.train import ReportThrottle, TrainBudget, train_candidate
from evo.report.progress import LineReporter, make_reporter
from evo.report.progress_state import Eta, SearchStats
from evo.report.rich_progress import RichReporter
from evo.run.counts import Counts, counts_of
from evo.run.store import RunStore
from evo.search.contract import (
    CandidateStarted,
    EpochDone,
    Event,
    Job,
    SearchStarted,
    TrainingProgress,
    derive_seed,
)
from evo.search.engine import Search
from evo.search.executors import ProcessExecutor
from evo.search.loop import run_search
from evo.search.synthetic import SyntheticProblem
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
    assert len(retrained) >= 1
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
    store = RunStore.open(tmp_path / "run", write=False)
    counts = counts_of(store)
    store.close(checkpoint=False)
    assert len(results) == counts.evaluated
    assert lines[-2].endswith(counts.text())  # the last generation's line, cumulative


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
    assert stats.counts.total == stats.planned == 24 and stats.front >= 1
    store = RunStore.open(tmp_path / "run", write=False)
    stored, hv = counts_of(store), store.hypervolumes()[-1][1]
    store.close(checkpoint=False)
    assert stats.counts == stored and stats.hypervolume == hv
    status = stats.text()
    assert f"front {stats.front}" in status and f"hypervolume {hv:.4f}" in status
    assert stored.text(" · ") in status and "ETA 0s" in status


def test_rich_reporter_takes_a_resumed_run_from_the_start_event(tmp_path):
    config = _config(tmp_path)
    search = Search.create(tmp_path / "run", config, SyntheticProblem())
    jobs = search.ask()
    evaluate = SyntheticProblem().evaluator()
    search.tell(evaluate(jobs[0]))
    search.tell(evaluate(jobs[1]))
    search.close("interrupted")
    events: list[Event] = []
    run_search(None, resume=tmp_path / "run", listeners=(events.append,),
               problem_factory=synthetic_factory())
    start = events[0]
    assert isinstance(start, SearchStarted) and start.counts.total == 2
    # The view builds its bars from the event alone; it never opens run.db (gone here).
    start = dataclasses.replace(start, run_dir=str(tmp_path / "elsewhere"))
    reporter = RichReporter(console=Console(file=_Terminal(), force_terminal=True))
    with reporter:
        reporter(start)
        task = reporter.progress.tasks[-1]
        assert task.description == "initial population"
        assert (task.completed, task.total) == (2, 6)
    assert reporter.stats.counts == start.counts and reporter.stats.planned == 24


def _imports(module: str) -> set[str]:
    """The evo modules a module of ours imports anywhere in its text (lazy imports too)."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / module).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("evo")}


def test_the_progress_views_form_no_import_circle_and_never_read_the_run():
    rich_view = _imports("evo/report/rich_progress.py")
    plain_view = _imports("evo/report/progress.py")
    shared = _imports("evo/report/progress_state.py")
    assert "evo.report.progress" not in rich_view | shared
    assert "evo.report.rich_progress" not in shared
    assert "evo.run.store" not in rich_view | plain_view | shared


def _eta_timeline(stats: SearchStats, events: list[tuple[float, Counts]], until: float
                  ) -> list[float]:
    """The ETA a person would read once a second while ``events`` arrive."""
    shown, queue = [], list(events)
    for second in range(int(until) + 1):
        while queue and queue[0][0] <= second:
            at, counts = queue.pop(0)
            stats.update(counts, at)
        shown.append(stats.eta_seconds(float(second)))
    return shown


def test_the_eta_moves_smoothly_through_a_long_candidate_and_cache_hits():
    """10 s candidates, one of 138 s, and batches that start with two cache hits: the
    estimate never jumps as 7m39s -> 18m25s -> 6m14s did."""
    stats = SearchStats(now=0.0)
    stats.planned = 60
    stats.update(Counts(), 0.0)
    events, now, counts = [], 0.0, Counts()
    for index in range(40):
        if index % 6 == 0:
            counts = counts.moved(None, "cached").moved(None, "cached")
            events.append((now, counts))
        now += 138.0 if index == 12 else 10.0
        counts = counts.moved(None, "trained")
        events.append((now, counts))
    shown = _eta_timeline(stats, events, now)
    assert shown[0] is None and all(s is not None for s in shown[11:])
    values = [s for s in shown[11:] if s is not None]
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    assert max(steps) < 10  # seconds per second, against estimates of several minutes
    before_long = shown[12 * 10]  # just as the long candidate starts
    after_long = shown[12 * 10 + 140]  # just after it ended
    assert before_long is not None and after_long is not None
    assert after_long < 2 * before_long


def test_eta_counts_down_between_results_and_respects_the_time_limit():
    eta = Eta(0.0, smoothing=0.5)
    eta.observe(Counts(), 0.0)
    eta.observe(Counts(trained=1), 10.0)
    assert eta.per_evaluation == 10.0
    assert eta.seconds(5, 14.0) == 46.0  # 5 x 10 s, 4 s of the next one already spent
    assert eta.seconds(5, 30.0) == 5 * 15.0 - 15.0  # running long: the pace rises gradually
    stats = SearchStats(now=0.0)
    stats.planned, stats.max_time_s = 10, 50.0
    stats.update(Counts(), 0.0)
    stats.update(Counts(trained=4), 40.0)
    assert stats.eta_seconds(40.0) == 10.0  # the time limit comes first
    assert "ETA 10s" in stats.text(40.0)
    fresh = SearchStats()
    assert fresh.eta_seconds() is None and "ETA -" in fresh.text()


def test_a_throttle_allows_one_report_per_interval():
    throttle = ReportThrottle(1.0, now=100.0)
    due = [t for t in (100.2, 100.9, 101.0, 101.5, 101.99, 102.0, 105.0)
           if throttle.due(t)]
    assert due == [101.0, 102.0, 105.0]


def test_training_reports_progress_within_an_epoch_without_changing_the_result():
    config = SearchConfig(grammar="cnn_topology", epochs=2, seed=3)
    dataset = dataset_of(config)
    resolved = resolve(parse_arch("conv(8, k=3) bn relu maxpool(2) gap"),
                       dataset.input_shape, dataset.num_classes)
    reports: list[dict] = []
    quiet = train_candidate(resolved, dataset, TrainBudget(epochs=2), device="cpu", seed=7)
    watched = train_candidate(resolved, dataset, TrainBudget(epochs=2), device="cpu", seed=7,
                              progress=reports.append, progress_every_s=0.0)
    assert quiet.objectives == watched.objectives
    assert quiet.metrics["loss_curve"] == watched.metrics["loss_curve"]
    within = [r for r in reports if "batch" in r]
    ends = [r for r in reports if "batch" not in r]
    assert [r["epoch"] for r in ends] == [1, 2]
    batches = within[0]["batches"]
    assert [r["batch"] for r in within if r["epoch"] == 1] == list(range(1, batches))
    assert all(r["images_per_second"] > 0 and 0 < r["loss"] < 10 for r in within)
    lines = RichReporter(console=Console(file=_Terminal(), force_terminal=True))
    lines(CandidateStarted(member=3, epochs=2))
    lines(TrainingProgress(member=3, **within[-1]))
    task = lines.progress.tasks[-1]
    assert task.completed > 1 and "img/s" in task.fields["info"]
    assert f"batch {within[-1]['batch']}/{batches}" in task.fields["info"]


def test_serial_training_reports_each_epoch_without_changing_the_result(tmp_path):
    events: list[Event] = []
    config = SearchConfig(grammar="cnn_topology", epochs=2, seed=3)
    phenotype = "conv(8, k=3) bn relu maxpool(2) gap"
    plain = TrainingProblem(config, tmp_path / "a")
    watched = TrainingProblem(config, tmp_path / "b", progress=events.append)
    key, text = plain.candidate(phenotype)
    job = Job(7, key, text, derive_seed(3, key))
    started = time.perf_counter()
    a = plain.evaluator()(job)
    b = watched.evaluator()(job)
    assert time.perf_counter() - started < 60
    assert a.status == b.status == "ok"
    assert a.objectives == b.objectives and a.metrics["loss_curve"] == b.metrics["loss_curve"]
    epochs = [e for e in events if not isinstance(e, TrainingProgress)]  # those: at most 1/s
    assert [type(e) for e in epochs] == [CandidateStarted, EpochDone, EpochDone]
    assert epochs[0] == CandidateStarted(member=7, epochs=2)
    assert [e.epoch for e in epochs[1:]] == [1, 2]
    assert epochs[-1].val_accuracy == b.metrics["val_accuracy"]
    assert epochs[-1].loss == b.metrics["loss_curve"][-1]


def test_progress_of_a_worker_travels_to_the_driver(tmp_path):
    config = SearchConfig(grammar="cnn_topology", epochs=2, seed=3, workers=2)
    problem = TrainingProblem(config, tmp_path)
    key, text = problem.candidate("conv(8, k=3) bn relu maxpool(2) gap")
    events: list[Event] = []
    evaluator = problem.evaluator()
    assert evaluator.progress is None  # a listener is never pickled into a worker
    with ProcessExecutor(evaluator, 1, events.append) as pool:
        [result] = list(pool.run([Job(9, key, text, derive_seed(3, key))]))
    assert result.status == "ok"
    epochs = [e for e in events if not isinstance(e, TrainingProgress)]
    assert [type(e) for e in epochs] == [CandidateStarted, EpochDone, EpochDone]
    assert all(e.member == 9 for e in events)
    assert epochs[-1].val_accuracy == result.metrics["val_accuracy"]
