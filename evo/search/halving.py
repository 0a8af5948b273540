"""Successive halving, the driver's part: one generation's rungs over the run store.

A new batch records its participants (the candidates that enter the first rung: new keys, and
keys stopped at a rung in an earlier generation, which continue from their stored state
instead of training again); then each ``ask`` returns the jobs of the current rung and each
``tell`` stores one rung result (``rungs`` table, with the run's compute, in one
transaction). :meth:`Halving.advance` applies what the stored results decide
(:func:`evo.search.rungs.plan`): rung results that need no training (a candidate already at
its epochs), and, at each barrier, the evaluation rows of the candidates it settles (stopped,
or final). Everything is recomputed from run.db, and every write is idempotent, so a run
killed at any instant (between rungs, mid-rung, between a result and its barrier) and resumed
makes the same decisions. :class:`evo.search.engine.Search` calls it with ``--fidelity
halving``; full fidelity never touches it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evo.config import SearchConfig
from evo.run import layout
from evo.run.compute import add_compute, segment_compute
from evo.run.rungs import RungResult, drop_superseded_states, read_state
from evo.run.status import Status
from evo.run.store import Evaluation, Individual, RunStore
from evo.search.contract import Job, Result, derive_seed
from evo.search.rungs import Decision, Plan, plan, schedule

HALVING_STATE = "halving"  # {"generation": g, "participants": [[key, member id], ...]}


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Halving:
    """The rungs of the pending batch of one run (``--fidelity halving``)."""

    def __init__(self, store: RunStore, config: SearchConfig) -> None:
        self.store = store
        self.rungs = schedule(config.min_epochs, config.eta, config.epochs)
        self.eta = config.eta
        self.epochs = config.epochs
        self.objectives = config.objective_specs
        self.seed = config.seed

    # -- participants ------------------------------------------------------------------------
    def participants(self, generation: int) -> list[tuple[str, int]] | None:
        """``(key, member id)`` of the batch of ``generation`` that entered the first rung,
        ``None`` before :meth:`begin` recorded them."""
        stored = self.store.state(HALVING_STATE)
        if not stored or stored.get("generation") != generation:
            return None
        return [(str(key), int(member)) for key, member in stored["participants"]]

    def begin(self, batch: list[Individual]) -> list[tuple[str, int]]:
        """Record who enters the first rung of a new batch (after warm-start copies): each
        key once, with its first member; a key with a final evaluation is a cache hit and
        does not enter; one stopped earlier with an ok result enters with what it has."""
        evaluations = self.store.evaluations()
        keys = [ind.eval_key for ind in batch if ind.eval_key]
        results = self.store.rung_results(keys)
        participants: list[tuple[str, int]] = []
        seen: set[str] = set()
        for ind in sorted(batch, key=lambda i: i.id):
            key = ind.eval_key
            if key is None or key in seen:
                continue
            seen.add(key)
            ev = evaluations.get(key)
            if ev is None or self._continues(ev, results):
                participants.append((key, ind.id))
        with self.store.transaction() as conn:
            self.store.set_state(conn, HALVING_STATE, {"generation": batch[0].generation,
                                                       "participants": participants})
        return participants

    def _continues(self, ev: Evaluation, results: dict[tuple[str, int], RungResult]) -> bool:
        """A stopped candidate can continue when its newest rung ended ok with a state that
        is still in the run folder."""
        if ev.status != Status.STOPPED or ev.source != "trained":
            return False
        rows = [row for (key, _r), row in results.items() if key == ev.key]
        top = max(rows, key=lambda row: row.rung, default=None)
        return top is not None and top.status == Status.OK and top.state is not None and \
            layout.resolve_stored(self.store.run_dir, top.state).is_file()

    # -- the plan ----------------------------------------------------------------------------
    def plan(self, generation: int) -> Plan:
        """Where the batch of ``generation`` stands, from the stored rung results."""
        participants = self.participants(generation) or []
        results = self.store.rung_results([key for key, _m in participants])
        return plan(participants, results, self.rungs, self.eta, self.objectives)

    def settled(self, generation: int) -> bool:
        """True when every rung of the batch of ``generation`` is settled."""
        return self.participants(generation) is not None and self.plan(generation).done

    def expects(self, generation: int, key: str) -> bool:
        """True when the current rung waits for a result of ``key``."""
        return any(k == key for k, _r in self.plan(generation).jobs)

    def jobs(self, generation: int, text_for: Callable[[int], str],
             skip: Callable[[str], bool]) -> list[Job]:
        """The jobs of the current rung (not ``skip``-ped ones), each with the state of the
        rung before (``resume``) and the rung's epochs."""
        current = self.plan(generation)
        members = dict(self.participants(generation) or [])
        results = self.store.rung_results([key for key, _r in current.jobs])
        jobs = []
        for key, rung in current.jobs:
            if skip(key):
                continue
            resume = None
            if rung > 0:
                state = results[key, rung - 1].state
                assert state is not None, f"{key} has no state to continue from"
                resume = read_state(self.store.run_dir, state)
            jobs.append(Job(members[key], key, text_for(members[key]),
                            derive_seed(self.seed, key), epochs=self._rung_epochs(rung),
                            resume=resume))
        return jobs

    def _rung_epochs(self, rung: int) -> int | None:
        return None if rung == len(self.rungs) - 1 else self.rungs[rung]

    # -- results -----------------------------------------------------------------------------
    def record(self, generation: int, result: Result) -> None:
        """Store one rung result (of a key the current rung :meth:`expects`) and its compute
        in one transaction."""
        rung = next(r for key, r in self.plan(generation).jobs if key == result.key)
        metrics = dict(result.metrics)
        metrics["result"] = {"reason": result.reason, "weights": result.weights,
                             "device": result.device, "threads": result.threads,
                             "seconds": result.seconds}
        row = RungResult(key=result.key, rung=rung,
                         epochs=int(metrics.get("epochs_run", 0) or 0),
                         status=str(result.status), objectives=dict(result.objectives),
                         metrics=metrics, state=metrics.get("state"),
                         individual_id=result.individual_id)
        with self.store.transaction() as conn:
            self.store.add_rung(conn, row)
            add_compute(self.store, conn, metrics)
        if row.state is not None:
            earlier = self.store.rung_results([result.key])
            drop_superseded_states(self.store.run_dir, list(earlier.values()), row.state)

    def advance(self, generation: int) -> tuple[Plan, list[tuple[Evaluation | None,
                                                                  Evaluation]]]:
        """Apply what the stored results decide: copies first (each may complete a barrier),
        then the evaluation rows of settled candidates. Returns the plan and each written
        evaluation with the row it replaced."""
        while True:
            current = self.plan(generation)
            if not current.copies:
                break
            results = self.store.rung_results([key for key, _r in current.copies])
            with self.store.transaction() as conn:
                for key, rung in current.copies:
                    self.store.add_rung(conn, _copy(results[key, rung - 1], rung))
        written = self._settle(current.decisions)
        return current, written

    def _settle(self, decisions: list[Decision]) -> list[tuple[Evaluation | None, Evaluation]]:
        evaluations = self.store.evaluations()
        results = self.store.rung_results([d.key for d in decisions])
        written = []
        for decision in decisions:
            old = evaluations.get(decision.key)
            new = self._evaluation(decision, results)
            if old is not None and (old.status != Status.STOPPED or (
                    new.status == Status.STOPPED and
                    int(old.metrics.get("rung", -1)) >= decision.rung)):
                continue  # already written (a resume), or it reached further before
            written.append((old, new))
        if written:
            with self.store.transaction() as conn:
                for _old, new in written:
                    self.store.settle_evaluation(conn, new)
        for _old, new in written:
            if new.status != Status.STOPPED:
                rows = [row for (key, _r), row in results.items() if key == new.key]
                drop_superseded_states(self.store.run_dir, rows, None)
        return written

    def _evaluation(self, decision: Decision,
                    results: dict[tuple[str, int], RungResult]) -> Evaluation:
        """The evaluation row of a settled candidate, from its rung results."""
        row = results[decision.key, decision.rung]
        segments = [results[decision.key, r] for r in range(decision.rung + 1)
                    if (decision.key, r) in results]
        done: dict[str, Any] = row.metrics.get("result") or {}
        metrics = {k: v for k, v in row.metrics.items() if k not in ("result", "state")}
        metrics.update({"rung": decision.rung, "rungs": len(self.rungs),
                        "rung_epochs": row.epochs})
        for name in ("images_seen", "epochs_trained"):  # the candidate's whole training
            metrics[name] = sum(segment_compute(s.metrics)[name] for s in segments)
        seconds = sum(float((s.metrics.get("result") or {}).get("seconds") or 0.0)
                      for s in segments)
        if decision.kind == "stopped":
            status = Status.STOPPED
            reason = (f"not promoted after rung {decision.rung + 1} of {len(self.rungs)} "
                      f"({row.epochs} epochs): {_ordinal(decision.place)} of "
                      f"{decision.entered} by rank and crowding, the best {decision.promoted} "
                      "continued")
            weights = None
        else:
            status, reason = Status(row.status), done.get("reason")
            weights = done.get("weights") if status == Status.OK else None
        return Evaluation(key=decision.key, individual_id=results[decision.key, 0].individual_id
                          if (decision.key, 0) in results else row.individual_id,
                          status=status, reason=reason, objectives=dict(row.objectives),
                          metrics=metrics, device=done.get("device"),
                          threads=done.get("threads"), seconds=seconds, weights=weights,
                          source="trained")


def _copy(previous: RungResult, rung: int) -> RungResult:
    """The result at ``rung`` of a candidate whose epochs there are those it has: the same
    scores and state, no compute."""
    metrics = dict(previous.metrics)
    metrics.update({"images_seen": 0, "epochs_trained": 0, "copied_from_rung": previous.rung,
                    "result": {**(previous.metrics.get("result") or {}), "seconds": 0.0}})
    return RungResult(key=previous.key, rung=rung, epochs=previous.epochs,
                      status=previous.status, objectives=dict(previous.objectives),
                      metrics=metrics, state=previous.state,
                      individual_id=previous.individual_id)
