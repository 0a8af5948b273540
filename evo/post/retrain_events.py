"""What a retrain tells its listener, as typed events (the search's events live in
``evo.search.contract``; these are the post-search counterpart, printed by
``evo.post.postsearch.retrain_printer`` and by ``evo retrain``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RetrainStarted:
    """One seed of one member starts training on train+validation."""

    member: int
    seed_index: int
    seeds: int
    epochs: int


@dataclass(frozen=True)
class RetrainEpoch:
    """An epoch of a retrain ended; ``data`` is what the training loop reports for it."""

    member: int
    data: dict[str, Any]


@dataclass(frozen=True)
class RetrainSeedDone:
    """One seed finished and was scored on the test split."""

    member: int
    seed_index: int
    seeds: int
    seed: int
    test_accuracy: float
    test_correct: int
    test_total: int
    epochs_run: int
    final_loss: float | None
    seconds: float
    device: str


@dataclass(frozen=True)
class RetrainDone:
    """A member's retrain ended (trained, skipped or failed); ``outcome`` says which."""

    outcome: Any  # evo.post.retrain.RetrainOutcome (defined there, which imports this module)


RetrainEvent = RetrainStarted | RetrainEpoch | RetrainSeedDone | RetrainDone
Listener = Callable[[RetrainEvent], None]
