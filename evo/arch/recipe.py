"""The training recipe: how a candidate is trained, its settings' limits, defaults and text.

The recipe is the part of a phenotype after ``|``; it travels with the network through
resolution into the cache key, so the same network trained differently is a different entry.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from evo.arch.kinds import BoolKind, EnumKind, FloatKind, IntKind, Param, check_fields

__all__ = [
    "OPTIMIZERS",
    "RECIPE_PARAMS",
    "SCHEDULES",
    "Recipe",
    "default_lr",
    "describe_recipe",
    "recipe_text",
]

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")

# Learning rates that trained small CNNs (with and without batch norm) on 8x8 digits to 90-99 %
# test accuracy in 5 epochs at batch 32 with a cosine schedule; a recipe that names an
# optimizer but no learning rate gets that optimizer's entry.
_DEFAULT_LR = {
    "sgd": 0.2,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adam": 0.01,
    "adamw": 0.01,
    "rmsprop": 0.003,
}


def default_lr(optimizer: str) -> float:
    """The learning rate a recipe gets when it names ``optimizer`` but no rate."""
    return _DEFAULT_LR[optimizer]


RECIPE_PARAMS = (
    Param("optimizer", "optimizer", EnumKind({n: n for n in OPTIMIZERS}), "adam",
          aliases=("opt",)),
    Param("lr", "lr", FloatKind(0, 1, lo_open=True),
          lambda values: _DEFAULT_LR[values["optimizer"]],
          aliases=("learning_rate",), default_text="<per optimizer>"),
    Param("batch_size", "batch_size", IntKind(1, 4096), 32, aliases=("batch", "bs")),
    Param("weight_decay", "weight_decay", FloatKind(0, 0.1), 0.0, aliases=("wd",)),
    Param("epochs_mult", "epochs_mult", FloatKind(0, 10, lo_open=True), 1.0,
          aliases=("epochs",)),
    Param("schedule", "schedule", EnumKind({n: n for n in SCHEDULES}), "cosine",
          aliases=("sched",)),
    Param("label_smoothing", "label_smoothing", FloatKind(0, 0.5), 0.0,
          aliases=("smoothing", "ls")),
    Param("augment", "augment", BoolKind(), False, aliases=("aug",)),
)


@dataclass(frozen=True)
class Recipe:
    """How a candidate is trained. The defaults train a small CNN on 8x8 digits in a few epochs.

    ``lr=None`` picks the optimizer's default rate (see :func:`default_lr`), so a recipe that
    only switches the optimizer stays sensible; after construction ``lr`` is always a float.
    ``momentum`` and ``nesterov`` are SGD with momentum 0.9 (plain and Nesterov);
    ``epochs_mult`` scales the trainer's epoch budget; ``schedule`` is the learning-rate
    schedule; ``augment`` switches the dataset's light augmentation on.
    """

    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int = 32
    weight_decay: float = 0.0
    epochs_mult: float = 1.0
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    augment: bool = False

    def __post_init__(self) -> None:
        check_fields(self, RECIPE_PARAMS[:1])
        if self.lr is None:
            object.__setattr__(self, "lr", _DEFAULT_LR[self.optimizer])
        check_fields(self, RECIPE_PARAMS[1:])
        for name in ("lr", "weight_decay", "epochs_mult", "label_smoothing"):
            object.__setattr__(self, name, float(getattr(self, name)))


def recipe_text(recipe: Recipe) -> str:
    """Every recipe field as ``key=value`` in a fixed order (defaults included)."""
    return " ".join(
        f"{p.key}={p.kind.show(getattr(recipe, p.field))}" for p in RECIPE_PARAMS
    )


def describe_recipe(recipe: Recipe) -> dict[str, Any]:
    """Recipe fields as plain data."""
    return {f.name: getattr(recipe, f.name) for f in fields(recipe)}
