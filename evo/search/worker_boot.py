"""The first code an evaluation worker runs: die with the driver, set its environment, import.

A worker's imports (torch, the dataset code) take 1 to 12 seconds. Were the die-with-parent
setting made after them, a driver killed meanwhile would leave workers running on for that
long. So this module imports only the standard library, the process starts with :func:`boot`
as its target and the evaluator as pickled bytes, and the bytes are unpickled (which is what
imports torch) only once the kernel will kill the worker with its parent, and once the
worker's own environment (its GPU: ``CUDA_VISIBLE_DEVICES``) is set, which CUDA reads once.

A worker's parent is the driver when it was spawned, or the fork server when it was forked
from one (:mod:`evo.search.process_executor`). The fork server stays up as long as any of its
workers does, so a forked worker watches a lifeline pipe from the driver instead.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

_PR_SET_PDEATHSIG = 1
_armed = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(driver_pid: int, lifeline: Connection | None = None) -> None:
    """Make this process die when the driver does: ``PR_SET_PDEATHSIG`` on Linux (the kernel
    kills it when its parent dies), and a watchdog thread everywhere that notices the
    orphaning, or the end of ``lifeline``, a pipe only the driver writes to (it never does:
    the pipe ends when the driver dies). The lifeline is what stops a worker forked from a fork
    server, whose parent (the server) outlives the driver while workers remain. Exits at once
    when the driver is already gone. Calling it again does nothing."""
    global _armed
    if _armed:
        return
    _armed = True
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass
    parent = os.getppid()
    if parent != driver_pid and not _alive(driver_pid):  # it died before prctl took effect
        os._exit(1)

    def watchdog() -> None:
        while True:
            if lifeline is not None:
                if lifeline.poll(0.5):  # readable only at its end: the driver is gone
                    os._exit(1)
            else:
                time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()


def boot(parent_pid: int, lifeline: Connection | None, env: dict[str, str], complete: bool,
         evaluator: bytes, *args: Any) -> None:
    """Process target: arm die-with-parent, ignore Ctrl-C (the driver stops its workers), set
    ``env`` (``complete``: the driver's whole environment, which a worker forked from a fork
    server would otherwise see as it was when the server started), then load the evaluator and
    run ``evo.search.process_executor.worker_main(evaluator, *args)``."""
    die_with_parent(parent_pid, lifeline)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if complete:
        os.environ.clear()
    os.environ.update(env)
    loaded = pickle.loads(evaluator)
    from evo.search.process_executor import worker_main

    worker_main(loaded, *args)
