"""Microcontroller budgets of a network, estimated before it is trained or converted.

On a microcontroller the binding limits are RAM for activations (TensorFlow Lite Micro's
*tensor arena*) and flash for the model, not parameters. Converting every candidate of a
search to int8 and loading it in TFLite Micro costs seconds each, so the search uses this
estimate (microseconds) and the final front is measured (``evo export --format litert-int8``).

* ``arena_bytes``: TFLite Micro splits its arena into a *head* of activations, placed by its
  greedy memory planner (largest buffer first, each at the lowest offset that no buffer alive
  at the same time occupies, 16-byte aligned), and a *tail* of persistent structures. The head
  is computed here exactly as TFLM plans it, over the graph :func:`evo.arch.mcu_graph.lower`
  predicts, with the scratch buffers its kernels ask for (of these operators, only the int8
  MEAN: an int32 sum per output value); the tail is
  24 bytes a tensor, 8 a per-channel output channel (its requantisation multiplier and shift)
  and a fixed amount per operator kind, all fitted on measured models.
* ``flash_bytes``: the ``.tflite`` flatbuffer, the figure a firmware stores in flash: int8
  weights, int32 biases, a float32 scale and an int64 zero point per quantised channel, small
  constants, and per tensor its table in the flatbuffer and its name (longer inside
  inverted-residual blocks, whose module paths are nested). TFLite Micro's own code is
  not included: its size depends on the compiler and the operators linked in.

The constants come from ``benchmarks/bench_mcu_estimate.py`` (random networks of every shipped
grammar, trained-like weights, converted with ``export.litert`` and measured by TFLite Micro);
its table, the estimate's error against the measurement, is in ``docs/benchmarks.md``. They are
fitted across all networks, never per network. A constraint checked on the estimate multiplies
it by :data:`SAFETY_MARGIN` and adds :data:`SAFETY_BYTES` first (see :func:`bound`).

Pure arithmetic: no torch, no numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evo.arch.mcu_graph import LoweredGraph, lower
from evo.arch.resolve import ResolvedArch

__all__ = [
    "ALIGNMENT",
    "MCU_OBJECTIVES",
    "SAFETY_BYTES",
    "SAFETY_MARGIN",
    "McuEstimate",
    "bound",
    "constrained",
    "estimate_mcu",
    "measured_text",
    "plan_arena",
]

MCU_OBJECTIVES = ("arena_bytes", "flash_bytes")
ALIGNMENT = 16  # TFLite Micro aligns every planned buffer to 16 bytes
# A constraint on arena_bytes or flash_bytes is checked on the bound ``estimate * SAFETY_MARGIN
# + SAFETY_BYTES``, so that a network the search accepts stays under the limit when measured.
# Measured on 48 random networks of the shipped grammars at 1x28x28 and 3x32x32, none of them
# among those the constants were fitted on (docs/benchmarks.md): the arena estimate is within
# 0.04 % (59 bytes), the flash estimate from 1.1 % under to 1.8 % over (221 bytes under at
# most on the smallest models). The factor covers at least twice the largest relative
# underestimate (the arena's: 1 %, TFLite Micro's own version drift aside), the bytes the
# largest absolute one, for tiny models, rounded up.
SAFETY_MARGIN = {"arena_bytes": 1.01, "flash_bytes": 1.03}
SAFETY_BYTES = {"arena_bytes": 64, "flash_bytes": 256}

# Tail (persistent) bytes: 24 a tensor (TfLiteEvalTensor), 8 a quantised output channel, and
# fitted (non-negative least squares, benchmarks/bench_mcu_estimate.py --fit): a fixed part and
# per operator of each kind (node and registration, op data).
_TAIL_FIXED = 701
_TAIL_PER_TENSOR = 24
_TAIL_PER_CHANNEL = 8
_TAIL_PER_OP = {
    "CONV_2D": 170, "DEPTHWISE_CONV_2D": 174, "FULLY_CONNECTED": 178, "ADD": 140, "MUL": 116,
    "MEAN": 149, "PAD": 138, "AVERAGE_POOL_2D": 140, "MAX_POOL_2D": 139, "HARD_SWISH": 92,
    "LEAKY_RELU": 105, "RESHAPE": 108, "TRANSPOSE": 74,
}
_TAIL_OTHER_OP = 110  # a kind the shipped grammars never produce (relu alone, quantize): as unary

# Flash bytes: the data, 12 bytes per quantisation entry (a float32 scale and an int64 zero
# point), and fitted (non-negative least squares on the relative error, the benchmark's --fit):
# a fixed part (model tables, signature, metadata), per tensor (its table
# and shape), per module path in a tensor's name (top level; inside a block, where the paths
# are nested and longer).
_FLASH_PER_QUANTISED = 12
_FLASH_FIXED = 432
_FLASH_PER_TENSOR = 140
_FLASH_PER_NAME = 59
_FLASH_PER_BLOCK_NAME = 237


@dataclass(frozen=True)
class McuEstimate:
    """Estimated TFLite Micro figures of one network's int8 model (bytes)."""

    arena_bytes: int  # activations + persistent: the tensor_arena a firmware declares
    activations: int  # the planned head
    persistent: int  # the tail
    flash_bytes: int  # the .tflite flatbuffer
    weight_bytes: int  # int8 weights and int32 biases inside it
    ops: int
    tensors: int

    def to_dict(self) -> dict[str, int]:
        return {"arena_bytes": self.arena_bytes, "activations": self.activations,
                "persistent": self.persistent, "flash_bytes": self.flash_bytes,
                "weight_bytes": self.weight_bytes, "ops": self.ops, "tensors": self.tensors}


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def plan_arena(buffers: list[tuple[int, int, int]]) -> int:
    """High-water mark of TFLite Micro's greedy planner over ``(bytes, first, last)`` buffers.

    Largest first (ties: the later buffer, as TFLM's stable sort of a list it filled from the
    end leaves them); each goes to the lowest offset where it overlaps no placed buffer whose
    lifetime meets its own.
    """
    order = sorted(range(len(buffers)), key=lambda i: (-_align(buffers[i][0]), -i))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    top = 0
    for i in order:
        size, first, last = _align(buffers[i][0]), buffers[i][1], buffers[i][2]
        offset = 0
        for o, s, _, _ in sorted(p for p in placed if not (p[3] < first or p[2] > last)):
            if o >= offset + size:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, first, last))
        top = max(top, offset + size)
    return top


