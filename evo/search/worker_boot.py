"""The first code a spawned evaluation worker runs: die with the driver, then import.

A worker's imports (torch, the dataset code) take 1 to 12 seconds. Were the die-with-parent
setting made after them, a driver killed meanwhile would leave workers running on for that
long. So this module imports only the standard library, the process is spawned with
:func:`boot` as its target and the evaluator as pickled bytes, and the bytes are unpickled
(which is what imports torch) only once the kernel will kill the worker with its parent.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import time
from typing import Any

_PR_SET_PDEATHSIG = 1
_armed = False


def die_with_parent(parent_pid: int) -> None:
    """Make this process die when ``parent_pid`` does: ``PR_SET_PDEATHSIG`` on Linux, and a
    watchdog thread everywhere (also covering a parent that died before the setting took
    effect). Calling it again does nothing."""
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
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watchdog() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()


def boot(parent_pid: int, evaluator: bytes, *args: Any) -> None:
    """Process target: arm die-with-parent, ignore Ctrl-C (the driver stops its workers),
    then load the evaluator and run ``evo.search.executors.worker_main(evaluator, *args)``."""
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loaded = pickle.loads(evaluator)
    from evo.search.executors import worker_main

    worker_main(loaded, *args)
