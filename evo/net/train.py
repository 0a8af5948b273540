"""Train one candidate network and score it, on CPU or CUDA, deterministically on CPU.

The search evaluates hundreds of small networks on small images, so the loop is built for that
case: the whole split lives in one tensor on the device and batches are index slices of it (no
``DataLoader``, no worker processes), augmentation is a tensor op that runs wherever the data is,
and everything that can fail for a *candidate* (NaN loss, out of memory, the wall-clock limit,
a network over the size or memory budget, an error inside its forward pass) comes back as a
failed ``EvalResult`` instead of an exception, so one bad network never stops a search. Bad
*user* input (an unknown device, a malformed budget) still raises ``EvoError``.

Determinism contract: the evaluation key (``evaluation_key``) names everything that changes the
trained weights; the search's ``derive_seed`` (evo.search.contract) turns (run seed, key) into
the training seed; on CPU the same key and seed give bit-identical weights for one machine type,
thread count and library build, not across CPU instruction sets (on AVX-512 or AMX oneDNN picks
other kernels than on AVX2).
CUDA runs are fast rather than bit-exact (cuDNN picks algorithms by timing), and a wall-clock
limit makes any result machine-dependent.

Continuable training (successive halving): ``train_candidate(..., stop_after=k)`` stops once the
model has ``k`` of its ``E`` epochs and returns the training's state as bytes
(``EvalResult.state``, evo.net.resume); ``resume=state`` continues from exactly there. The
learning-rate schedule always spans ``E`` epochs, so 1 -> 3 -> 5 equals straight to 5.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from evo.arch import ResolvedArch
from evo.arch.memory import estimate_training
from evo.data.dataset import Dataset
from evo.errors import EvoError
from evo.net.budget import MEMORY_FORMAT, TrainBudget, evaluation_key
from evo.net.device import cudnn_autotune, memory_limit, resolve_device, to_device, torch_threads
from evo.net.fit import (
    PROGRESS_EVERY_S,
    CandidateFailure,
    FitRun,
    Progress,
    ReportThrottle,
    count_correct,
    fit,
)
from evo.net.recipe import augment_batch, crop_padding, learning_rate, make_optimizer
from evo.net.resume import TrainingState, load_state, restore_model, snapshot

# The training API in one place: callers import these from here, whichever module holds them.
__all__ = [
    "MEMORY_FORMAT",
    "PROGRESS_EVERY_S",
    "EvalResult",
    "Progress",
    "ReportThrottle",
    "TrainBudget",
    "augment_batch",
    "crop_padding",
    "evaluation_key",
    "learning_rate",
    "make_optimizer",
    "resolve_device",
    "train_candidate",
    "train_final",
]


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation produced.

    ``objectives``: ``error`` (1 - accuracy on the scored split), ``params``, ``macs``; a failed
    result has ``error`` 1.0 and whatever counts were known. ``metrics``: accuracy counts, the
    per-epoch training-loss curve (all epochs so far), ``epochs_run`` (the model's epochs so
    far), ``epochs_trained`` and ``images_seen`` (what this call trained: the compute it
    spent), seconds, device, threads and more. ``status`` is ``ok``, ``failed`` or ``stopped``
    (early abort: no better than chance). The trained weights (CPU tensors) ride along in
    ``state_dict`` for checkpointing; ``state`` holds the bytes to continue a training stopped
    before its full budget (evo.net.resume). Neither takes part in equality or repr.
    """

    status: str
    reason: str
    objectives: dict[str, float]
    metrics: dict[str, Any]
    state_dict: dict[str, torch.Tensor] | None = field(default=None, compare=False, repr=False)
    state: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> dict[str, Any]:
        """JSON-ready record (no weights) for the run store."""
        return {"status": self.status, "reason": self.reason,
                "objectives": dict(self.objectives), "metrics": dict(self.metrics)}


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


@dataclass(frozen=True)
class _Segment:
    """Which part of the training one call runs: up to ``stop_after`` epochs (None: all),
    from a saved state or from the start, with or without the early-abort check."""

    stop_after: int | None = None
    resume: bytes | None = None
    abort_below: float | None = None


def _planned_stop(segment: _Segment, epochs: int, state: TrainingState | None) -> int:
    """The epoch this call stops at: ``stop_after`` capped at the candidate's budget (a recipe's
    ``epochs_mult`` can make it shorter than a halving rung), past the saved epochs."""
    stop = epochs if segment.stop_after is None else min(int(segment.stop_after), epochs)
    done = state.epochs_run if state is not None else 0
    if stop < 1 or stop <= done:
        raise EvoError(f"stop_after={segment.stop_after} must be above the {done} epoch(s) "
                       f"already trained (budget {epochs})", "ask for a later epoch")
    return stop


