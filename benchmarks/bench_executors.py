"""The same search with every executor: wall time, speed-up, start-up and overhead.

    .venv/bin/python benchmarks/bench_executors.py            # the benchmark (about 6 min)
    .venv/bin/python benchmarks/bench_executors.py --quick    # a smoke test of it (about 1 min)

One run of this script runs one search three times with fixed seeds, each in a fresh Python
process (so none inherits another's loaded dataset, imports or worker pool): ``serial``,
``local --workers 2`` and ``ray --workers 2`` (a local Ray cluster of 2 CPUs that evo starts;
``RAY_ADDRESS`` is ignored here). The search trains ``cnn_topology`` candidates for one epoch
on a stratified 3,000-image subset of Fashion-MNIST (Debian's ``dataset-fashion-mnist``, or
``--data-dir``), scored on 1,000 validation images: about 2.5 minutes serial on two cores,
candidates of a few seconds up to about 20. ``--quick`` runs a digits search of seconds
instead (its numbers say nothing; it shows that the script works).

Printed per executor, from the search's own events: wall seconds (from the call of
``run_search`` to its return; the imports before it are the same for every executor);
speed-up over serial; start-up (from the call until the first evaluation began: the dataset
and, for the executors, workers or the cluster); evaluations; the median candidate's seconds;
and idle worker-seconds per evaluation, ``(workers x (wall - start-up) - sum of evaluation
seconds) / evaluations``: what scheduling, result shipping and waiting at generation barriers
(a generation ends with its slowest candidate) cost. Then whether each run's evaluations and
front equal the serial run's (they must: results do not depend on the executor), and the
targets of issue 15 on two cores: local at least 1.7x, Ray at least 1.6x.

``--startup`` adds the start-up of a pool of 2 local workers alone, before and after it was cut:
spawned workers that each import torch and load the dataset, against workers forked from a
server that imported torch once and views the driver's dataset in shared memory.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo.capacity import cpu_cores
from evo.config import SearchConfig
from evo.nas.problem import TrainingProblem, problem_factory
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.contract import Event, Job, Result, ResultArrived, derive_seed
from evo.search.loop import run_search
from evo.search.process_executor import ProcessExecutor

SEARCHES = {
    "full": dict(grammar="cnn_topology", dataset="fashion-mnist", train_subset=3000,
                 val_subset=1000, population=10, generations=2, epochs=1, seed=0),
    "quick": dict(grammar="cnn_topology", dataset="digits", population=4, generations=1,
                  epochs=1, seed=5),
}
EXECUTORS = {
    "serial": dict(),
    "local": dict(executor="local", workers=2),
    "ray": dict(executor="ray", workers=2, ray_cpus=1.0),
}
TARGETS = {"local": 1.7, "ray": 1.6}
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Timing:
    """A run's results as the search reported them, with when each arrived."""

    started: float
    arrivals: list[tuple[float, Result]] = field(default_factory=list)
    ended: float = 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, ResultArrived):
            self.arrivals.append((time.perf_counter(), event.result))

    @property
    def wall(self) -> float:
        return self.ended - self.started

    @property
    def startup(self) -> float:
        return min(t - (r.seconds or 0.0) for t, r in self.arrivals) - self.started

    @property
    def busy(self) -> float:
        return sum(r.seconds or 0.0 for _t, r in self.arrivals)


def _outcome(run_dir: Path) -> tuple[Any, Any]:
    """(every evaluation's key, status and objectives; the front), to compare runs by."""
    store = RunStore.open(run_dir, write=False)
    try:
        evaluations = sorted((ev.key, str(ev.status), sorted(ev.objectives.items()))
                             for ev in store.evaluations().values())
        front = [(ind.id, ev.key, sorted(ev.objectives.items())) for ind, ev in front_of(store)]
    finally:
        store.close(checkpoint=False)
    return evaluations, front


def run_one(name: str, search: dict[str, Any], out: Path) -> None:
    """The child process: one search, its timings printed as one JSON line."""
    config = SearchConfig(**search, **EXECUTORS[name], export=(), bench=(),
                          run_dir=str(out / name))
    timing = Timing(time.perf_counter())
    run_search(config, problem_factory=problem_factory(), listeners=(timing,))
    timing.ended = time.perf_counter()
    print(json.dumps({"wall": timing.wall, "startup": timing.startup,
                      "seconds": [r.seconds or 0.0 for _t, r in timing.arrivals]}))


