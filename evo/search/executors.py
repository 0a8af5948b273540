"""Run evaluations: in this process, or in long-lived worker processes.

The search does not care which: an executor takes jobs and yields results as they finish.
Workers are spawned (never forked: a forked torch or OpenMP runtime can deadlock), keep their
dataset and runtime warm between jobs, and die with the driver: on Linux the kernel kills them
when it dies (``PR_SET_PDEATHSIG``), elsewhere a watchdog thread notices the orphaning, so a
``kill -9`` of ``evo search`` leaves no process behind. A worker that dies mid-job (killed from
outside, out of memory, a segfault in a runtime) is replaced and its job comes back ``lost``,
which the search retries (see :mod:`evo.search.failures`); an error of the machine (disk full) comes
back ``retry``. With a candidate time limit, a job still running at :func:`hard_limit` is
stopped by killing its worker, since a process is the only thing that stops a training step.

Progress from inside an evaluation (a candidate's epochs and batches) reaches the driver's
listener whichever executor runs it: an evaluator that can report progress (see
:class:`evo.search.contract.ReportsProgress`) is given the listener itself when serial, and a
sender over its worker's pipe otherwise, where the events travel beside the results. The
evaluator decides how often it reports (training: at most once a second), so the pipe never
floods.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from evo.search.contract import (
    Evaluator,
    Event,
    Job,
    Listener,
    PerWorkerEvaluator,
    Prepares,
    ReportsProgress,
    Result,
    Status,
)
from evo.search.failures import machine_failure
from evo.search.worker_boot import boot, die_with_parent

TIMEOUT_GRACE_S = 2.0  # see hard_limit


def _reporting(evaluator: Evaluator, report: Listener | None) -> Evaluator:
    if report is not None and isinstance(evaluator, ReportsProgress):
        return evaluator.with_progress(report)
    return evaluator


def _for_worker(evaluator: Evaluator, index: int) -> Evaluator:
    """Let an evaluator specialise per worker (e.g. one GPU each) when it knows how."""
    return evaluator.for_worker(index) if isinstance(evaluator, PerWorkerEvaluator) else evaluator


def _safe_call(evaluator: Evaluator, job: Job) -> Result:
    try:
        return evaluator(job)
    except Exception as exc:  # an evaluator bug must not kill the run; record it
        machine = machine_failure(exc)
        if machine is not None:  # a full disk is not the candidate's result: retried
            return Result(job.key, job.individual_id, Status.RETRY, machine)
        return Result(job.key, job.individual_id, Status.FAILED, f"evaluator error: {exc!r}")


@dataclass(frozen=True)
class _Started:
    """A worker's word that it has begun its job (after ``prepare``): the job's deadline
    counts from here."""


def hard_limit(candidate_timeout: float) -> float:
    """Seconds after its start at which a job is stopped by killing its worker: the
    candidate's own check runs between training steps, so this only catches a step (or a
    build, or an export) that outlives the limit; the margin covers building, scoring and
    saving, which the limit does not count."""
    return candidate_timeout * 1.5 + TIMEOUT_GRACE_S


class SerialExecutor:
    """Evaluate in the calling process, one job after another."""

    def __init__(self, evaluator: Evaluator, progress: Listener | None = None) -> None:
        self.evaluator = _reporting(_for_worker(evaluator, 0), progress)

    def run(self, jobs: list[Job]) -> Iterator[Result]:
        for job in jobs:
            yield _safe_call(self.evaluator, job)

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_die_with_parent = die_with_parent  # armed first thing by worker_boot.boot


def worker_main(evaluator: Evaluator, conn: Connection, parent_pid: int, index: int,
                report: bool = False) -> None:
    """The loop of a worker process (started by :func:`evo.search.worker_boot.boot`): one job
    at a time from the driver, its progress events and result sent back over ``conn``."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    evaluator = _reporting(_for_worker(evaluator, index), conn.send if report else None)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        if isinstance(evaluator, Prepares):
            with contextlib.suppress(Exception):  # the job itself meets and reports it
                evaluator.prepare()
        conn.send(_Started())
        conn.send(_safe_call(evaluator, job))


