"""When an artifact's outputs count as the same as torch's: the parity tolerances per precision.

Why a module of its own: export results (:mod:`export.results`) carry the tolerance they were
checked against, and results are read by code that must not import torch (a run's export rows
are checked by ``evo.run``); :mod:`export.request`, which names torch modules, imports them from
here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Tolerance:
    """When an artifact's outputs count as the same as torch's.

    ``max|artifact - torch| <= atol + rtol * max|torch|`` on every parity input set (skipped
    when ``atol`` is None: quantised logits legitimately move by more than any useful bound),
    and top-1 agreement with torch on real samples of at least ``min_top1_agreement``.
    """

    atol: float | None
    rtol: float = 0.0
    min_top1_agreement: float | None = None

    def bound(self, reference_scale: float) -> float | None:
        """The absolute bound for outputs whose largest magnitude is ``reference_scale``."""
        return None if self.atol is None else self.atol + self.rtol * reference_scale

    def to_dict(self) -> dict[str, float | None]:
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "min_top1_agreement": self.min_top1_agreement,
        }


DEFAULT_TOLERANCES: Mapping[str, Tolerance] = MappingProxyType(
    {
        "fp32": Tolerance(atol=1e-4, rtol=1e-4),
        "fp16": Tolerance(atol=1e-2, rtol=2e-2),
        "int8": Tolerance(atol=None, min_top1_agreement=0.9),
    }
)
