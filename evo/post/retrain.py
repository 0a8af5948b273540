"""Retrain chosen members on train + validation and score them on the test split.

Why a separate step: the search ranks candidates by validation accuracy after a short budget,
so validation accuracy is both noisy and (through selection) optimistically biased. The test
split never influenced any choice; a retrain scored on it is the honest figure for the members
a user keeps. Training with several seeds shows how much of a difference between members is
training noise alone; the first seed's weights become this retrain's checkpoint, the other
seeds only add statistics. Every retrain keeps its own row and its own weights file (see
:mod:`evo.run.retrains`, which numbers, names and commits them); ``evo export`` uses the
newest retrain unless told which.

Every figure carries the number of test images behind it: digits has a few hundred, so one
image moves accuracy by a third of a percent and differences below that are not differences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evo.arch.memory import SCORING_BATCH, estimate_training, memory_limit, refusal
from evo.config import SearchConfig
from evo.errors import EvoError
from evo.post.retrain_events import (
    Listener,
    RetrainDone,
    RetrainEpoch,
    RetrainSeedDone,
    RetrainStarted,
)
from evo.run.front import front_of
from evo.run.layout import pending_retrain_path
from evo.run.retrains import (
    RetrainRecord,
    commit_retrain,
    latest_retrains,
    member_ids_hint,
    retrain_records,
    sweep_retrain_orphans,
)
from evo.run.store import Individual, RunStore

# The history itself is evo.run.retrains'; callers of a retrain use these names from here too.
__all__ = ["RetrainOutcome", "RetrainRecord", "latest_retrains", "member_ids_hint", "retrain",
           "retrain_records", "retrain_seed"]



@dataclass(frozen=True)
class RetrainOutcome:
    """What happened to one requested member: ``ok``, ``failed`` (a seed's training failed;
    nothing recorded) or ``skipped`` (already retrained with this budget)."""

    member: int
    status: str
    reason: str | None = None
    record: RetrainRecord | None = None
    params: float | None = None
    val_accuracy: float | None = None
    val_images: int | None = None
    per_seed: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"member": self.member, "status": self.status, "reason": self.reason,
                "params": self.params, "val_accuracy": self.val_accuracy,
                "val_images": self.val_images,
                "retrain": self.record.to_dict() if self.record else None}


def retrain_seed(run_seed: int, key: str, index: int) -> int:
    """Training seed of retrain seed ``index`` of one network: derived (sha256 of run seed,
    evaluation key and index, 63 bits) so a retrain repeats exactly on CPU."""
    digest = hashlib.sha256(f"{int(run_seed)}:{key}:retrain:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# ---------------------------------------------------------------- choosing members


def chosen_members(store: RunStore, members: Sequence[int] | None) -> list[Individual]:
    """The requested members (default: the front), one per network, each with a successful
    evaluation; unknown, invalid or failed members are user errors naming the valid ids."""
    if not members:
        front = [ind for ind, _ev in front_of(store)]
        if not front:
            raise EvoError(f"{store.run_dir}: the run has no front yet",
                           "wait for the first generation to finish, or pass --member ID")
        return front
    evaluations = store.evaluations()
    chosen, keys = [], set()
    for member in members:
        ind = store.individual(int(member))
        if ind is None:
            raise EvoError(f"{store.run_dir}: no member {member}", member_ids_hint(store))
        ev = evaluations.get(ind.eval_key or "")
        if ev is None or ev.status != "ok":
            why = ind.reason or (ev.reason if ev else "not evaluated yet")
            raise EvoError(f"{store.run_dir}: member {member} has no trained network to retrain "
                           f"({why})", "pick a member with a validation accuracy (evo front)")
        if ind.eval_key not in keys:
            keys.add(ind.eval_key)
            chosen.append(ind)
    return chosen


# ---------------------------------------------------------------- retraining


def _dataset_for_run(store: RunStore, config: SearchConfig) -> Any:
    from evo.nas.datasets import run_dataset

    return run_dataset(store.run_dir, (store.meta("problem") or {}).get("dataset"), config,
                       "retrain")


def retrain(
    run_dir: Path,
    members: Sequence[int] | None = None,
    *,
    epochs: int | None = None,
    seeds: int = 1,
    device: str | None = None,
    skip_done: bool = False,
    listener: Listener | None = None,
    max_memory: str | None = None,
) -> list[RetrainOutcome]:
    """Retrain ``members`` (default: the front) for ``epochs`` (default: the run's
    ``final-epochs``, else its ``epochs``) with ``seeds`` seeds each, and record the test
    accuracy in run.db. Holds the run lock throughout (a running search makes this raise
    "run in progress"). ``skip_done`` leaves members that already have a retrain with this
    many epochs and at least this many seeds (what ``evo search --final-epochs`` does on
    resume). ``listener`` receives typed events (:mod:`evo.post.retrain_events`). A member
    whose estimated memory is over ``max_memory`` (default:
    the run's ``--max-memory``, else the machine's) fails before anything is built."""
    if seeds < 1:
        raise EvoError(f"--seeds must be at least 1, got {seeds}", "e.g. --seeds 3")
    if epochs is not None and epochs < 1:
        raise EvoError(f"--epochs must be at least 1, got {epochs}", "e.g. --epochs 20")
    store = RunStore.open(Path(run_dir), write=True)
    try:
        sweep_retrain_orphans(store)  # what a killed retrain left; we hold the lock
        config = SearchConfig.from_dict(store.meta("config"))
        chosen = chosen_members(store, members)
        budget_epochs = epochs or config.final_epochs or config.epochs
        dataset = _dataset_for_run(store, config)
        limit = memory_limit(max_memory or config.max_memory)
        outcomes = []
        for ind in chosen:
            outcome = _retrain_one(store, config, dataset, ind, budget_epochs, seeds,
                                   device or config.device, skip_done, listener, limit)
            outcomes.append(outcome)
            if listener:
                listener(RetrainDone(outcome))
        return outcomes
    finally:
        store.close()


def _already_done(store: RunStore, ind: Individual, epochs: int,
                  seeds: int) -> RetrainRecord | None:
    for record in reversed(retrain_records(store, ind.id)):
        if record.epochs == epochs and record.seeds >= seeds:
            return record
    return None


def _retrain_one(store: RunStore, config: SearchConfig, dataset: Any, ind: Individual,
                 epochs: int, seeds: int, device: str, skip_done: bool,
                 listener: Listener | None, max_memory: int) -> RetrainOutcome:
    from evo.arch import parse_arch, resolve
    from evo.net.checkpoint import save_checkpoint
    from evo.net.train import TrainBudget, train_final

    assert ind.eval_key is not None
    ev = store.evaluation(ind.eval_key)
    assert ev is not None
    facts = {"params": ev.objectives.get("params"), "val_accuracy": ev.metrics.get("val_accuracy"),
             "val_images": ev.metrics.get("val_total")}
    if skip_done:
        done = _already_done(store, ind, epochs, seeds)
        if done is not None:
            return RetrainOutcome(ind.id, "skipped", f"already retrained (retrain {done.number})",
                                  done, **facts)
    resolved = resolve(parse_arch(ind.phenotype or ""), dataset.input_shape, dataset.num_classes)
    estimate = estimate_training(resolved, min(resolved.recipe.batch_size, len(dataset.train)
                                               + len(dataset.val)),
                                 min(SCORING_BATCH, len(dataset.test)))
    too_large = refusal(estimate, max_memory, f"member {ind.id}")
    if too_large is not None:
        return RetrainOutcome(ind.id, "failed", too_large, None, **facts)
    budget = TrainBudget(epochs=epochs)
    per_seed: list[dict[str, Any]] = []
    pending = pending_retrain_path(store.run_dir, ind.id)
    kept: Path | None = None
    try:
        for index in range(seeds):
            seed = retrain_seed(config.seed, ind.eval_key, index)
            if listener:
                listener(RetrainStarted(ind.id, index, seeds,
                                        budget.epochs_for(resolved.recipe.epochs_mult)))
            progress = None
            if listener:
                def progress(data: dict[str, Any], member: int = ind.id) -> None:
                    listener(RetrainEpoch(member, data))
            out = train_final(resolved, dataset, budget, device=device, threads=config.threads,
                              seed=seed, progress=progress)
            if not out.ok:
                return RetrainOutcome(ind.id, "failed",
                                      f"seed {index + 1} of {seeds}: {out.reason}", None,
                                      per_seed=tuple(per_seed), **facts)
            m = out.metrics
            entry = {"seed": seed, "test_accuracy": m["test_accuracy"],
                     "test_correct": m["test_correct"], "epochs_run": m["epochs_run"],
                     "final_loss": m["loss_curve"][-1] if m["loss_curve"] else None,
                     "seconds": m["seconds"], "device": m["device"]}
            per_seed.append(entry)
            if index == 0 and out.state_dict is not None:
                # Only a temporary file until the row is committed (commit_retrain renames it
                # to this retrain's own name in the same step): a kill during the later seeds
                # leaves nothing any row points at.
                kept = save_checkpoint(
                    pending, resolved.canonical_text(), dataset.input_shape,
                    dataset.num_classes, dataset.mean, dataset.std, dataset.class_names,
                    out.state_dict,
                    metadata={"member": ind.id, "eval_key": ind.eval_key,
                              "retrain_epochs": epochs, "seeds": seeds, "seed": seed,
                              "trained_on": "train+val", "test_accuracy": m["test_accuracy"],
                              "test_total": m["test_total"]})
            if listener:
                listener(RetrainSeedDone(member=ind.id, seed_index=index, seeds=seeds,
                                         test_total=m["test_total"], **entry))
        metrics = {
            "per_seed": per_seed, "trained_on": "train+val",
            "train_images": len(dataset.train) + len(dataset.val),
            "dataset_fingerprint": dataset.fingerprint, "device_requested": device,
            "std_kind": "sample standard deviation over seeds (none for one seed)",
        }
        record = commit_retrain(store, ind, epochs, per_seed, int(out.metrics["test_total"]),
                                kept, metrics)
    finally:
        pending.unlink(missing_ok=True)  # renamed away when committed; else never attributed
    return RetrainOutcome(ind.id, "ok", None, record, per_seed=tuple(per_seed), **facts)
