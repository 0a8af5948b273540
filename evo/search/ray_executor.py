"""The Ray executor: one Ray task per evaluation, on a cluster or a local one evo starts.

``--ray-address`` (else ``$RAY_ADDRESS``) joins a running cluster; without one evo starts a
local cluster for the run, bound to 127.0.0.1 with the dashboard off, and stops it at the end
(its processes also die with a killed driver: Ray ties them to it). Usage statistics are off
and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set (Ray otherwise ignores the node address on
some platforms and listens on every interface), in ``os.environ`` before Ray is imported,
whatever the caller's environment says.

What a task costs: the evaluator and the dataset go into the object store once per run
(``ray.put``) and each task receives references to them, fetched once per worker process and
kept (the dataset's arrays are read straight from the object store, not copied); a task asks for
``--ray-cpus`` CPUs and ``--ray-gpus`` (fractional) GPUs, and the evaluator sets the torch thread
count itself (Ray sets ``OMP_NUM_THREADS`` to the task's CPUs). The driver keeps ``--workers``
tasks in flight and stays the only writer of the run folder: results bring their files back.

Faults. Ray's own retries are off (``max_retries=0``): a task lost with its worker or node comes
back ``lost`` and the search runs it again, up to ``--task-retries`` times, recording the retry
on the evaluation (:mod:`evo.search.failures`); a worker that dies on every attempt is a failed
evaluation with the reason, and the search goes on. An exception inside training (out of memory
included) is the evaluator's failed result, never retried. With ``--candidate-timeout`` a task
still running :func:`evo.search.evaluate.hard_limit` seconds after it was submitted (the driver
cannot see when a queued task starts) is cancelled with its worker killed, and fails with the
timeout. Progress from inside a task (epochs, batches) is not forwarded: the driver reports each
result as it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from evo.errors import EvoError
from evo.search.contract import Evaluator, Job, Listener, Prepares, Result, Status
from evo.search.evaluate import (
    for_worker,
    hard_limit,
    import_preloads,
    longest_first,
    safe_call,
    timeout_result,
    without_progress,
)
from evo.search.shared_data import SharesData

if TYPE_CHECKING:
    from evo.capacity import ExecutorPlan
    from evo.config import SearchConfig

PING_SECONDS = 120.0  # a cluster that runs no task in this long is refused (see RayExecutor)

# In a Ray worker process: what it fetched from the object store, by reference (the evaluator
# and the dataset of the run), and the evaluators it made ready (dataset adopted, imports done).
_FETCHED: dict[str, Any] = {}
_READY: set[str] = set()


def import_ray() -> Any:
    """Ray, imported with usage statistics off and the node address honoured."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    imported_before = "ray" in sys.modules
    import ray

    if imported_before:  # the caller imported Ray first: its constant was read already
        with contextlib.suppress(Exception):
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def start_local_cluster(num_cpus: int, num_gpus: int | None = 0) -> str:
    """Start a Ray cluster on this machine for this process and connect to it: bound to
    127.0.0.1, dashboard off, its processes tied to this one (``ray.shutdown()`` stops them,
    and so does this process's death). ``num_gpus=None`` lets Ray count them. Returns the
    cluster's address, which other drivers on this machine may join."""
    ray = import_ray()
    context = ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus,
                       include_dashboard=False, _node_ip_address="127.0.0.1",
                       log_to_driver=False, logging_level=logging.ERROR)
    return str(context.address_info["gcs_address"])


