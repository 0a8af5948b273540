"""The Pareto front a run recorded: a read-only query every command that shows or uses the front
asks (``evo front``, ``evo runs``, retrain, export, bench, the plot).

Why it lives with the run and not with the search: it reads what the search stored (the last
generation's ranks and violations, the evaluations) and nothing else, so a report or a
post-search step can ask it without importing the search that wrote the run.
"""

from __future__ import annotations

from evo.config import SearchConfig
from evo.run.store import Evaluation, Individual, RunStore


def front_of(store: RunStore) -> list[tuple[Individual, Evaluation]]:
    """The Pareto front recorded in a run's last generation (feasible rank-0 members), by the
    searched objectives in order, one row per network."""
    last = store.last_generation()
    if last is None:
        return []
    gen = store.generation(last)
    assert gen is not None
    evaluations = store.evaluations()
    members = []
    for ind, rank, violation in zip(store.individuals(gen["population"]), gen["ranks"],
                                    gen["violation"], strict=True):
        if rank == 0 and violation == 0 and ind.eval_key in evaluations:
            members.append((ind, evaluations[ind.eval_key]))
    objectives = SearchConfig.from_dict(store.meta("config")).objectives
    members.sort(key=lambda m: tuple(m[1].objectives.get(o, 0.0) for o in objectives))
    # One row per network: individuals that share an evaluation key are the same member.
    seen, unique = set(), []
    for ind, ev in members:
        if ev.key not in seen:
            seen.add(ev.key)
            unique.append((ind, ev))
    return unique
