"""The state of an unfinished training, as bytes, so it can continue later (or elsewhere).

Successive halving trains a candidate in segments (1 epoch, then on to 3, then to 5) and a
promoted candidate must equal one trained straight through, bit for bit on one machine. So the
snapshot holds everything the training loop carries from one epoch to the next: the weights
and buffers, the optimiser's state, the step index that places the learning-rate schedule, the
generator that draws the data order and the augmentation, the global torch RNG (dropout draws
from it; on CUDA the device's generator too), the loss curve and the training time spent.

The bytes are a ``torch.save`` of plain containers of tensors, numbers and strings, loadable
with ``torch.load(weights_only=True)``: a state file from a run folder can never run code.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from evo.errors import EvoError

_FORMAT = "evo-training-state"
_VERSION = 1


class TrainingStateError(EvoError):
    """A saved training state that cannot continue this training (damaged, or made for another
    network, budget or device); the caller may train the candidate from the start instead."""


@dataclass(frozen=True)
class TrainingState:
    """A loaded snapshot (CPU tensors) of a training stopped after ``epochs_run`` epochs."""

    epochs_planned: int
    epochs_run: int
    device_type: str
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    step: int
    generator: torch.Tensor
    torch_rng: torch.Tensor
    cuda_rng: torch.Tensor | None
    loss_curve: list[float]
    train_seconds: float


def _to_cpu(value: Any) -> Any:
    """The same containers with every tensor copied to the CPU (strides kept)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


def snapshot(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    step: int,
    loss_curve: list[float],
    device: torch.device,
    epochs_planned: int,
    train_seconds: float,
) -> bytes:
    """The bytes of the training state right now; call it inside the training's forked RNG
    scope, so the global generator saved is the one dropout has been drawing from."""
    payload = {
        "format": _FORMAT,
        "version": _VERSION,
        "epochs_planned": int(epochs_planned),
        "epochs_run": len(loss_curve),
        "device_type": device.type,
        "model": _to_cpu(model.state_dict()),
        "optimizer": _to_cpu(optimizer.state_dict()),
        "step": int(step),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "loss_curve": [float(v) for v in loss_curve],
        "train_seconds": float(train_seconds),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def load_state(data: bytes, epochs_planned: int, device: torch.device) -> TrainingState:
    """Parse and check a snapshot for a training of ``epochs_planned`` epochs on ``device``.

    Raises ``TrainingStateError`` (one line) for bytes that are not a state evo wrote, or one
    made for another budget or device type (a CPU generator state cannot drive a CUDA one).
    """
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # damaged or foreign bytes: whatever the unpickler says
        raise TrainingStateError(f"the saved training state does not load: "
                                 f"{type(error).__name__}",
                                 "train the candidate from the start") from None
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise TrainingStateError("the saved training state is not one evo wrote",
                                 "train the candidate from the start")
    if payload.get("version") != _VERSION:
        raise TrainingStateError(f"the saved training state has version "
                                 f"{payload.get('version')!r}, this evo reads {_VERSION}",
                                 "train the candidate from the start")
    if payload["epochs_planned"] != epochs_planned:
        raise TrainingStateError(
            f"the saved training state belongs to a training of {payload['epochs_planned']} "
            f"epochs, not {epochs_planned}", "continue it with the budget it was made with")
    if payload["device_type"] != device.type:
        raise TrainingStateError(
            f"the saved training state was made on {payload['device_type']}, not {device.type}",
            "continue it on the same device type")
    return TrainingState(
        epochs_planned=int(payload["epochs_planned"]), epochs_run=int(payload["epochs_run"]),
        device_type=str(payload["device_type"]), model=payload["model"],
        optimizer=payload["optimizer"], step=int(payload["step"]),
        generator=payload["generator"], torch_rng=payload["torch_rng"],
        cuda_rng=payload["cuda_rng"], loss_curve=list(payload["loss_curve"]),
        train_seconds=float(payload["train_seconds"]))


def restore_model(model: nn.Module, state: TrainingState) -> None:
    """Weights and buffers into ``model`` in place (its device and memory format kept)."""
    try:
        model.load_state_dict(state.model)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise TrainingStateError(f"the saved training state is for another network: {first}",
                                 "train the candidate from the start") from None


def restore_rng(state: TrainingState, device: torch.device) -> None:
    """The global generators as they were when the snapshot was taken (dropout's draws)."""
    torch.set_rng_state(state.torch_rng)
    if device.type == "cuda" and state.cuda_rng is not None:
        torch.cuda.set_rng_state(state.cuda_rng, device)
