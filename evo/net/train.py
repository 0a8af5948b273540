"""Train one candidate network and score it, on CPU or CUDA, deterministically on CPU.

The search evaluates hundreds of small networks on small images, so the loop is built for that
case: the whole split lives in one tensor on the device and batches are index slices of it (no
``DataLoader``, no worker processes), augmentation is a tensor op that runs wherever the data is,
and everything that can fail for a *candidate* (NaN loss, out of memory, the wall-clock limit,
a network over the size or memory budget, an error inside its forward pass) comes back as a
failed ``EvalResult`` instead of an exception, so one bad network never stops a search. Bad
*user* input (an unknown device, a malformed budget) still raises ``EvoError``.

Determinism contract: the evaluation key (``evaluation_key``) names everything that changes the
trained weights; ``derive_seed`` turns (run seed, key) into the training seed; on CPU the same
key and seed give bit-identical weights for one machine type, thread count and library build,
not across CPU instruction sets (on AVX-512 or AMX oneDNN picks other kernels than on AVX2).
CUDA runs are fast rather than bit-exact (cuDNN picks algorithms by timing), and a wall-clock
limit makes any result machine-dependent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evo.arch import ResolvedArch
from evo.arch.memory import estimate_training
from evo.data.dataset import Dataset
from evo.errors import EvoError

MEMORY_FORMAT = "channels_last"
_KEY_VERSION = 1
_EVAL_BATCH = 1024
# Training keeps roughly this many copies of every activation alive (the saved output, its
# gradient, and the temporaries of norm/activation layers); a deliberately generous factor.

Progress = Callable[[dict[str, Any]], None]
# Within an epoch, the search's progress view asks for progress (batches done, running loss,
# images/s) at most this often: each report reads the loss back from the device, which waits
# for the queued steps.
PROGRESS_EVERY_S = 1.0


# ---------------------------------------------------------------- budget, key, seed


@dataclass(frozen=True)
class TrainBudget:
    """How much training a candidate gets, and the limits that turn it into a failure.

    ``epochs`` is multiplied by the recipe's ``epochs_mult`` (at least one epoch).
    ``max_seconds`` caps the wall-clock time of one evaluation from the data transfer on
    (building the network and counting its MACs, which include one-off import costs, are not
    counted); it makes results depend on the machine's speed: the same key can succeed on a
    fast machine and time out on a slow one.
    ``max_params`` and ``max_memory_bytes`` reject networks before any training; on CUDA the
    memory budget defaults to what the device has free.
    """

    epochs: int = 10
    max_seconds: float | None = None
    max_params: int | None = None
    max_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise EvoError(f"epochs must be a positive integer, got {self.epochs!r}",
                           "e.g. --epochs 10")
        for name in ("max_seconds", "max_params", "max_memory_bytes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise EvoError(f"{name} must be positive when given, got {value!r}",
                               "leave it out for no limit")

    def epochs_for(self, recipe_epochs_mult: float) -> int:
        """Epochs a recipe gets: the budget times its multiplier, rounded, at least one."""
        return max(1, round(self.epochs * recipe_epochs_mult))


def evaluation_key(
    resolved: ResolvedArch,
    dataset_fingerprint: str,
    budget: TrainBudget,
    device_type: str,
    threads: int,
    memory_format: str = MEMORY_FORMAT,
) -> str:
    """sha256 naming one evaluation; equal keys mean the same trained weights (on CPU).

    It covers the resolved network and its recipe, the dataset (data, splits, normalisation),
    the budget, the device type, the thread count and the memory format, each of which changes
    the arithmetic of training. It is the cache key everywhere evaluations are reused.
    """
    payload = {
        "version": _KEY_VERSION,
        "arch": resolved.canonical_text(),
        "input_shape": list(resolved.input_shape),
        "num_classes": resolved.num_classes,
        "recipe": asdict(resolved.recipe),
        "dataset": dataset_fingerprint,
        "budget": asdict(budget),
        "device_type": device_type,
        "threads": int(threads),
        "memory_format": memory_format,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def derive_seed(run_seed: int, key: str) -> int:
    """The training seed of one evaluation: sha256 of the run seed and the key, 63 bits.

    Derived rather than drawn so it does not depend on evaluation order or on which worker
    runs the job: a resumed or distributed run trains every key exactly as a serial one.
    """
    digest = hashlib.sha256(f"{int(run_seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


# ---------------------------------------------------------------- result


@dataclass(frozen=True)
class EvalResult:
    """What one evaluation produced.

    ``objectives``: ``error`` (1 - accuracy on the scored split), ``params``, ``macs``; a failed
    result has ``error`` 1.0 and whatever counts were known. ``metrics``: accuracy counts, the
    per-epoch training-loss curve, epochs run, seconds, device, threads and more. The trained
    weights (CPU tensors) ride along in ``state_dict`` for checkpointing; they take no part in
    equality or repr.
    """

    status: str
    reason: str
    objectives: dict[str, float]
    metrics: dict[str, Any]
    state_dict: dict[str, torch.Tensor] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> dict[str, Any]:
        """JSON-ready record (no weights) for the run store."""
        return {"status": self.status, "reason": self.reason,
                "objectives": dict(self.objectives), "metrics": dict(self.metrics)}


class _CandidateFailure(Exception):
    """Internal: a candidate-level failure with a reason a person can read."""


# ---------------------------------------------------------------- device and threads


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
def _torch_threads(threads: int) -> Iterator[None]:
    """Run with exactly ``threads`` intra-op threads, restoring the previous count after."""
    if not isinstance(threads, int) or threads < 1:
        raise EvoError(f"threads must be a positive integer, got {threads!r}", "e.g. --threads 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ---------------------------------------------------------------- data on the device

_RESIDENT_SLOTS = 4
_resident: dict[tuple[int, int, str], tuple[Any, Any, tuple[torch.Tensor, torch.Tensor]]] = {}


def _to_device(x: np.ndarray, y: np.ndarray, device: torch.device) -> tuple[torch.Tensor,
                                                                              torch.Tensor]:
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


# ---------------------------------------------------------------- augmentation


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


# ---------------------------------------------------------------- optimiser and schedule


def make_optimizer(model: nn.Module, recipe: Any, device: torch.device) -> torch.optim.Optimizer:
    """The recipe's optimiser; weight decay applies to weights only, not to biases and norms."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay},
              {"params": rest, "weight_decay": 0.0}]
    fused = {"fused": True} if device.type == "cuda" else {}
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
        return torch.optim.RMSprop(groups, lr=lr)
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


