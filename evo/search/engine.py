"""The generational search as an ask/tell object over the run store.

``ask()`` creates the next batch of individuals (initial population, offspring, or random
samples), commits them together with the generator state *before* returning their jobs, and
``tell()`` records each result the moment it arrives. When every evaluation key of the batch has
a result, NSGA-II survival runs and the generation is committed. Because all state lives in
``run.db`` and every random draw comes from the stored generator, a run killed at any instant and
reopened with :meth:`Search.open` continues exactly as if it had never stopped, and results may
arrive in any order (survival sorts by member id), so serial and parallel executors agree. With
``--fidelity halving`` a batch trains in rungs (:mod:`evo.search.halving_steps`): ``ask()``
returns the jobs of the current rung; the batch is complete when its last rung is settled.

The search knows nothing of networks: a :class:`evo.search.contract.Problem` turns phenotypes
into evaluation keys and provides the (picklable) evaluator, so the loop can be driven by a
synthetic test problem in microseconds or by real training. Breeding
(:mod:`evo.search.breeding`), survival (:mod:`evo.search.survival`) and what a run starts from
(:mod:`evo.search.start`) live in modules of their own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evo.config import SearchConfig
from evo.ge.grammar import Grammar, parse_grammar
from evo.moo.indicators import default_scale
from evo.moo.objectives import Constraint
from evo.run.compute import add_compute, compute_spent
from evo.run.counts import Counts, outcome, outcomes_of
from evo.run.front import front_of
from evo.run.rungs import sweep_states
from evo.run.store import Evaluation, Individual, RunStore
from evo.search.breeding import Breeder, Child
from evo.search.contract import (
    BatchStarted,
    Event,
    GenerationDone,
    Job,
    Listener,
    MeasuringProblem,
    MemberMeasured,
    Notice,
    PendingBatch,
    Problem,
    ProblemFactory,
    Result,
    ResultArrived,
    SearchStarted,
    Status,
    derive_seed,
)
from evo.search.failures import Retries, write_files_or_retry
from evo.search.halving_steps import HalvingSteps
from evo.search.start import (
    check_same_problem,
    new_run,
    resumed_config,
    sweep_orphans,
    write_config_toml,
)
from evo.search.survival import member, survive
from evo.search.warmstart import copy_evaluation, open_warm_start


class Search(HalvingSteps):
    """A run in progress; build with :meth:`create` or :meth:`open`, drive with ask/tell."""

    def __init__(self, store: RunStore, config: SearchConfig, problem: Problem,
                 grammar: Grammar) -> None:
        self.store = store
        self.config = config
        self.problem = problem
        self.grammar = grammar
        self.objectives = config.objective_specs
        self.constraints: tuple[Constraint, ...] = config.constraint_specs
        self.scales = tuple(default_scale(name) for name in self.objectives)
        self.breeder = Breeder(grammar, problem, config)
        self.started = time.monotonic()
        self.listeners: list[Listener] = []
        self.retries = Retries(config.task_retries)  # keys the machine failed, this process
        # Outcomes so far (sent with every event); those of the pending batch are kept by
        # member id, because a result or a measurement can still change them.
        known = outcomes_of(store)
        self.counts = Counts.of(known.values())
        self._batch_outcomes = {i: known[i] for i in self.pending if i in known}
        self.warm: RunStore | None = None
        if config.warm_start:
            self.warm = open_warm_start(Path(config.warm_start), problem.describe())
        self._start_halving(config)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, config: SearchConfig, problem: Problem) -> Search:
        """Start a new run in ``run_dir``; everything that defines it goes into run.db."""
        meta, state, grammar = new_run(config, problem)
        store = RunStore.create(run_dir, meta, state)
        try:
            search = cls(store, config, problem, grammar)
            write_config_toml(run_dir, config)
        except BaseException:
            store.close()
            raise
        return search

    @classmethod
    def open(cls, run_dir: Path, changes: Mapping[str, Any] | None,
             problem_factory: ProblemFactory) -> Search:
        """Reopen a run to continue it, with the resume-safe ``changes`` (workers, quiet,
        stopping limits, ...; :func:`evo.search.start.resumed_config`); anything else that
        differs from the stored configuration is refused by name."""
        store = RunStore.open(run_dir, write=True)
        try:
            config = resumed_config(run_dir, SearchConfig.from_dict(store.meta("config")),
                                    changes)
            grammar = parse_grammar(store.meta("grammar_text"), store.meta("grammar_source"))
            problem = problem_factory(config, run_dir)
            check_same_problem(run_dir, problem, store.meta("problem"))
            search = cls(store, config, problem, grammar)
            with store.transaction() as conn:
                store.set_meta(conn, "status", "running")
                store.set_meta(conn, "config", config.to_dict())
            write_config_toml(run_dir, config)
            sweep_orphans(store)
            sweep_states(store)
        except BaseException:
            store.close()
            raise
        return search

    def close(self, status: str | None = None) -> None:
        if status is not None:
            with self.store.transaction() as conn:
                self.store.set_meta(conn, "status", status)
                self.store.set_meta(conn, "updated", time.time())
        if self.warm is not None:
            self.warm.close(checkpoint=False)
        self.store.close()

    # -- events ----------------------------------------------------------------------------
    def emit(self, event: Event) -> None:
        """Send one event to every listener (the loop's start/done and the evaluations'
        progress events too)."""
        for listener in self.listeners:
            listener(event)

    def _settle(self, ind: Individual, ev: Evaluation | None) -> None:
        """Count (or recount) one individual of the pending batch with its evaluation."""
        new = outcome(ind, ev)
        old = self._batch_outcomes.get(ind.id)
        if new != old:
            self.counts = self.counts.moved(old, new)
            if new is not None:
                self._batch_outcomes[ind.id] = new

    def started_event(self) -> SearchStarted:
        """What a progress view needs when it starts watching (a fresh or resumed run): the
        plan, the counts, the last generation's front size and hypervolume, and the
        unfinished batch."""
        front = hypervolume = batch = None
        gen = self.store.generation(self.generation) if self.generation >= 0 else None
        if gen is not None:
            hypervolume = gen["hypervolume"]
            front = sum(1 for r, v in zip(gen["ranks"], gen["violation"], strict=True)
                        if r == 0 and v == 0)
        pending = self.pending
        if pending:
            batch = PendingBatch(self.generation + 1, len(pending), len(self._batch_outcomes))
        return SearchStarted(run_dir=str(self.store.run_dir), config=self.config,
                             workers=self.config.workers, counts=self.counts,
                             generation=self.generation, front=front, hypervolume=hypervolume,
                             batch=batch, compute=compute_spent(self.store))

    # -- stopping --------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        """Generations completed after the initial population (-1 before it exists)."""
        last = self.store.last_generation()
        return -1 if last is None else last

    @property
    def pending(self) -> list[int]:
        return list(self.store.state("pending", []))

    @property
    def done(self) -> bool:
        if self.pending:
            return False
        return self.stop_reason() is not None

    def stop_reason(self) -> str | None:
        if self.generation >= self.config.generations:
            return f"{self.config.generations} generations done"
        if self.config.max_evals is not None and self.counts.evaluated >= \
                self.config.max_evals:
            return f"{self.config.max_evals} evaluations done"
        spent = compute_spent(self.store)["images_seen"] or 0
        if self.config.max_images is not None and spent >= self.config.max_images:
            return f"--max-images {self.config.max_images:,} reached ({spent:,} images seen)"
        if self.config.max_time is not None and \
                time.monotonic() - self.started >= self.config.max_time * 60:
            return f"time limit of {self.config.max_time} min reached"
        return None

    # -- ask -------------------------------------------------------------------------------
    def ask(self) -> list[Job]:
        """Jobs of the current batch, creating the next batch first when none is pending."""
        if self.pending:
            jobs = self._jobs_for(self.pending)
            if not jobs and any(self.retries.exhausted(ind.eval_key)
                                for ind in self.store.individuals(self.pending)):
                raise self.retries.stop(self.store.run_dir)  # nothing else left to evaluate
        else:
            if self.done:
                return []
            self._create_batch()
            jobs = self._jobs_for(self.pending)  # counts the batch's cache hits
            self.emit(BatchStarted(generation=self.generation + 1, size=len(self.pending),
                                   counts=self.counts))
        self._finish_batch_if_complete()
        return jobs

    def _jobs_for(self, ids: list[int]) -> list[Job]:
        if self.halving is not None:
            return self._rung_jobs(ids)
        known = self.store.evaluations()
        jobs, seen = [], set()
        for ind in self.store.individuals(ids):
            if ind.eval_key in known:
                self._settle(ind, known[ind.eval_key])
            if ind.eval_key is None or ind.eval_key in known or ind.eval_key in seen or \
                    self.retries.exhausted(ind.eval_key):
                continue
            if self._warm_copy(ind):
                continue
            seen.add(ind.eval_key)
            jobs.append(Job(ind.id, ind.eval_key, self._text_for(ind),
                            derive_seed(self.config.seed, ind.eval_key)))
        return jobs

    def _warm_copy(self, ind: Individual) -> bool:
        """Copy the warm-start run's result of ``ind``'s key (a cache hit), if it has one."""
        copied = None if self.warm is None else copy_evaluation(self.warm, self.store, ind)
        if copied is not None:
            self._settle(ind, copied)
        return copied is not None

    def _text_for(self, ind: Individual) -> str:
        described = self.problem.candidate(ind.phenotype or "")
        assert not isinstance(described, str)
        return described[1]

    def _rng(self) -> np.random.Generator:
        rng = np.random.default_rng()
        rng.bit_generator.state = self.store.state("rng")
        return rng

    def _breed(self, rng: np.random.Generator, generation: int) -> list[Child]:
        n = self.config.population
        if generation == 0:
            seeded: list[list[int]] = []
            if self.warm is not None and self.config.warm_start_front:
                seeded = [list(ind.genome) for ind, _ev in front_of(self.warm)]
            return self.breeder.initial(rng, n, seeded)
        if self.config.strategy == "random":
            return self.breeder.random(rng, n)
        gen = self.store.generation(self.generation)
        assert gen is not None
        return self.breeder.offspring(rng, n, self.store.individuals(gen["population"]),
                                      np.asarray(gen["ranks"]),
                                      np.asarray(gen["crowding"], dtype=float))

    def _create_batch(self) -> None:
        rng = self._rng()
        generation = self.generation + 1
        children = self._breed(rng, generation)
        with self.store.transaction() as conn:
            ids = [
                self.store.add_individual(
                    conn, generation=generation, origin=c.origin, genome=c.genome,
                    phenotype=c.phenotype, valid=c.valid, used_codons=c.used_codons,
                    depth=c.depth, nodes=c.nodes, parents=c.parents, eval_key=c.eval_key,
                    reason=c.reason)
                for c in children
            ]
            self.store.set_state(conn, "pending", ids)
            self.store.set_state(conn, "rng", rng.bit_generator.state)
        self._batch_outcomes = {}
        for ind_id, child in zip(ids, children, strict=True):
            if child.eval_key is None:
                self.counts = self.counts.moved(None, "invalid")
                self._batch_outcomes[ind_id] = "invalid"

    # -- tell ------------------------------------------------------------------------------
    def tell(self, result: Result) -> None:
        """Record one result at once (any order); completes the generation when it is the
        batch's last missing key."""
        result = write_files_or_retry(self.store.run_dir, result)  # before run.db names them
        settled = self.retries.settle(result)
        if settled is None:  # the machine failed, not the candidate: asked again later
            self.emit(Notice(text=self.retries.note(result)))
            return
        result = settled
        if self.halving is not None:
            self._tell_rung(result)
            return
        ev = Evaluation(
            key=result.key, individual_id=result.individual_id, status=result.status,
            reason=result.reason, objectives=dict(result.objectives),
            metrics=dict(result.metrics), device=result.device, threads=result.threads,
            seconds=result.seconds, weights=result.weights, source="trained")
        with self.store.transaction() as conn:
            if self.store.evaluation(ev.key) is None:  # a duplicate cost nothing new
                add_compute(self.store, conn, ev.metrics)
            self.store.add_evaluation(conn, ev)
        for ind in self.store.individuals(self.pending):
            if ind.eval_key == result.key:
                self._settle(ind, ev)
        self.emit(ResultArrived(result=result, counts=self.counts))
        self._finish_batch_if_complete()

    def _finish_batch_if_complete(self) -> None:
        pending = self.pending
        if not pending:
            return
        batch = self.store.individuals(pending)
        generation = batch[0].generation
        if (self.halving is not None and not self.halving.settled(generation)) or \
                not self.store.has_evaluations({ind.eval_key for ind in batch if ind.eval_key}):
            return  # cheap check on every tell; the full read happens once per generation
        evaluations = self._measure_batch(batch, self.store.evaluations())
        previous = self.store.generation(generation - 1) if generation > 0 else None
        pool_ids = (previous["population"] if previous else []) + pending
        pool = [member(ind, evaluations, self.objectives, self.constraints)
                for ind in self.store.individuals(pool_ids)]
        rng = self._rng()
        kept = survive(pool, self.config.population, rng, self.objectives, self.scales)
        earlier = {ind_key for ind_key, ev in evaluations.items()
                   if ev.individual_id not in pending or ev.source == "warm-start"}
        cache_hits = sum(1 for ind in batch if ind.eval_key in earlier)
        failures = sum(1 for ind in batch if ind.eval_key is None or
                       evaluations[ind.eval_key].status not in (Status.OK, Status.STOPPED))
        with self.store.transaction() as conn:
            self.store.add_generation(
                conn, generation, [m.ind.id for m in kept.members], kept.ranks.tolist(),
                kept.crowding.tolist(), kept.violation.tolist(), kept.hypervolume, len(batch),
                cache_hits, failures, rng.bit_generator.state)
            self.store.set_state(conn, "pending", [])
            self.store.set_state(conn, "rng", rng.bit_generator.state)
            self.store.set_meta(conn, "updated", time.time())
        self.store.checkpoint()  # a finished generation lives in run.db, not only in its -wal
        self._batch_outcomes = {}
        self.emit(GenerationDone(generation=generation, hypervolume=kept.hypervolume,
                                 front=kept.front, counts=self.counts))

    def _measure_batch(self, batch: list[Individual],
                       evaluations: dict[str, Evaluation]) -> dict[str, Evaluation]:
        """Let the problem measure what the batch's ok evaluations lack (every worker is idle
        now: the batch is complete and the next one is not asked yet); each result is
        committed at once, so a resumed run never measures it again."""
        if not isinstance(self.problem, MeasuringProblem):
            return evaluations
        needed = list(self.objectives) + [c.name for c in self.constraints]
        done: set[str] = set()
        for ind in batch:
            ev = evaluations.get(ind.eval_key or "")
            if ev is None or ev.key in done or ev.status != Status.OK or \
                    all(name in ev.objectives for name in needed):
                continue
            done.add(ev.key)
            measured = self.problem.measure(ev)
            with self.store.transaction() as conn:
                self.store.update_evaluation(
                    conn, ev.key, objectives=measured.objectives, metrics=measured.metrics,
                    status=Status.FAILED if measured.failure else None,
                    reason=measured.failure)
                for row in measured.measurements:
                    self.store.add_measurement(conn, individual_id=ev.individual_id,
                                               source="local", **row)
            updated = self.store.evaluation(ev.key)
            assert updated is not None
            evaluations[ev.key] = updated
            self._recount(batch, ev, updated)
            self.emit(MemberMeasured(member=ev.individual_id, objectives=measured.objectives,
                                     failure=measured.failure, counts=self.counts))
        return evaluations

    # -- results ---------------------------------------------------------------------------
    def front(self) -> list[tuple[Individual, Evaluation]]:
        """Feasible rank-0 members of the last generation, by ascending first objective."""
        return front_of(self.store)
