"""Successive halving inside NSGA-II against plain NSGA-II and random search, by compute.

    .venv/bin/python benchmarks/bench_fidelity.py [--datasets digits,fashion-mnist]
        [--seeds 0,1,2] [--population 8] [--generations 3] [--epochs 3] [--grammar cnn_full]
        [--train-subset 1000] [--val-subset 500] [--workers 1] [--max-generations 40]
        [--halving-population N] [--out /tmp/evo-bench-fidelity]

For each dataset and seed, four searches (issue 16):

- ``plain``: NSGA-II, every candidate trained for ``--epochs`` (``--fidelity full``), for
  ``--generations`` generations; the compute it spends (``images_seen``) is the yardstick P;
- ``halving-half``: NSGA-II with ``--fidelity halving`` (rungs ``1, 3, ...`` up to
  ``--epochs``, eta 3, early abort on) and ``--max-images P/2``;
- ``halving-equal``: the same with ``--max-images P``;
- ``random``: random search, full fidelity, the same generations as plain (about P).

``--max-images`` is checked between generations, so a halving run ends with the generation that
crosses it (its real ``images_seen`` is reported). ``--halving-population`` gives the halving
runs a population of their own (default: plain's), since a generation of ``n`` finishes only
about ``n / eta^(rungs - 1)`` candidates at the full budget. Fashion-MNIST (Debian's package)
is searched on stratified subsets (``--train-subset``/``--val-subset``); digits on its whole
splits.

Every final front is scored in one fixed normalisation (issue 16): x = (log10 params - 2) / 4
clipped to [0, 1], y = validation error, reference point (1, 1) (``hv_fixed``). Each run's own
hypervolume (``hv_run``: error linear [0, 1], params log10 [1e2, 1e8], as ``evo front``
shows it) is printed beside it; the two are not comparable with each other. Prints one markdown
table per dataset (median, min-max over seeds, median images_seen, median ratio to plain of
the same seed) and the two targets: halving at half of plain's compute reaches a median at
least 0.98x plain's, and at equal compute a higher median than plain. Runs already finished in
``--out`` are reused, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.moo.indicators import ObjectiveScale, hypervolume
from evo.nas.problem import problem_factory
from evo.run.compute import compute_spent
from evo.run.counts import counts_of
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.loop import run_search

# The fixed normalisation: params log10 in [1e2, 1e6] ((log10 p - 2) / 4), error [0, 1].
FIXED = (ObjectiveScale("params", "log10", 1e2, 1e6), ObjectiveScale("error", "linear", 0.0, 1.0))
METHODS = ("plain", "halving-half", "halving-equal", "random")


def hv_fixed(store: RunStore) -> float:
    """Hypervolume of the run's final front in the fixed normalisation."""
    points = [(ev.objectives["params"], ev.objectives["error"]) for _i, ev in front_of(store)]
    return hypervolume(points, FIXED) if points else 0.0


def summary(run_dir: Path) -> dict[str, Any]:
    """What the tables need from a finished run, read from its run.db."""
    store = RunStore.open(run_dir, write=False)
    try:
        last = store.last_generation()
        generation = store.generation(last) if last is not None else None
        counts = counts_of(store)
        return {"hv_fixed": hv_fixed(store),
                "hv_run": float(generation["hypervolume"]) if generation else 0.0,
                "images_seen": int(compute_spent(store)["images_seen"] or 0),
                "epochs_trained": int(compute_spent(store)["epochs_trained"] or 0),
                "generations": -1 if last is None else last, "front": len(front_of(store)),
                "full_budget": counts.trained, "stopped": counts.stopped,
                "status": store.meta("status"),
                "minutes": (store.meta("updated") - store.meta("created")) / 60}
    finally:
        store.close(checkpoint=False)


def config_for(args: argparse.Namespace, dataset: str, seed: int, method: str,
               plain_images: int | None, run_dir: Path) -> SearchConfig:
    """The configuration of one method's run (plain's compute sets the halving budgets)."""
    options: dict[str, Any] = dict(
        grammar=args.grammar, dataset=dataset, seed=seed, population=args.population,
        generations=args.generations, epochs=args.epochs, workers=args.workers, export=(),
        bench=(), run_dir=str(run_dir))
    if dataset != "digits":
        options.update(train_subset=args.train_subset, val_subset=args.val_subset)
    if method == "random":
        options["strategy"] = "random"
    if method.startswith("halving"):
        assert plain_images is not None
        share = 0.5 if method == "halving-half" else 1.0
        options.update(fidelity="halving", generations=args.max_generations,
                       population=args.halving_population or args.population,
                       max_images=max(1, int(plain_images * share)))
    return SearchConfig(**options)


