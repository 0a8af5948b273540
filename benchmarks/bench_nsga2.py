"""Benchmark evo.moo.nsga2 against pymoo 0.6.2's NSGA2 on ZDT1-3, and time `survive`.

Both algorithms run in this process with the same settings: real-coded, 30 variables, population
100, 25,000 evaluations, SBX (eta 15, probability 0.9 per pair, 0.5 per variable) and polynomial
mutation (eta 20, probability 1/30 per variable), over the same fixed seeds. The table gives the
mean and sample standard deviation of the final population's hypervolume against (1.1, 1.1) and
the ratio ours / pymoo. SBX and polynomial mutation live here, not in the product: the search
varies grammar genomes, not real vectors.

Run: ``.venv/bin/python benchmarks/bench_nsga2.py`` (prints Markdown tables; about a few
minutes on two cores). ``--seeds 2`` gives a quick smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import moocore
import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.optimize import minimize
from pymoo.problems import get_problem

from evo.moo.nsga2 import crowded_tournament, rank_and_crowding, survive

N_VAR = 30
POP_SIZE = 100
EVALUATIONS = 25_000
SBX_ETA, SBX_PROB, SBX_PROB_VAR = 15.0, 0.9, 0.5
PM_ETA, PM_PROB_VAR = 20.0, 1.0 / N_VAR
HV_REFERENCE = np.array([1.1, 1.1])
SEEDS = tuple(range(1, 11))

Objectives = Callable[[np.ndarray], np.ndarray]


def _zdt_g(X: np.ndarray) -> np.ndarray:
    return 1.0 + 9.0 * X[:, 1:].sum(axis=1) / (X.shape[1] - 1)


def zdt1(X: np.ndarray) -> np.ndarray:
    f1, g = X[:, 0], _zdt_g(X)
    return np.column_stack([f1, g * (1.0 - np.sqrt(f1 / g))])


def zdt2(X: np.ndarray) -> np.ndarray:
    f1, g = X[:, 0], _zdt_g(X)
    return np.column_stack([f1, g * (1.0 - (f1 / g) ** 2)])


def zdt3(X: np.ndarray) -> np.ndarray:
    f1, g = X[:, 0], _zdt_g(X)
    return np.column_stack([f1, g * (1.0 - np.sqrt(f1 / g) - (f1 / g) * np.sin(10.0 * np.pi * f1))])


PROBLEMS: dict[str, Objectives] = {"zdt1": zdt1, "zdt2": zdt2, "zdt3": zdt3}


def sbx(parents: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bounded simulated binary crossover (Deb and Agrawal) on consecutive pairs, bounds [0, 1]."""
    p1, p2 = parents[0::2], parents[1::2]
    n_pairs, n_var = p1.shape
    cross = (rng.random((n_pairs, 1)) < SBX_PROB) & (rng.random((n_pairs, n_var)) < SBX_PROB_VAR)
    cross &= np.abs(p1 - p2) > 1e-14
    y1, y2 = np.minimum(p1, p2), np.maximum(p1, p2)
    delta = np.where(cross, y2 - y1, 1.0)
    u = rng.random((n_pairs, n_var))

    def spread(beta: np.ndarray) -> np.ndarray:
        alpha = 2.0 - beta ** -(SBX_ETA + 1.0)
        low = u <= 1.0 / alpha
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(
                low,
                (u * alpha) ** (1.0 / (SBX_ETA + 1.0)),
                (1.0 / (2.0 - u * alpha)) ** (1.0 / (SBX_ETA + 1.0)),
            )

    c1 = 0.5 * ((y1 + y2) - spread(1.0 + 2.0 * y1 / delta) * delta)
    c2 = 0.5 * ((y1 + y2) + spread(1.0 + 2.0 * (1.0 - y2) / delta) * delta)
    c1, c2 = np.clip(c1, 0.0, 1.0), np.clip(c2, 0.0, 1.0)
    swap = rng.random((n_pairs, n_var)) < 0.5
    child1 = np.where(cross, np.where(swap, c2, c1), p1)
    child2 = np.where(cross, np.where(swap, c1, c2), p2)
    children = np.empty_like(parents)
    children[0::2], children[1::2] = child1, child2
    return children


