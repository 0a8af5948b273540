"""How a run got where it is, generation by generation: the front each generation kept, its
hypervolume, and the training compute its evaluations spent.

Why here: these are reads of what the search stored (the ``generations`` rows, the individuals
and their evaluations' metrics) that a report, a comparison of runs or a script all need the
same way; computed once, with the search's own rules for the front (feasible rank-0 survivors)
and for what cost a training (an evaluation this run trained itself, not a cache hit or a
warm-start copy).
"""

from __future__ import annotations

from dataclasses import dataclass

from evo.run.store import Evaluation, RunStore


@dataclass(frozen=True)
class GenerationFront:
    """The front a generation kept: its feasible rank-0 survivors, one per network, with the
    hypervolume stored for that generation (``None`` when no survivor was feasible)."""

    generation: int
    hypervolume: float | None
    members: tuple[tuple[int, Evaluation], ...]  # (member id, its network's evaluation)


@dataclass(frozen=True)
class GenerationCompute:
    """What the evaluations born in one generation cost (only the ones this run trained).

    ``train_seconds`` is the training loop's wall time as each evaluation recorded it
    (``metrics.train_seconds``); ``seconds`` the whole evaluation (data, training, scoring,
    measuring); ``epochs`` the epochs actually run (a timeout stops a training early)."""

    generation: int
    trained: int
    epochs: int
    train_seconds: float
    seconds: float


def generation_fronts(store: RunStore) -> list[GenerationFront]:
    """The front of every stored generation, oldest first."""
    last = store.last_generation()
    if last is None:
        return []
    evaluations = store.evaluations()
    fronts = []
    for number in range(last + 1):
        gen = store.generation(number)
        if gen is None:
            continue
        members, seen = [], set()
        for ind, rank, violation in zip(store.individuals(gen["population"]), gen["ranks"],
                                        gen["violation"], strict=True):
            ev = evaluations.get(ind.eval_key or "")
            if rank == 0 and violation == 0 and ev is not None and ev.key not in seen:
                seen.add(ev.key)
                members.append((ind.id, ev))
        fronts.append(GenerationFront(number, gen["hypervolume"], tuple(members)))
    return fronts


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def training_compute(store: RunStore) -> list[GenerationCompute]:
    """Training compute per generation (every generation that bred individuals, oldest
    first): evaluations count in the generation of the individual that ran them."""
    born = {ind.id: ind.generation for ind in store.individuals()}
    totals: dict[int, list[float]] = {generation: [0, 0, 0.0, 0.0]
                                      for generation in sorted(set(born.values()))}
    for ev in store.evaluations().values():
        generation = born.get(ev.individual_id)
        if generation is None or ev.source != "trained":
            continue
        epochs = ev.metrics.get("epochs_run")
        train_seconds = ev.metrics.get("train_seconds")
        if epochs is None and train_seconds is None:
            continue  # ruled out before training (a constraint), or failed before it started
        total = totals[generation]
        total[0] += 1
        total[1] += _number(epochs)
        total[2] += _number(train_seconds)
        total[3] += _number(ev.seconds)
    return [GenerationCompute(generation, int(t[0]), int(t[1]), t[2], t[3])
            for generation, t in totals.items()]
