"""K candidates at once on one GPU: candidates per hour, images/s and GPU utilisation.

A small network leaves a modern GPU idle most of the time: one training process spends its time
launching kernels, building the network, tuning cuDNN and scoring, not computing. So evo trains
several candidates on one GPU at once, one worker process each (``--jobs-per-gpu K``). This
benchmark measures what that buys, for K = 1, 2, 4 and 8, with what ``evo search --executor
local --device cuda --gpus N --jobs-per-gpu K`` runs: the executor ``make_executor`` builds from
that configuration (K spawned worker processes pinned to the GPU through CUDA_VISIBLE_DEVICES,
keeping the dataset on it between jobs) running the search problem's evaluator
(``evo.nas.problem.TrainingProblem``: each network built from its text, trained with its recipe
in bf16 autocast and channels_last, scored, its weights returned to the driver in the result),
on jobs keyed and seeded as the search keys and seeds them.

The work is one fixed set of small candidates (random phenotypes of the shipped ``mobile`` and
``cnn_full`` grammars, fixed seed, at most MAX_PARAMS parameters and MAX_MACS MACs on 32x32)
trained on a CIFAR-10 uint8 subset (benchmarks/make_cifar_subset.py), the same jobs for every K,
handed out longest first. For each K the executor is started and every worker given one warm-up
job (imports, CUDA context, dataset upload: the one-off cost, reported as ``start s``), then the
set is timed; K = 1 runs one job at a time on the K = 2 executor (one start-up less). Printed
per K: wall seconds, candidates per hour, speed-up over K = 1, images/s of one candidate's
training loop (median over candidates), images/s of all workers together, and GPU utilisation
sampled every 200 ms with ``nvidia-smi --query-gpu=utilization.gpu`` during the timed part.
The issue's target: K = 4 gives at least 2.5x the candidates per hour of K = 1.

Not a whole ``evo search``: NSGA-II's survival ranks with moocore, which the GPU machine lacks
(it has PyTorch and numpy, not moocore, OpenVINO or Ray); a generation's evaluations, which are
what the GPU does, are exactly this. Needs only PyTorch, numpy and the source tree.

``--cpu`` runs a miniature on the CPU (synthetic CIFAR-shaped data unless ``--data`` is given,
K = 1 and 2, two candidates of one epoch): a test of this script, whose timings mean nothing.
Exit status: 0 every evaluation succeeded, 1 one failed, 2 no CUDA device or no data file.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from evo.arch import parse_arch, resolve
from evo.config import SearchConfig
from evo.data.dataset import VAL_FRACTION
from evo.errors import EvoError
from evo.nas.problem import TrainingProblem
from evo.net.model import build_model, count_macs
from evo.search.contract import Job, Result, Status, derive_seed
from evo.search.executors import Executor, make_executor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import sample_phenotypes, synthetic_cifar
from gpu_sampling import SAMPLE_MS, Utilisation, gpu_identity

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT / "build" / "gpu_check" / "cifar10-subset.npz"
INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
GRAMMARS = ("mobile", "cnn_full")
MAX_PARAMS = 300_000
MAX_MACS = 60_000_000
WARMUP = "conv(8, k=3, s=2) bn relu gap | optimizer=momentum batch_size=256"
TARGET_K, TARGET_SPEEDUP = 4, 2.5


@dataclass(frozen=True)
class Candidate:
    grammar: str
    text: str  # canonical text: network | recipe
    params: int
    macs: int
    batch_size: int
    cost: float  # relative training time estimate, for the longest-first order


def pick_candidates(count: int, seed: int, train_images: int, epochs: int,
                    max_params: int = MAX_PARAMS) -> list[Candidate]:
    """``count`` distinct small candidates, alternating grammars, longest (estimated) first.

    The estimate is kernel launches, which bound small networks on a GPU: train steps times
    modules in the network.
    """
    rng = np.random.default_rng(seed)
    pools = {g: sample_phenotypes(g, 8 * count, rng) for g in GRAMMARS}
    picked: list[Candidate] = []
    seen: set[str] = set()
    while len(picked) < count and any(pools.values()):
        for grammar in GRAMMARS:
            while pools[grammar] and len(picked) < count:
                resolved = resolve(parse_arch(pools[grammar].pop(0)), INPUT_SHAPE, NUM_CLASSES)
                text = resolved.canonical_text()
                if text in seen or resolved.params() > max_params:
                    continue  # cheap checks first: counting MACs takes a forward pass
                model = build_model(resolved)
                macs = count_macs(model, INPUT_SHAPE)
                if macs > MAX_MACS:
                    continue
                seen.add(text)
                recipe = resolved.recipe
                steps = math.ceil(train_images / recipe.batch_size) * max(
                    1, round(epochs * recipe.epochs_mult))
                picked.append(Candidate(grammar, text, resolved.params(), macs,
                                        recipe.batch_size, steps * len(list(model.modules()))))
                break
    if len(picked) < count:
        raise SystemExit(f"gpu_workers: only {len(picked)} small candidates found; ask fewer")
    return sorted(picked, key=lambda c: -c.cost)


def search_config(data: Path, device: torch.device, epochs: int, seed: int, k: int
                  ) -> SearchConfig:
    """The configuration of ``evo search --executor local`` with K candidates in flight: on a
    GPU ``--device cuda --gpus N --jobs-per-gpu K`` (each worker pinned to the GPU through its
    CUDA_VISIBLE_DEVICES), on the CPU ``--workers K``."""
    common = {"dataset": str(data), "epochs": epochs, "seed": seed, "threads": 1,
              "export": (), "bench": (), "executor": "local"}
    if device.type == "cuda":
        return SearchConfig(**common, device="cuda", gpus=str(device.index), jobs_per_gpu=k)
    return SearchConfig(**common, device="cpu", workers=k)


def jobs_for(problem: TrainingProblem, texts: list[str], seed: int, first_id: int = 0
             ) -> list[Job]:
    """Jobs as the search makes them: the problem's evaluation key, the derived seed."""
    jobs = []
    for offset, text in enumerate(texts):
        candidate = problem.candidate(text)
        assert not isinstance(candidate, str), candidate
        key, canonical = candidate
        ident = first_id + offset if first_id >= 0 else first_id - offset
        jobs.append(Job(individual_id=ident, key=key, text=canonical,
                        seed=derive_seed(seed, key)))
    return jobs


