"""One vocabulary of counts (trained, cached, skipped, invalid, failed, stopped), cumulative,
the same live (sent with the search's events) and stored (``evo runs``, the plot caption): with
``--constraint params<=2e4`` the status line once said "trained 26" while run.db held 11
trained and 15 skipped, and cache hits and failures were per generation."""

from __future__ import annotations

import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from evo.config import SearchConfig
from evo.nas.problem import problem_factory
from evo.report.front_plot import plot_data
from evo.report.progress import LineReporter
from evo.run.counts import OUTCOMES, Counts, counts_of
from evo.run.store import Evaluation, RunStore
from evo.search.contract import (
    Counted,
    Event,
    GenerationDone,
    Job,
    Measured,
    MemberMeasured,
    PendingBatch,
    Result,
    SearchStarted,
)
from evo.search.engine import Search
from evo.search.loop import run_search
from evo.search.synthetic import SyntheticEvaluator, SyntheticProblem
from tests._runs_helpers import cli
from tests._search_helpers import blocks_file

torch.set_num_threads(1)


@dataclass(frozen=True)
class _Evaluator(SyntheticEvaluator):
    """ZDT1, plus a hard limit that skips some networks before "training", an early abort
    that stops others, and a missing ``params`` that the driver must measure."""

    skip_token: str = "pool( avg )"
    stop_token: str = "lr=0.01"

    def __call__(self, job: Job) -> Result:
        if self.skip_token in job.text:
            return Result(job.key, job.individual_id, "skipped",
                          "violates params<=1e7; not trained", {"params": 1e8})
        if self.stop_token in job.text:
            return Result(job.key, job.individual_id, "stopped",
                          "no better than chance after epoch 1", {"error": 0.9})
        result = super().__call__(job)
        if result.status == "ok" and " bn " in job.text:
            objectives = {k: v for k, v in result.objectives.items() if k != "params"}
            result = dataclasses.replace(result, objectives=objectives)
        return result


@dataclass(frozen=True)
class _Problem(SyntheticProblem):
    """Every outcome happens: invalid phenotypes, skips, training and measurement failures."""

    def candidate(self, phenotype: str) -> tuple[str, str] | str:
        if "conv( 64" in phenotype:
            return "conv(64) is not allowed here"
        return super().candidate(phenotype)

    def measure(self, evaluation: Evaluation) -> Measured:
        if evaluation.objectives["error"] > 0.4:
            return Measured(failure="cannot be measured")
        return Measured(objectives={"params": 1e4})

    def evaluator(self) -> _Evaluator:
        return _Evaluator(fail_token="pool( max )")


def _factory(_config: SearchConfig, _run_dir: Path) -> _Problem:
    return _Problem()


def _config(tmp_path: Path, name: str, **kw) -> SearchConfig:
    base = dict(grammar=str(blocks_file(tmp_path)), population=6, generations=3, seed=4,
                constraint=("params<=1e7",), run_dir=str(tmp_path / name))
    base.update(kw)
    return SearchConfig(**base)


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def last_counts(self) -> Counts:
        return [e.counts for e in self.events if isinstance(e, Counted)][-1]


def test_counts_move_between_outcomes_and_read_alike():
    counts = Counts.of(["trained", "cached", "cached", "invalid", "skipped"])
    assert counts.to_dict() == {"trained": 1, "cached": 2, "skipped": 1, "invalid": 1,
                                "failed": 0, "stopped": 0}
    assert tuple(counts.to_dict()) == OUTCOMES
    assert counts.total == 5 and counts.evaluated == 2  # cached and invalid cost nothing
    moved = counts.moved("trained", "failed").moved(None, "trained")
    assert (moved.trained, moved.failed, moved.total) == (1, 1, 6)
    assert counts.text() == "trained 1, cached 2, skipped 1, invalid 1, failed 0, stopped 0"


def test_live_counts_equal_the_stored_counts_with_every_outcome(tmp_path, capsys):
    first = run_search(_config(tmp_path, "first", generations=1), problem_factory=_factory)
    recorder, lines = _Recorder(), io.StringIO()
    run_dir = run_search(_config(tmp_path, "second", warm_start=str(first)),
                         listeners=(recorder, LineReporter(lines)), problem_factory=_factory)
    store = RunStore.open(run_dir, write=False)
    try:
        stored = counts_of(store)
        individuals, trained_rows = store.count_individuals(), store.count_trained()
        caption = plot_data(store).caption()
    finally:
        store.close(checkpoint=False)
    live = recorder.last_counts()
    assert live == stored
    assert all(getattr(stored, name) > 0 for name in OUTCOMES), stored
    assert any(isinstance(e, MemberMeasured) and e.failure for e in recorder.events)
    assert stored.total == individuals == 24
    assert stored.evaluated == trained_rows  # what --max-evals counts
    # Cumulative everywhere: each generation line carries the running totals.
    generation_lines = [line for line in lines.getvalue().splitlines() if " done: " in line]
    assert generation_lines[-1].endswith(stored.text())
    totals = [e.counts.total for e in recorder.events if isinstance(e, GenerationDone)]
    assert totals == [6, 12, 18, 24]
    # The same words and figures in `evo runs` (JSON keys and table) and the plot caption.
    code, out, _err = cli(capsys, "runs", str(tmp_path), "--json")
    rows = {Path(r["path"]).name: r for r in json.loads(out)}
    assert code == 0 and rows["second"]["counts"] == stored.to_dict()
    code, out, _err = cli(capsys, "runs", str(tmp_path))
    assert code == 0 and all(name in out for name in OUTCOMES)
    assert f"individuals: {stored.text()}" in " ".join(caption.split())


def test_a_resumed_search_starts_from_the_stored_counts(tmp_path):
    config = _config(tmp_path, "run")
    search = Search.create(tmp_path / "run", config, _Problem())
    evaluate = _Problem().evaluator()
    for job in search.ask()[:2]:
        search.tell(evaluate(job))
    search.close("interrupted")
    store = RunStore.open(tmp_path / "run", write=False)
    at_stop = counts_of(store)
    store.close(checkpoint=False)
    assert 2 <= at_stop.total < 6
    recorder = _Recorder()
    run_search(None, resume=tmp_path / "run", listeners=(recorder,), problem_factory=_factory)
    start = recorder.events[0]
    assert isinstance(start, SearchStarted) and start.counts == at_stop
    assert start.batch == PendingBatch(generation=0, size=6, settled=at_stop.total)
    store = RunStore.open(tmp_path / "run", write=False)
    try:
        assert recorder.last_counts() == counts_of(store)
    finally:
        store.close(checkpoint=False)


def test_networks_skipped_by_a_constraint_are_not_counted_as_trained(tmp_path, capsys):
    """The reported case, with real training on digits: ``--constraint params<=2e4``."""
    recorder, lines = _Recorder(), io.StringIO()
    run_dir = run_search(
        SearchConfig(grammar="cnn_topology", dataset="digits", population=4, generations=0,
                     epochs=1, seed=5, export=(), bench=(), constraint=("params<=2e4",),
                     run_dir=str(tmp_path / "run")),
        listeners=(recorder, LineReporter(lines)), problem_factory=problem_factory())
    store = RunStore.open(run_dir, write=False)
    try:
        statuses = [ev.status for ev in store.evaluations().values()]
        stored = counts_of(store)
    finally:
        store.close(checkpoint=False)
    assert recorder.last_counts() == stored
    assert stored.trained == statuses.count("ok") >= 1
    assert stored.skipped == statuses.count("skipped") >= 1
    assert f"trained {stored.trained}, cached 0, skipped {stored.skipped}," in lines.getvalue()