def polynomial_mutation(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bounded polynomial mutation (Deb and Goyal), each variable with probability 1/n."""
    mutate = rng.random(X.shape) < PM_PROB_VAR
    u = rng.random(X.shape)
    power = 1.0 / (PM_ETA + 1.0)
    low = u < 0.5
    lower_step = (2.0 * u + (1.0 - 2.0 * u) * (1.0 - X) ** (PM_ETA + 1.0)) ** power - 1.0
    upper_step = 1.0 - (2.0 * (1.0 - u) + 2.0 * (u - 0.5) * X ** (PM_ETA + 1.0)) ** power
    step = np.where(low, lower_step, upper_step)
    return np.where(mutate, np.clip(X + step, 0.0, 1.0), X)


def run_ours(objectives: Objectives, seed: int) -> np.ndarray:
    """Final population objectives of evo.moo.nsga2 selection driving SBX + PM."""
    rng = np.random.default_rng(seed)
    X = rng.random((POP_SIZE, N_VAR))
    F = objectives(X)
    evaluations = POP_SIZE
    while evaluations < EVALUATIONS:
        ranks, crowding = rank_and_crowding(F)
        parents = crowded_tournament(ranks, crowding, POP_SIZE, rng)
        children = polynomial_mutation(sbx(X[parents], rng), rng)
        X = np.vstack([X, children])
        F = np.vstack([F, objectives(children)])
        evaluations += len(children)
        keep = survive(F, POP_SIZE, rng)
        X, F = X[keep], F[keep]
    return F


def run_pymoo(name: str, seed: int) -> np.ndarray:
    """Final population objectives of pymoo's NSGA2 with the same operators and budget."""
    algorithm = NSGA2(
        pop_size=POP_SIZE,
        crossover=SBX(eta=SBX_ETA, prob=SBX_PROB, prob_var=SBX_PROB_VAR),
        mutation=PM(eta=PM_ETA, prob=1.0, prob_var=PM_PROB_VAR),
    )
    result = minimize(get_problem(name, n_var=N_VAR), algorithm, ("n_eval", EVALUATIONS), seed=seed)
    return result.algorithm.pop.get("F")


def check_problems_match_pymoo() -> None:
    """Our ZDT definitions must equal pymoo's, or the comparison compares different problems."""
    X = np.random.default_rng(0).random((200, N_VAR))
    for name, objectives in PROBLEMS.items():
        np.testing.assert_allclose(objectives(X), get_problem(name, n_var=N_VAR).evaluate(X))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def bench_hypervolume(seeds: tuple[int, ...]) -> None:
    print(
        f"### Hypervolume, reference (1.1, 1.1), {len(seeds)} seeds {seeds[0]}..{seeds[-1]}\n\n"
        "| problem | ours mean | ours std | pymoo mean | pymoo std | ratio ours/pymoo "
        "| ours s/run | pymoo s/run |\n|---|---|---|---|---|---|---|---|"
    )
    for name, objectives in PROBLEMS.items():
        ours, theirs, ours_s, theirs_s = [], [], [], []
        for seed in seeds:
            start = time.perf_counter()
            ours.append(moocore.hypervolume(run_ours(objectives, seed), ref=HV_REFERENCE))
            ours_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            theirs.append(moocore.hypervolume(run_pymoo(name, seed), ref=HV_REFERENCE))
            theirs_s.append(time.perf_counter() - start)
        (om, osd), (pm, psd) = mean_std(ours), mean_std(theirs)
        print(
            f"| {name.upper()} | {om:.4f} | {osd:.4f} | {pm:.4f} | {psd:.4f} | {om / pm:.4f} "
            f"| {statistics.median(ours_s):.2f} | {statistics.median(theirs_s):.2f} |"
        )


def timings(call: Callable[[], object], repeats: int) -> list[float]:
    call()  # warm caches and lazy imports outside the measurement
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1e3)
    return out


def bench_survive(repeats_small: int, repeats_large: int) -> None:
    print(
        "\n### `survive` time, keep half of uniform random points (median and min-max of repeats)"
        "\n\n| points | objectives | ours ms | ours min-max ms | pymoo RankAndCrowding ms "
        "| pymoo min-max ms | ratio ours/pymoo |\n|---|---|---|---|---|---|---|"
    )
    for n_points, repeats in ((1_000, repeats_small), (10_000, repeats_large)):
        for n_obj in (2, 3):
            F = np.random.default_rng(n_points + n_obj).random((n_points, n_obj))
            keep = n_points // 2
            ours = timings(
                lambda F=F, keep=keep: survive(F, keep, np.random.default_rng(0)), repeats
            )
            pop = Population.new("F", F)
            problem = Problem(n_var=1, n_obj=n_obj)
            survival = RankAndCrowding()
            theirs = timings(
                lambda pop=pop, problem=problem, survival=survival, keep=keep: survival.do(
                    problem, pop, n_survive=keep, random_state=np.random.default_rng(0)
                ),
                repeats,
            )
            om, pm = statistics.median(ours), statistics.median(theirs)
            print(
                f"| {n_points:,} | {n_obj} | {om:.2f} | {min(ours):.2f}-{max(ours):.2f} "
                f"| {pm:.2f} | {min(theirs):.2f}-{max(theirs):.2f} | {om / pm:.2f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="first N fixed seeds")
    parser.add_argument("--skip-hv", action="store_true", help="only time survive")
    args = parser.parse_args()
    check_problems_match_pymoo()
    if not args.skip_hv:
        bench_hypervolume(SEEDS[: args.seeds])
    bench_survive(repeats_small=20, repeats_large=5)


if __name__ == "__main__":
    main()