def _judgeable(abort_below: float | None) -> float | None:
    """The early-abort threshold, or None when it is 1 or more: on a validation set that
    small no first epoch can show it beats chance, so no candidate is judged on it."""
    return abort_below if abort_below is not None and abort_below < 1.0 else None


def _abort_reason(accuracy: float, threshold: float, labels: np.ndarray, split: str) -> str:
    """Why a candidate stopped early, with the numbers a person can check."""
    chance = float(np.bincount(labels).max()) / max(1, labels.shape[0])
    name = "validation" if split == "val" else split
    return (f"no better than chance: {accuracy * 100:.1f} % {name} accuracy after epoch 1 "
            f"(chance {chance * 100:.1f} %, margin {(threshold - chance) * 100:.1f} points "
            f"over {labels.shape[0]:,} images)")


def _evaluate(
    resolved: ResolvedArch,
    dataset: Dataset,
    train_xy: tuple[np.ndarray, np.ndarray],
    score_xy: tuple[np.ndarray, np.ndarray],
    split_name: str,
    budget: TrainBudget,
    device: str,
    threads: int,
    seed: int,
    progress: Progress | None,
    progress_every: float | None = None,
    segment: _Segment = _Segment(),
) -> EvalResult:
    from evo.net.model import build_model, count_macs, count_params

    if tuple(resolved.input_shape) != tuple(dataset.input_shape) or \
            resolved.num_classes != dataset.num_classes:
        raise EvoError(
            f"network resolved for input {tuple(resolved.input_shape)} with "
            f"{resolved.num_classes} classes, but {dataset.name} is {dataset.input_shape} with "
            f"{dataset.num_classes} classes", "resolve the spec for this dataset")
    target = resolve_device(device)
    started = time.perf_counter()
    recipe = resolved.recipe
    epochs = budget.epochs_for(recipe.epochs_mult)
    saved = load_state(segment.resume, epochs, target) if segment.resume is not None else None
    stop = _planned_stop(segment, epochs, saved)
    done_before = saved.epochs_run if saved is not None else 0
    metrics: dict[str, Any] = {
        "scored_on": split_name, "epochs_planned": epochs, "epochs_run": done_before,
        "epochs_trained": 0, "images_seen": 0,
        "loss_curve": list(saved.loss_curve) if saved is not None else [],
        "device": str(target), "threads": threads, "memory_format": MEMORY_FORMAT,
        "seed": int(seed),
    }
    if target.type == "cuda":
        metrics["device_name"] = torch.cuda.get_device_name(target)
    objectives: dict[str, float] = {"error": 1.0}

    run: FitRun | None = None

    def failed(reason: str) -> EvalResult:
        if run is not None:
            metrics["loss_curve"] = list(run.curve)
            metrics["epochs_run"] = len(run.curve)
            metrics["epochs_trained"] = len(run.curve) - done_before
            metrics["images_seen"] = run.images_seen
        metrics["seconds"] = time.perf_counter() - started
        return EvalResult("failed", reason, dict(objectives), dict(metrics))

    rng_devices = [target.index] if target.type == "cuda" else []
    state: bytes | None = None
    with torch_threads(threads), torch.random.fork_rng(devices=rng_devices), \
            cudnn_autotune(target):
        torch.manual_seed(seed)  # dropout draws from the global RNG, forked and restored here
        try:
            model = build_model(resolved, torch.Generator().manual_seed(seed))
            objectives["params"] = float(count_params(model))
            objectives["macs"] = float(count_macs(model, tuple(resolved.input_shape)))
            if budget.max_params is not None and objectives["params"] > budget.max_params:
                return failed(f"too large: {int(objectives['params'])} parameters exceed the "
                              f"budget of {budget.max_params}")
            clock = time.perf_counter()  # the wall-clock limit starts here
            x, y = to_device(*train_xy, target)
            score_x, score_y = to_device(*score_xy, target)
            batch = min(recipe.batch_size, x.shape[0])
            needed = estimate_training(resolved, batch).total  # the one estimate evo has
            metrics["estimated_memory_bytes"] = needed
            limit = memory_limit(budget, target)
            if limit is not None and needed > limit:
                return failed(f"too large for memory: training needs about {needed / 1e6:.0f} MB "
                              f"(batch {batch}), the budget is {limit / 1e6:.0f} MB")
            model = model.to(target, memory_format=torch.channels_last)
            if saved is not None:
                restore_model(model, saved)
                clock -= saved.train_seconds  # the time limit covers the whole training
            run = FitRun(model=model, recipe=recipe, device=target, x=x, y=y, epochs=epochs,
                         hflip=dataset.hflip, seed=seed, started=clock,
                         max_seconds=budget.max_seconds, score_x=score_x, score_y=score_y,
                         split_name=split_name, progress=progress,
                         progress_every=progress_every, stop_after=stop, resume=saved,
                         abort_below=_judgeable(segment.abort_below))
            train_started, cpu_started = time.perf_counter(), time.process_time()
            curve = fit(run)
            train_seconds = time.perf_counter() - train_started
            train_cpu_seconds = time.process_time() - cpu_started
            if run.scored is not None and run.scored[0] == len(curve):
                correct = run.scored[1]  # scored after the last epoch already
            else:
                correct = count_correct(model, score_x, score_y, target)
            if len(curve) < epochs and not run.aborted:
                assert run.optimizer is not None and run.generator is not None
                state = snapshot(model, run.optimizer, run.generator, run.step_index, curve,
                                 target, epochs, time.perf_counter() - clock)
        except CandidateFailure as failure:
            return failed(str(failure))
        except EvoError:
            raise
        except Exception as error:  # a candidate's own failure must not stop the search
            if target.type == "cuda":
                torch.cuda.empty_cache()
            if _is_oom(error):
                return failed(f"out of memory on {target}: {_first_line(error)}")
            return failed(f"training failed: {_first_line(error)}")
    total = int(score_y.shape[0])
    accuracy = correct / total
    objectives["error"] = 1.0 - accuracy
    trained = len(curve) - done_before
    metrics.update({
        f"{split_name}_accuracy": accuracy, f"{split_name}_correct": correct,
        f"{split_name}_total": total, "loss_curve": curve, "epochs_run": len(curve),
        "epochs_trained": trained, "images_seen": run.images_seen,
        "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
        "images_per_second": run.images_seen / max(train_seconds, 1e-9),
        "seconds": time.perf_counter() - started,
    })
    if run.aborted:
        assert segment.abort_below is not None
        reason = _abort_reason(accuracy, segment.abort_below, score_xy[1], split_name)
        return EvalResult("stopped", reason, objectives, metrics)
    weights = {name: tensor.detach().to("cpu", copy=True).contiguous()
               for name, tensor in model.state_dict().items()}
    return EvalResult("ok", "", objectives, metrics, state_dict=weights, state=state)


