"""The search's contract and its single owners of a fact: one training seed, status words that
stay the stored strings, optional methods found by their Protocols, one resume merge, one
default run folder, and a search that never loads torch or the NAS problem."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.run.layout import default_run_dir
from evo.run.store import Evaluation, RunStore
from evo.search.contract import (
    Job,
    Measured,
    MeasuringProblem,
    PerWorkerEvaluator,
    Result,
    Status,
    derive_seed,
)
from evo.search.engine import Search
from evo.search.executors import SerialExecutor
from evo.search.synthetic import SyntheticEvaluator, SyntheticProblem
from tests._search_helpers import blocks_file, run_synthetic

ROOT = Path(__file__).resolve().parents[1]


def _config(tmp_path: Path, **kw) -> SearchConfig:
    base = dict(grammar=str(blocks_file(tmp_path)), population=4, generations=1, seed=3,
                run_dir=str(tmp_path / "run"))
    return SearchConfig(**{**base, **kw})


def test_the_training_seed_is_the_one_every_stored_run_was_trained_with():
    """Pinned values: other arithmetic (a 63-bit big-endian variant once lived in train.py)
    would silently change every run's results."""
    assert derive_seed(7, "a" * 64) == 2602860416
    assert derive_seed(0, "b" * 64) == 3024571447


def test_statuses_are_the_words_run_db_always_held(tmp_path):
    assert Result("k", 1, "skipped").status is Status.SKIPPED  # plain words are taken
    assert json.dumps({"s": Status.OK}) == '{"s": "ok"}' and f"{Status.FAILED}" == "failed"
    with pytest.raises(ValueError):
        Result("k", 1, "fine")
    run_dir = run_synthetic(_config(tmp_path), fail_token="pool( max )")
    store = RunStore.open(run_dir, write=False)
    try:
        stored = {ev.status for ev in store.evaluations().values()}
    finally:
        store.close(checkpoint=False)
    assert stored == {"ok", "failed"} and all(type(s) is str for s in stored)


@dataclasses.dataclass(frozen=True)
class _PerWorker(SyntheticEvaluator):
    """Tells which worker it was specialised for, in its results' metrics."""

    worker: int | None = None

    def for_worker(self, index: int) -> _PerWorker:
        return dataclasses.replace(self, worker=index)

    def __call__(self, job: Job) -> Result:
        result = super().__call__(job)
        return dataclasses.replace(result, metrics={**result.metrics, "worker": self.worker})


@dataclasses.dataclass(frozen=True)
class _Measuring(SyntheticProblem):
    def measure(self, evaluation: Evaluation) -> Measured:
        return Measured(objectives={"latency:ort:cpu": 1.0})


def test_optional_methods_are_found_by_their_protocols():
    assert isinstance(_Measuring(), MeasuringProblem)
    assert not isinstance(SyntheticProblem(), MeasuringProblem)
    assert isinstance(_PerWorker(), PerWorkerEvaluator)
    assert not isinstance(SyntheticEvaluator(), PerWorkerEvaluator)
    problem = SyntheticProblem()
    key, text = problem.candidate("conv ( 8 ) relu")
    [result] = list(SerialExecutor(_PerWorker()).run([Job(1, key, text, 0)]))
    assert result.metrics["worker"] == 0


def test_a_resume_takes_every_resume_safe_option_and_refuses_the_rest_by_name(tmp_path):
    """One merge of resume settings: --max-memory and --oversubscribe, marked resume-safe, were
    once checked but dropped, because a second merge copied a fixed list of five options."""
    search = Search.create(tmp_path / "run", _config(tmp_path), SyntheticProblem())
    search.close("interrupted")
    with pytest.raises(EvoError) as refused:
        run_synthetic(None, resume=tmp_path / "run", changes={"population": 6})
    assert "--population differ from the stored run" in refused.value.message
    for option in ("--workers", "--max-memory", "--oversubscribe", "--generations"):
        assert option in refused.value.hint
    run_synthetic(None, resume=tmp_path / "run",
                  changes={"max-memory": "3GB", "oversubscribe": True, "generations": 2})
    store = RunStore.open(tmp_path / "run", write=False)
    try:
        stored = SearchConfig.from_dict(store.meta("config"))
        last = store.last_generation()
    finally:
        store.close(checkpoint=False)
    assert (stored.max_memory, stored.oversubscribe, stored.generations) == ("3GB", True, 2)
    assert last == 2
    # A whole configuration works too, and a change of anything else in it is refused.
    with pytest.raises(EvoError, match="--seed differ"):
        run_synthetic(stored.replace(seed=4), resume=tmp_path / "run")


def test_a_run_without_run_dir_goes_to_the_one_default_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path, run_dir=None, generations=0)
    run_dir = run_synthetic(config)
    expected = default_run_dir(config.grammar, config.dataset, config.seed)
    assert run_dir.parent == expected.parent == Path("runs")
    assert re.fullmatch(r"blocks-digits-s3-\d{8}-\d{6}", run_dir.name)
    assert (tmp_path / run_dir / "run.db").is_file()


SEARCH_WITHOUT_TORCH = r"""
import sys
from pathlib import Path
from evo.config import SearchConfig
from evo.search.loop import run_search
from evo.search.synthetic import SyntheticProblem
config = SearchConfig(grammar=sys.argv[1], population=4, generations=1, seed=3,
                      run_dir=sys.argv[2])
run_search(config, problem_factory=lambda _c, _d: SyntheticProblem())
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith(("torch.", "evo.nas")))
print("LOADED", loaded)
"""


def test_a_search_never_loads_torch_nor_the_nas_problem(tmp_path):
    out = subprocess.run([sys.executable, "-c", SEARCH_WITHOUT_TORCH,
                          str(blocks_file(tmp_path)), str(tmp_path / "run")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "LOADED []" in out.stdout
