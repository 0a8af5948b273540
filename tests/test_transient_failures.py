"""Failures of the machine are never stored as a candidate's result: a worker killed from
outside is retried (its retries recorded on the evaluation), a write error (full disk, file too
large) leaves the candidate unevaluated for ``--resume``, and only failures of the candidate
itself are final."""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.nas.problem import problem_factory
from evo.run.store import RunStore
from evo.search.contract import CandidateStarted, Event, Job, Result
from evo.search.failures import MAX_RETRIES, machine_failure
from evo.search.loop import run_search
from evo.search.synthetic import SyntheticEvaluator, SyntheticProblem
from tests._runs_helpers import TINY, front_objectives, stored_evaluations, tiny_digits_run
from tests._search_helpers import blocks_file


def test_machine_failures_are_told_apart_from_the_candidates(tmp_path):
    import torch

    # torch's own error, raised while the write failed with ENOSPC
    with pytest.raises(Exception) as full, open("/dev/full", "wb") as handle:
        torch.save({"w": torch.zeros(4096)}, handle)
    assert "No space left on device" in machine_failure(full.value)
    assert machine_failure(RuntimeError("unexpected pos 704 vs 598")) is None
    assert machine_failure(ValueError("training loss became nan")) is None


def test_a_worker_killed_mid_training_is_retried_and_the_front_is_unchanged(
        tmp_path, tmp_path_factory):
    reference = tiny_digits_run(tmp_path_factory)
    killed: list[int] = []

    def kill_workers_once(event: Event) -> None:
        """On the first candidate a worker starts training: SIGKILL every worker."""
        if isinstance(event, CandidateStarted) and not killed:
            killed.append(event.member)
            for child in multiprocessing.active_children():
                if child.name.startswith("evo-worker"):
                    os.kill(child.pid, signal.SIGKILL)

    run_dir = run_search(SearchConfig(**TINY, workers=2, run_dir=str(tmp_path / "killed")),
                         listeners=(kill_workers_once,), problem_factory=problem_factory())
    assert killed
    retried = [ev for ev in stored_evaluations(run_dir).values() if ev.metrics.get("retries")]
    assert retried, "no evaluation was retried"
    for ev in retried:
        assert ev.status == "ok" and ev.metrics["retries"] == 1
        assert ev.metrics["retried_after"] == ["worker died (exit code -9)"]
    stored = stored_evaluations(run_dir).values()
    assert not any("worker died" in (ev.reason or "") for ev in stored)
    assert front_objectives(run_dir) == front_objectives(reference)


@dataclass(frozen=True)
class DiesOnMemberOne(SyntheticEvaluator):
    """Kills its own worker on member 1, the way the kernel's OOM killer would."""

    def __call__(self, job: Job) -> Result:
        if job.individual_id == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(job)


@dataclass(frozen=True)
class DiesOnMemberOneProblem(SyntheticProblem):
    def evaluator(self) -> DiesOnMemberOne:
        return DiesOnMemberOne(self.delay, self.fail_token)


def test_a_worker_that_dies_on_every_attempt_is_a_final_failure(tmp_path):
    config = SearchConfig(grammar=str(blocks_file(tmp_path)), population=6, generations=1,
                          seed=1, workers=2, task_retries=MAX_RETRIES,
                          run_dir=str(tmp_path / "dies"))
    run_dir = run_search(config, problem_factory=lambda _c, _d: DiesOnMemberOneProblem())
    store = RunStore.open(run_dir, write=False)
    try:
        ev = store.evaluation(store.individual(1).eval_key)
    finally:
        store.close(checkpoint=False)
    assert ev is not None and ev.status == "failed"
    assert f"worker died (exit code -9) on all {MAX_RETRIES + 1} attempts" in ev.reason
    assert ev.metrics["retries"] == MAX_RETRIES


@dataclass(frozen=True)
class BigFile:
    """An evaluator whose results also bring a 2 MiB file, which the driver writes into the
    run folder before it stores the result."""

    inner: Callable[[Job], Result]

    def __call__(self, job: Job) -> Result:
        result = self.inner(job)
        return dataclasses.replace(result, files={**result.files,
                                                  "models/big.bin": bytes(2 << 20)})


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """RLIMIT_FSIZE on this process (the driver): every file written past ``limit`` bytes
    fails with EFBIG from the kernel (what a full disk does with ENOSPC)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def _big_files(config: SearchConfig, run_dir: Path) -> Any:
    from evo.nas.problem import TrainingProblem

    class BigFiles(TrainingProblem):
        def evaluator(self) -> BigFile:  # type: ignore[override]
            return BigFile(super().evaluator())

    return BigFiles(config, run_dir)


def test_a_write_error_leaves_candidates_unevaluated_and_resume_evaluates_them(tmp_path):
    config = SearchConfig(**{**TINY, "population": 2, "generations": 0},
                          run_dir=str(tmp_path / "efbig"))
    with pytest.raises(EvoError) as stopped, file_size_limit(1 << 20):
        run_search(config, problem_factory=_big_files)
    message = str(stopped.value)
    assert "could not be evaluated" in message and "File too large" in message
    assert "--resume" in message
    run_dir = Path(config.run_dir)
    assert stored_evaluations(run_dir) == {}, "a machine failure was stored as a result"
    run_search(None, resume=run_dir, problem_factory=problem_factory())
    evaluations = stored_evaluations(run_dir)
    assert evaluations and all(ev.status == "ok" for ev in evaluations.values())
    assert all((run_dir / ev.weights).is_file() for ev in evaluations.values())