def train_candidate(
    resolved: ResolvedArch,
    dataset: Dataset,
    budget: TrainBudget,
    *,
    device: str = "auto",
    threads: int = 1,
    seed: int,
    progress: Progress | None = None,
    progress_every_s: float | None = None,
    stop_after: int | None = None,
    resume: bytes | None = None,
    abort_below: float | None = None,
) -> EvalResult:
    """Train on the training split, score on validation. Never raises for the candidate's own
    failures.

    ``progress`` (if given) receives one dict per epoch (``epoch``, ``epochs``, ``loss``,
    ``val_accuracy``, ``seconds``; scoring in eval mode leaves the weights, and so the
    determinism, untouched) and, when ``progress_every_s`` is given, within an epoch at most
    one every that many seconds with ``batch``, ``batches``, the running mean ``loss`` and
    ``images_per_second`` (the key ``batch`` tells the two apart).

    Successive halving: ``stop_after=k`` trains until the model has ``k`` epochs of its full
    budget ``E`` (capped at ``E``; the schedule always spans ``E``), scores validation and, if
    ``k < E``, returns the state to continue in ``EvalResult.state``; ``resume`` takes those
    bytes and continues exactly there (a damaged or mismatched state raises
    ``evo.net.resume.TrainingStateError``). ``abort_below`` (see
    ``evo.net.budget.chance_threshold``): a fresh training whose validation accuracy after
    epoch 1 is at or below it stops with status ``stopped`` and the reason (a threshold of 1
    or more, from a tiny validation set, judges nothing).
    """
    return _evaluate(resolved, dataset, (dataset.train.x, dataset.train.y),
                     (dataset.val.x, dataset.val.y), "val", budget, device, threads, seed,
                     progress, progress_every_s, _Segment(stop_after, resume, abort_below))


def train_final(
    resolved: ResolvedArch,
    dataset: Dataset,
    budget: TrainBudget,
    *,
    device: str = "auto",
    threads: int = 1,
    seed: int,
    progress: Progress | None = None,
) -> EvalResult:
    """Retrain from scratch on train + validation and score on the test split (``evo retrain``).

    Metrics are named ``test_accuracy`` etc.; normalisation stays the training split's, as
    stored with the dataset.
    """
    x = np.concatenate([dataset.train.x, dataset.val.x])
    y = np.concatenate([dataset.train.y, dataset.val.y])
    return _evaluate(resolved, dataset, (x, y), (dataset.test.x, dataset.test.y), "test",
                     budget, device, threads, seed, progress)
