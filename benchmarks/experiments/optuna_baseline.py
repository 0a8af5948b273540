"""evo against Optuna's ``NSGAIISampler`` over the equivalent define-by-run space.

    pip install -e ".[bench]"    # Optuna is a benchmark-only dependency
    .venv/bin/python benchmarks/experiments/optuna_baseline.py

The space is ``grammars/cnn_topology.bnf`` written as trial suggestions: 1-4 blocks of 1-3
convolutions (filters 8, 16, 24, 32, 48, 64; kernel 1, 3, 5, 7), each block ending in no, max or
average pooling, global average pooling or flattening, then 0-2 hidden dense layers (16, 32,
64, 128 units). The suggestions become architecture text, which is resolved and trained
exactly as evo's NAS problem does (``evo.nas.problem``): the dataset split by the run seed,
``evo.net.train.train_candidate`` with the same budget and recipe, the training seed derived
from the run seed and the evaluation key, one thread on the CPU. An architecture Optuna
suggests twice is trained once (evo caches the same way), so both sides get the same number of
TRAINED evaluations: that of evo's ``cnn_topology`` run of the same seed. The one difference
left is the sampling weights: the grammar draws kernel 3 twice as often and max pooling twice
as often as average pooling, Optuna's categorical suggestions are uniform.

Both are scored in the fixed normalisation (x = (log10 params - 2) / 4 clipped to [0, 1],
y = validation error, reference (1, 1)) on the non-dominated set of everything each trained
(evo: its recorded front). Writes ``docs/results/optuna_baseline.md``: per seed both
hypervolumes and the ratio evo / Optuna, and the median and min-max spread of the ratio.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

FILTERS = [8, 16, 24, 32, 48, 64]
KERNELS = [1, 3, 5, 7]
POOLS = {"none": "", "max": "maxpool(2) ", "avg": "avgpool(2) "}
UNITS = [16, 32, 64, 128]


def architecture(trial: Any) -> str:
    """The architecture text of one trial: the cnn_topology grammar, define-by-run."""
    text = ""
    for b in range(trial.suggest_int("blocks", 1, 4)):
        for c in range(trial.suggest_int(f"b{b}_convs", 1, 3)):
            filters = trial.suggest_categorical(f"b{b}c{c}_filters", FILTERS)
            kernel = trial.suggest_categorical(f"b{b}c{c}_kernel", KERNELS)
            text += f"conv({filters}, k={kernel}) bn relu "
        text += POOLS[trial.suggest_categorical(f"b{b}_pool", list(POOLS))]
    text += trial.suggest_categorical("head", ["gap", "flatten"]) + " "
    for d in range(trial.suggest_int("dense", 0, 2)):
        text += f"dense({trial.suggest_categorical(f'd{d}_units', UNITS)}) relu "
    return text


def optuna_front(seed: int, trained_budget: int, budget: dict[str, Any]) -> dict[str, Any]:
    """Optuna's NSGA-II until it has trained ``trained_budget`` distinct architectures."""
    import optuna

    from evo.arch import parse_arch, resolve
    from evo.nas.problem import dataset_for
    from evo.net.budget import TrainBudget, evaluation_key
    from evo.net.train import train_candidate
    from evo.search.contract import derive_seed

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset = dataset_for(str(budget["dataset"]), None, seed)
    train_budget = TrainBudget(epochs=int(budget["epochs"]))
    threads = int(budget.get("threads", 1))
    cache: dict[str, tuple[float, float]] = {}

    def objective(trial: Any) -> tuple[float, float]:
        resolved = resolve(parse_arch(architecture(trial)), dataset.input_shape,
                           dataset.num_classes)
        key = evaluation_key(resolved, dataset.fingerprint, train_budget, "cpu", threads)
        if key not in cache:
            out = train_candidate(resolved, dataset, train_budget, device="cpu",
                                  threads=threads, seed=derive_seed(seed, key))
            cache[key] = (out.objectives["error"], out.objectives["params"])
        return cache[key]

    sampler = optuna.samplers.NSGAIISampler(population_size=int(budget["population"]),
                                            seed=seed)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    started, trials = time.monotonic(), 0
    while len(cache) < trained_budget and trials < 20 * trained_budget:
        study.optimize(objective, n_trials=1)
        trials += 1
    points = [(e, p) for e, p in cache.values()]
    return {"points": points, "trials": trials, "trained": len(cache),
            "seconds": time.monotonic() - started}


def fixed_hypervolume(points: list[tuple[float, float]]) -> float:
    """Hypervolume of (error, params) points in the fixed normalisation of `evo compare`."""
    from evo.moo.indicators import hypervolume
    from evo.report.compare import FIXED_SCALES

    return hypervolume(points, (FIXED_SCALES["error"], FIXED_SCALES["params"]))