def _persistent(graph: LoweredGraph) -> int:
    per_op = sum(_TAIL_PER_OP.get(op.kind, _TAIL_OTHER_OP) for op in graph.ops)
    return (_TAIL_FIXED + per_op + _TAIL_PER_TENSOR * graph.tensor_count
            + _TAIL_PER_CHANNEL * graph.channels)


def _flash(graph: LoweredGraph) -> int:
    small = graph.small_constants
    data = graph.weights + 4 * graph.bias + sum(small.values())
    # A scale and a zero point per weight and bias channel, per activation, per int8 scalar.
    quantised = 2 * graph.channels + len(graph.tensors) + ("sixth" in small)
    names = {False: 0, True: 0}  # module paths in tensor names, outside and inside blocks
    for op in graph.ops:
        names[op.in_block] += (1 + op.parameter_tensors) * op.modules
    return round(_FLASH_FIXED + data + _FLASH_PER_QUANTISED * quantised
                 + _FLASH_PER_TENSOR * graph.tensor_count + _FLASH_PER_NAME * names[False]
                 + _FLASH_PER_BLOCK_NAME * names[True])


def estimate_mcu(resolved: ResolvedArch, io_type: str = "int8") -> McuEstimate:
    """Arena and flash of ``resolved`` as an int8 TFLite model with ``io_type`` input and
    output (``int8``, ``uint8`` or ``float``, as ``evo export --litert-io`` writes it)."""
    graph = lower(resolved, io_type)
    activations = plan_arena(graph.lifetimes())
    persistent = _persistent(graph)
    return McuEstimate(
        arena_bytes=activations + persistent, activations=activations, persistent=persistent,
        flash_bytes=_flash(graph), weight_bytes=graph.weights + 4 * graph.bias,
        ops=len(graph.ops), tensors=graph.tensor_count,
    )


def bound(name: str, value: float) -> float:
    """The most ``name`` (``arena_bytes`` or ``flash_bytes``) is expected to measure when
    estimated at ``value``: the estimate with its safety margin."""
    return value * SAFETY_MARGIN[name] + SAFETY_BYTES[name]


def constrained(name: str, estimate: McuEstimate) -> float:
    """The value a constraint on ``name`` is checked against: :func:`bound` of the estimate."""
    return bound(name, float(getattr(estimate, name)))


def measured_text(figures: Mapping[str, Any]) -> str | None:
    """One line for the figures an export stored (``evo.post.mcu_export``): TFLite Micro's
    arena and the flash, each with the estimate and its error; None without them."""
    estimate = figures.get("mcu_estimate")
    if "flash_bytes" not in figures or not isinstance(estimate, Mapping):
        return None

    def error(name: str) -> str:
        return f"{round(figures[name], 1) + 0.0:+.1f} %"  # + 0.0: no "-0.0"

    arena = figures.get("arena_bytes")
    if arena is None:
        text = f"TFLite Micro cannot run it ({figures.get('tflm_reason')})"
    else:
        text = (f"TFLite Micro arena {arena:,} bytes (estimate {estimate['arena_bytes']:,}, "
                f"{error('arena_estimate_error_pct')})")
    return (f"{text}; flash {figures['flash_bytes']:,} bytes (estimate "
            f"{estimate['flash_bytes']:,}, {error('flash_estimate_error_pct')})")
