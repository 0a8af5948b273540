"""Memory a network needs, estimated from its resolved architecture before anything exists.

A grammar (or a hand-written text) can describe a network of tens of gigabytes: four
``conv(4096, k=15)`` layers hold 11 billion weights. Building it to find out is what gets a
process killed by the kernel, with nothing recorded. So every path that builds a network
(``evo arch show``, a search candidate, ``evo retrain``, ``evo export``) first estimates what it
will allocate from the shapes :func:`evo.arch.resolve` computed, and refuses a network over the
limit with one line naming both numbers. Pure arithmetic: no torch, microseconds per network.

What is counted (float32, 4 bytes a value), per purpose:

* ``train``: weights, their gradients, the optimiser's state (Adam: two moments), a copy of
  the trained weights handed back to be saved, and the larger of two activation peaks: the
  training step (every tensor the forward pass creates at the batch size, as much again for
  their gradients in the backward pass, and the largest layer's input and output) and scoring
  without gradients in batches of up to 1024 images;
* ``inspect`` (``evo arch show``): the weights and one image's largest layer;
* ``export``: six copies of the weights (checkpoint, network, ONNX graph and its bytes, the
  runtimes' sessions) and inference at batch 256 (the parity check's batch).

Not counted: the dataset (the same for every candidate), the interpreter and libraries. Tests
hold the estimate against the peak resident memory torch really adds, on small networks.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from evo.arch.layers import BatchNorm, Dropout, DWSep, InvertedResidual, Pool
from evo.arch.resolve import ResolvedArch, ResolvedLayer, ir_hidden_channels, se_channels
from evo.errors import EvoError

BYTES_PER_VALUE = 4  # float32 weights and activations
SCORING_BATCH = 1024  # the trainer scores a split in batches of this many images
EXPORT_BATCH = 256  # torch's side of the export parity check runs this many at once
_OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "nesterov": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
_EXPORT_WEIGHT_COPIES = 6
# Share of the machine's memory that evaluations may use together (the rest: the driver, the
# dataset, the operating system).
_RAM_SHARE = 0.75


class MemoryLimitError(EvoError):
    """A network whose estimated memory is over the limit; nothing was allocated."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one use of a network needs, by kind; ``total`` is what the limit is held to."""

    purpose: str  # train | inspect | export
    batch: int  # images of the batch whose activations are counted (the larger peak)
    params: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    scoring: bool = False  # the activations are those of scoring without gradients

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def describe(self) -> str:
        """``about 61.4 GB (weights 45.3 GB, ..., activations 1.2 GB at batch 32)``."""
        parts = [f"weights {format_bytes(self.weights)}"]
        if self.gradients:
            parts.append(f"gradients {format_bytes(self.gradients)}")
        if self.optimizer:
            parts.append(f"optimizer state {format_bytes(self.optimizer)}")
        where = "scoring" if self.scoring else "at"
        parts.append(f"activations {format_bytes(self.activations)} {where} batch {self.batch}")
        return f"about {format_bytes(self.total)} ({', '.join(parts)})"