def _finished(run_dir: Path) -> bool:
    if not (run_dir / "run.db").is_file():
        return False
    store = RunStore.open(run_dir, write=False)
    try:
        return store.meta("status") == "finished"
    finally:
        store.close(checkpoint=False)


def run_all(args: argparse.Namespace) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every dataset x seed x method, reusing finished runs; results by dataset and method."""
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    log = args.out / "results.json"
    for dataset in args.datasets:
        results[dataset] = {m: [] for m in METHODS}
        for seed in args.seeds:
            plain_images = None
            for method in METHODS:
                run_dir = args.out / f"{dataset}-{method}-s{seed}"
                started = time.monotonic()
                if not _finished(run_dir):
                    if run_dir.exists():  # an interrupted run: continue it
                        run_search(None, resume=run_dir, problem_factory=problem_factory())
                    else:
                        run_search(config_for(args, dataset, seed, method, plain_images,
                                              run_dir), problem_factory=problem_factory())
                row = {**summary(run_dir), "seed": seed,
                       "seconds_here": time.monotonic() - started}
                if method == "plain":
                    plain_images = row["images_seen"]
                results[dataset][method].append(row)
                print(f"{dataset} seed {seed} {method}: {json.dumps(row)}", flush=True)
                log.write_text(json.dumps(results, indent=1))
    return results


def table(dataset: str, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """One markdown table: each method's median, spread and ratio to plain, and the targets."""
    plain = {r["seed"]: r for r in rows["plain"]}
    lines = ["| method | hv_fixed median | min-max | ratio to plain (median over seeds) | "
             "images_seen median | images / plain | hv_run median | full-budget members | "
             "stopped | generations | minutes/run |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    medians = {}
    for method in METHODS:
        rs = rows[method]
        if not rs:
            continue
        hv = [r["hv_fixed"] for r in rs]
        medians[method] = statistics.median(hv)
        ratio = statistics.median(r["hv_fixed"] / plain[r["seed"]]["hv_fixed"] for r in rs)
        share = statistics.median(r["images_seen"] / plain[r["seed"]]["images_seen"] for r in rs)
        lines.append(
            f"| {method} | {medians[method]:.4f} | {min(hv):.4f}-{max(hv):.4f} | {ratio:.3f} | "
            f"{statistics.median(r['images_seen'] for r in rs):,.0f} | {share:.2f} | "
            f"{statistics.median(r['hv_run'] for r in rs):.4f} | "
            f"{statistics.median(r['full_budget'] for r in rs):.0f} | "
            f"{statistics.median(r['stopped'] for r in rs):.0f} | "
            f"{statistics.median(r['generations'] for r in rs):.0f} | "
            f"{statistics.median(r['minutes'] for r in rs):.1f} |")
    if {"plain", "halving-half", "halving-equal"} <= set(medians):
        half = medians["halving-half"] / medians["plain"]
        equal = medians["halving-equal"] - medians["plain"]
        lines.append("")
        lines.append(f"{dataset}: halving at half compute / plain (median hv_fixed) = "
                     f"{half:.3f} (target >= 0.98: {'met' if half >= 0.98 else 'MISSED'}); "
                     f"halving at equal compute - plain = {equal:+.4f} (target > 0: "
                     f"{'met' if equal > 0 else 'MISSED'})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="digits,fashion-mnist",
                        type=lambda s: s.split(","))
    parser.add_argument("--seeds", default="0,1,2",
                        type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--grammar", default="cnn_full")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--generations", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=1000)
    parser.add_argument("--val-subset", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-generations", type=int, default=40,
                        help="generations a halving run may take before --max-images stops it")
    parser.add_argument("--halving-population", type=int, default=None,
                        help="population of the halving runs (default: --population)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/evo-bench-fidelity"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results = run_all(args)
    print(f"\n{args.grammar}, population {args.population} (halving "
          f"{args.halving_population or args.population}), plain {args.generations} "
          f"generations, {args.epochs} epochs, seeds {args.seeds}, {args.workers} workers; "
          f"{(time.monotonic() - started) / 60:.1f} min")
    for dataset, rows in results.items():
        subset = "" if dataset == "digits" else \
            f" (train subset {args.train_subset}, validation subset {args.val_subset})"
        print(f"\n### {dataset}{subset}\n")
        print("\n".join(table(dataset, rows)))


if __name__ == "__main__":
    main()
