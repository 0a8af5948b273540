"""Run evaluations: in this process, or in long-lived worker processes.

The search does not care which: an executor takes jobs and yields results as they finish.
Workers are spawned (never forked: a forked torch or OpenMP runtime can deadlock), keep their
dataset and runtime warm between jobs, and die with the driver: on Linux the kernel kills them
when it dies (``PR_SET_PDEATHSIG``), elsewhere a watchdog thread notices the orphaning, so a
``kill -9`` of ``evo search`` leaves no process behind. A worker that crashes (out of memory,
a segfault in a runtime) turns its job into a failed result and is replaced.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from evo.search import Job, Result

Evaluator = Callable[[Job], Result]


def _for_worker(evaluator: Evaluator, index: int) -> Evaluator:
    """Let an evaluator specialise per worker (e.g. one GPU each) when it knows how."""
    specialise = getattr(evaluator, "for_worker", None)
    return specialise(index) if specialise else evaluator


def _safe_call(evaluator: Evaluator, job: Job) -> Result:
    try:
        return evaluator(job)
    except Exception as exc:  # an evaluator bug must not kill the run; record it
        return Result(job.key, job.individual_id, "failed", f"evaluator error: {exc!r}")


class SerialExecutor:
    """Evaluate in the calling process, one job after another."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = _for_worker(evaluator, 0)

    def run(self, jobs: list[Job]) -> Iterator[Result]:
        for job in jobs:
            yield _safe_call(self.evaluator, job)

    def close(self) -> None:
        pass

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()


def _worker_main(evaluator: Evaluator, conn: Connection, parent_pid: int, index: int) -> None:
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    evaluator = _for_worker(evaluator, index)
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(_safe_call(evaluator, job))


class ProcessExecutor:
    """``workers`` spawned processes, each evaluating one job at a time."""

    def __init__(self, evaluator: Evaluator, workers: int) -> None:
        self.evaluator = evaluator
        self.ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        for index in range(workers):
            self._start(index)

    def _start(self, index: int) -> None:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, name=f"evo-worker-{index}",
                                args=(self.evaluator, child, os.getpid(), index), daemon=True)
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
        while queue or busy:
            for index in range(len(self.procs)):
                if index not in busy and queue:
                    job = queue.pop()
                    self.conns[index].send(job)
                    busy[index] = job
            ready = wait([self.conns[i] for i in busy] + [self.procs[i].sentinel for i in busy])
            for index in list(busy):
                conn, proc = self.conns[index], self.procs[index]
                if conn in ready or proc.sentinel in ready:
                    try:
                        result = conn.recv()
                    except (EOFError, OSError):
                        job = busy[index]
                        proc.join(timeout=1)
                        result = Result(job.key, job.individual_id, "failed",
                                        f"worker died (exit code {proc.exitcode})")
                        self._start(index)
                    del busy[index]
                    yield result

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


def make_executor(evaluator: Evaluator, workers: int) -> SerialExecutor | ProcessExecutor:
    return SerialExecutor(evaluator) if workers <= 1 else ProcessExecutor(evaluator, workers)
