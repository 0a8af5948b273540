"""The ask/tell search's steps with successive halving (``--fidelity halving``), a part of
:class:`evo.search.engine.Search`.

Why a part of its own: the engine keeps the generational loop (batches, survival, measurement)
readable at a glance; these steps are what changes when a batch is trained in rungs. The first
ask of a batch records who enters the first rung (after warm-start copies), every ask and tell
applies what the stored rung results decide (:meth:`Halving.advance`), counts the candidates
settled and announces each rung barrier once (:class:`RungDone`), and ``tell`` stores one rung
result. The rung bookkeeping itself lives in :mod:`evo.search.halving` and
:mod:`evo.search.rungs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evo.config import SearchConfig
from evo.run.counts import Counts, outcome
from evo.run.store import Evaluation, Individual, RunStore
from evo.search.contract import Event, Job, Result, ResultArrived, RungDone
from evo.search.failures import Retries
from evo.search.halving import Halving


class HalvingSteps:
    """Successive-halving steps of the search (mixed into ``Search``)."""

    store: RunStore
    counts: Counts
    retries: Retries
    halving: Halving | None
    _barriers: set[tuple[int, int]]  # rung barriers already announced

    if TYPE_CHECKING:  # what Search provides
        generation: int
        pending: list[int]

        def emit(self, event: Event) -> None: ...
        def _settle(self, ind: Individual, ev: Evaluation | None) -> None: ...
        def _text_for(self, ind: Individual) -> str: ...
        def _warm_copy(self, ind: Individual) -> bool: ...
        def _finish_batch_if_complete(self) -> None: ...

    def _start_halving(self, config: SearchConfig) -> None:
        """Bind the rungs of a ``--fidelity halving`` run; a resumed run does not announce
        again the barriers its pending batch passed before."""
        self.halving = Halving(self.store, config) if config.fidelity == "halving" else None
        self._barriers = set()
        if self.halving is not None and self.pending:
            batch = self.generation + 1
            self._barriers = {(batch, b.rung) for b in self.halving.plan(batch).barriers}

    def _rung_jobs(self, ids: list[int]) -> list[Job]:
        """The jobs of the pending batch's current rung (its first ask records who enters
        the first rung, after the warm-start copies)."""
        assert self.halving is not None
        batch = self.store.individuals(ids)
        generation = batch[0].generation
        if self.halving.participants(generation) is None:
            known = self.store.evaluations()
            for ind in batch:
                if ind.eval_key and ind.eval_key not in known and self._warm_copy(ind):
                    known = self.store.evaluations()
            self.halving.begin(batch)
        self._advance(generation)
        known = self.store.evaluations()
        for ind in batch:
            if ind.eval_key in known:
                self._settle(ind, known[ind.eval_key])
        by_id = {ind.id: ind for ind in batch}
        return self.halving.jobs(generation, lambda member: self._text_for(by_id[member]),
                                 self.retries.exhausted)

    def _advance(self, generation: int) -> None:
        """Apply the decisions of the stored rung results; count the candidates they settle
        (an owner outside this batch too: a stopped candidate continued) and announce each
        barrier once."""
        assert self.halving is not None
        current, written = self.halving.advance(generation)
        batch = self.store.individuals(self.pending)
        for old, new in written:
            self._recount(batch, old, new)
        rungs = self.halving.rungs
        for barrier in current.barriers:
            if (generation, barrier.rung) not in self._barriers:
                self._barriers.add((generation, barrier.rung))
                self.emit(RungDone(generation=generation, rung=barrier.rung, rungs=len(rungs),
                                   epochs=rungs[barrier.rung], entered=barrier.entered,
                                   promoted=barrier.promoted, counts=self.counts))

    def _recount(self, batch: list[Individual], old: Evaluation | None,
                 new: Evaluation) -> None:
        """Count a key's new evaluation: its individuals in the batch, and its owner when
        outside it (a candidate stopped in an earlier generation and continued in this one
        moves from stopped to trained or failed)."""
        for ind in batch:
            if ind.eval_key == new.key:
                self._settle(ind, new)
        if all(ind.id != new.individual_id for ind in batch):
            owner = self.store.individual(new.individual_id)
            if owner is not None:
                self.counts = self.counts.moved(outcome(owner, old), outcome(owner, new))

    def _tell_rung(self, result: Result) -> None:
        """Store one rung result, then what it decides."""
        assert self.halving is not None
        generation = self.generation + 1
        if not self.halving.expects(generation, result.key):
            return  # a duplicate of a stored result
        self.halving.record(generation, result)
        self._advance(generation)
        self.emit(ResultArrived(result=result, counts=self.counts))
        self._finish_batch_if_complete()
