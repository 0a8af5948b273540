"""Peak resident memory added by loading and running one model, with the best method at hand.

In order of preference:
1. Linux ``/proc``: reset the process high-water mark (``clear_refs`` 5) at the start, read
   ``VmHWM`` at the end; exact peak, even if it lasted microseconds inside a compile.
2. ``psutil`` (optional): current RSS sampled at each phase boundary; misses short spikes.
3. ``resource.getrusage``: lifetime ``ru_maxrss`` delta; a lower bound (0 when an earlier peak in
   this process was higher).
The method used is recorded next to the number.
"""

from __future__ import annotations

import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class PeakMemory:
    """Start before loading a model, ``sample()`` at phase ends, ``stop()`` for (bytes, source)."""

    def __init__(self) -> None:
        self._method = ""
        self._baseline = 0
        self._peak = 0

    def start(self) -> None:
        if _proc_status_bytes("VmRSS") is not None:
            try:
                _CLEAR_REFS.write_text("5")
                self._method = "proc"
                self._baseline = _proc_status_bytes("VmRSS") or 0
                return
            except OSError:
                pass
        rss = _psutil_rss()
        if rss is not None:
            self._method = "psutil"
            self._baseline = self._peak = rss
            return
        maxrss = _ru_maxrss_bytes()
        if maxrss is not None:
            self._method = "rusage"
            self._baseline = maxrss

    def sample(self) -> None:
        if self._method == "psutil":
            self._peak = max(self._peak, _psutil_rss() or 0)

    def stop(self) -> tuple[int | None, str]:
        if self._method == "proc":
            peak = _proc_status_bytes("VmHWM") or 0
            return max(0, peak - self._baseline), "VmHWM - VmRSS before load (/proc, exact peak)"
        if self._method == "psutil":
            self.sample()
            return (
                max(0, self._peak - self._baseline),
                "psutil RSS sampled at phase ends - RSS before load (misses short spikes)",
            )
        if self._method == "rusage":
            peak = _ru_maxrss_bytes() or 0
            return max(0, peak - self._baseline), "ru_maxrss delta (lower bound)"
        return None, "unavailable on this platform"


def _proc_status_bytes(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _psutil_rss() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.Process().memory_info().rss)


def _ru_maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)
