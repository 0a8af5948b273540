"""Which members ``evo export`` exports, and which of each member's weights.

Why a module of its own: the choice of weights is where a user's deployed model comes from, so
it must be one rule that every exporter follows and every manifest states: a member's newest
retrain, or the retrain the user named (``--retrain N``), else the search's checkpoint; never
chosen by test accuracy (that would select on the test split and then report it), and never a
silent fallback from a chosen retrain whose file is gone to another one. Numbering and files of
retrains are :mod:`evo.run.retrains`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.errors import EvoError
from evo.run.layout import resolve_stored
from evo.run.retrains import RetrainRecord, retrain_weights
from evo.run.store import Individual, RunStore

if TYPE_CHECKING:
    from evo.data.dataset import Dataset


@dataclass(frozen=True)
class MemberWeights:
    """Which checkpoint of a member is exported, and why that one."""

    member: int
    eval_key: str
    phenotype: str
    checkpoint: Path
    kind: str  # "retrained" or "search"
    retrain: RetrainRecord | None = None

    def source(self, run_dir: Path, dataset: Dataset) -> dict[str, Any]:
        """The manifest's ``source``: enough to find the run, the member and the weights."""
        source: dict[str, Any] = {
            "run_dir": str(run_dir.resolve()),
            "member": self.member,
            "weights": self.kind,
            "checkpoint": self.relative_checkpoint(run_dir),
            "eval_key": self.eval_key,
            "phenotype": self.phenotype,
            "dataset": dataset.name,
            "dataset_fingerprint": dataset.fingerprint,
            "split_seed": dataset.split_seed,
            "calibration_split": "train",
            "evaluation_split": "test",
        }
        if self.retrain is not None:
            source["retrain"] = {"number": self.retrain.number, "id": self.retrain.id,
                                 "member": self.retrain.member, "epochs": self.retrain.epochs,
                                 "seeds": self.retrain.seeds, "trained_on": "train+val"}
        return source

    def relative_checkpoint(self, run_dir: Path) -> str:
        try:
            return str(self.checkpoint.relative_to(run_dir))
        except ValueError:
            return str(self.checkpoint)

    def describe(self, run_dir: Path) -> str:
        """One line naming the weights: ``member 14: weights of retrain 2 (3 epochs, 1 seed,
        train+validation), models/retrained-14-2.pt``."""
        where = self.relative_checkpoint(run_dir)
        if self.retrain is None:
            return f"member {self.member}: search weights (never retrained), {where}"
        return f"member {self.member}: weights of {self.retrain.label(self.member)}, {where}"




# ---------------------------------------------------------------- choosing members


def _member_ids_hint(store: RunStore) -> str:
    count = store.count_individuals()
    front = sorted(ind.id for ind, _ev in _front(store))
    ids = f"member ids of this run are 1 to {count}" if count else "this run has no members"
    return ids + (f"; the front is {', '.join(map(str, front))}" if front else "")


def _front(store: RunStore) -> list[tuple[Individual, Any]]:
    from evo.run.front import front_of

    return front_of(store)


def choose_members(store: RunStore, members: Sequence[int] | None,
                   front: bool = False) -> list[Individual]:
    """The requested members plus the front when ``front`` (or when none are named), one per
    network; unknown members and members without trained weights are user errors."""
    chosen: list[Individual] = []
    if front or not members:
        chosen = [ind for ind, _ev in _front(store)]
        if not chosen and not members:
            raise EvoError(f"{store.run_dir}: the run has no front yet",
                           "wait for its first generation to finish, or pass --member ID")
    evaluations = store.evaluations()
    for member in members or ():
        ind = store.individual(int(member))
        if ind is None:
            raise EvoError(f"{store.run_dir}: no member {member}", _member_ids_hint(store))
        ev = evaluations.get(ind.eval_key or "")
        if ev is None or ev.status != "ok" or not ev.weights:
            why = ind.reason or (ev.reason if ev else None) or (
                "not evaluated yet" if ev is None else f"evaluation {ev.status}, no weights")
            raise EvoError(f"{store.run_dir}: member {member} has no trained weights to export "
                           f"({why})", "pick a member with a validation accuracy (evo front)")
        chosen.append(ind)
    unique, keys = [], set()
    for ind in chosen:  # individuals that share an evaluation key are the same network
        if ind.eval_key not in keys:
            keys.add(ind.eval_key)
            unique.append(ind)
    return unique


def member_weights(store: RunStore, ind: Individual,
                   retrain: int | None = None) -> MemberWeights:
    """The weights of the member's newest retrain, or of retrain number ``retrain``; the
    search's checkpoint when the member's network was never retrained. Never chosen by test
    accuracy, and a chosen retrain without its file is an error, not a silent fallback."""
    assert ind.eval_key is not None
    chosen = retrain_weights(store, ind.id, retrain)
    if chosen is not None:
        record, path = chosen
        return MemberWeights(ind.id, ind.eval_key, ind.phenotype or "", path, "retrained",
                             record)
    ev = store.evaluation(ind.eval_key)
    if ev is None or not ev.weights:
        raise EvoError(f"{store.run_dir}: member {ind.id} has no trained weights to export",
                       "pick a member with a validation accuracy (evo front)")
    path = resolve_stored(store.run_dir, ev.weights)
    if not path.is_file():
        raise EvoError(f"{store.run_dir}: member {ind.id}'s weights {ev.weights} are missing",
                       "the models/ folder was changed; retrain the member (evo retrain)")
    return MemberWeights(ind.id, ind.eval_key, ind.phenotype or "", path, "search")
