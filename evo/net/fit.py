"""The training loop of one candidate: epochs of index-sliced batches on the device, with
progress reports and the failures that belong to the candidate (NaN loss, the time limit).

A fit may cover only part of the training (``stop_after``) and may continue a saved one
(``resume``, evo.net.resume): the schedule always spans all ``epochs``, so segments 1 -> 3 -> 5
equal one straight run to 5.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from evo.net.device import autocast
from evo.net.recipe import augment_batch, crop_padding, learning_rate, make_optimizer
from evo.net.resume import TrainingState, restore_rng

Progress = Callable[[dict[str, Any]], None]
# Within an epoch, the search's progress view asks for progress (batches done, running loss,
# images/s) at most this often: each report reads the loss back from the device, which waits
# for the queued steps.
PROGRESS_EVERY_S = 1.0
_EVAL_BATCH = 1024


class CandidateFailure(Exception):
    """A candidate-level failure with a reason a person can read (becomes a failed result)."""


@dataclass
class FitRun:
    """Everything one fit needs, gathered once."""

    model: nn.Module
    recipe: Any
    device: torch.device
    x: torch.Tensor
    y: torch.Tensor
    epochs: int
    hflip: bool
    seed: int
    started: float
    max_seconds: float | None
    score_x: torch.Tensor
    score_y: torch.Tensor
    split_name: str
    progress: Progress | None
    progress_every: float | None = None  # seconds between reports within an epoch; None: none
    stop_after: int | None = None  # stop once the model has this many epochs; None: ``epochs``
    resume: TrainingState | None = None  # continue this saved training (weights already loaded)
    # Stop after the first epoch of a fresh training when validation accuracy is at or below
    # this (no better than chance); ``aborted`` then says so.
    abort_below: float | None = None
    curve: list[float] = field(default_factory=list)  # filled as epochs finish
    # Filled by ``fit`` for the caller: what a snapshot needs, and what this fit cost.
    optimizer: torch.optim.Optimizer | None = None
    generator: torch.Generator | None = None
    step_index: int = 0
    images_seen: int = 0  # training images this fit processed
    scored: tuple[int, int] | None = None  # (epoch, correct) of the latest scoring, if any
    aborted: bool = False


class ReportThrottle:
    """Says when a report is due, at most once per ``every`` seconds; asking costs a clock
    read, never a device sync, so it can be asked on every step."""

    def __init__(self, every: float, now: float) -> None:
        self.every = every
        self.last = now

    def due(self, now: float) -> bool:
        if now - self.last < self.every:
            return False
        self.last = now
        return True


def count_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> int:
    """Correct top-1 predictions on one split, in large batches, without gradients."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad(), autocast(device):
        for start in range(0, x.shape[0], _EVAL_BATCH):
            batch = x[start:start + _EVAL_BATCH].contiguous(memory_format=torch.channels_last)
            logits = model(batch)
            correct += (logits.argmax(dim=1) == y[start:start + _EVAL_BATCH]).sum()
    return int(correct.item())


def fit(run: FitRun) -> list[float]:
    """Train in place; returns the mean training loss of each epoch (all of them, those of a
    resumed training too). Raises ``CandidateFailure`` for NaN/inf loss or the time limit."""
    model, recipe, device = run.model, run.recipe, run.device
    n = run.x.shape[0]
    batch_size = min(recipe.batch_size, n)
    # A last batch of one image breaks batch norm in training mode; drop it.
    steps = n // batch_size + (1 if n % batch_size > 1 else 0)
    total_steps = steps * run.epochs
    optimizer = make_optimizer(model, recipe, device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator(device=device)
    generator.manual_seed(run.seed)
    pad = crop_padding(run.x.shape[2])
    curve = run.curve
    step_index = 0
    if run.resume is not None:
        optimizer.load_state_dict(run.resume.optimizer)
        generator.set_state(run.resume.generator)
        restore_rng(run.resume, device)
        curve.extend(run.resume.loss_curve)
        step_index = run.resume.step
    run.optimizer, run.generator = optimizer, generator
    first_epoch, last_epoch = len(curve) + 1, run.stop_after or run.epochs
    throttle = ReportThrottle(run.progress_every or 0.0, time.perf_counter())
    within = run.progress if run.progress_every is not None else None  # reports in epochs
    for epoch in range(first_epoch, last_epoch + 1):
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        seen = 0
        epoch_started = time.perf_counter()
        for step in range(steps):
            index = order[step * batch_size:(step + 1) * batch_size]
            batch = run.x[index]
            if recipe.augment:
                batch = augment_batch(batch, pad, run.hflip, generator)
            batch = batch.contiguous(memory_format=torch.channels_last)
            lr = learning_rate(recipe.lr, recipe.schedule, step_index, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast(device):
                logits = model(batch)
            loss = loss_fn(logits.float(), run.y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * index.shape[0]
            seen += index.shape[0]
            step_index += 1
            run.images_seen += index.shape[0]
            if within is not None and step + 1 < steps and throttle.due(time.perf_counter()):
                loss_so_far = float((loss_sum / seen).item())  # the one sync of this report
                now = time.perf_counter()
                within({"epoch": epoch, "epochs": run.epochs, "batch": step + 1,
                        "batches": steps, "loss": loss_so_far,
                        "images_per_second": seen / max(now - epoch_started, 1e-9),
                        "seconds": now - run.started})
            if run.max_seconds is not None:
                elapsed = time.perf_counter() - run.started
                if elapsed > run.max_seconds:
                    raise CandidateFailure(
                        f"timeout: {elapsed:.1f} s passed the {run.max_seconds:g} s limit in "
                        f"epoch {epoch} of {run.epochs}")
        mean_loss = float((loss_sum / seen).item())
        if not math.isfinite(mean_loss):
            raise CandidateFailure(f"training loss became {mean_loss} in epoch {epoch} "
                                    f"(optimizer {recipe.optimizer}, lr {recipe.lr:g})")
        curve.append(mean_loss)
        abort_check = run.abort_below is not None and run.resume is None and epoch == 1
        if run.progress is not None or abort_check:
            correct = count_correct(model, run.score_x, run.score_y, device)
            run.scored = (epoch, correct)
            accuracy = correct / run.score_x.shape[0]
        if run.progress is not None:
            run.progress({"epoch": epoch, "epochs": run.epochs, "loss": mean_loss,
                          f"{run.split_name}_accuracy": accuracy,
                          "seconds": time.perf_counter() - run.started})
            throttle.last = time.perf_counter()
        if abort_check and accuracy <= run.abort_below:
            run.aborted = True
            break
    run.step_index = step_index
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CandidateFailure(f"weights became non-finite ({name}) although the loss "
                                    "stayed finite")
    return curve
