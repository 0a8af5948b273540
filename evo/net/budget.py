"""How much training a candidate gets, and the key that names one evaluation.

The evaluation key is the cache key everywhere evaluations are reused (the run store, resume,
warm starts), so everything that changes the trained weights must be in it, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from evo.arch import ResolvedArch
from evo.errors import EvoError

MEMORY_FORMAT = "channels_last"
_KEY_VERSION = 1
# Binomial standard deviations above the majority rate that a candidate must reach after its
# first epoch: at 3, a network that ignores its input passes by luck about once in 740.
CHANCE_SIGMAS = 3.0


@dataclass(frozen=True)
class TrainBudget:
    """How much training a candidate gets, and the limits that turn it into a failure.

    ``epochs`` is multiplied by the recipe's ``epochs_mult`` (at least one epoch).
    ``max_seconds`` caps the wall-clock time of one evaluation from the data transfer on
    (building the network and counting its MACs, which include one-off import costs, are not
    counted); it makes results depend on the machine's speed: the same key can succeed on a
    fast machine and time out on a slow one.
    ``max_params`` and ``max_memory_bytes`` reject networks before any training; on CUDA the
    memory budget defaults to what the device has free.
    """

    epochs: int = 10
    max_seconds: float | None = None
    max_params: int | None = None
    max_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise EvoError(f"epochs must be a positive integer, got {self.epochs!r}",
                           "e.g. --epochs 10")
        for name in ("max_seconds", "max_params", "max_memory_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise EvoError(f"{name} must be positive when given, got {value!r}",
                               "leave it out for no limit")

    def epochs_for(self, recipe_epochs_mult: float) -> int:
        """Epochs a recipe gets: the budget times its multiplier, rounded, at least one."""
        return max(1, round(self.epochs * recipe_epochs_mult))


def chance_threshold(val_labels: np.ndarray, num_classes: int) -> float:
    """The validation accuracy a network must beat to count as better than chance.

    A network that ignores its input scores at most the majority-class rate ``p`` in
    expectation (always answering the largest class); on ``n`` validation images its score
    scatters around that with the binomial standard deviation ``sqrt(p (1 - p) / n)``. The
    threshold is ``p`` plus ``CHANCE_SIGMAS`` of those, so a small validation set (where luck
    moves accuracy by points) needs a wider margin than a large one, and a network at or
    below it after its first epoch is, with high confidence, learning nothing. It never falls
    below the majority rate and shrinks towards it as ``n`` grows; on a tiny validation set
    it can reach 1 or more, where no score is evidence and training judges no candidate
    (evo.net.train). ``num_classes`` checks the labels (one beyond it is an error).
    """
    labels = np.asarray(val_labels).astype(np.int64, copy=False).ravel()
    if labels.size == 0:
        raise EvoError("no validation labels to measure chance on", "give a validation split")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise EvoError(f"validation labels reach {int(labels.max())} but there are "
                       f"{num_classes} classes", "pass the dataset's own number of classes")
    n = labels.size
    majority = float(np.bincount(labels, minlength=num_classes).max()) / n
    return majority + CHANCE_SIGMAS * math.sqrt(majority * (1.0 - majority) / n)


def evaluation_key(
    resolved: ResolvedArch,
    dataset_fingerprint: str,
    budget: TrainBudget,
    device_type: str,
    threads: int,
    memory_format: str = MEMORY_FORMAT,
) -> str:
    """sha256 naming one evaluation; equal keys mean the same trained weights (on CPU).

    It covers the resolved network and its recipe, the dataset (data, splits, normalisation,
    and a training/validation subset through its fingerprint), the budget, the device type,
    the thread count and the memory format, each of which changes the arithmetic of training.
    It is the cache key everywhere evaluations are reused (the search adds early abort and
    in-search measurement on top: evo.nas.problem).
    """
    payload = {
        "version": _KEY_VERSION,
        "arch": resolved.canonical_text(),
        "input_shape": list(resolved.input_shape),
        "num_classes": resolved.num_classes,
        "recipe": asdict(resolved.recipe),
        "dataset": dataset_fingerprint,
        "budget": asdict(budget),
        "device_type": device_type,
        "threads": int(threads),
        "memory_format": memory_format,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