class ProcessExecutor:
    """``workers`` spawned processes, each evaluating one job at a time."""

    def __init__(self, evaluator: Evaluator, workers: int,
                 progress: Listener | None = None, timeout: float | None = None) -> None:
        self.evaluator = evaluator
        self.progress = progress
        self.timeout = timeout  # the candidate time limit; a job past hard_limit() is killed
        self.ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        for index in range(workers):
            self._start(index)

    def _start(self, index: int) -> None:
        parent, child = self.ctx.Pipe()
        # boot() arms die-with-parent before unpickling the evaluator (the heavy imports).
        proc = self.ctx.Process(target=boot, name=f"evo-worker-{index}",
                                args=(os.getpid(), pickle.dumps(self.evaluator), child,
                                      os.getpid(), index, self.progress is not None),
                                daemon=True)
        proc.start()
        child.close()
        if index < len(self.procs):
            self.procs[index], self.conns[index] = proc, parent
        else:
            self.procs.append(proc)
            self.conns.append(parent)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def run(self, jobs: list[Job]) -> Iterator[Result]:
        queue = list(reversed(jobs))
        busy: dict[int, Job] = {}
        started: dict[int, float] = {}  # worker index -> when its job began (monotonic)
        while queue or busy:
            for index in range(len(self.procs)):
                if index not in busy and queue:
                    busy[index] = queue.pop()
                    self._send(index, busy[index])
            ready = wait([self.conns[i] for i in busy] + [self.procs[i].sentinel for i in busy],
                         timeout=self._wait_seconds(started))
            for index in list(busy):
                job = busy[index]
                if self.conns[index] in ready or self.procs[index].sentinel in ready:
                    message = self._receive(index, job, started)
                else:
                    message = self._past_deadline(index, job, started)
                if message is not None:
                    del busy[index]
                    started.pop(index, None)
                    yield message

    def _send(self, index: int, job: Job) -> None:
        """Send a job; a worker that died while idle is replaced first (nothing was lost)."""
        try:
            self.conns[index].send(job)
        except (BrokenPipeError, OSError):
            self.procs[index].join(timeout=1)
            self._start(index)
            self.conns[index].send(job)

    def _receive(self, index: int, job: Job, started: dict[int, float]) -> Result | None:
        """The job's result, or ``None`` while it runs (a start or progress message). A
        worker that died mid-job loses it: a ``lost`` result, retried by the search."""
        conn, proc = self.conns[index], self.procs[index]
        try:
            message = conn.recv()
        except (EOFError, OSError):
            proc.join(timeout=1)
            self._start(index)
            return Result(job.key, job.individual_id, Status.LOST,
                          f"worker died (exit code {proc.exitcode})")
        if isinstance(message, _Started):
            started[index] = time.monotonic()
            return None
        if isinstance(message, Event):
            if self.progress is not None:
                self.progress(message)
            return None
        return message

    def _wait_seconds(self, started: dict[int, float]) -> float | None:
        if self.timeout is None or not started:
            return None
        first = min(started.values()) + hard_limit(self.timeout)
        return max(0.0, first - time.monotonic())

    def _past_deadline(self, index: int, job: Job, started: dict[int, float]) -> Result | None:
        """Kill the worker of a job that ran past ``hard_limit`` (a single training step can
        outlive the candidate's own between-steps check by far); the timeout is the
        candidate's final result."""
        if self.timeout is None or index not in started:
            return None
        elapsed = time.monotonic() - started[index]
        if elapsed < hard_limit(self.timeout):
            return None
        self.procs[index].kill()
        self.procs[index].join(timeout=5)
        self.conns[index].close()
        self._start(index)
        return Result(job.key, job.individual_id, Status.FAILED,
                      f"timeout: stopped after {elapsed:.1f} s, past the {self.timeout:g} s "
                      "--candidate-timeout (its worker was killed; the limit is otherwise "
                      "checked between training steps)",
                      seconds=elapsed)

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send(None)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            proc.join(timeout=max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=1)
        for conn in self.conns:
            conn.close()

    def terminate(self) -> None:
        """Stop at once (Ctrl-C): running evaluations are abandoned, finished ones are saved."""
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        for proc in self.procs:
            proc.join(timeout=2)

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.terminate()
        self.close()


def make_executor(evaluator: Evaluator, workers: int, progress: Listener | None = None,
                  timeout: float | None = None) -> SerialExecutor | ProcessExecutor:
    """One process or ``workers`` of them; ``progress`` receives in-evaluation events. With a
    candidate ``timeout`` even one worker is a separate process: the driver can stop a job
    only by killing the process that runs it."""
    if workers <= 1 and timeout is None:
        return SerialExecutor(evaluator, progress)
    return ProcessExecutor(evaluator, max(1, workers), progress, timeout)
