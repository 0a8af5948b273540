"""Trained candidates on disk: everything needed to rebuild and use the network, and nothing
that executes.

A checkpoint is one ``torch.save`` file holding only strings, numbers, lists and tensors, so
``torch.load(weights_only=True)`` reads it: the resolved architecture text (which rebuilds the
exact module tree), the input shape, class names and normalisation (what export and inference
need to feed it real images), the weights, and a small JSON metadata string. Writes go to a
temporary file in the same folder and are renamed into place, so a crash never leaves a torn
checkpoint under the final name.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evo.arch import ResolvedArch, parse_arch, resolve
from evo.errors import EvoError

FORMAT = "evo-checkpoint"
VERSION = 1


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint with its network rebuilt (CPU, eval mode)."""

    arch_text: str
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    state_dict: dict[str, torch.Tensor] = field(repr=False)
    resolved: ResolvedArch = field(repr=False)
    model: nn.Module = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)


def checkpoint_bytes(
    resolved_text: str,
    input_shape: Sequence[int],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    class_names: Sequence[str],
    state_dict: Mapping[str, torch.Tensor],
    *,
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """A checkpoint's file content: what a worker sends to the driver, which alone writes the
    run folder (a worker on another node has no access to it)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": str(resolved_text),
        "input_shape": [int(v) for v in input_shape],
        "num_classes": int(num_classes),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "class_names": [str(name) for name in class_names],
        "state_dict": {name: tensor.detach().cpu().contiguous()
                       for name, tensor in state_dict.items()},
        "metadata": json.dumps(dict(metadata or {}), sort_keys=True),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(path: Path, *args: Any, **kwargs: Any) -> Path:
    """Write a checkpoint atomically: ``path``, then exactly checkpoint_bytes's arguments (one
    parameter list, so the file written and the bytes a worker sends cannot drift apart);
    ``metadata`` must be JSON-serialisable (run, metrics)."""
    path = Path(path)
    content = checkpoint_bytes(*args, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _field(payload: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    value = payload.get(key)
    if not isinstance(value, kind):
        raise EvoError(f"{path}: checkpoint field '{key}' is missing or malformed",
                       "re-create the checkpoint with this version of evo")
    return value


def load_checkpoint(path: Path, max_memory: int | None = None) -> Checkpoint:
    """Read a checkpoint (weights only, nothing executed) and rebuild its network.

    Refuses (``MemoryLimitError``) a network whose export is estimated above ``max_memory``
    bytes (default: the machine's limit) before building it."""
    from evo.arch.memory import check_memory, default_limit, estimate_export
    from evo.net.model import build_model

    path = Path(path)
    hint = "pass a .pt file written by evo (runs/NAME/models/)"
    if not path.is_file():
        raise EvoError(f"{path}: checkpoint not found", hint)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()
        raise EvoError(f"{path}: not a readable evo checkpoint ({first[0] if first else error})",
                       hint) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EvoError(f"{path}: not an evo checkpoint", hint)
    if payload.get("version") != VERSION:
        raise EvoError(f"{path}: checkpoint format version {payload.get('version')!r}, this evo "
                       f"reads version {VERSION}", "re-create it with this version of evo")
    text = _field(payload, "arch", str, path)
    shape = tuple(_field(payload, "input_shape", list, path))
    num_classes = _field(payload, "num_classes", int, path)
    state = _field(payload, "state_dict", dict, path)
    if len(shape) != 3:
        raise EvoError(f"{path}: input shape {shape} is not (C, H, W)", hint)
    resolved = resolve(parse_arch(text), shape, num_classes)
    check_memory(estimate_export(resolved), default_limit() if max_memory is None else max_memory,
                 f"{path.name}'s network")
    model = build_model(resolved)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise EvoError(f"{path}: weights do not fit the stored architecture ({first})",
                       "the file is damaged or was edited; re-create it") from None
    model.eval()
    return Checkpoint(
        arch_text=text,
        input_shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        num_classes=num_classes,
        mean=tuple(float(v) for v in _field(payload, "mean", list, path)),
        std=tuple(float(v) for v in _field(payload, "std", list, path)),
        class_names=tuple(str(n) for n in _field(payload, "class_names", list, path)),
        state_dict=state,
        resolved=resolved,
        model=model,
        metadata=json.loads(_field(payload, "metadata", str, path)),
    )
