"""How much training a candidate gets, and the key that names one evaluation.

The evaluation key is the cache key everywhere evaluations are reused (the run store, resume,
warm starts), so everything that changes the trained weights must be in it, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from evo.arch import ResolvedArch
from evo.errors import EvoError

MEMORY_FORMAT = "channels_last"
_KEY_VERSION = 1


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


def evaluation_key(
    resolved: ResolvedArch,
    dataset_fingerprint: str,
    budget: TrainBudget,
    device_type: str,
    threads: int,
    memory_format: str = MEMORY_FORMAT,
) -> str:
    """sha256 naming one evaluation; equal keys mean the same trained weights (on CPU).

    It covers the resolved network and its recipe, the dataset (data, splits, normalisation),
    the budget, the device type, the thread count and the memory format, each of which changes
    the arithmetic of training. It is the cache key everywhere evaluations are reused.
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
