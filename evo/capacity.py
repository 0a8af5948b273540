"""How many evaluation workers this machine can run at once, and where they run.

Each worker is a process with its own torch runtime and one candidate in training, using
``--threads`` cores. More workers than cores only makes every evaluation slower (and a machine
with a load average of hundreds unusable for minutes); more than the memory holds gets processes
killed. So ``--workers`` is bounded by both, and refused beyond them unless the user says
``--oversubscribe``; evaluations on a Ray cluster are bounded by the cluster instead.

:func:`plan_executor` decides, from the options alone and before anything starts, which
executor runs the evaluations, how many are in flight and on which GPUs, so that an option this
machine cannot honour (``--gpus`` without a GPU, a Ray address nothing answers at) is one line
instead of a failure minutes later.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from evo.errors import EvoError

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


# ---------------------------------------------------------------- GPUs and the executor plan

_NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
PROBE_SECONDS = 3.0  # an address that does not answer in this long is refused (see plan_executor)


def gpus_present() -> int:
    """NVIDIA GPUs in this machine, found without CUDA or torch (both are too heavy, and
    initialising CUDA in the driver would poison the workers it forks): the driver's
    ``/proc`` entries on Linux, else ``nvidia-smi -L``; 0 when neither exists."""
    if _NVIDIA_PROC.is_dir():
        return sum(1 for _ in _NVIDIA_PROC.iterdir())
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def visible_gpus() -> tuple[str, ...]:
    """The GPUs a process started now may use, in CUDA's order, as the identifiers a worker's
    ``CUDA_VISIBLE_DEVICES`` takes: this process's own ``CUDA_VISIBLE_DEVICES`` when set (CUDA
    stops reading it at the first invalid entry), else every GPU present."""
    present = gpus_present()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if present == 0:
        return ()
    if listed is None:
        return tuple(str(i) for i in range(present))
    ids: list[str] = []
    for item in (part.strip() for part in listed.split(",")):
        if not item or item.startswith("-") or (item.isdigit() and int(item) >= present):
            break
        ids.append(item)
    return tuple(ids)


class ExecutorOptions(Protocol):
    """The options of :class:`evo.config.SearchConfig` an executor plan reads (a Protocol, so
    this foundation module imports nothing of the configuration)."""

    executor: str | None
    workers: int
    gpus: str | None
    jobs_per_gpu: int
    device: str
    candidate_timeout: float | None
    ray_address: str | None
    ray_gpus: float


@dataclass(frozen=True)
class ExecutorPlan:
    """Where a search's evaluations run, decided from its options before anything starts.

    ``workers`` is the number of evaluations in flight whatever the executor; ``gpu_ids``
    pins local worker ``i`` to GPU ``gpu_ids[i % len(gpu_ids)]`` through its
    ``CUDA_VISIBLE_DEVICES`` (empty: workers are not pinned); ``start_method`` is how local
    workers start (``forkserver`` only where no GPU can be involved: a fork after CUDA is
    initialised breaks CUDA in the child); ``origin`` says where ``workers`` came from, for
    messages; ``address`` is the Ray cluster (``None``: a local one evo starts).
    """

    kind: str
    workers: int
    gpu_ids: tuple[str, ...] = ()
    start_method: str = "spawn"
    origin: str = ""
    address: str | None = None

    def worker_env(self, index: int) -> dict[str, str]:
        """Environment variables set in local worker ``index`` before it imports anything."""
        if not self.gpu_ids:
            return {}
        return {"CUDA_VISIBLE_DEVICES": self.gpu_ids[index % len(self.gpu_ids)]}

    @property
    def remote(self) -> bool:
        """Evaluations run on a cluster, not bounded by this machine's cores and memory."""
        return self.kind == "ray" and self.address is not None


def plan_executor(config: ExecutorOptions,
                  visible: tuple[str, ...] | None = None) -> ExecutorPlan:
    """The executor, its evaluations in flight and its GPUs, or one ``EvoError`` naming the
    option this machine cannot honour (``--gpus`` without GPUs, an unreachable
    ``--ray-address``, ...). ``--executor`` defaults to ``local`` when ``--workers`` is above 1
    or ``--gpus``/``--jobs-per-gpu`` ask for GPUs, else ``serial``. ``visible``: the GPUs to
    plan for (default: :func:`visible_gpus`)."""
    c = config
    if c.device not in ("cuda", "auto"):
        visible = ()
    elif visible is None:
        visible = visible_gpus()
    kind = c.executor or ("local" if c.workers > 1 or c.gpus is not None or c.jobs_per_gpu > 1
                          else "serial")
    if kind != "local" and (c.gpus is not None or c.jobs_per_gpu > 1):
        flag = "--gpus" if c.gpus is not None else "--jobs-per-gpu"
        raise EvoError(f"{flag} is for --executor local, not {kind}",
                       "under Ray each task asks for --ray-gpus, e.g. 0.25 for four "
                       "candidates per GPU" if kind == "ray" else "use --executor local")
    if kind == "serial":
        if c.workers > 1:
            raise EvoError(f"--executor serial runs one evaluation at a time, not --workers "
                           f"{c.workers}", "drop --workers, or use --executor local or ray")
        if c.candidate_timeout is not None:  # only a process can be stopped mid-step
            return ExecutorPlan("local", 1, start_method=_start_method(c.device, visible))
        return ExecutorPlan("serial", 1)
    if kind == "ray":
        if c.device.startswith("cuda") and c.ray_gpus <= 0:
            raise EvoError(f"--device {c.device} under Ray needs --ray-gpus: a task that asks "
                           "for no GPU is given none", "add --ray-gpus 1 (or 0.25 for four "
                           "candidates per GPU)")
        return ExecutorPlan("ray", c.workers, address=_ray_address(c.ray_address))
    return _local_plan(c, visible)


