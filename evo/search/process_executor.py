"""The local executor: long-lived worker processes on this machine, one evaluation each.

Workers keep their runtime and dataset warm between jobs and die with the driver: on Linux the
kernel kills them when their parent dies (``PR_SET_PDEATHSIG``), elsewhere a watchdog thread
notices the orphaning, so a ``kill -9`` of ``evo search`` leaves no process behind
(:mod:`evo.search.worker_boot`). A worker that dies mid-job (killed from outside, out of memory,
a segfault in a runtime) is replaced and its job comes back ``lost``, which the search retries
(:mod:`evo.search.failures`). With a candidate time limit, a job still running at
:func:`evo.search.evaluate.hard_limit` is stopped by killing its worker, since a process is
the only thing that stops a training step.

Start-up is what made ``--workers 2`` slower than one process on small searches: each worker
imported torch and loaded the dataset itself, on the cores the driver and the other worker
needed. So, where no GPU is involved, workers are forked from a fork server that has imported
the evaluator's module (torch) once, and the driver hands them its loaded dataset through
shared memory (:mod:`evo.search.shared_data`). Workers that may touch CUDA are spawned
instead (a fork after CUDA is initialised breaks CUDA in the child), each with its
``CUDA_VISIBLE_DEVICES`` set before it imports anything. Never plain ``fork``: a forked
OpenMP runtime that has run threads can deadlock.

Progress from inside an evaluation travels beside the results over each worker's pipe: the
evaluator is given a sender, and decides itself how often it reports (training: at most once a
second), so the pipe never floods.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from evo.search.contract import Evaluator, Event, Job, Listener, Prepares, Result, Status
from evo.search.evaluate import (
    for_worker,
    hard_limit,
    import_preloads,
    longest_first,
    preloads,
    reporting,
    safe_call,
    timeout_result,
    without_progress,
)
from evo.search.shared_data import DataHandle, SharesData, share
from evo.search.worker_boot import boot, die_with_parent


def _preloads(evaluator: Evaluator) -> list[str]:
    """What the fork server imports before it forks workers: the evaluator's module (torch
    and the dataset code), this module, and what the evaluator names."""
    return [type(evaluator).__module__, __name__, *preloads(evaluator)]


@dataclass(frozen=True)
class _Started:
    """A worker's word that it has begun its job (after ``prepare``): the job's deadline
    counts from here."""


def worker_main(evaluator: Evaluator, data: DataHandle | None, conn: Connection,
                parent_pid: int, index: int, report: bool = False) -> None:
    """The loop of a worker process (started by :func:`evo.search.worker_boot.boot`): the
    driver's dataset adopted, then one job at a time, its progress events and result sent
    back over ``conn``."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    if data is not None and isinstance(evaluator, SharesData):
        with contextlib.suppress(Exception):  # loading it as usual still works
            evaluator.adopt_data(data.load())
    import_preloads(evaluator)  # done already when forked from the server
    evaluator = reporting(for_worker(evaluator, index), conn.send if report else None)
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
        conn.send(safe_call(evaluator, job))


class ProcessExecutor:
    """``workers`` processes, each evaluating one job at a time.

    ``start_method`` is ``spawn`` (the default: safe with CUDA) or ``forkserver`` (CPU only:
    workers forked from a server that imported the evaluator's module once); ``worker_env``
    gives worker ``i`` its environment (its GPU) before it imports anything."""

    def __init__(self, evaluator: Evaluator, workers: int,
                 progress: Listener | None = None, timeout: float | None = None, *,
                 start_method: str = "spawn",
                 worker_env: Callable[[int], dict[str, str]] | None = None) -> None:
        self.evaluator = without_progress(evaluator)  # a listener lives in the driver
        self.progress = progress
        self.timeout = timeout  # the candidate time limit; a job past hard_limit() is killed
        self.workers = workers
        self.worker_env = worker_env or (lambda _index: {})
        self.ctx = mp.get_context(start_method)
        if start_method == "forkserver":  # only the first start of the server reads this
            self.ctx.set_forkserver_preload(_preloads(self.evaluator))
        self.shared = share(self.evaluator)
        # Only this process holds the writing end: workers see the pipe end when it dies.
        self._lifeline_read, self._lifeline_write = self.ctx.Pipe(duplex=False)
        self._blob = pickle.dumps(self.evaluator)
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        try:
            for index in range(workers):
                self._start(index)
        except BaseException:
            self.terminate()
            raise

    def _start(self, index: int) -> None:
        parent, child = self.ctx.Pipe()
        # boot() arms die-with-parent and sets the environment before unpickling the
        # evaluator (the heavy imports).
        handle = self.shared.handle if self.shared is not None else None
        forked = self.ctx.get_start_method() == "forkserver"
        env = {**os.environ, **self.worker_env(index)} if forked else self.worker_env(index)
        proc = self.ctx.Process(target=boot, name=f"evo-worker-{index}",
                                args=(os.getpid(), self._lifeline_read, env, forked, self._blob,
                                      handle, child, os.getpid(), index,
                                      self.progress is not None),
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
        queue = list(reversed(longest_first(self.evaluator, jobs)))
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
        return timeout_result(job, elapsed, self.timeout, "its worker was killed")

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
        self._release()

    def terminate(self) -> None:
        """Stop at once (Ctrl-C): running evaluations are abandoned, finished ones are saved."""
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
        for proc in self.procs:
            proc.join(timeout=2)
        self._release()

    def _release(self) -> None:
        if self.shared is not None:
            self.shared.close()
        self._lifeline_read.close()
        self._lifeline_write.close()

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.terminate()
        self.close()
