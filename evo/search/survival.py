"""Survival: NSGA-II over the members of a completed batch and the population before it, and the
hypervolume of the survivors.

Why members carry a violation: NSGA-II ranks infeasible members below every feasible one, by how
far they miss. A member whose genome gave no network, whose training failed or that lacks an
objective must never outrank a real one, so each gets a violation far beyond any constraint miss
(``INVALID_VIOLATION`` below ``FAILED_VIOLATION`` below every constraint). A candidate whose
training was stopped (successive halving did not promote it, or it was no better than chance)
ranks below every full-budget member but above failures: ``STOPPED_VIOLATION`` plus a step per
rung it fell short of the last plus its error at the rung it reached, so among themselves the
stopped rank by how far they got, then by error (parents for the next batch when too few members
finished). Members are sorted by id before survival, so the order results arrived in (serial or
parallel) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evo.moo import nsga2
from evo.moo.indicators import ObjectiveScale, hypervolume
from evo.moo.objectives import Constraint
from evo.run.status import Status
from evo.run.store import Evaluation, Individual

# Violation levels that rank below every constraint miss (see nsga2.rank_and_crowding).
INVALID_VIOLATION = 1e9
FAILED_VIOLATION = 1e6
STOPPED_VIOLATION = 1e5
STOPPED_RUNG_STEP = 1e3  # per rung short of the last (fewer than 100 rungs: below failures)


@dataclass
class Member:
    """An individual plus what survival needs: objective vector and violation."""

    ind: Individual
    values: dict[str, float]
    violation: float
    status: Status


def member(ind: Individual, evaluations: dict[str, Evaluation], objectives: tuple[str, ...],
           constraints: tuple[Constraint, ...]) -> Member:
    """One individual as survival sees it (its key's evaluation must be stored)."""
    if ind.eval_key is None:
        return Member(ind, {}, INVALID_VIOLATION, Status.INVALID)
    ev = evaluations.get(ind.eval_key)
    if ev is None:
        raise RuntimeError(f"member {ind.id} has no evaluation yet")
    if ev.status == Status.FAILED:
        return Member(ind, ev.objectives, FAILED_VIOLATION, Status.FAILED)
    if ev.status == Status.STOPPED:
        short = int(ev.metrics.get("rungs", 1)) - 1 - int(ev.metrics.get("rung", 0))
        error = min(1.0, max(0.0, float(ev.objectives.get("error", 1.0))))
        return Member(ind, ev.objectives, STOPPED_VIOLATION + STOPPED_RUNG_STEP * max(0, short)
                      + error, Status.STOPPED)
    values = dict(ev.objectives)
    if ev.status == Status.OK and any(name not in values for name in objectives):
        return Member(ind, values, FAILED_VIOLATION, Status.FAILED)  # an objective is missing
    violation = sum(c.violation(values.get(c.name)) for c in constraints)
    if ev.status == Status.SKIPPED and violation == 0:
        violation = FAILED_VIOLATION  # skipped for a reason the constraints no longer see
    return Member(ind, values, violation, Status.OK if violation == 0 else Status.INFEASIBLE)


def matrix(members: list[Member], objectives: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Objective matrix (zeros for infeasible rows) and violation vector."""
    F = np.zeros((len(members), len(objectives)))
    for i, m in enumerate(members):
        if m.violation == 0:
            F[i] = [float(m.values[name]) for name in objectives]
    return F, np.asarray([m.violation for m in members])


@dataclass(frozen=True)
class Survivors:
    """The next population with its ranks, crowding distances, violations and hypervolume."""

    members: list[Member]
    ranks: np.ndarray
    crowding: np.ndarray
    violation: np.ndarray
    hypervolume: float

    @property
    def front(self) -> int:
        """Feasible members of rank 0."""
        return int(((self.ranks == 0) & (self.violation == 0)).sum())


def survive(pool: list[Member], population: int, rng: np.random.Generator,
            objectives: tuple[str, ...], scales: tuple[ObjectiveScale, ...]) -> Survivors:
    """NSGA-II survival of ``population`` members out of ``pool`` (sorted by id here)."""
    members = sorted(pool, key=lambda m: m.ind.id)
    F, violation = matrix(members, objectives)
    keep = nsga2.survive(F, min(population, len(members)), rng, violation)
    survivors = [members[i] for i in keep]
    F_s, v_s = matrix(survivors, objectives)
    ranks, crowding = nsga2.rank_and_crowding(F_s, v_s)
    feasible = v_s == 0
    hv = hypervolume(F_s[feasible], scales) if feasible.any() else 0.0
    return Survivors(survivors, ranks, crowding, v_s, hv)