def _local_plan(c: ExecutorOptions, visible: tuple[str, ...]) -> ExecutorPlan:
    """Worker processes on this machine, pinned to GPUs when training on CUDA."""
    if c.device.startswith("cuda:"):
        if c.gpus is not None:
            raise EvoError(f"--gpus {c.gpus} with --device {c.device}: that device is one GPU",
                           "use --device cuda --gpus LIST, or drop --gpus")
        return ExecutorPlan("local", _in_flight(c, 1), origin=_origin(c, 1))
    if c.gpus is not None:
        if c.device not in ("cuda", "auto"):
            raise EvoError(f"--gpus {c.gpus} with --device {c.device}: GPUs train only with "
                           "--device cuda", "add --device cuda, or drop --gpus")
        if not visible:
            raise EvoError(f"--gpus {c.gpus}: no NVIDIA GPU is visible on this machine (none "
                           "in /proc/driver/nvidia or nvidia-smi, or CUDA_VISIBLE_DEVICES "
                           "hides them)", "drop --gpus to train on the CPU")
    if not visible:
        if c.jobs_per_gpu > 1:
            raise EvoError(f"--jobs-per-gpu {c.jobs_per_gpu}: no NVIDIA GPU is visible on "
                           "this machine", "use --workers N to train N candidates at once "
                           "on the CPU")
        return ExecutorPlan("local", c.workers, start_method=_start_method(c.device, visible))
    chosen = _chosen_gpus(c.gpus, visible)
    return ExecutorPlan("local", _in_flight(c, len(chosen)), chosen,
                        origin=_origin(c, len(chosen)))


def _chosen_gpus(text: str | None, visible: tuple[str, ...]) -> tuple[str, ...]:
    """``--gpus`` (CUDA numbers among the visible GPUs, or ``all``) as device identifiers."""
    if text is None or text.strip() == "all":
        return visible
    numbers = [part.strip() for part in text.split(",") if part.strip()]
    shown = f"0-{len(visible) - 1}" if len(visible) > 1 else "0"
    bad = [n for n in numbers if not n.isdigit() or int(n) >= len(visible)]
    if not numbers or bad:
        raise EvoError(f"--gpus {text}: {bad[0] if bad else 'empty'} is not one of this "
                       f"machine's {len(visible)} visible GPU(s) ({shown})",
                       f"give numbers from {shown}, comma-separated, or all")
    if len(set(numbers)) != len(numbers):
        raise EvoError(f"--gpus {text}: a GPU is named twice",
                       "use --jobs-per-gpu K for several candidates per GPU")
    return tuple(visible[int(n)] for n in numbers)


def _in_flight(c: ExecutorOptions, gpus: int) -> int:
    """``--workers`` when given (spread over the GPUs in turn), else GPUs x jobs per GPU."""
    if c.workers > 1 and c.jobs_per_gpu > 1 and c.workers != gpus * c.jobs_per_gpu:
        raise EvoError(f"--workers {c.workers} and --jobs-per-gpu {c.jobs_per_gpu} disagree: "
                       f"{gpus} GPU(s) x {c.jobs_per_gpu} is {gpus * c.jobs_per_gpu}",
                       "give one of them")
    return c.workers if c.workers > 1 else gpus * c.jobs_per_gpu


def _origin(c: ExecutorOptions, gpus: int) -> str:
    if c.workers > 1:
        return ""
    return f" ({gpus} GPU{'s' if gpus != 1 else ''} x --jobs-per-gpu {c.jobs_per_gpu})"


def _start_method(device: str, visible: tuple[str, ...]) -> str:
    """Forked workers (from a server that has imported torch once) where no GPU can be
    involved; spawned ones otherwise."""
    cpu_only = device == "cpu" or (device == "auto" and not visible)
    return "forkserver" if cpu_only and sys.platform.startswith("linux") else "spawn"


def _ray_address(given: str | None) -> str | None:
    """The cluster a Ray search joins (``--ray-address``, else ``$RAY_ADDRESS``; ``None``: a
    local cluster), refused at once when nothing answers there: ``ray.init`` itself retries an
    unreachable address for a long time."""
    address = given or os.environ.get("RAY_ADDRESS") or None
    if importlib.util.find_spec("ray") is None:
        raise EvoError("--executor ray needs Ray, which is not installed",
                       "pip install 'evo-edge-nas[ray]'")
    if address is None or address in ("auto", "local"):
        return None if address in (None, "local") else address
    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        reason = f"no answer within {PROBE_SECONDS:g} s" if isinstance(exc, TimeoutError) \
            else (exc.strerror or str(exc)).lower()
        raise EvoError(f"--ray-address {address}: no Ray cluster answers at {host}:{port} "
                       f"({reason})",
                       "start Ray on the head node (ray start --head), check the address, or "
                       "drop --ray-address (and RAY_ADDRESS) for a local cluster") from None
    return address


def _host_port(address: str) -> tuple[str, int]:
    """``host:port`` of a Ray address (``HOST:PORT``, ``ray://HOST:PORT``, ``[IPv6]:PORT``)."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise EvoError(f"--ray-address {address}: not HOST:PORT",
                       "e.g. --ray-address 10.0.0.5:6379 (the head node's GCS port)")
    return host.strip("[]"), int(port)