def format_bytes(n: float) -> str:
    """Decimal units, as everywhere in evo: 1 MB = 10^6 bytes, 1 GB = 10^9 bytes."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _size(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def _tensors(item: ResolvedLayer) -> list[int]:
    """Elements per image of every tensor a layer's forward pass creates, in order."""
    layer, out = item.layer, _size(item.out_shape)
    if isinstance(layer, DWSep):
        cin, spatial = item.in_shape[0], _size(item.out_shape[1:])
        return [cin * spatial] * 3 + [out] * 3  # depthwise, BN, act; pointwise, BN, act
    if isinstance(layer, InvertedResidual):
        cin, h, w = item.in_shape
        hidden = ir_hidden_channels(cin, layer.expansion)
        spatial = _size(item.out_shape[1:])
        made = [hidden * h * w] * 3 if layer.expansion != 1 else []
        made += [hidden * spatial] * 3
        if layer.se:  # pooled, squeezed, activated, expanded, gate, gated map
            squeeze = se_channels(hidden)
            made += [hidden, squeeze, squeeze, hidden, hidden, hidden * spatial]
        made += [out] * 2  # project, BN
        return made + ([out] if item.residual else [])
    if isinstance(layer, Pool) and layer.kind == "max":
        return [out, 2 * out]  # the indices are int64: two float32s each
    if isinstance(layer, Dropout):
        return [out, (out + 3) // 4]  # the mask is one byte a value
    return [out]  # conv, BN, activation, avg pool, gap, flatten (a copy in channels-last), dense


def _peak_inference(resolved: ResolvedArch) -> int:
    """Elements per image alive at once without gradients: a layer's input and twice its
    largest tensor (the output and a reordered copy oneDNN may make)."""
    peak = _size(resolved.input_shape)
    for item in resolved.layers:
        peak = max(peak, _size(item.in_shape) + 2 * max(_tensors(item)))
    return peak


def _weights(resolved: ResolvedArch) -> int:
    """Values of parameters and buffers (batch norm keeps a running mean and variance)."""
    buffers = 0
    for item in resolved.layers:
        if isinstance(item.layer, BatchNorm):
            buffers += 2 * item.in_shape[0]
        elif isinstance(item.layer, DWSep):
            buffers += 2 * (item.in_shape[0] + item.layer.filters)
        elif isinstance(item.layer, InvertedResidual):
            hidden = ir_hidden_channels(item.in_shape[0], item.layer.expansion)
            buffers += 2 * (hidden * (2 if item.layer.expansion != 1 else 1) + item.layer.filters)
    return resolved.params() + buffers


def estimate_training(resolved: ResolvedArch, batch: int | None = None,
                      scoring_batch: int = SCORING_BATCH) -> MemoryEstimate:
    """Training at ``batch`` (default: the recipe's), scoring in ``scoring_batch`` images."""
    batch = resolved.recipe.batch_size if batch is None else max(1, int(batch))
    values = _weights(resolved)
    saved = _size(resolved.input_shape) + sum(sum(_tensors(i)) for i in resolved.layers)
    largest = max([_size(resolved.input_shape)] +
                  [_size(i.in_shape) + _size(i.out_shape) for i in resolved.layers])
    step = (2 * saved + largest) * batch  # what autograd keeps, the gradients of as much
    scoring_batch = max(1, int(scoring_batch))
    scoring = _peak_inference(resolved) * scoring_batch
    slots = _OPTIMIZER_SLOTS.get(resolved.recipe.optimizer, 2)
    return MemoryEstimate(
        purpose="train", batch=batch if step >= scoring else scoring_batch,
        scoring=scoring > step, params=resolved.params(),
        weights=2 * values * BYTES_PER_VALUE,  # the network and the copy handed back
        gradients=resolved.params() * BYTES_PER_VALUE,
        optimizer=(slots + 1) * resolved.params() * BYTES_PER_VALUE,  # + the step's temporaries
        activations=max(step, scoring) * BYTES_PER_VALUE,
    )


def estimate_inspection(resolved: ResolvedArch) -> MemoryEstimate:
    """Building the network and running one image through it (``evo arch show``)."""
    return MemoryEstimate(
        purpose="inspect", batch=1, params=resolved.params(),
        weights=_weights(resolved) * BYTES_PER_VALUE, gradients=0, optimizer=0,
        activations=_peak_inference(resolved) * BYTES_PER_VALUE,
    )


def estimate_export(resolved: ResolvedArch, batch: int = EXPORT_BATCH) -> MemoryEstimate:
    """Loading a checkpoint, converting it to every format and checking parity."""
    return MemoryEstimate(
        purpose="export", batch=batch, params=resolved.params(),
        weights=_EXPORT_WEIGHT_COPIES * _weights(resolved) * BYTES_PER_VALUE,
        gradients=0, optimizer=0,
        activations=2 * _peak_inference(resolved) * batch * BYTES_PER_VALUE,  # torch + runtime
    )


# ---------------------------------------------------------------- the limit

_MEMORY_TEXT = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{1,6})?)\s*([kmgt]i?b|b)\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_memory(text: str, option: str = "--max-memory") -> int:
    """``8GB``, ``512MB``, ``1.5GiB`` -> bytes (MB = 10^6, MiB = 2^20); a unit is required."""
    m = _MEMORY_TEXT.fullmatch(str(text))
    value = float(m.group(1)) * _UNITS[m.group(2).lower()] if m else 0.0
    if not m or value < 1:
        raise EvoError(f"{option} {str(text)[:40]!r} is not an amount of memory",
                       "give a number with its unit, e.g. 8GB, 512MB or 2GiB, or auto")
    return int(value)


def machine_memory() -> int | None:
    """Bytes of memory this process may use: the physical memory, or the container's
    (cgroup) limit when that is lower; None where the platform says neither."""
    from evo.capacity import total_memory

    total = total_memory()
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < (total or int(text) + 1):
            total = int(text)
    return total


def default_limit(workers: int = 1) -> int:
    """Three quarters of the machine's memory, shared by the evaluations that run at once
    (no limit where the machine's memory is unknown)."""
    total = machine_memory()
    if total is None:
        return sys.maxsize
    return int(total * _RAM_SHARE) // max(1, int(workers))


def memory_limit(text: str | None, workers: int = 1) -> int:
    """The limit in bytes: ``text`` (``--max-memory``) or, for None/``auto``, the default."""
    if text is None or str(text).strip().lower() == "auto":
        return default_limit(workers)
    return parse_memory(text)


def refusal(estimate: MemoryEstimate, limit: int, what: str = "the network",
            option: str | None = "--max-memory") -> str | None:
    """One line naming the estimate and the limit (and the ``option`` that sets it) when
    ``estimate`` is over it, else None."""
    if estimate.total <= limit:
        return None
    return (f"{what} needs {estimate.describe()} to {estimate.purpose}, over the memory limit "
            f"of {format_bytes(limit)}" + (f" ({option})" if option else ""))


def check_memory(estimate: MemoryEstimate, limit: int, what: str = "the network") -> None:
    """Raise :class:`MemoryLimitError` (exit code 2 at the CLI) when over the limit."""
    reason = refusal(estimate, limit, what)
    if reason is not None:
        raise MemoryLimitError(reason, "give a larger --max-memory if the machine has it, or "
                               "use a smaller network")
