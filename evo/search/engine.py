"""The generational search as an ask/tell object over the run store.

``ask()`` creates the next batch of individuals (initial population, offspring, or random
samples), commits them together with the generator state *before* returning their jobs, and
``tell()`` records each result the moment it arrives. When every evaluation key of the batch has
a result, NSGA-II survival runs and the generation is committed. Because all state lives in
``run.db`` and every random draw comes from the stored generator, a run killed at any instant and
reopened with :meth:`Search.open` continues exactly as if it had never stopped, and results may
arrive in any order (survival sorts by member id), so serial and parallel executors agree.

The search knows nothing of networks: a :class:`Problem` turns phenotypes into evaluation keys and
provides the (picklable) evaluator, so the loop can be driven by a synthetic test problem in
microseconds or by real training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evo.config import SearchConfig, run_config_toml
from evo.errors import EvoError
from evo.ge.grammar import Grammar, parse_grammar, read_grammar_text
from evo.ge.mapper import map_genome
from evo.ge.operators import (
    GEConfig,
    int_flip_mutation,
    one_point_crossover,
    pi_grow_initialisation,
    random_genome,
    sensible_initialisation,
)
from evo.moo import nsga2
from evo.moo.indicators import default_scale, hypervolume
from evo.moo.objectives import Constraint, parse_constraint, parse_objectives
from evo.run.counts import Counts, outcome, outcomes_of
from evo.run.store import Evaluation, Individual, RunStore
from evo.search.failures import Retries
from evo.search.warmstart import check_warm_start, open_warm_start

# Violation levels that rank below every constraint miss (see nsga2.rank_and_crowding).
INVALID_VIOLATION = 1e9
FAILED_VIOLATION = 1e6
MAX_DUPLICATE_RETRIES = 20  # fresh offspring drawn per slot before a duplicate is accepted


@dataclass(frozen=True)
class Job:
    """One evaluation to run: the key, the text the problem needs, and the derived seed."""

    individual_id: int
    key: str
    text: str
    seed: int


@dataclass(frozen=True)
class Result:
    """What an evaluator returns for a job; failures are results, never exceptions."""

    key: str
    individual_id: int
    # ok | failed | skipped (a hard limit known before training); retry | lost: not the
    # candidate's result (the machine or its worker failed), never stored (evo.search.failures)
    status: str
    reason: str | None = None
    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    threads: int | None = None
    seconds: float | None = None
    weights: str | None = None


@dataclass(frozen=True)
class Measured:
    """Objectives a problem measured on an evaluated candidate from the driver (latency).

    ``measurements`` are rows for run.db's ``measurements`` table (keys ``format``, ``target``,
    ``protocol``, ``host``, ``median_ms``, ``bytes``, ``details``); ``failure`` makes the
    evaluation a failed one (a model its target cannot run is not a deployable candidate).
    """

    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    measurements: tuple[dict[str, Any], ...] = ()
    failure: str | None = None


class Problem(Protocol):
    """What the search needs from the thing being optimised."""

    def describe(self) -> dict[str, Any]:
        """Facts stored with the run (dataset fingerprint, budget, ...)."""
        ...

    def candidate(self, phenotype: str) -> tuple[str, str] | str:
        """(evaluation key, text for the evaluator), or the reason the phenotype is invalid."""
        ...

    def evaluator(self) -> Callable[[Job], Result]:
        """A picklable callable that evaluates one job (runs in worker processes)."""
        ...

    # Optional: ``measure(evaluation: Evaluation) -> Measured`` fills objectives that must be
    # measured with the machine otherwise idle (latency). The driver calls it once a batch is
    # complete, for each ok evaluation lacking an objective or constrained value, before
    # survival; stored values are never measured again (resume, cache hits, warm starts).


def derive_seed(run_seed: int, key: str) -> int:
    """Training seed from the run seed and the evaluation key (stable across machines)."""
    import hashlib

    digest = hashlib.sha256(f"{run_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass
class _Member:
    """An individual plus what survival needs: objective vector and violation."""

    ind: Individual
    values: dict[str, float]
    violation: float
    status: str


class Search:
    """A run in progress; build with :meth:`create` or :meth:`open`, drive with ask/tell."""

    def __init__(self, store: RunStore, config: SearchConfig, problem: Problem,
                 grammar: Grammar) -> None:
        self.store = store
        self.config = config
        self.problem = problem
        self.grammar = grammar
        self.objectives = parse_objectives(config.objectives)
        self.constraints: tuple[Constraint, ...] = tuple(
            parse_constraint(c) for c in config.constraint)
        self.scales = tuple(default_scale(name) for name in self.objectives)
        self.ge = GEConfig(
            codon_size=config.codon_size, genome_length=config.genome_length,
            max_wraps=config.max_wraps, max_tree_depth=config.max_tree_depth,
            min_init_depth=config.min_init_depth, max_init_depth=config.max_init_depth,
            crossover_probability=config.crossover, mutation_rate=config.mutation,
        )
        self.started = time.monotonic()
        self.listeners: list[Callable[[str, dict[str, Any]], None]] = []
        self.retries = Retries()  # keys the machine failed to evaluate, this process only
        # Outcomes so far (sent with every event); those of the pending batch are kept by
        # member id, because a result or a measurement can still change them.
        known = outcomes_of(store)
        self.counts = Counts.of(known.values())
        self._batch_outcomes = {i: known[i] for i in self.pending if i in known}
        self.warm: RunStore | None = None
        if config.warm_start:
            self.warm = open_warm_start(Path(config.warm_start), problem.describe())

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: Path, config: SearchConfig, problem: Problem) -> Search:
        """Start a new run in ``run_dir``; everything that defines it goes into run.db."""
        _validate(config)
        text, source = read_grammar_text(config.grammar)
        grammar = parse_grammar(text, source)
        scales = tuple(default_scale(name) for name in parse_objectives(config.objectives))
        constraints = [parse_constraint(c).to_dict() for c in config.constraint]
        meta = {
            "config": config.to_dict(), "grammar_text": text, "grammar_source": source,
            "problem": problem.describe(), "objective_scales": [s.to_dict() for s in scales],
            "constraints": constraints, "versions": _versions(), "created": time.time(),
            "status": "running",
        }
        state = {"rng": np.random.default_rng(config.seed).bit_generator.state}
        if config.warm_start:  # refused before the run folder exists, never half-made
            check_warm_start(Path(config.warm_start), meta["problem"])
        store = RunStore.create(run_dir, meta, state)
        try:
            search = cls(store, config, problem, grammar)
            _write_config_toml(run_dir, config)
        except BaseException:
            store.close()
            raise
        return search

    @classmethod
    def open(cls, run_dir: Path, config: SearchConfig | None, problem_factory:
             Callable[[SearchConfig], Problem]) -> Search:
        """Reopen a run to continue it. Only resume-safe options (workers, quiet, stopping
        limits) may differ from the stored configuration; anything else is refused by name."""
        store = RunStore.open(run_dir, write=True)
        try:
            stored = SearchConfig.from_dict(store.meta("config"))
            if config is not None:
                config.check()
                diff = config.resume_differences(stored)
                if diff:
                    raise EvoError(
                        f"{run_dir}: {', '.join(diff)} differ from the stored run",
                        "on --resume only --workers, --quiet, --generations, --max-evals and "
                        "--max-time may change; drop the others",
                    )
                stored = stored.replace(
                    workers=config.workers, quiet=config.quiet, generations=config.generations,
                    max_evals=config.max_evals, max_time=config.max_time)
            grammar = parse_grammar(store.meta("grammar_text"), store.meta("grammar_source"))
            problem = problem_factory(stored)
            if problem.describe() != store.meta("problem"):
                raise EvoError(f"{run_dir}: the dataset or training set-up changed since the run "
                               "started", "resume on the machine and data the run began with")
            search = cls(store, stored, problem, grammar)
            with store.transaction() as conn:
                store.set_meta(conn, "status", "running")
                store.set_meta(conn, "config", stored.to_dict())
            _write_config_toml(run_dir, stored)
            search._sweep_orphans()
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
    def emit(self, kind: str, **data: Any) -> None:
        """Send one event to every listener (the runner's start/done and progress events too)."""
        for listener in self.listeners:
            listener(kind, data)

    def _settle(self, ind: Individual, ev: Evaluation | None) -> None:
        """Count (or recount) one individual of the pending batch with its evaluation."""
        new = outcome(ind, ev)
        old = self._batch_outcomes.get(ind.id)
        if new != old:
            self.counts = self.counts.moved(old, new)
            if new is not None:
                self._batch_outcomes[ind.id] = new

    def progress_state(self) -> dict[str, Any]:
        """What a progress view needs when it starts watching (a fresh or resumed run): the
        counts, the last generation's front size and hypervolume, and the unfinished batch."""
        state: dict[str, Any] = {"counts": self.counts, "generation": self.generation,
                                 "front": None, "hypervolume": None, "batch": None}
        gen = self.store.generation(self.generation) if self.generation >= 0 else None
        if gen is not None:
            state["hypervolume"] = gen["hypervolume"]
            state["front"] = sum(1 for r, v in zip(gen["ranks"], gen["violation"], strict=True)
                                 if r == 0 and v == 0)
        pending = self.pending
        if pending:
            state["batch"] = {"generation": self.generation + 1, "size": len(pending),
                              "settled": len(self._batch_outcomes)}
        return state

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
            self.emit("batch", generation=self.generation + 1, size=len(self.pending),
                      counts=self.counts)
        self._finish_batch_if_complete()
        return jobs

    def _jobs_for(self, ids: list[int]) -> list[Job]:
        known = self.store.evaluations()
        jobs, seen = [], set()
        for ind in self.store.individuals(ids):
            if ind.eval_key in known:
                self._settle(ind, known[ind.eval_key])
            if ind.eval_key is None or ind.eval_key in known or ind.eval_key in seen or \
                    self.retries.exhausted(ind.eval_key):
                continue
            if self._copy_warm_evaluation(ind):
                continue
            seen.add(ind.eval_key)
            jobs.append(Job(ind.id, ind.eval_key, self._text_for(ind),
                            derive_seed(self.config.seed, ind.eval_key)))
        return jobs

    def _copy_warm_evaluation(self, ind: Individual) -> bool:
        """Reuse the warm-start run's result for this key, weights included (a cache hit)."""
        if self.warm is None or ind.eval_key is None:
            return False
        ev = self.warm.evaluation(ind.eval_key)
        if ev is None:
            return False
        weights = None
        if ev.weights:
            source = self.warm.run_dir / ev.weights
            if source.is_file():
                target = self.store.run_dir / "models" / source.name
                tmp = target.with_suffix(".pt.tmp")
                shutil.copyfile(source, tmp)
                tmp.replace(target)
                weights = str(target.relative_to(self.store.run_dir))
        copied = dataclasses.replace(ev, individual_id=ind.id, weights=weights,
                                     source="warm-start")
        with self.store.transaction() as conn:
            self.store.add_evaluation(conn, copied)
        self._settle(ind, copied)
        return True

    def _text_for(self, ind: Individual) -> str:
        described = self.problem.candidate(ind.phenotype or "")
        assert not isinstance(described, str)
        return described[1]

    def _rng(self) -> np.random.Generator:
        rng = np.random.default_rng()
        rng.bit_generator.state = self.store.state("rng")
        return rng

    def _describe(self, genome: list[int]) -> dict[str, Any]:
        d = map_genome(self.grammar, genome, self.ge.max_wraps, self.ge.max_tree_depth)
        row = {"genome": genome, "phenotype": d.phenotype, "valid": d.valid,
               "used_codons": d.used_codons, "depth": d.depth, "nodes": d.nodes,
               "eval_key": None, "reason": d.reason}
        if d.valid:
            described = self.problem.candidate(d.phenotype or "")
            if isinstance(described, str):
                row["reason"] = described
            else:
                row["eval_key"] = described[0]
        return row

    def _create_batch(self) -> None:
        rng = self._rng()
        generation = self.generation + 1
        n = self.config.population
        if generation == 0:
            rows = self._initial_rows(rng, n)
        elif self.config.strategy == "random":
            rows = self._unique_rows(lambda: [(random_genome(rng, self.ge.genome_length,
                                                             self.ge.codon_size), ())], n, set())
        else:
            rows = self._offspring_rows(rng, n)
        with self.store.transaction() as conn:
            ids = [
                self.store.add_individual(
                    conn, generation=generation, origin=origin, genome=row["genome"],
                    phenotype=row["phenotype"], valid=row["valid"],
                    used_codons=row["used_codons"], depth=row["depth"], nodes=row["nodes"],
                    parents=parents, eval_key=row["eval_key"], reason=row["reason"])
                for row, parents, origin in rows
            ]
            self.store.set_state(conn, "pending", ids)
            self.store.set_state(conn, "rng", rng.bit_generator.state)
        self._batch_outcomes = {}
        for ind_id, (row, _parents, _origin) in zip(ids, rows, strict=True):
            if row["eval_key"] is None:
                self.counts = self.counts.moved(None, "invalid")
                self._batch_outcomes[ind_id] = "invalid"

    def _initial_rows(self, rng: np.random.Generator, n: int) -> list[tuple[dict, tuple, str]]:
        if self.config.strategy == "random" or self.config.init == "random":
            def draw() -> list[tuple[list[int], tuple[int, ...]]]:
                return [(random_genome(rng, self.ge.genome_length, self.ge.codon_size), ())]
            return self._unique_rows(draw, n, set(), origin="init")
        init = pi_grow_initialisation if self.config.init == "pi-grow" else \
            sensible_initialisation
        seeded: list[list[int]] = []
        if self.warm is not None and self.config.warm_start_front:
            seeded = [list(ind.genome) for ind, _ev in front_of(self.warm)][:n]
        genomes = seeded + init(self.grammar, rng, n - len(seeded), self.ge)
        rows, keys = [], set()
        for genome in genomes:
            row = self._describe(genome)
            if row["eval_key"] is not None and row["eval_key"] in keys:
                # Ramped half-and-half repeats small trees; replace duplicates with fresh ones.
                row = self._retry_unique(lambda: init(self.grammar, rng, 1, self.ge)[0], keys,
                                         row)
            if row["eval_key"] is not None:
                keys.add(row["eval_key"])
            rows.append((row, (), "init"))
        return rows

    def _retry_unique(self, draw: Callable[[], list[int]], keys: set[str],
                      fallback: dict) -> dict:
        for _ in range(MAX_DUPLICATE_RETRIES):
            row = self._describe(draw())
            if row["eval_key"] is None or row["eval_key"] not in keys:
                return row
        return fallback

    def _unique_rows(self, draw: Callable[[], list[tuple[list[int], tuple[int, ...]]]], n: int,
                     keys: set[str], origin: str = "random") -> list[tuple[dict, tuple, str]]:
        rows: list[tuple[dict, tuple, str]] = []
        while len(rows) < n:
            for _attempt in range(MAX_DUPLICATE_RETRIES + 1):
                candidates = [(self._describe(g), p) for g, p in draw()]
                if all(r["eval_key"] is None or r["eval_key"] not in keys for r, _ in candidates):
                    break
            for row, parents in candidates:
                if len(rows) < n:
                    if row["eval_key"] is not None:
                        keys.add(row["eval_key"])
                    rows.append((row, parents, origin))
        return rows

    def _offspring_rows(self, rng: np.random.Generator, n: int) -> list[tuple[dict, tuple, str]]:
        gen = self.store.generation(self.generation)
        assert gen is not None
        population = self.store.individuals(gen["population"])
        ranks = np.asarray(gen["ranks"])
        crowding = np.asarray(gen["crowding"], dtype=float)
        keys = {ind.eval_key for ind in population if ind.eval_key is not None}

        def draw() -> list[tuple[list[int], tuple[int, ...]]]:
            a, b = (population[i] for i in nsga2.crowded_tournament(ranks, crowding, 2, rng))
            c, d = one_point_crossover(a.genome, a.used_codons, a.valid, b.genome,
                                       b.used_codons, b.valid, rng,
                                       self.ge.crossover_probability)
            out = []
            for child in (c, d):
                m = map_genome(self.grammar, child, self.ge.max_wraps, self.ge.max_tree_depth)
                out.append((int_flip_mutation(child, m.used_codons, m.valid, rng,
                                              self.ge.mutation_rate, self.ge.codon_size),
                            (a.id, b.id)))
            return out

        return self._unique_rows(draw, n, keys, origin="offspring")

    # -- tell ------------------------------------------------------------------------------
    def tell(self, result: Result) -> None:
        """Record one result at once (any order); completes the generation when it is the
        batch's last missing key."""
        settled = self.retries.settle(result)
        if settled is None:  # the machine failed, not the candidate: asked again later
            self.emit("step", text=self.retries.note(result))
            return
        result = settled
        ev = Evaluation(
            key=result.key, individual_id=result.individual_id, status=result.status,
            reason=result.reason, objectives=dict(result.objectives),
            metrics=dict(result.metrics), device=result.device, threads=result.threads,
            seconds=result.seconds, weights=result.weights, source="trained")
        with self.store.transaction() as conn:
            self.store.add_evaluation(conn, ev)
        for ind in self.store.individuals(self.pending):
            if ind.eval_key == result.key:
                self._settle(ind, ev)
        self.emit("result", result=result, counts=self.counts)
        self._finish_batch_if_complete()

    def _member(self, ind: Individual, evaluations: dict[str, Evaluation]) -> _Member:
        if ind.eval_key is None:
            return _Member(ind, {}, INVALID_VIOLATION, "invalid")
        ev = evaluations.get(ind.eval_key)
        if ev is None:
            raise RuntimeError(f"member {ind.id} has no evaluation yet")
        if ev.status == "failed":
            return _Member(ind, ev.objectives, FAILED_VIOLATION, "failed")
        values = dict(ev.objectives)
        if ev.status == "ok" and any(name not in values for name in self.objectives):
            return _Member(ind, values, FAILED_VIOLATION, "failed")  # an objective is missing
        violation = sum(c.violation(values.get(c.name)) for c in self.constraints)
        if ev.status == "skipped" and violation == 0:
            violation = FAILED_VIOLATION  # skipped for a reason the constraints no longer see
        return _Member(ind, values, violation, "ok" if violation == 0 else "infeasible")

    def _matrix(self, members: list[_Member]) -> tuple[np.ndarray, np.ndarray]:
        F = np.zeros((len(members), len(self.objectives)))
        for i, m in enumerate(members):
            if m.violation == 0:
                F[i] = [float(m.values[name]) for name in self.objectives]
        return F, np.asarray([m.violation for m in members])

    def _finish_batch_if_complete(self) -> None:
        pending = self.pending
        if not pending:
            return
        batch = self.store.individuals(pending)
        if not self.store.has_evaluations({ind.eval_key for ind in batch if ind.eval_key}):
            return  # cheap check on every tell; the full read happens once per generation
        evaluations = self._measure_batch(batch, self.store.evaluations())
        generation = batch[0].generation
        previous = self.store.generation(generation - 1) if generation > 0 else None
        pool_ids = (previous["population"] if previous else []) + pending
        members = [self._member(ind, evaluations) for ind in self.store.individuals(pool_ids)]
        members.sort(key=lambda m: m.ind.id)
        F, violation = self._matrix(members)
        rng = self._rng()
        keep = nsga2.survive(F, min(self.config.population, len(members)), rng, violation)
        survivors = [members[i] for i in keep]
        F_s, v_s = self._matrix(survivors)
        ranks, crowding = nsga2.rank_and_crowding(F_s, v_s)
        feasible = v_s == 0
        hv = hypervolume(F_s[feasible], self.scales) if feasible.any() else 0.0
        earlier = {ind_key for ind_key, ev in evaluations.items()
                   if ev.individual_id not in pending or ev.source == "warm-start"}
        cache_hits = sum(1 for ind in batch if ind.eval_key in earlier)
        failures = sum(1 for ind in batch if ind.eval_key is None or
                       evaluations[ind.eval_key].status != "ok")
        with self.store.transaction() as conn:
            self.store.add_generation(
                conn, generation, [m.ind.id for m in survivors], ranks.tolist(),
                crowding.tolist(), v_s.tolist(), hv, len(batch), cache_hits, failures,
                rng.bit_generator.state)
            self.store.set_state(conn, "pending", [])
            self.store.set_state(conn, "rng", rng.bit_generator.state)
            self.store.set_meta(conn, "updated", time.time())
        self.store.checkpoint()  # a finished generation lives in run.db, not only in its -wal
        self._batch_outcomes = {}
        self.emit("generation", generation=generation, hypervolume=hv,
                  front=int(((ranks == 0) & feasible).sum()), counts=self.counts)

    def _measure_batch(self, batch: list[Individual],
                       evaluations: dict[str, Evaluation]) -> dict[str, Evaluation]:
        """Let the problem measure what the batch's ok evaluations lack (every worker is idle
        now: the batch is complete and the next one is not asked yet); each result is
        committed at once, so a resumed run never measures it again."""
        measure = getattr(self.problem, "measure", None)
        if measure is None:
            return evaluations
        needed = list(self.objectives) + [c.name for c in self.constraints]
        done: set[str] = set()
        for ind in batch:
            ev = evaluations.get(ind.eval_key or "")
            if ev is None or ev.key in done or ev.status != "ok" or \
                    all(name in ev.objectives for name in needed):
                continue
            done.add(ev.key)
            measured: Measured = measure(ev)
            with self.store.transaction() as conn:
                self.store.update_evaluation(
                    conn, ev.key, objectives=measured.objectives, metrics=measured.metrics,
                    status="failed" if measured.failure else None, reason=measured.failure)
                for row in measured.measurements:
                    self.store.add_measurement(conn, individual_id=ev.individual_id,
                                               source="local", **row)
            updated = self.store.evaluation(ev.key)
            assert updated is not None
            evaluations[ev.key] = updated
            for other in batch:
                if other.eval_key == ev.key:
                    self._settle(other, updated)
            self.emit("measured", member=ev.individual_id, objectives=measured.objectives,
                      failure=measured.failure, counts=self.counts)
        return evaluations

    # -- results ---------------------------------------------------------------------------
    def front(self) -> list[tuple[Individual, Evaluation]]:
        """Feasible rank-0 members of the last generation, by ascending first objective."""
        return front_of(self.store)

    def _sweep_orphans(self) -> None:
        """Files an evaluation wrote before a kill stopped its row from being committed are
        deleted: unfinished temporaries, and per-key files (``<key[:24]>.pt``/``.onnx``) whose
        key has no evaluation. Anything else in ``models/`` (retrained weights) is kept."""
        known = {key[:24] for key in self.store.evaluations()}
        for path in (self.store.run_dir / "models").iterdir():
            if not path.is_file():
                continue
            stem = path.name.split(".", 1)[0]
            per_key = len(stem) == 24 and all(c in "0123456789abcdef" for c in stem)
            if path.name.endswith(".tmp") or (per_key and stem not in known):
                path.unlink(missing_ok=True)


def front_of(store: RunStore) -> list[tuple[Individual, Evaluation]]:
    """The Pareto front recorded in a run's last generation (feasible rank-0 members)."""
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


def check_config(config: SearchConfig) -> Grammar:
    """Validate everything that needs no dataset or torch, so bad input fails in milliseconds."""
    _validate(config)
    text, source = read_grammar_text(config.grammar)
    return parse_grammar(text, source)


def _validate(config: SearchConfig) -> None:
    """Every rule lives in :meth:`SearchConfig.check` (the CLI and TOML files use it too)."""
    config.check()


def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    from evo import __version__

    out = {"evo": __version__, "python": platform.python_version()}
    for dist in ("numpy", "torch", "onnx", "onnxruntime", "openvino", "nncf", "moocore"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out


def _write_config_toml(run_dir: Path, config: SearchConfig) -> None:
    """Human-readable copy of the configuration; run.db stays the truth."""
    path = run_dir / "config.toml"
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(run_config_toml(config, run_dir))
    tmp.replace(path)