def _ping() -> int:
    return os.getpid()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _is_loopback(address: str) -> bool:
    host = address.split("://", 1)[-1].rpartition(":")[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _fetched(ref: Any) -> Any:
    key = ref.hex()
    if key not in _FETCHED:
        import ray

        _FETCHED[key] = ray.get(ref)
    return _FETCHED[key]


def evaluate_task(handles: list[Any], job: Job) -> Result:
    """The body of one Ray task: the run's evaluator (and its dataset, adopted once per worker
    process), then the job, failures included, as a :class:`Result`."""
    evaluator_ref, data_ref = handles
    evaluator = _fetched(evaluator_ref)
    if evaluator_ref.hex() not in _READY:  # this worker's first task of the run
        if data_ref is not None and isinstance(evaluator, SharesData):
            evaluator.adopt_data(_fetched(data_ref))
        import_preloads(evaluator)
        _READY.add(evaluator_ref.hex())
    evaluator = for_worker(evaluator, 0)  # Ray pins the task's GPUs (CUDA_VISIBLE_DEVICES)
    if isinstance(evaluator, Prepares):
        evaluator.prepare()
    return safe_call(evaluator, job)


class RayExecutor:
    """``plan.workers`` Ray tasks in flight, one evaluation each. ``progress`` is accepted
    like every executor's and not used: progress inside a task is not forwarded."""

    def __init__(self, evaluator: Evaluator, plan: ExecutorPlan, config: SearchConfig,
                 progress: Listener | None = None) -> None:
        self.ray = import_ray()
        self.workers = max(1, plan.workers)
        self.timeout = config.candidate_timeout
        self.address = plan.address
        self._owns_connection = not self.ray.is_initialized()  # else: the caller's ray.init
        self.running: dict[Any, tuple[Job, float]] = {}
        if self._owns_connection:
            self._connect(config)
        try:
            self._check_runs_tasks()
            self._check_fits(config.ray_cpus, config.ray_gpus)
            evaluator = self.evaluator = without_progress(evaluator)
            data = evaluator.shared_data() if isinstance(evaluator, SharesData) else None
            self.handles = [self.ray.put(evaluator),
                            self.ray.put(data) if data is not None else None]
            self.task = self.ray.remote(evaluate_task).options(
                num_cpus=config.ray_cpus, num_gpus=config.ray_gpus, max_retries=0,
                name="evo-evaluation")
        except BaseException:
            self.close()
            raise

    def _connect(self, config: SearchConfig) -> None:
        """Join ``self.address``, or start a local cluster sized for the tasks in flight."""
        where = f"join the Ray cluster at {self.address}" if self.address else \
            "start a local Ray cluster"
        try:
            if self.address is not None:
                # A driver joining a cluster on this machine's loopback must say so: Ray
                # otherwise gives its workers this machine's network address to call back on.
                loopback = _is_loopback(self.address)
                self.ray.init(address=self.address, log_to_driver=False,
                              logging_level=logging.ERROR,
                              **({"_node_ip_address": "127.0.0.1"} if loopback else {}))
            else:
                start_local_cluster(math.ceil(self.workers * config.ray_cpus),
                                    None if config.ray_gpus > 0 else 0)
        except Exception as exc:
            first = _first_line(exc)
            chain, seen = [], exc  # Ray raises ConnectionError from the real reason
            while seen is not None and len(chain) < 5:
                chain.append(str(seen).lower())
                seen = seen.__cause__ or seen.__context__
            hint = ("the cluster uses token authentication: export RAY_AUTH_MODE=token and its "
                    "token (RAY_AUTH_TOKEN, or ~/.ray/auth_token) before evo search"
                    if any("auth" in text for text in chain) else
                    "check the cluster (ray status on the head node) or drop --ray-address "
                    "for a local cluster")
            raise EvoError(f"could not {where}: {first}", hint) from None

    def _check_runs_tasks(self) -> None:
        """One empty task, so a cluster that accepts the driver but cannot run evo's tasks (a
        node without evo installed, workers that cannot call back) is one line now, not a
        search that waits for ever."""
        ping = self.ray.remote(_ping).options(num_cpus=0, max_retries=0)
        try:
            self.ray.get(ping.remote(), timeout=PING_SECONDS)
        except self.ray.exceptions.GetTimeoutError:
            raise EvoError(f"the Ray cluster{' at ' + self.address if self.address else ''} "
                           f"ran no task within {PING_SECONDS:g} s",
                           "check that its nodes can reach this machine (ray status on the "
                           "head node)") from None
        except self.ray.exceptions.RayError as exc:
            raise EvoError(f"the Ray cluster cannot run evo's tasks: {_first_line(exc)}",
                           "install the same evo-edge-nas (and torch) on every node") from None

    def _check_fits(self, cpus: float, gpus: float) -> None:
        """Refuse a task no node can run (it would wait for ever), naming the options."""
        nodes = [node["Resources"] for node in self.ray.nodes() if node.get("Alive")]
        if any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            return
        need = f"{cpus:g} CPU(s)" + (f" and {gpus:g} GPU(s)" if gpus else "")
        have = ", ".join(f"{n.get('CPU', 0):g} CPUs/{n.get('GPU', 0):g} GPUs" for n in nodes)
        raise EvoError(f"no node of the Ray cluster has {need} for one evaluation "
                       f"(--ray-cpus, --ray-gpus; nodes: {have or 'none'})",
                       "lower --ray-cpus or --ray-gpus, or add a node that has them")

    def run(self, jobs: list[Job]) -> Iterator[Result]:
        queue = list(reversed(longest_first(self.evaluator, jobs)))
        while queue or self.running:
            while queue and len(self.running) < self.workers:
                job = queue.pop()
                self.running[self.task.remote(self.handles, job)] = (job, time.monotonic())
            ready, _ = self.ray.wait(list(self.running), num_returns=1,
                                     timeout=self._wait_seconds())
            for ref in ready:
                job, _submitted = self.running.pop(ref)
                yield self._collect(ref, job)
            yield from self._past_deadline()

    def _wait_seconds(self) -> float | None:
        if self.timeout is None or not self.running:
            return None
        first = min(submitted for _job, submitted in self.running.values())
        return max(0.0, first + hard_limit(self.timeout) - time.monotonic())

    def _past_deadline(self) -> Iterator[Result]:
        if self.timeout is None:
            return
        for ref, (job, submitted) in list(self.running.items()):
            elapsed = time.monotonic() - submitted
            if elapsed >= hard_limit(self.timeout):
                self.ray.cancel(ref, force=True)
                del self.running[ref]
                yield timeout_result(job, elapsed, self.timeout,
                                     "its Ray task was cancelled, counted from its submission")

    def _collect(self, ref: Any, job: Job) -> Result:
        """The task's result; a task lost with its worker or node is ``lost`` (retried)."""
        errors = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except errors.RayTaskError as exc:  # outside the evaluator: fetching, unpickling
            cause = getattr(exc, "cause", None)
            if isinstance(cause, ImportError):
                raise EvoError(f"a Ray worker cannot import what evaluations need ({cause})",
                               "install the same evo-edge-nas (and torch) on every node of "
                               "the cluster") from None
            reason = f"Ray task error: {cause!r}"
        except errors.OutOfMemoryError:
            reason = "Ray worker killed by Ray's memory monitor (its node ran out of memory)"
        except errors.RayError as exc:
            reason = f"Ray worker died ({type(exc).__name__})"
        return Result(job.key, job.individual_id, Status.LOST, reason)

    def close(self) -> None:
        """Cancel what still runs; leave the cluster (and stop it when evo started it)."""
        for ref in list(self.running):
            with contextlib.suppress(Exception):  # finished or lost meanwhile: nothing to stop
                self.ray.cancel(ref, force=True)
        self.running.clear()
        if self._owns_connection and self.ray.is_initialized():
            self.ray.shutdown()

    terminate = close

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