def _memory_limit(budget: TrainBudget, device: torch.device) -> int | None:
    if budget.max_memory_bytes is not None:
        return budget.max_memory_bytes
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return None


# ---------------------------------------------------------------- the loop


@dataclass
class _Run:
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
    curve: list[float] = field(default_factory=list)  # filled as epochs finish


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


@contextlib.contextmanager
def _cudnn_autotune(device: torch.device) -> Iterator[None]:
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


def _autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> int:
    """Correct top-1 predictions on one split, in large batches, without gradients."""
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with torch.no_grad(), _autocast(device):
        for start in range(0, x.shape[0], _EVAL_BATCH):
            batch = x[start:start + _EVAL_BATCH].contiguous(memory_format=torch.channels_last)
            logits = model(batch)
            correct += (logits.argmax(dim=1) == y[start:start + _EVAL_BATCH]).sum()
    return int(correct.item())


def _fit(run: _Run) -> list[float]:
    """Train in place; returns the mean training loss of each epoch. Raises
    ``_CandidateFailure`` for NaN/inf loss or the time limit."""
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
    throttle = ReportThrottle(run.progress_every or 0.0, time.perf_counter())
    within = run.progress if run.progress_every is not None else None  # reports in epochs
    for epoch in range(1, run.epochs + 1):
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
            with _autocast(device):
                logits = model(batch)
            loss = loss_fn(logits.float(), run.y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * index.shape[0]
            seen += index.shape[0]
            step_index += 1
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
                    raise _CandidateFailure(
                        f"timeout: {elapsed:.1f} s passed the {run.max_seconds:g} s limit in "
                        f"epoch {epoch} of {run.epochs}")
        mean_loss = float((loss_sum / seen).item())
        if not math.isfinite(mean_loss):
            raise _CandidateFailure(f"training loss became {mean_loss} in epoch {epoch} "
                                    f"(optimizer {recipe.optimizer}, lr {recipe.lr:g})")
        curve.append(mean_loss)
        if run.progress is not None:
            accuracy = _correct(model, run.score_x, run.score_y, device) / run.score_x.shape[0]
            run.progress({"epoch": epoch, "epochs": run.epochs, "loss": mean_loss,
                          f"{run.split_name}_accuracy": accuracy,
                          "seconds": time.perf_counter() - run.started})
            throttle.last = time.perf_counter()
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise _CandidateFailure(f"weights became non-finite ({name}) although the loss "
                                    "stayed finite")
    return curve


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


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
    metrics: dict[str, Any] = {
        "scored_on": split_name, "epochs_planned": epochs, "epochs_run": 0, "loss_curve": [],
        "device": str(target), "threads": threads, "memory_format": MEMORY_FORMAT,
        "seed": int(seed),
    }
    if target.type == "cuda":
        metrics["device_name"] = torch.cuda.get_device_name(target)
    objectives: dict[str, float] = {"error": 1.0}

    run: _Run | None = None

    def failed(reason: str) -> EvalResult:
        if run is not None:
            metrics["loss_curve"] = list(run.curve)
            metrics["epochs_run"] = len(run.curve)
        metrics["seconds"] = time.perf_counter() - started
        return EvalResult("failed", reason, dict(objectives), dict(metrics))

    rng_devices = [target.index] if target.type == "cuda" else []
    with _torch_threads(threads), torch.random.fork_rng(devices=rng_devices), \
            _cudnn_autotune(target):
        torch.manual_seed(seed)  # dropout draws from the global RNG, forked and restored here
        try:
            model = build_model(resolved, torch.Generator().manual_seed(seed))
            objectives["params"] = float(count_params(model))
            objectives["macs"] = float(count_macs(model, tuple(resolved.input_shape)))
            if budget.max_params is not None and objectives["params"] > budget.max_params:
                return failed(f"too large: {int(objectives['params'])} parameters exceed the "
                              f"budget of {budget.max_params}")
            clock = time.perf_counter()  # the wall-clock limit starts here
            x, y = _to_device(*train_xy, target)
            score_x, score_y = _to_device(*score_xy, target)
            batch = min(recipe.batch_size, x.shape[0])
            needed = estimate_training(resolved, batch).total  # the one estimate evo has
            metrics["estimated_memory_bytes"] = needed
            limit = _memory_limit(budget, target)
            if limit is not None and needed > limit:
                return failed(f"too large for memory: training needs about {needed / 1e6:.0f} MB "
                              f"(batch {batch}), the budget is {limit / 1e6:.0f} MB")
            model = model.to(target, memory_format=torch.channels_last)
            run = _Run(model=model, recipe=recipe, device=target, x=x, y=y, epochs=epochs,
                       hflip=dataset.hflip, seed=seed, started=clock,
                       max_seconds=budget.max_seconds, score_x=score_x, score_y=score_y,
                       split_name=split_name, progress=progress,
                       progress_every=progress_every)
            train_started, cpu_started = time.perf_counter(), time.process_time()
            curve = _fit(run)
            train_seconds = time.perf_counter() - train_started
            train_cpu_seconds = time.process_time() - cpu_started
            correct = _correct(model, score_x, score_y, target)
        except _CandidateFailure as failure:
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
    metrics.update({
        f"{split_name}_accuracy": accuracy, f"{split_name}_correct": correct,
        f"{split_name}_total": total, "loss_curve": curve, "epochs_run": len(curve),
        "train_seconds": train_seconds, "train_cpu_seconds": train_cpu_seconds,
        "images_per_second": len(curve) * int(x.shape[0]) / max(train_seconds, 1e-9),
        "seconds": time.perf_counter() - started,
    })
    weights = {name: tensor.detach().to("cpu", copy=True).contiguous()
               for name, tensor in model.state_dict().items()}
    return EvalResult("ok", "", objectives, metrics, state_dict=weights)


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
) -> EvalResult:
    """Train on the training split, score on validation. Never raises for the candidate's own
    failures.

    ``progress`` (if given) receives one dict per epoch (``epoch``, ``epochs``, ``loss``,
    ``val_accuracy``, ``seconds``; scoring in eval mode leaves the weights, and so the
    determinism, untouched) and, when ``progress_every_s`` is given, within an epoch at most
    one every that many seconds with ``batch``, ``batches``, the running mean ``loss`` and
    ``images_per_second`` (the key ``batch`` tells the two apart).
    """
    return _evaluate(resolved, dataset, (dataset.train.x, dataset.train.y),
                     (dataset.val.x, dataset.val.y), "val", budget, device, threads, seed,
                     progress, progress_every_s)


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
