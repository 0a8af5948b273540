"""Microcontroller budgets inside a search: ``arena_bytes`` and ``flash_bytes`` from the estimate.

Converting a candidate to int8 and loading it in TensorFlow Lite Micro costs seconds, so the
search never does it: the values come from :func:`evo.arch.mcu.estimate_mcu` (microseconds, from
the resolved shapes). What a member records as ``arena_bytes`` / ``flash_bytes`` is the bound
the search held it to, :func:`evo.arch.mcu.bound` of the estimate (the estimate with its
safety margin); the raw estimate is kept in the metrics (``mcu_estimate``) beside it. A
constraint on either is checked before training, like ``params`` and ``macs``: a candidate over
the limit is skipped, not trained, with the reason. The final front is measured by
``evo export --format litert-int8``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evo.arch import ResolvedArch, parse_arch, resolve
from evo.arch.mcu import MCU_OBJECTIVES, constrained, estimate_mcu
from evo.arch.memory import format_bytes
from evo.moo.objectives import Constraint
from evo.run.layout import resolve_stored
from evo.run.store import Evaluation
from evo.search.contract import Measured

ESTIMATE_KEY = "mcu_estimate"  # metrics key of the raw estimate (McuEstimate.to_dict())


def mcu_named(objectives: Iterable[str], constraints: Iterable[Constraint]) -> bool:
    """Whether a run's objectives or constraints name ``arena_bytes`` or ``flash_bytes``."""
    names = set(objectives) | {c.name for c in constraints}
    return bool(names & set(MCU_OBJECTIVES))


def mcu_values(resolved: ResolvedArch) -> tuple[dict[str, float], dict[str, Any]]:
    """The objectives (estimate with its margin) and the metrics (the raw estimate)."""
    estimate = estimate_mcu(resolved)
    objectives = {name: float(round(constrained(name, estimate))) for name in MCU_OBJECTIVES}
    return objectives, {ESTIMATE_KEY: estimate.to_dict()}


def mcu_refusal(resolved: ResolvedArch, constraints: Iterable[Constraint]
                ) -> tuple[str, dict[str, float]] | None:
    """A skip reason and the values when the estimate misses a constraint on
    ``arena_bytes`` or ``flash_bytes`` (None when it meets them, or none is set)."""
    limits = [c for c in constraints if c.name in MCU_OBJECTIVES]
    if not limits:
        return None
    values, _ = mcu_values(resolved)
    missed = [c.text for c in limits if c.violation(values[c.name]) > 0]
    if not missed:
        return None
    return (f"violates {', '.join(missed)} (estimated with the safety margin: TFLite Micro "
            f"arena {format_bytes(values['arena_bytes'])}, flash "
            f"{format_bytes(values['flash_bytes'])}); not trained"), values


def estimate_stored(run_dir: Path, evaluation: Evaluation) -> Measured:
    """The values for an evaluation stored without them (a warm start from a run whose
    objectives did not name them), from the network its checkpoint holds."""
    if all(name in evaluation.objectives for name in MCU_OBJECTIVES):
        return Measured()
    if not evaluation.weights:
        return Measured(failure="no weights to read the network from for arena_bytes/"
                                "flash_bytes")
    from evo.net.checkpoint import load_checkpoint

    loaded = load_checkpoint(resolve_stored(run_dir, evaluation.weights))
    resolved = resolve(parse_arch(loaded.arch_text), loaded.input_shape, loaded.num_classes)
    objectives, metrics = mcu_values(resolved)
    return Measured(objectives, metrics)


def merged(first: Measured, second: Measured) -> Measured:
    """Both measurements as one (the second's failure, if any, wins)."""
    return Measured({**first.objectives, **second.objectives}, {**first.metrics, **second.metrics},
                    first.measurements + second.measurements, second.failure or first.failure)