# ------------------------------------------------------------------------------ the sweep


@dataclass(frozen=True)
class Phase:
    """The timed set at K candidates in flight; ``start_s`` is its pool's start-up (None when
    K = 1 ran on the next K's pool)."""

    k: int
    start_s: float | None
    wall_s: float
    results: list[Result]  # the timed jobs' (warm-up jobs have negative ids, kept apart)
    warm_failed: list[Result]
    utilisation: Utilisation

    @property
    def per_hour(self) -> float:
        return len(self.results) / self.wall_s * 3600

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status != Status.OK] + self.warm_failed


def pools_for(ks: list[int]) -> list[tuple[int, list[int]]]:
    """(pool size, the Ks it runs): one pool per K, except that K = 1 runs, one job at a time,
    on the pool of the smallest other K (one start-up less; its other workers sit idle)."""
    others = sorted({k for k in ks if k > 1})
    if 1 not in ks:
        return [(k, [k]) for k in others]
    if not others:
        return [(1, [1])]
    return [(others[0], [1, others[0]])] + [(k, [k]) for k in others[1:]]


def run_pool(config: SearchConfig, size: int, ks: list[int], texts: list[str],
             device: torch.device) -> list[Phase]:
    """Start the executor of ``config`` (``size`` workers), warm each worker with one job,
    then time the jobs at each K (1 or ``size`` in flight) with the GPU sampled."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="evo-gpu-workers-run-") as run_dir:
        problem = TrainingProblem(config, Path(run_dir))  # loads the dataset, as a search does
        jobs = jobs_for(problem, texts, config.seed)
        warm = jobs_for(problem, [WARMUP] * size, config.seed, first_id=-1)
        with make_executor(problem.evaluator(), config) as pool:
            if pool.workers != size:
                raise SystemExit(f"gpu_workers: the executor runs {pool.workers} workers, "
                                 f"not {size}")
            warm_failed = [r for r in pool.run(warm) if r.status != Status.OK]
            start_s = time.perf_counter() - started
            return [timed(pool, k, size, jobs, start_s, warm_failed, device) for k in ks]


def timed(pool: Executor, k: int, size: int, jobs: list[Job], start_s: float,
          warm_failed: list[Result], device: torch.device) -> Phase:
    """The jobs with ``k`` in flight (``size``: all workers; 1: the next job goes out when
    the last came back), the GPU sampled meanwhile."""
    sampler = Utilisation(*gpu_identity(device))
    sampler.start()
    clock = time.perf_counter()
    if k == size:
        results = list(pool.run(jobs))
    else:
        results = [result for job in jobs for result in pool.run([job])]
    wall_s = time.perf_counter() - clock
    sampler.stop()
    print(f"K={k}: {len(jobs)} candidates in {wall_s:.1f} s (pool of {size}, started in "
          f"{start_s:.1f} s)", flush=True)
    return Phase(k, start_s if k == size else None, wall_s, results,
                 warm_failed if k == size else [], sampler)


def images_per_second(results: list[Result]) -> list[float]:
    return [float(r.metrics["images_per_second"]) for r in results if r.status == Status.OK]


def print_phases(phases: list[Phase]) -> None:
    base = phases[0].per_hour if phases and phases[0].k == 1 else None
    header = (f"{'K':>2} {'start s':>8} {'wall s':>7} {'cand/hour':>10} {'vs K=1':>7} "
              f"{'img/s/cand':>11} {'img/s all':>10} {'GPU util %':>10} {'median':>6} "
              f"{'n':>4} {'mem MiB':>8} {'failed':>6}")
    print(header)
    print("-" * len(header))
    unsampled = set()
    for p in phases:
        rates = images_per_second(p.results)
        images = sum(float(r.metrics["images_per_second"]) * float(r.metrics["train_seconds"])
                     for r in p.results if r.status == Status.OK)  # each one's images trained
        start = f"{p.start_s:8.1f}" if p.start_s is not None else f"{'-':>8}"
        speedup = f"{p.per_hour / base:6.2f}x" if base else f"{'-':>7}"
        per_candidate = f"{statistics.median(rates):11,.0f}" if rates else f"{'-':>11}"
        stats = p.utilisation.stats()
        if stats is None:
            unsampled.add(p.utilisation.why_not())
            gpu = f"{'-':>10} {'-':>6} {'-':>4} {'-':>8}"
        else:
            gpu = f"{stats[0]:10.1f} {stats[1]:6.0f} {stats[2]:4d} {stats[3]:8,.0f}"
        print(f"{p.k:>2} {start} {p.wall_s:7.1f} {p.per_hour:10,.0f} {speedup} {per_candidate} "
              f"{images / p.wall_s:10,.0f} {gpu} {len(p.failed):6d}")
    for reason in sorted(unsampled):
        print(f"GPU utilisation {reason}")


@contextlib.contextmanager
def dataset_file(path: Path | None, cpu: bool) -> Iterator[Path]:
    """The npz to train on: the given one, or for ``--cpu`` a small synthetic one."""
    if path is not None or not cpu:
        yield path if path is not None else DEFAULT_DATA
        return
    with tempfile.TemporaryDirectory(prefix="evo-gpu-workers-") as scratch:
        x, y = synthetic_cifar(160, seed=0)
        out = Path(scratch) / "synthetic-cifar.npz"
        np.savez(out, x=x, y=y, x_test=x[:20], y_test=y[:20])
        yield out


def k_list(text: str) -> list[int]:
    """``--k``: distinct positive integers, comma-separated."""
    try:
        ks = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1,2,4,8") from None
    if ks[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be at least 1")
    return ks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cpu", action="store_true",
                        help="a miniature on the CPU (tests this script; timings mean nothing)")
    parser.add_argument("--device", default=None, help="cuda:N (default cuda:0; cpu with --cpu)")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"the uint8 CIFAR-10 npz (default {DEFAULT_DATA.relative_to(ROOT)})")
    parser.add_argument("--k", type=k_list, default=None,
                        help="candidates per GPU to try (default 1,2,4,8)")
    parser.add_argument("--candidates", type=int, default=None, help="candidates (default 16)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs each (default 2)")
    parser.add_argument("--max-params", type=int, default=None,
                        help=f"largest candidate (default {MAX_PARAMS:,}; 20,000 with --cpu)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    device = torch.device(args.device or ("cpu" if args.cpu else "cuda:0"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    ks = args.k or k_list("1,2" if args.cpu else "1,2,4,8")
    count = args.candidates or (2 if args.cpu else 16)
    epochs = args.epochs or (1 if args.cpu else 2)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"gpu_workers: no CUDA device: PyTorch {torch.__version__} sees none "
              "(--cpu runs the miniature)", file=sys.stderr)
        return 2
    with dataset_file(args.data, args.cpu) as data:
        if not data.is_file():
            print(f"gpu_workers: {data}: no such file; make it with "
                  "benchmarks/make_cifar_subset.py (and carry it to the GPU machine)",
                  file=sys.stderr)
            return 2
        with np.load(data) as arrays:
            train_images = round(len(arrays["y"]) * (1 - VAL_FRACTION))
        max_params = args.max_params or (20_000 if args.cpu else MAX_PARAMS)
        try:
            return sweep(device, data, ks, count, epochs, args.seed, train_images, max_params)
        except EvoError as error:  # e.g. the executor finds no GPU to pin its workers to
            print(f"gpu_workers: {error}", file=sys.stderr)
            return 2


def sweep(device: torch.device, data: Path, ks: list[int], count: int, epochs: int, seed: int,
          train_images: int, max_params: int) -> int:
    candidates = pick_candidates(count, seed, train_images, epochs, max_params)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    grammars = ", ".join(f"{sum(c.grammar == g for c in candidates)} {g}" for g in GRAMMARS)
    print(f"gpu_workers: {count} candidates ({grammars}; params "
          f"{min(c.params for c in candidates):,}-{max(c.params for c in candidates):,}, MACs "
          f"{min(c.macs for c in candidates):,}-{max(c.macs for c in candidates):,}), {epochs} "
          f"epoch(s) each on {data.name} (about {train_images} train images), device {device} "
          f"({name}), PyTorch {torch.__version__}, 1 thread per worker, {os.cpu_count()} CPUs")
    if device.type == "cpu":
        print("(CPU miniature: a test of this script; its timings mean nothing)")
    print()
    phases = []
    for size, pool_ks in pools_for(ks):
        phases += run_pool(search_config(data, device, epochs, seed, size), size, pool_ks,
                           [c.text for c in candidates], device)
    phases.sort(key=lambda p: p.k)
    print()
    print_phases(phases)
    by_k = {p.k: p for p in phases}
    if 1 in by_k and TARGET_K in by_k:
        ratio = by_k[TARGET_K].per_hour / by_k[1].per_hour
        verdict = "met" if ratio >= TARGET_SPEEDUP else "MISSED"
        print(f"\nK={TARGET_K} gives {ratio:.2f}x the candidates per hour of K=1 (target >= "
              f"{TARGET_SPEEDUP}x): {verdict}")
    print(f"\nstart s: the pool's start-up with one warm-up job per worker (K=1 runs on the "
          f"next K's pool, one job at a time); img/s/cand: median over candidates of one "
          f"training loop's images/s; img/s all: training images of all workers per wall "
          f"second; GPU util: nvidia-smi utilization.gpu every {SAMPLE_MS} ms during the timed "
          f"part (mean, median, readings) and the most memory used")
    failed = [r for p in phases for r in p.failed]
    for r in failed[:5]:
        print(f"FAILED job {r.individual_id}: {r.status}: {r.reason}")
    print()
    for i, c in enumerate(candidates):
        print(f"[{i}] {c.grammar} params {c.params:,} MACs {c.macs:,} batch {c.batch_size}: "
              f"{c.text}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
