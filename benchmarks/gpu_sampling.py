"""GPU utilisation while something runs, read from ``nvidia-smi`` (benchmarks/gpu_workers.py).

``nvidia-smi --query-gpu=index,uuid,utilization.gpu,memory.used -lms 200`` prints one line per
GPU every 200 ms; the readings of the GPU in use are picked by its UUID (PyTorch's), else the
only GPU, else its index. ``utilization.gpu`` is the share of the last sample period in which
any kernel ran: it says whether the GPU waited, not how much of it was used.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

import torch

SAMPLE_MS = 200


@dataclass
class Utilisation:
    """``nvidia-smi`` readings of one GPU (utilisation %, memory MiB) while it runs."""

    gpu_uuid: str | None
    gpu_index: int
    reason: str = ""  # why nothing was sampled
    rows: list[tuple[float, str, str, float, float]] = field(default_factory=list)
    _proc: subprocess.Popen[str] | None = None
    _reader: threading.Thread | None = None

    def start(self) -> None:
        if self.gpu_uuid is None:
            self.reason = "not sampled: the device is not a GPU"
            return
        if shutil.which("nvidia-smi") is None:
            self.reason = "not sampled: nvidia-smi not found"
            return
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=index,uuid,utilization.gpu,memory.used",
             "--format=csv,noheader,nounits", "-lms", str(SAMPLE_MS)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = [p.strip() for p in line.split(",")]
            with contextlib.suppress(ValueError, IndexError):
                self.rows.append((time.monotonic(), parts[0], parts[1], float(parts[2]),
                                  float(parts[3])))

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if not self.rows and not self.reason:
            self.reason = "not sampled: nvidia-smi printed no readings"

    def mine(self) -> list[tuple[float, float]]:
        """(utilisation, memory) rows of this GPU: matched by UUID, else the only GPU, else
        by index."""
        uuid = (self.gpu_uuid or "").lower().removeprefix("gpu-")
        by_uuid = [r for r in self.rows if r[2].lower().removeprefix("gpu-") == uuid]
        rows = by_uuid or ([r for r in self.rows if r[1] == str(self.gpu_index)]
                           if len({r[1] for r in self.rows}) > 1 else self.rows)
        return [(r[3], r[4]) for r in rows]

    def stats(self) -> tuple[float, float, int, float] | None:
        """Mean and median utilisation %, readings, most memory used (MiB); None: none."""
        rows = self.mine()
        if not rows:
            return None
        util = [u for u, _ in rows]
        return statistics.mean(util), statistics.median(util), len(util), max(m for _, m in rows)

    def why_not(self) -> str:
        return self.reason or "not sampled: no readings of this GPU"


def gpu_identity(device: torch.device) -> tuple[str | None, int]:
    """(UUID, index) of a CUDA device for :class:`Utilisation`; (None, -1) for the CPU, which
    is not sampled. The UUID is "" where this PyTorch does not report it."""
    if device.type != "cuda":
        return None, -1
    props = torch.cuda.get_device_properties(device)
    return str(getattr(props, "uuid", "")) or "", device.index or 0
