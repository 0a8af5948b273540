"""Where and how a training runs: the device, the thread count, the numeric settings.

Also keeps a search's data on the device: a search trains many candidates on the same arrays,
so they are uploaded once, not once per candidate.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from evo.errors import EvoError
from evo.net.budget import TrainBudget


def resolve_device(device: str) -> torch.device:
    """``auto`` (CUDA if present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; bad names raise."""
    text = str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        target = torch.device(text)
    except RuntimeError:
        raise EvoError(f"unknown device '{device}'", "use auto, cpu, cuda or cuda:N") from None
    if target.type == "cpu":
        return torch.device("cpu")
    if target.type != "cuda":
        raise EvoError(f"unsupported device '{device}'", "use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise EvoError(f"device '{device}' requested but CUDA is not available here",
                       "use --device cpu or auto")
    index = 0 if target.index is None else target.index
    if index >= torch.cuda.device_count():
        raise EvoError(f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA "
                       "device(s) visible", "use cuda:0 .. cuda:N-1")
    return torch.device("cuda", index)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run with exactly ``threads`` intra-op threads, restoring the previous count after."""
    if not isinstance(threads, int) or threads < 1:
        raise EvoError(f"threads must be a positive integer, got {threads!r}", "e.g. --threads 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def cudnn_autotune(device: torch.device) -> Iterator[None]:
    """On CUDA let cuDNN time its algorithms per layer shape (fast, not bit-exact); restore."""
    if device.type != "cuda":
        yield
        return
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA (fast, and safe without loss scaling); none on CPU, where
    float32 keeps training bit-exact."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def memory_limit(budget: TrainBudget, device: torch.device) -> int | None:
    """Bytes a training may use: the budget's, else on CUDA what the device can still give."""
    if budget.max_memory_bytes is not None:
        return budget.max_memory_bytes
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return None


_RESIDENT_SLOTS = 4
_resident: dict[tuple[int, int, str], tuple[Any, Any, tuple[torch.Tensor, torch.Tensor]]] = {}


def to_device(x: np.ndarray, y: np.ndarray,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Tensors of one split on ``device``, kept for the next candidate.

    A search trains many candidates on the same arrays, so re-uploading them each time would be
    pure overhead. A few splits are kept, each checked by identity (weak references, so a
    dropped dataset is not kept alive by a stale id). On CPU the tensors share numpy's memory.
    """
    key = (id(x), id(y), str(device))
    entry = _resident.get(key)
    if entry is not None and entry[0]() is x and entry[1]() is y:
        return entry[2]
    tensors = (torch.from_numpy(x).to(device), torch.from_numpy(y).to(device))
    while len(_resident) >= _RESIDENT_SLOTS:
        _resident.pop(next(iter(_resident)))
    _resident[key] = (weakref.ref(x), weakref.ref(y), tensors)
    return tensors
