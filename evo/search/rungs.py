"""Successive halving, the pure part: the rung schedule, a candidate's epochs at a rung, the
promotion rule, and the plan of one generation's rungs computed from stored rung results.

Why pure: the promotion decisions are recomputed from run.db on every ``ask``, after every
result and after every resume, so they must be a function of stored data alone (no arrival
order, no executor, no clock); the same rows always give the same plan. The driver side (what
is stored when) is :mod:`evo.search.halving`.

The rule (docs/running-a-search.md, "Successive halving"): a generation's new candidates all
train to the first rung; at each rung's barrier (every result of the rung returned) the best
``ceil(n / eta)`` (at least one) of the ``n`` candidates that entered the rung continue, chosen
among those whose rung result is ok by non-dominated rank, then crowding distance (larger
first), then member id, on the run's objectives known at that rung (error at that rung,
params, MACs; ONNX size and latencies are measured only after the last rung). Candidates are
compared only within their generation's batch, never with earlier generations' results at the
same rung: each generation then costs the same, predictable compute, and NSGA-II survival,
which does compare across generations, sees only full-budget results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from evo.run.rungs import RungResult
from evo.run.status import Status


def schedule(min_epochs: int, eta: int, epochs: int) -> tuple[int, ...]:
    """Rung epochs ``min_epochs * eta**k`` below ``epochs``, then ``epochs`` itself:
    ``(1, 3, 5)`` for ``min_epochs=1, eta=3, epochs=5``; one rung when ``min_epochs >=
    epochs`` (full fidelity)."""
    rungs = []
    current = min_epochs
    while current < epochs:
        rungs.append(current)
        current *= eta
    return (*rungs, epochs)


def scaled_epochs(rung_epochs: int | None, full: int, epochs: int) -> int:
    """A candidate's epochs at a rung of ``rung_epochs`` (in units of ``--epochs``; ``None``:
    the last rung): scaled by its own full budget ``full`` (``--epochs`` times its recipe's
    epochs multiplier, evo.net.budget.TrainBudget.epochs_for), rounded, at least 1 and at
    most ``full``. The last rung is always the full budget, so a candidate promoted to it
    equals one trained straight through."""
    if rung_epochs is None or rung_epochs >= epochs:
        return full
    return min(full, max(1, round(rung_epochs * full / epochs)))


@dataclass(frozen=True)
class Entry:
    """A candidate at a rung: its key, member id (ties), result status and objective values."""

    key: str
    member: int
    ok: bool
    values: Mapping[str, float]


def ranked(entries: Sequence[Entry], objectives: Sequence[str]) -> list[str]:
    """Keys of the ok entries, best first: non-dominated rank, then crowding distance (larger
    first), then member id, on the objectives every ok entry has (error at least)."""
    ok = sorted((e for e in entries if e.ok), key=lambda e: e.member)
    if not ok:
        return []
    # Imported here, not at the top: evaluation workers import this module (scaled_epochs)
    # and must not need moocore, which a GPU machine may lack (benchmarks/gpu_workers.py).
    from evo.moo import nsga2

    names = [n for n in objectives if all(n in e.values for e in ok)] or ["error"]
    F = np.asarray([[float(e.values.get(n, 1.0)) for n in names] for e in ok])
    ranks, crowding = nsga2.rank_and_crowding(F)
    order = sorted(range(len(ok)), key=lambda i: (int(ranks[i]), -float(crowding[i]),
                                                  ok[i].member))
    return [ok[i].key for i in order]


def quota(entered: int, eta: int) -> int:
    """How many of the ``entered`` candidates of a rung continue: ``ceil(n / eta)``, at least
    one (fewer when fewer ended their rung ok)."""
    return max(1, math.ceil(entered / eta))


@dataclass(frozen=True)
class Decision:
    """What a barrier settled for one key: ``final`` (the result at ``rung`` is its outcome:
    the last rung, or a result that did not end ok) or ``stopped`` (ok, not promoted)."""

    key: str
    rung: int
    kind: str
    place: int = 0  # 1-based place among the rung's ok results (stopped ones)
    entered: int = 0  # candidates that entered the rung
    promoted: int = 0  # of them, promoted


@dataclass(frozen=True)
class Barrier:
    """A rung whose every result is in: how many entered, and how many continue."""

    rung: int
    entered: int
    promoted: int


@dataclass
class Plan:
    """Where a generation's halving stands: the rung being trained (``None``: every rung
    is settled), the ``(key, rung)`` results still missing (``jobs``: to train, ``copies``:
    the candidate's epochs at the rung are those it already has, so the previous result
    stands for it), and the decisions and barriers passed so far."""

    rung: int | None = None
    jobs: list[tuple[str, int]] = field(default_factory=list)
    copies: list[tuple[str, int]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    barriers: list[Barrier] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.rung is None


def plan(participants: Sequence[tuple[str, int]], results: Mapping[tuple[str, int], RungResult],
         rungs: Sequence[int], eta: int, objectives: Sequence[str]) -> Plan:
    """The plan of one generation from its ``participants`` (``(key, member id)`` of the
    candidates that entered the first rung) and the stored rung ``results``."""
    out = Plan()
    last = len(rungs) - 1
    alive = list(participants)
    for rung in range(len(rungs)):
        missing = [(key, rung) for key, _m in alive if (key, rung) not in results]
        if missing:
            out.rung = rung
            for key, r in missing:
                (out.copies if _is_copy(results.get((key, r - 1)), rungs[r], rungs[-1])
                 else out.jobs).append((key, r))
            return out
        entries = [Entry(key, member, results[key, rung].status == Status.OK,
                         results[key, rung].objectives) for key, member in alive]
        final = [e.key for e in entries if not e.ok or rung == last]
        out.decisions += [Decision(key, rung, "final") for key in final]
        if rung == last:
            out.barriers.append(Barrier(rung, len(entries), 0))
            break
        order = ranked(entries, objectives)
        chosen = order[:quota(len(entries), eta)]
        for place, key in enumerate(order[len(chosen):], start=len(chosen) + 1):
            out.decisions.append(Decision(key, rung, "stopped", place, len(entries),
                                          len(chosen)))
        out.barriers.append(Barrier(rung, len(entries), len(chosen)))
        alive = [(key, member) for key, member in alive if key in chosen]
        if not alive:
            break
    return out


def _is_copy(previous: RungResult | None, rung_epochs: int, epochs: int) -> bool:
    """True when the candidate's epochs at this rung are those it already has at the
    previous one (a small budget: ``--epochs 2`` at rungs 1, 3 gives 1 and 2; a recipe
    multiplier of 0.25 gives 1, 1, 1), so its previous result is its result here."""
    if previous is None:
        return False
    full = int(previous.metrics.get("epochs_planned", epochs))
    last = rung_epochs >= epochs
    return scaled_epochs(None if last else rung_epochs, full, epochs) <= previous.epochs
