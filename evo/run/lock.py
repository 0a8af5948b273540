"""The run lock: an exclusive ``flock`` on ``RUN_DIR/.lock`` held by the one process that writes.

Why ``flock``: the kernel drops it when the holder dies, even by SIGKILL, so a killed run never
leaves a stale lock that blocks ``--resume``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from evo.errors import EvoError
from evo.run.layout import lock_path


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``; released by the kernel if we die."""

    def __init__(self, run_dir: Path) -> None:
        self.path = lock_path(run_dir)
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except IsADirectoryError:
            raise EvoError(f"{self.path}: is a folder, not the run's lock file",
                           f"remove it with rmdir {self.path}; evo makes the lock file itself"
                           ) from None
        except OSError as exc:
            raise EvoError(f"{self.path}: cannot open the run's lock file ({exc.strerror})",
                           "check the run folder's permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EvoError(
                f"{self.path.parent}: run in progress (another evo process holds its lock)",
                "wait for it to finish, or stop it; a killed process releases the lock itself",
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def is_held(run_dir: Path) -> bool:
        """True when some live process holds the lock (used by ``evo runs``)."""
        path = lock_path(run_dir)
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)
