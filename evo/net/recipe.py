"""What a recipe means for one training step: the optimiser, the learning rate at each step,
and the augmentation of a batch."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from evo.errors import EvoError


def crop_padding(height: int) -> int:
    """Padding of the random crop: an eighth of the side (4 px at 32, 3 at 28, 1 at 8)."""
    return max(1, height // 8)


def augment_batch(x: torch.Tensor, pad: int, hflip: bool, generator: torch.Generator
                  ) -> torch.Tensor:
    """Random crop after zero padding, plus a random horizontal flip when ``hflip``.

    One gather does both, on whatever device ``x`` lives; the result is NCHW in channels-last
    memory. Zero padding is the mean colour, because ``x`` is already normalised.
    """
    n, _, height, width = x.shape
    device = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    left = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    rows = top + torch.arange(height, device=device)
    cols = left + torch.arange(width, device=device)
    if hflip:
        flip = torch.rand((n, 1), generator=generator, device=device) < 0.5
        cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None]
    gathered = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (n, H, W, C)
    return gathered.permute(0, 3, 1, 2)


def make_optimizer(model: nn.Module, recipe: Any, device: torch.device) -> torch.optim.Optimizer:
    """The recipe's optimiser; weight decay applies to weights only, not to biases and norms.

    On CUDA the update of all parameters is one fused kernel (SGD, Adam, AdamW) or a few
    multi-tensor ones (RMSprop, which has no fused form; asked for explicitly, not left to
    PyTorch's default): a small network has many small tensors, and a launch per tensor would
    keep the GPU waiting on the CPU. On CPU PyTorch's default stays, so weights trained on CPU
    (and the evaluation keys naming them) stay as they were.
    """
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    cuda = device.type == "cuda"
    fused = {"fused": True} if cuda else {}
    name, lr = recipe.optimizer, recipe.lr
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, **fused)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=name == "nesterov", **fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, **fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, **fused)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, **({"foreach": True} if cuda else {}))
    raise EvoError(f"unknown optimizer '{name}'", "use sgd, momentum, nesterov, adam, adamw or "
                   "rmsprop")


def learning_rate(base: float, schedule: str, step: int, total_steps: int) -> float:
    """Learning rate at ``step`` of ``total_steps``: constant, cosine to zero, or step decay
    (x0.1 at half and again at three quarters of training)."""
    progress = step / max(1, total_steps)
    if schedule == "cosine":
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return base * (0.1 ** ((progress >= 0.5) + (progress >= 0.75)))
    return base