def run(name: str, args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """One search in a fresh process: its timings and its outcome."""
    command = [sys.executable, __file__, "--one", name, "--out", str(args.out)]
    command += ["--quick"] if args.quick else []
    command += ["--data-dir", args.data_dir] if args.data_dir else []
    for option in ("population", "generations"):
        if getattr(args, option) is not None:
            command += [f"--{option}", str(getattr(args, option))]
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        sys.exit(f"{name}: the search failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1]), _outcome(args.out / name)


@dataclass(frozen=True)
class Plain:
    """The evaluator as the workers had it before start-up was cut: nothing shared with them
    and nothing for a fork server to import (each worker loads what it needs itself)."""

    inner: Any

    def __call__(self, job: Job) -> Result:
        return self.inner(job)


def startup(search: dict[str, Any], out: Path) -> None:
    """Two workers from nothing to one small candidate trained each, the old way and now."""
    config = SearchConfig(**search, export=(), bench=())
    problem = TrainingProblem(config, out / "startup")
    jobs = []
    for member, phenotype in enumerate(("conv(4, k=3) relu gap", "conv(6, k=3) relu gap")):
        described = problem.candidate(phenotype)
        assert not isinstance(described, str)
        key, text = described
        jobs.append(Job(member, key, text, derive_seed(config.seed, key)))
    evaluator = problem.evaluator()
    for label, method, chosen in (("spawned, each loads torch and the data", "spawn",
                                   Plain(evaluator)),
                                  ("forked from a server, data in shared memory", "forkserver",
                                   evaluator)):
        clock = time.perf_counter()
        with ProcessExecutor(chosen, 2, start_method=method) as pool:
            results = list(pool.run(jobs))
        took = time.perf_counter() - clock
        trained = max(r.seconds or 0.0 for r in results)
        print(f"start-up, 2 local workers {label}: {took:.2f} s until both trained one small "
              f"candidate (the longer training itself: {trained:.2f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a digits search of seconds")
    parser.add_argument("--executors", default="serial,local,ray")
    parser.add_argument("--startup", action="store_true",
                        help="also time a pool of 2 local workers alone, before and after")
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST's folder")
    parser.add_argument("--population", type=int, help="instead of the search's (10)")
    parser.add_argument("--generations", type=int, help="instead of the search's (2)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/evo-bench-executors"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child: one executor's search
    args = parser.parse_args()
    os.environ.pop("RAY_ADDRESS", None)  # always the local cluster of 2 CPUs
    search = dict(SEARCHES["quick" if args.quick else "full"])
    if args.data_dir and not args.quick:
        search["data_dir"] = args.data_dir
    for name in ("population", "generations"):
        if getattr(args, name) is not None:
            search[name] = getattr(args, name)
    if args.one:
        run_one(args.one, search, args.out)
        return
    names = [n.strip() for n in args.executors.split(",") if n.strip()]
    if names[0] != "serial":
        sys.exit("the first executor must be serial (the others are compared with it)")
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    print(f"{cpu_cores()} cores, load average {os.getloadavg()[0]:.2f}; search: "
          + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in search.items()), flush=True)
    if args.startup:
        startup(search, args.out)
    rows = {}
    for name in names:
        rows[name] = run(name, args)
        print(f"{name}: {rows[name][0]['wall']:.1f} s", flush=True)
    serial_wall, serial_outcome = rows["serial"][0]["wall"], rows["serial"][1]
    print("\n| executor | in flight | wall s | speed-up | start-up s | evaluations | "
          "median candidate s | idle per evaluation s | same results as serial |")
    print("|---|---|---|---|---|---|---|---|---|")
    missed = []
    for name, (timing, outcome) in rows.items():
        workers = EXECUTORS[name].get("workers", 1)
        seconds = timing["seconds"]
        idle = (workers * (timing["wall"] - timing["startup"]) - sum(seconds)) / len(seconds)
        speedup = serial_wall / timing["wall"]
        same = "yes" if outcome == serial_outcome else "NO"
        print(f"| {name} | {workers} | {timing['wall']:.1f} | {speedup:.2f}x | "
              f"{timing['startup']:.1f} | {len(seconds)} | {statistics.median(seconds):.1f} | "
              f"{idle:.2f} | {same} |")
        if same != "yes":
            missed.append(f"{name}: results differ from serial")
        if name in TARGETS and speedup < TARGETS[name]:
            missed.append(f"{name}: {speedup:.2f}x, target {TARGETS[name]}x")
    print("\ntargets (2 cores): local >= 1.7x, ray >= 1.6x; "
          + ("all met" if not missed else "missed: " + "; ".join(missed)))
    if args.quick:
        print("(--quick: a smoke test; its timings say nothing)")


if __name__ == "__main__":
    main()
