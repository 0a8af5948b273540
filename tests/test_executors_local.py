"""The executor plan and the local executor: where evaluations run, GPU pinning, the driver's
dataset shared with forked workers, workers that die with a killed driver.

No GPU is needed: the plan is a function of the options and the visible GPUs (given here), and
a worker's GPU is its ``CUDA_VISIBLE_DEVICES``, which the evaluator below reads in the worker
the moment it is unpickled, before anything else is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evo.capacity import plan_executor, visible_gpus
from evo.config import SearchConfig
from evo.errors import EvoError
from evo.nas.problem import TrainingProblem
from evo.search.contract import Job, Result, Status
from evo.search.evaluate import longest_first
from evo.search.process_executor import ProcessExecutor
from tests.test_worker_boot import outlives_killed_driver

ROOT = Path(__file__).resolve().parents[1]
TWO_GPUS = ("0", "1")


def test_executor_defaults_and_what_each_option_asks_for():
    assert plan_executor(SearchConfig(), visible=()).kind == "serial"
    local = plan_executor(SearchConfig(workers=2, device="cpu"), visible=())
    assert (local.kind, local.workers, local.start_method) == ("local", 2, "forkserver")
    timed = plan_executor(SearchConfig(candidate_timeout=5.0, device="cpu"), visible=())
    assert (timed.kind, timed.workers) == ("local", 1)  # only a process can be stopped
    ray = plan_executor(SearchConfig(executor="ray", workers=3), visible=())
    assert (ray.kind, ray.workers) == ("ray", 3)
    # Where a GPU may be involved, workers are spawned (a fork after CUDA breaks CUDA).
    assert plan_executor(SearchConfig(workers=2), visible=TWO_GPUS).start_method == "spawn"


def test_gpus_times_jobs_per_gpu_workers_each_pinned_to_its_gpu():
    plan = plan_executor(SearchConfig(device="cuda", jobs_per_gpu=2), visible=TWO_GPUS)
    assert (plan.kind, plan.workers, plan.gpu_ids) == ("local", 4, TWO_GPUS)
    assert [plan.worker_env(i)["CUDA_VISIBLE_DEVICES"] for i in range(4)] == ["0", "1", "0", "1"]
    assert "2 GPUs x --jobs-per-gpu 2" in plan.origin
    # --gpus numbers the visible GPUs as CUDA does; a worker gets the identifier behind it.
    chosen = plan_executor(SearchConfig(device="cuda", gpus="1"), visible=("3", "5"))
    assert (chosen.workers, chosen.worker_env(0)) == (1, {"CUDA_VISIBLE_DEVICES": "5"})
    # --workers N spreads N workers over the GPUs in turn; cuda:N stays one GPU, unpinned.
    spread = plan_executor(SearchConfig(device="auto", workers=3), visible=TWO_GPUS)
    assert spread.workers == 3 and spread.worker_env(2) == {"CUDA_VISIBLE_DEVICES": "0"}
    one = plan_executor(SearchConfig(device="cuda:1", jobs_per_gpu=3), visible=TWO_GPUS)
    assert (one.workers, one.gpu_ids, one.worker_env(0)) == (3, (), {})


@pytest.mark.parametrize(("options", "visible", "words"), [
    (dict(gpus="0"), (), "--gpus 0: no NVIDIA GPU is visible on this machine"),
    (dict(jobs_per_gpu=2), (), "--jobs-per-gpu 2: no NVIDIA GPU is visible"),
    (dict(gpus="2", device="cuda"), TWO_GPUS, "2 is not one of this machine's 2 visible GPU"),
    (dict(gpus="0,0", device="cuda"), TWO_GPUS, "a GPU is named twice"),
    (dict(gpus="0", device="cpu"), TWO_GPUS, "GPUs train only with --device cuda"),
    (dict(gpus="0", device="cuda:1"), TWO_GPUS, "that device is one GPU"),
    (dict(workers=3, jobs_per_gpu=2, device="cuda"), TWO_GPUS, "disagree"),
    (dict(executor="serial", workers=2), (), "--executor serial runs one evaluation at a time"),
    (dict(executor="ray", gpus="0"), TWO_GPUS, "--gpus is for --executor local, not ray"),
    (dict(executor="ray", device="cuda"), TWO_GPUS, "--device cuda under Ray needs --ray-gpus"),
])
def test_options_this_machine_cannot_honour_are_refused_by_name(options, visible, words):
    with pytest.raises(EvoError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan_executor(SearchConfig(**options), visible=visible)


@pytest.mark.skipif(bool(visible_gpus()), reason="this machine has a GPU")
def test_gpus_on_a_machine_without_gpus_is_one_line_before_anything_starts(tmp_path):
    run_dir = tmp_path / "r"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "evo", "search", "--gpus", "0,1", "--run-dir",
                          str(run_dir)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "--gpus 0,1: no NVIDIA GPU is visible on this machine" in out.stderr
    assert not run_dir.exists() and time.monotonic() - started < 60


def _env_at_load() -> EnvAtLoad:
    return EnvAtLoad(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))


@dataclass(frozen=True)
class EnvAtLoad:
    """Reports the ``CUDA_VISIBLE_DEVICES`` its worker had when it unpickled this evaluator,
    which is before the worker imports anything of the evaluator's (torch, where CUDA reads
    the variable once)."""

    seen: str = "driver"

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _env_at_load, ()

    def __call__(self, job: Job) -> Result:
        time.sleep(0.2)  # every worker gets one job of the batch
        return Result(job.key, job.individual_id, Status.OK, None, {"error": 0.0},
                      {"env": self.seen, "pid": os.getpid()})


def test_each_gpu_worker_has_its_gpu_set_before_it_imports_anything():
    plan = plan_executor(SearchConfig(device="cuda", jobs_per_gpu=2), visible=TWO_GPUS)
    jobs = [Job(i, f"k{i}", "", 0) for i in range(plan.workers)]
    with ProcessExecutor(EnvAtLoad(), plan.workers, start_method=plan.start_method,
                         worker_env=plan.worker_env) as pool:
        results = sorted(pool.run(jobs), key=lambda r: r.individual_id)
    assert [r.metrics["env"] for r in results] == ["0", "1", "0", "1"]
    assert len({r.metrics["pid"] for r in results}) == 4


@dataclass(frozen=True)
class ReadsEnv:
    """Reports the value of one environment variable in its worker."""

    name: str

    def __call__(self, job: Job) -> Result:
        return Result(job.key, job.individual_id, Status.OK, None, {"error": 0.0},
                      {"value": os.environ.get(self.name, "unset")})


def test_forked_workers_see_the_drivers_environment_of_now(monkeypatch):
    """The fork server keeps the environment it started with; its workers must not."""
    job = Job(1, "k", "", 0)
    with ProcessExecutor(ReadsEnv("EVO_TEST_MARK"), 1, start_method="forkserver") as pool:
        assert [r.metrics["value"] for r in pool.run([job])] == ["unset"]
    monkeypatch.setenv("EVO_TEST_MARK", "set later")
    with ProcessExecutor(ReadsEnv("EVO_TEST_MARK"), 1, start_method="forkserver") as pool:
        assert [r.metrics["value"] for r in pool.run([job])] == ["set later"]


def test_a_batch_goes_out_longest_first_and_unchanged_when_a_cost_is_unknown(tmp_path):
    problem = TrainingProblem(SearchConfig(grammar="cnn_topology", epochs=2), tmp_path)
    jobs = []
    for member, phenotype in enumerate(("conv(4, k=3) relu gap", "conv(64, k=5) relu gap",
                                        "conv(16, k=3) relu gap"), start=1):
        described = problem.candidate(phenotype)
        assert not isinstance(described, str)
        jobs.append(Job(member, described[0], described[1], 0))
    evaluator = problem.evaluator()
    assert [j.individual_id for j in longest_first(evaluator, jobs)] == [2, 3, 1]
    unknown = [*jobs, Job(4, "k", "not an architecture", 0)]
    assert longest_first(evaluator, unknown) == unknown  # the job itself reports the error
    assert longest_first(EnvAtLoad(), jobs) == jobs  # an evaluator without estimates


_ADOPTED: dict[str, Any] = {}  # in a worker: the data the driver shared with it


@dataclass(frozen=True)
class UsesData:
    """An evaluator with a large read-only array the driver has already made (as it has
    loaded the dataset): workers must receive it, not make it again."""

    size: int = 1_000_000

    def shared_data(self) -> dict[str, np.ndarray]:
        return {"x": np.arange(self.size, dtype=np.float32)}

    def adopt_data(self, data: dict[str, np.ndarray]) -> None:
        _ADOPTED["data"] = data

    def __call__(self, job: Job) -> Result:
        data = _ADOPTED.get("data")
        x = data["x"] if data is not None else None
        return Result(job.key, job.individual_id, Status.OK, None, {"error": 0.0},
                      {"adopted": data is not None,
                       "owns_memory": bool(x.flags.owndata) if x is not None else None,
                       "sum": float(x.sum(dtype=np.float64)) if x is not None else None})


def test_forked_workers_view_the_drivers_data_in_shared_memory_which_is_freed_after():
    evaluator = UsesData()
    with ProcessExecutor(evaluator, 2, start_method="forkserver") as pool:
        assert pool.shared is not None
        block = Path("/dev/shm") / pool.shared.handle.name
        assert block.is_file() and block.stat().st_size >= evaluator.size * 4
        results = list(pool.run([Job(i, f"k{i}", "", 0) for i in range(4)]))
    expected = float(np.arange(evaluator.size, dtype=np.float64).sum())
    for result in results:
        assert result.metrics == {"adopted": True, "owns_memory": False, "sum": expected}
    assert not block.exists(), "the shared block outlived its executor"


DRIVER = """
import sys, time
from evo.search.process_executor import ProcessExecutor
from tests.test_worker_boot import SlowToLoad
executor = ProcessExecutor(SlowToLoad(sys.argv[1]), 1, start_method="forkserver")
print(executor.pids[0], flush=True)
time.sleep(60)
"""


def test_a_forked_worker_still_loading_dies_with_a_killed_driver(tmp_path):
    """A forked worker's parent is the fork server, which exits when the driver dies; the
    worker follows it at once, even while it is still loading its evaluator."""
    assert not outlives_killed_driver(DRIVER, tmp_path / "loading", 4), \
        "a forked worker outlived the killed driver"