def evo_points(run_dir: Path) -> list[tuple[float, float]]:
    """(error, params) of the front evo recorded."""
    from evo.run.front import front_of
    from evo.run.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        return [(ev.objectives["error"], ev.objectives["params"]) for _i, ev in front_of(store)]
    finally:
        store.close(checkpoint=False)


def main() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        sys.exit('optuna_baseline needs Optuna, a benchmark-only dependency: '
                 'pip install -e ".[bench]"')
    config = common.load_config("optuna_baseline")
    out, budget = Path(config["out"]), config["budget"]
    rows, fronts = [], []
    for seed in config["seeds"]:
        run_dir = common.search(budget, config["grammar"], config["strategy"], seed, out)
        trained = common.trained_count(run_dir)
        found = optuna_front(seed, trained, budget)
        evo_hv, optuna_hv = fixed_hypervolume(evo_points(run_dir)), \
            fixed_hypervolume(found["points"])
        rows.append({"seed": seed, "trained": trained, "optuna_trained": found["trained"],
                     "trials": found["trials"], "evo": evo_hv, "optuna": optuna_hv,
                     "ratio": evo_hv / optuna_hv if optuna_hv > 0 else float("inf"),
                     "seconds": found["seconds"]})
        fronts.append((seed, evo_points(run_dir), found["points"]))
        print(f"seed {seed}: {rows[-1]}", flush=True)
    draw_fronts(fronts, common.RESULTS / FIGURE)
    common.write(common.RESULTS / "optuna_baseline.md", table(config, rows))


FIGURE = "optuna_baseline/fronts.png"


def _non_dominated(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (error, params) points no other point beats in both, sorted by params."""
    kept = [p for p in points
            if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)]
    return sorted(set(kept), key=lambda p: p[1])


def draw_fronts(fronts: list[tuple[int, list, list]], path: Path) -> None:
    """One panel per seed: evo's recorded front and Optuna's non-dominated set, as staircases
    in the fixed normalisation's axes (params on a log scale from 1e2 to 1e6, error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(fronts), figsize=(4.2 * len(fronts), 3.6), sharey=True)
    for ax, (seed, evo, theirs) in zip(list(getattr(axes, "flat", [axes])), fronts, strict=True):
        for label, points, colour in (("evo (NSGA-II, grammar)", evo, "tab:blue"),
                                      ("Optuna NSGAIISampler", theirs, "tab:orange")):
            front = _non_dominated(points)
            ax.step([p[1] for p in front], [p[0] for p in front], where="post", color=colour,
                    marker="o", markersize=4, label=label)
        ax.set_xscale("log")
        ax.set_xlim(1e2, 1e6)
        ax.set_ylim(0, 1)
        ax.set_title(f"seed {seed}")
        ax.set_xlabel("parameters")
    axes_list = list(getattr(axes, "flat", [axes]))
    axes_list[0].set_ylabel("validation error")
    axes_list[0].legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(config: dict, rows: list[dict[str, Any]]) -> str:
    """The markdown page: one row per seed, then the ratio's median and spread."""
    import optuna

    budget = config["budget"]
    ratios = [r["ratio"] for r in rows]
    lines = [
        "# evo against Optuna's NSGAIISampler (cnn_topology space)",
        "",
        f"{budget['dataset']}, {budget['epochs']} epochs per candidate ({budget['workers']} "
        f"worker(s), {budget['threads']} torch thread(s) each) with evo's training "
        f"function and default recipe; evo: NSGA-II over cnn_topology, population "
        f"{budget['population']}, {budget['generations']} generations after the initial one; "
        f"Optuna {optuna.__version__}: NSGAIISampler(population_size={budget['population']}, "
        "seed=SEED) over the same layer types and ranges, define-by-run, stopped at the same "
        "number of trained (distinct) architectures. Hypervolume in the fixed normalisation: "
        "x = (log10 params - 2) / 4 clipped to [0, 1], y = validation error, reference (1, 1); "
        "evo scored on its recorded front, Optuna on the non-dominated set of all it trained.",
        f"Machine: {common.machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `.venv/bin/python benchmarks/experiments/optuna_baseline.py` (evo runs "
        "shared with paper_comparison).",
        "",
        "| seed | trained evaluations (evo / Optuna) | Optuna trials (repeats not retrained) "
        "| hypervolume evo | hypervolume Optuna | ratio evo / Optuna |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['trained']} / {r['optuna_trained']} | {r['trials']} "
                     f"| {r['evo']:.4f} | {r['optuna']:.4f} | {r['ratio']:.3f} |")
    lines += ["", f"Ratio evo / Optuna: median {statistics.median(ratios):.3f}, min-max "
              f"{min(ratios):.3f} - {max(ratios):.3f} over {len(ratios)} seeds "
              "(above 1: evo's front dominates more of the normalised square).", "",
              f"![evo's front and Optuna's non-dominated set per seed]({FIGURE})", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
