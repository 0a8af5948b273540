"""How many evaluation workers this machine can run at once.

Each worker is a process with its own torch, its own copy of the dataset and one candidate in
training, using ``--threads`` cores. More workers than cores only makes every evaluation slower
(and a machine with a load average of hundreds unusable for minutes); more than the memory holds
gets processes killed. So ``--workers`` is bounded by both, and refused beyond them unless the
user says ``--oversubscribe``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Memory one worker holds: the torch runtime (about 0.4 GiB), its copy of the dataset (CIFAR-10
# as float32: 0.6 GiB) and one small network in training.
WORKER_MEMORY_BYTES = 1 << 30


def cpu_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def total_memory() -> int | None:
    """Physical memory in bytes, or None where the platform does not say."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class WorkerLimit:
    """The most workers this machine supports at ``threads`` threads each, and why."""

    workers: int
    reason: str


def worker_limit(threads: int, cores: int | None = None,
                 memory: int | None = None) -> WorkerLimit:
    """At most one thread per core, and ``WORKER_MEMORY_BYTES`` of memory per worker."""
    cores = cpu_cores() if cores is None else cores
    memory = total_memory() if memory is None else memory
    by_cores = max(1, cores // max(1, threads))
    reasons = [f"{cores} CPU core{'s' if cores != 1 else ''} at {threads} "
               f"thread{'s' if threads != 1 else ''} per worker"]
    limit = by_cores
    if memory:
        by_memory = max(1, memory // WORKER_MEMORY_BYTES)
        limit = min(limit, by_memory)
        reasons.append(f"{memory / (1 << 30):.1f} GiB of memory at about "
                       f"{WORKER_MEMORY_BYTES / (1 << 30):.0f} GiB per worker")
    return WorkerLimit(limit, "; ".join(reasons))
