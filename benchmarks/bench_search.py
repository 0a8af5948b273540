"""The paper's comparison, small: topology-only vs topology + hyper-parameters, against random.

    .venv/bin/python benchmarks/bench_search.py [--seeds 0,1] [--population 10] [--generations 4]
        [--epochs 4] [--workers 2] [--out /tmp/evo-bench-search]

For each seed, three searches on digits with the same evaluation budget: NSGA-II over
``cnn_topology`` (the paper's first experiment: topology, default recipe), NSGA-II over
``cnn_full`` (its second: topology plus optimizer, learning rate, batch size, dropout, ...), and
random search over ``cnn_full`` (the honest baseline). Prints the final hypervolume of each
(error linear in [0, 1], parameters log10 in [1e2, 1e8], reference 1), the best validation
accuracy, the smallest front member above 95 % validation accuracy, and the ratio of each
hypervolume to the random baseline of the same seed. Everything is read back from the runs'
``run.db``; the runs stay in ``--out`` for ``evo front --plot``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from evo.config import SearchConfig
from evo.nas.problem import problem_factory
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.loop import run_search

SETUPS = (
    ("nsga2 cnn_topology", "cnn_topology", "nsga2"),
    ("nsga2 cnn_full", "cnn_full", "nsga2"),
    ("random cnn_full", "cnn_full", "random"),
)


def _summary(run_dir: Path) -> dict[str, float]:
    store = RunStore.open(run_dir, write=False)
    try:
        last = store.generation(store.last_generation())
        front = front_of(store)
        accurate = [ev.objectives["params"] for _i, ev in front
                    if ev.metrics.get("val_accuracy", 0) >= 0.95]
        return {
            "hypervolume": float(last["hypervolume"]),
            "best_acc": max(ev.metrics.get("val_accuracy", 0.0) for _i, ev in front),
            "small95": min(accurate) if accurate else float("nan"),
            "trained": float(store.count_trained()),
        }
    finally:
        store.close(checkpoint=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--generations", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/evo-bench-search"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict[str, float]]] = {label: [] for label, _g, _s in SETUPS}
    started = time.monotonic()
    for seed in seeds:
        for label, grammar, strategy in SETUPS:
            run_dir = args.out / f"{label.replace(' ', '-')}-s{seed}"
            config = SearchConfig(grammar=grammar, strategy=strategy, seed=seed,
                                  population=args.population, generations=args.generations,
                                  epochs=args.epochs, workers=args.workers, export=(), bench=(),
                                  run_dir=str(run_dir))
            t0 = time.monotonic()
            run_search(config, problem_factory=problem_factory())
            results[label].append({**_summary(run_dir), "seconds": time.monotonic() - t0})
            print(f"seed {seed} {label}: {results[label][-1]}", flush=True)
    print(f"\ndigits, population {args.population}, {args.generations} generations, "
          f"{args.epochs} epochs, seeds {seeds}, {args.workers} workers, "
          f"{(time.monotonic() - started) / 60:.1f} min")
    print("| setup | hypervolume mean | min-max | ratio to random (same seed) | best val acc |"
          " smallest >= 95 % val acc (params) | trained | minutes/run |")
    print("|---|---|---|---|---|---|---|---|")
    random_hv = [r["hypervolume"] for r in results["random cnn_full"]]
    for label, _g, _s in SETUPS:
        rows = results[label]
        hv = [r["hypervolume"] for r in rows]
        ratios = [h / b for h, b in zip(hv, random_hv, strict=True)]
        small = [r["small95"] for r in rows if r["small95"] == r["small95"]]
        print(f"| {label} | {statistics.mean(hv):.4f} | {min(hv):.4f}-{max(hv):.4f} | "
              f"{statistics.mean(ratios):.3f} | "
              f"{statistics.mean(r['best_acc'] for r in rows):.2%} | "
              f"{(f'{min(small):,.0f}' if small else '-')} | "
              f"{statistics.mean(r['trained'] for r in rows):.0f} | "
              f"{statistics.mean(r['seconds'] for r in rows) / 60:.1f} |")


if __name__ == "__main__":
    main()
