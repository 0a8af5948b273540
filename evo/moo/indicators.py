"""Quality indicators of a set of objective vectors: hypervolume and IGD+ on declared scales.

Raw objectives live on wildly different scales (an error in [0, 1], a parameter count in the
millions, a latency in ms), so hypervolumes of raw values compare nothing. Each objective
therefore declares an :class:`ObjectiveScale`: a transform (linear or log10) and bounds. Points
are clipped to the bounds and mapped to [0, 1], and the hypervolume reference point is 1 in every
normalised objective. The scales are plain data that serialise to dicts, so a run stores them and
two runs are only compared on the same scales. All objectives are minimised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import moocore
import numpy as np
from numpy.typing import ArrayLike, NDArray

from evo.errors import EvoError

__all__ = [
    "REFERENCE_VALUE",
    "TRANSFORMS",
    "ObjectiveScale",
    "default_scale",
    "default_scales",
    "hypervolume",
    "igd_plus",
    "normalise",
    "reference_point",
]

TRANSFORMS = ("linear", "log10")
REFERENCE_VALUE = 1.0
"""Hypervolume reference in every normalised objective: the worst end of each declared range."""

_COUNT_NAMES = frozenset({"params", "macs", "bytes", "onnx_bytes"})


@dataclass(frozen=True)
class ObjectiveScale:
    """How one objective maps to [0, 1]: ``transform`` then the bounds ``lower`` to ``upper``.

    Bounds are in the objective's own unit (latency in ms, sizes in bytes); with ``log10`` they
    must be positive. Values outside the bounds are clipped, so a point worse than ``upper``
    contributes no hypervolume and one better than ``lower`` cannot inflate it.
    """

    name: str
    transform: str
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not self.name:
            raise EvoError("an objective scale needs a name", "name the objective, e.g. 'error'")
        if self.transform not in TRANSFORMS:
            raise EvoError(
                f"objective {self.name!r}: unknown transform {self.transform!r}",
                f"use one of {', '.join(TRANSFORMS)}",
            )
        lower, upper = float(self.lower), float(self.upper)
        if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
            raise EvoError(
                f"objective {self.name!r}: bounds [{self.lower}, {self.upper}] are not a range",
                "give finite bounds with lower < upper",
            )
        if self.transform == "log10" and lower <= 0:
            raise EvoError(
                f"objective {self.name!r}: log10 scale needs a positive lower bound, got {lower}",
                "raise the lower bound above 0 or use transform 'linear'",
            )
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)

    def apply(self, values: ArrayLike) -> NDArray[np.float64]:
        """Map raw values to [0, 1] (clipping first keeps log10 away from non-positive values)."""
        clipped = np.clip(np.asarray(values, dtype=np.float64), self.lower, self.upper)
        if self.transform == "log10":
            lo, hi = math.log10(self.lower), math.log10(self.upper)
            return (np.log10(clipped) - lo) / (hi - lo)
        return (clipped - self.lower) / (self.upper - self.lower)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form, stored with every run."""
        return {
            "name": self.name,
            "transform": self.transform,
            "lower": self.lower,
            "upper": self.upper,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObjectiveScale:
        """Inverse of :meth:`to_dict`; rejects missing or unknown keys instead of guessing."""
        expected = {"name", "transform", "lower", "upper"}
        keys = set(data)
        if keys != expected:
            missing, extra = sorted(expected - keys), sorted(keys - expected)
            raise EvoError(
                f"objective scale {dict(data)!r}: missing keys {missing}, unknown keys {extra}",
                "give exactly name, transform, lower and upper",
            )
        try:
            lower, upper = float(data["lower"]), float(data["upper"])
        except (TypeError, ValueError) as exc:
            raise EvoError(
                f"objective scale {data['name']!r}: bounds must be numbers", "e.g. lower = 0.0"
            ) from exc
        return cls(str(data["name"]), str(data["transform"]), lower, upper)


def default_scale(name: str) -> ObjectiveScale:
    """The declared default scale for an objective name.

    ``error``: linear in [0, 1]. ``params``, ``macs`` and sizes in bytes (``bytes``,
    ``onnx_bytes`` or any name ending in ``_bytes``): log10 in [1e2, 1e8]. Names starting with
    ``latency``: log10 in ms, [1e-3, 1e3]. The log ranges span every model size and runtime a
    mobile-size search can reach, so runs on different hardware share one scale.
    """
    if name == "error":
        return ObjectiveScale(name, "linear", 0.0, 1.0)
    if name in _COUNT_NAMES or name.endswith("_bytes"):
        return ObjectiveScale(name, "log10", 1e2, 1e8)
    if name.startswith("latency"):
        return ObjectiveScale(name, "log10", 1e-3, 1e3)
    raise EvoError(
        f"no default scale for objective {name!r}",
        "declare its transform and bounds, or use error, params, macs, *_bytes or latency*",
    )


def default_scales(names: Sequence[str]) -> tuple[ObjectiveScale, ...]:
    """Default scales for objective columns, in column order."""
    return tuple(default_scale(name) for name in names)


def reference_point(n_objectives: int) -> NDArray[np.float64]:
    """The hypervolume reference point in normalised space."""
    return np.full(n_objectives, REFERENCE_VALUE)


def normalise(F: ArrayLike, scales: Sequence[ObjectiveScale]) -> NDArray[np.float64]:
    """Objective matrix (points x objectives) mapped column by column to [0, 1]."""
    arr = np.asarray(F, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, len(scales))
    if arr.ndim != 2 or arr.shape[1] != len(scales):
        raise ValueError(f"expected a (points x {len(scales)}) matrix, got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("objective values must not be NaN; leave failed points out")
    if arr.shape[0] == 0:
        return arr.copy()
    return np.column_stack([scale.apply(arr[:, j]) for j, scale in enumerate(scales)])


def hypervolume(F: ArrayLike, scales: Sequence[ObjectiveScale]) -> float:
    """Hypervolume of the normalised points against the reference 1 (in [0, 1]; 0 if empty)."""
    norm = normalise(F, scales)
    if norm.shape[0] == 0:
        return 0.0
    return float(moocore.hypervolume(norm, ref=reference_point(len(scales))))


def igd_plus(F: ArrayLike, reference_front: ArrayLike, scales: Sequence[ObjectiveScale]) -> float:
    """IGD+ of the points to a reference front, both normalised (lower is better; inf if empty).

    IGD+ is used rather than IGD because it is weakly Pareto compliant: a set that dominates
    another never scores worse.
    """
    norm = normalise(F, scales)
    ref = normalise(reference_front, scales)
    if ref.shape[0] == 0:
        raise ValueError("the reference front must hold at least one point")
    if norm.shape[0] == 0:
        return math.inf
    return float(moocore.igd_plus(norm, ref=ref))
