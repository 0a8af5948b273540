"""How every executor calls an evaluator: the same wrapping whichever process runs it.

An evaluator bug or a failure of the machine must never kill a run, so a call is always a
:class:`Result`; an evaluator may specialise itself per worker (one GPU each) and report progress
to whoever listens; a job stopped from outside for its time limit fails with one reason. Kept
apart from the executors so the local and the Ray executor share it without importing each
other.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Protocol, runtime_checkable

from evo.search.contract import (
    Evaluator,
    Job,
    Listener,
    PerWorkerEvaluator,
    ReportsProgress,
    Result,
    Status,
)
from evo.search.failures import machine_failure

TIMEOUT_GRACE_S = 2.0  # see hard_limit


@runtime_checkable
class Preloads(Protocol):
    """An evaluator that names the modules its first job would import lazily (seconds of
    work): a fork server imports them once for all its workers, and a worker imports them
    before its first job, whose time would otherwise count them."""

    def preload(self) -> tuple[str, ...]:
        ...


def preloads(evaluator: Evaluator) -> tuple[str, ...]:
    return tuple(evaluator.preload()) if isinstance(evaluator, Preloads) else ()


def import_preloads(evaluator: Evaluator) -> None:
    """Import what the evaluator names (an import that fails is left to its first job)."""
    for name in preloads(evaluator):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


@runtime_checkable
class EstimatesCost(Protocol):
    """An evaluator that can tell, before running them, which jobs take longest."""

    def cost(self, job: Job) -> float:
        ...


def longest_first(evaluator: Evaluator, jobs: list[Job]) -> list[Job]:
    """The jobs in the order to hand them out: the costliest first, when the evaluator can
    estimate costs. A generation ends with its slowest candidate, so a long one started last
    leaves the other workers idle; started first, it runs beside the short ones (the longest
    processing time rule). The order never changes results: each job carries its seed, and
    the search sorts results by member id."""
    if not isinstance(evaluator, EstimatesCost) or len(jobs) < 2:
        return jobs
    try:
        costs = {id(job): float(evaluator.cost(job)) for job in jobs}
    except Exception:  # an estimate is an optimisation; the job itself reports any error
        return jobs
    return sorted(jobs, key=lambda job: -costs[id(job)])


def reporting(evaluator: Evaluator, report: Listener | None) -> Evaluator:
    """The evaluator, reporting its progress to ``report`` when it can."""
    if report is not None and isinstance(evaluator, ReportsProgress):
        return evaluator.with_progress(report)
    return evaluator


def without_progress(evaluator: Evaluator) -> Evaluator:
    """The evaluator without a listener, before it is shipped to another process: a listener
    lives in the driver (its copy in a worker reports over the worker's own channel)."""
    if isinstance(evaluator, ReportsProgress):
        return evaluator.with_progress(None)  # type: ignore[arg-type]
    return evaluator


def for_worker(evaluator: Evaluator, index: int) -> Evaluator:
    """Let an evaluator specialise per worker (e.g. one GPU each) when it knows how."""
    return evaluator.for_worker(index) if isinstance(evaluator, PerWorkerEvaluator) else evaluator


def safe_call(evaluator: Evaluator, job: Job) -> Result:
    """The evaluator's result; an exception is a failed result (an error of the machine, such
    as a full disk, a ``retry``)."""
    try:
        return evaluator(job)
    except Exception as exc:  # an evaluator bug must not kill the run; record it
        machine = machine_failure(exc)
        if machine is not None:  # a full disk is not the candidate's result: retried
            return Result(job.key, job.individual_id, Status.RETRY, machine)
        return Result(job.key, job.individual_id, Status.FAILED, f"evaluator error: {exc!r}")


def hard_limit(candidate_timeout: float) -> float:
    """Seconds after its start at which a job is stopped from outside: the candidate's own
    check runs between training steps, so this only catches a step (or a build, or an export)
    that outlives the limit; the margin covers building, scoring and saving, which the limit
    does not count."""
    return candidate_timeout * 1.5 + TIMEOUT_GRACE_S


def timeout_result(job: Job, elapsed: float, timeout: float, how: str) -> Result:
    """The final result of a job stopped from outside past :func:`hard_limit`."""
    return Result(job.key, job.individual_id, Status.FAILED,
                  f"timeout: stopped after {elapsed:.1f} s, past the {timeout:g} s "
                  f"--candidate-timeout ({how}; the limit is otherwise checked between "
                  "training steps)", seconds=elapsed)
