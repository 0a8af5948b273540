"""Where evaluations run: in this process, in worker processes on this machine, or on Ray.

The search does not care which: an executor takes a batch of jobs and yields results as they
finish, and the driver alone writes the run. ``--executor`` picks one
(:func:`evo.capacity.plan_executor` decides, before anything starts, how many evaluations are
in flight and on which GPUs):

- ``serial`` (:class:`SerialExecutor`): one job after another in the driver;
- ``local`` (:class:`evo.search.process_executor.ProcessExecutor`): ``--workers`` processes on
  this machine, each pinned to a GPU with ``--device cuda``;
- ``ray`` (:class:`evo.search.ray_executor.RayExecutor`): one Ray task per evaluation, on a
  cluster or on a local one evo starts.

Results do not depend on the executor: each job carries its derived seed, and the search sorts
results by member id whatever order they arrive in.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from evo.search.contract import Evaluator, Job, Listener, Result
from evo.search.evaluate import for_worker, hard_limit, reporting, safe_call
from evo.search.process_executor import ProcessExecutor

if TYPE_CHECKING:
    from evo.capacity import ExecutorPlan
    from evo.config import SearchConfig

__all__ = ["Executor", "ProcessExecutor", "SerialExecutor", "hard_limit", "make_executor"]


class Executor(Protocol):
    """What the search loop needs of an executor."""

    workers: int  # evaluations in flight

    def run(self, jobs: list[Job]) -> Iterator[Result]:
        """Evaluate ``jobs``; results in the order they finish."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> Executor:
        ...

    def __exit__(self, *exc: object) -> None:
        ...


class SerialExecutor:
    """Evaluate in the calling process, one job after another."""

    workers = 1

    def __init__(self, evaluator: Evaluator, progress: Listener | None = None) -> None:
        self.evaluator = reporting(for_worker(evaluator, 0), progress)

    def run(self, jobs: list[Job]) -> Iterator[Result]:
        for job in jobs:
            yield safe_call(self.evaluator, job)

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_executor(evaluator: Evaluator, config: SearchConfig, progress: Listener | None = None,
                  plan: ExecutorPlan | None = None) -> Executor:
    """The executor ``config`` asks for (``plan``: already decided by
    :func:`evo.capacity.plan_executor`); ``progress`` receives in-evaluation events."""
    from evo.capacity import plan_executor

    plan = plan or plan_executor(config)
    if plan.kind == "serial":
        return SerialExecutor(evaluator, progress)
    if plan.kind == "ray":
        from evo.search.ray_executor import RayExecutor

        return RayExecutor(evaluator, plan, config, progress)
    return ProcessExecutor(evaluator, max(1, plan.workers), progress, config.candidate_timeout,
                           start_method=plan.start_method, worker_env=plan.worker_env)

