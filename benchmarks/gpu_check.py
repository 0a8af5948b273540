"""GPU check: networks from every shipped grammar build, agree with the CPU and train fast on CUDA.

For each shipped grammar, a few networks are sampled from uniform random genomes (the search's
default GE settings: genome length 100, codons in [0, 100000], max_wraps 0, max_tree_depth 90),
resolved for CIFAR-shaped input (3x32x32, 10 classes) and, with a MobileNetV2 adapted to 32x32
as the reference network, checked on the device:

* eval-mode logits on the device in float32 (TF32 off) against the CPU in float32:
  max |difference| <= 1e-3 x max |CPU logit|;
* eval-mode logits in bf16 autocast with channels_last against the CPU in float32:
  max |difference| <= 5e-2 x max |CPU logit| (bf16 keeps 8 significant bits);
* one train-mode forward + backward in float32 (dropout off): max |gradient difference| over
  all parameters <= 1e-3 x the largest CPU gradient; in bf16 autocast with channels_last: loss
  and gradients finite;
* throughput of train-mode forward + backward on synthetic data, bf16 autocast + channels_last
  versus float32 + NCHW in the same process (the reference run): images/s as the median of
  several timed repeats with their min-max spread, and the ratio of the medians.

Needs only PyTorch (2.4+) and numpy: run from the source tree as
``PYTHONPATH=. python benchmarks/gpu_check.py`` (``benchmarks/gpu_check.sh`` runs it with the
GPU tests and the K-candidates-per-GPU benchmark). Exit status: 0 all checks passed, 1 a check
failed, 2 no CUDA device (or a bad ``--only``). ``--device cpu`` runs the same checks on the CPU
(a smoke test of this script; its timings mean nothing); ``--only TEXT`` checks one network.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evo.arch import ResolvedArch, parse_arch, resolve
from evo.errors import EvoError
from evo.net.model import build_model, count_macs, count_params

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # imported by file path (the tests), random_phenotypes is beside it
    sys.path.insert(0, HERE)
from random_phenotypes import sample_phenotypes  # noqa: E402

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
FP32_TOL = 1e-3
BF16_TOL = 5e-2
GRAD_TOL = 1e-3

# MobileNetV2 with CIFAR's usual adaptation (stem stride 1, first downsampling stage stride 1).
REFERENCE = (
    "conv(32, k=3, s=1) bn relu6 ir(16, e=1) ir(24, s=1, n=2) ir(32, s=2, n=3) "
    "ir(64, s=2, n=4) ir(96, n=3) ir(160, s=2, n=3) ir(320) conv(1280, k=1) bn relu6 gap "
    "dropout(0.2)"
)


@dataclass(frozen=True)
class Sample:
    source: str  # grammar name or "reference"
    phenotype: str
    resolved: ResolvedArch


@dataclass(frozen=True)
class Outcome:
    sample: Sample
    params: int
    macs: int
    fp32_err: float
    bf16_err: float
    grad_err: float
    bf16_finite: bool
    fast: tuple[float, ...]  # images/s per repeat, bf16 autocast + channels_last
    slow: tuple[float, ...]  # images/s per repeat, float32 + NCHW

    @property
    def failures(self) -> list[str]:
        out = []
        if not self.fp32_err <= FP32_TOL:
            out.append(f"fp32 error {self.fp32_err:.2e} > {FP32_TOL:g}")
        if not self.bf16_err <= BF16_TOL:
            out.append(f"bf16 error {self.bf16_err:.2e} > {BF16_TOL:g}")
        if not self.grad_err <= GRAD_TOL:
            out.append(f"gradient error {self.grad_err:.2e} > {GRAD_TOL:g}")
        if not self.bf16_finite:
            out.append("bf16 loss or gradients not finite")
        return out


def relative_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    """max |result - reference| / max |reference| (0 when both are all zero)."""
    result = result.detach().float().cpu()
    reference = reference.detach().float().cpu()
    scale = reference.abs().max().item()
    diff = (result - reference).abs().max().item()
    if scale == 0.0:
        return diff
    return diff / scale


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().float().cpu() for p in model.parameters() if p.grad is not None]


def _train_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: bool
) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
        loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _throughput(
    model: nn.Module, device: torch.device, batch: int, iters: int, repeats: int, fast: bool,
    seed: int,
) -> tuple[float, ...]:
    """Images per second of train-mode forward + backward, one value per timed repeat."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((batch, *INPUT_SHAPE), generator=gen).to(device)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=gen).to(device)
    if fast:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    else:
        model = model.to(memory_format=torch.contiguous_format)
    model.train()
    for _ in range(3):
        _train_step(model, x, y, autocast=fast)
    _sync(device)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iters):
            _train_step(model, x, y, autocast=fast)
        _sync(device)
        rates.append(batch * iters / (time.perf_counter() - start))
    return tuple(rates)


def check_network(
    sample: Sample, device: torch.device, batch: int, iters: int, repeats: int, seed: int
) -> Outcome:
    resolved = sample.resolved
    cpu_model = build_model(resolved, torch.Generator().manual_seed(seed))
    params, macs = count_params(cpu_model), count_macs(cpu_model, INPUT_SHAPE)
    dev_model = copy.deepcopy(cpu_model).to(device)

    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn((16, *INPUT_SHAPE), generator=gen)
    y = torch.randint(0, NUM_CLASSES, (16,), generator=gen)
    xd, yd = x.to(device), y.to(device)

    # Eval-mode logits: float32 parity (no TF32), then bf16 autocast + channels_last.
    cpu_model.eval()
    dev_model.eval()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            reference = cpu_model(x)
            fp32_err = relative_error(dev_model(xd), reference)
            dev_model.to(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = dev_model(xd.contiguous(memory_format=torch.channels_last))
            bf16_err = relative_error(out, reference)
            dev_model.to(memory_format=torch.contiguous_format)

        # Train mode, float32: gradients against the CPU's (dropout off so both agree).
        for m in (cpu_model, dev_model):
            m.train()
            for module in m.modules():
                if isinstance(module, nn.Dropout):
                    module.eval()
        _train_step(cpu_model, x, y, autocast=False)
        _train_step(dev_model, xd, yd, autocast=False)
        dev_grads, cpu_grads = _grads(dev_model), _grads(cpu_model)
        grad_err = 0.0
        if cpu_grads:
            grad_err = relative_error(
                torch.cat([g.flatten() for g in dev_grads]),
                torch.cat([g.flatten() for g in cpu_grads]),
            )
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32

    # Train mode, bf16 autocast + channels_last: finite loss and gradients.
    dev_model.train()
    dev_model.to(memory_format=torch.channels_last)
    loss = _train_step(dev_model, xd.contiguous(memory_format=torch.channels_last), yd,
                       autocast=True)
    finite = bool(torch.isfinite(loss).item()) and all(
        bool(torch.isfinite(g).all()) for g in _grads(dev_model)
    )

    fast = _throughput(dev_model, device, batch, iters, repeats, fast=True, seed=seed)
    slow = _throughput(dev_model, device, batch, iters, repeats, fast=False, seed=seed)
    return Outcome(sample, params, macs, fp32_err, bf16_err, grad_err, finite, fast, slow)


def _rate(rates: tuple[float, ...]) -> str:
    med = statistics.median(rates)
    return f"{med:>9,.0f} [{min(rates):,.0f}-{max(rates):,.0f}]"


def print_table(outcomes: list[Outcome]) -> None:
    header = (
        f"{'source':<13} {'params':>10} {'MACs':>13} {'fp32 err':>9} {'bf16 err':>9} "
        f"{'grad err':>9} {'bf16+CL img/s [min-max]':>27} {'fp32 img/s [min-max]':>27} "
        f"{'ratio':>6}  status"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        ratio = statistics.median(o.fast) / statistics.median(o.slow)
        status = "ok" if not o.failures else "FAIL: " + "; ".join(o.failures)
        print(
            f"{o.sample.source:<13} {o.params:>10,} {o.macs:>13,} {o.fp32_err:>9.1e} "
            f"{o.bf16_err:>9.1e} {o.grad_err:>9.1e} {_rate(o.fast):>27} {_rate(o.slow):>27} "
            f"{ratio:>5.2f}x  {status}"
        )
    print()
    for i, o in enumerate(outcomes):
        print(f"[{i}] {o.sample.source}: {o.sample.resolved.network_text()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--per-grammar", type=int, default=3, help="networks per grammar")
    parser.add_argument("--batch", type=int, default=256, help="batch size for the timing")
    parser.add_argument("--iters", type=int, default=10, help="train steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per setting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-epochs", type=int, default=3,
                        help="training section: epochs per network (0 skips it)")
    parser.add_argument("--train-images", type=int, default=12_000,
                        help="training section: synthetic CIFAR-shaped images (all splits)")
    parser.add_argument("--only", metavar="TEXT", default=None,
                        help="check this one network instead of the reference and the samples "
                             "(e.g. a small one for a quick run on the CPU)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            f"gpu_check: no CUDA device: PyTorch {torch.__version__} "
            f"(built for CUDA {torch.version.cuda}) sees none, so nothing was checked",
            file=sys.stderr,
        )
        return 2
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(f"device: {props.name}, {props.total_memory / 1e9:.1f} GB; PyTorch "
              f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
              f"{torch.backends.cudnn.version()}")
        if not torch.cuda.is_bf16_supported():
            print("warning: this GPU has no native bf16; the bf16 checks run emulated or fail")
    else:
        print(f"device: {device} (smoke test: timings are not meaningful); PyTorch "
              f"{torch.__version__}")
    print(f"input {'x'.join(map(str, INPUT_SHAPE))}, {NUM_CLASSES} classes; timing batch "
          f"{args.batch}, {args.repeats} repeats x {args.iters} train steps (forward + backward)")
    print(f"tolerances: fp32 {FP32_TOL:g}, bf16 {BF16_TOL:g}, gradients {GRAD_TOL:g} "
          f"(max |device - CPU float32| / max |CPU float32|)")
    print()

    import grammars

    rng = np.random.default_rng(args.seed)
    if args.only is not None:
        try:
            only = resolve(parse_arch(args.only), INPUT_SHAPE, NUM_CLASSES)
        except EvoError as error:
            print(f"gpu_check: --only: {error}", file=sys.stderr)
            return 2
        samples = [Sample("given", args.only, only)]
    else:
        samples = [Sample("reference", REFERENCE, resolve(parse_arch(REFERENCE), INPUT_SHAPE,
                                                           NUM_CLASSES))]
    for name in grammars.names() if args.only is None else ():
        for phenotype in sample_phenotypes(name, args.per_grammar, rng):
            samples.append(
                Sample(name, phenotype, resolve(parse_arch(phenotype), INPUT_SHAPE, NUM_CLASSES))
            )
    started = time.perf_counter()
    outcomes = [
        check_network(s, device, args.batch, args.iters, args.repeats, args.seed + i)
        for i, s in enumerate(samples)
    ]
    print_table(outcomes)
    failed = [o for o in outcomes if o.failures]
    print()
    print(f"{len(outcomes) - len(failed)}/{len(outcomes)} networks passed in "
          f"{time.perf_counter() - started:.1f} s; ratio = median bf16+channels_last img/s / "
          f"median fp32 NCHW img/s")
    trained = True
    if args.train_epochs > 0:
        print()
        trained = train_check(device, args.train_epochs, args.train_images, args.seed)
    return 1 if failed or not trained else 0


# ============================================================================================
# Training section (issue 5): evo's own trainer, evo.net.train.train_candidate, on the device.
#
# Data arrives with this script: a learnable synthetic CIFAR-shaped set (each class is a fixed
# smooth random colour pattern plus strong per-pixel noise), generated from the seed, so no
# file from ../shared (or anywhere) is needed. Trains a small inverted-residual network, the
# MobileNetV2 reference above and one cnn_full sample for a few epochs exactly as a search would
# (bf16 autocast, channels_last, dataset resident on the device, augmentation on the device),
# and reports status, validation accuracy and images/s of the training loop. Passes when every
# network trains without failure and the small network learns the patterns (validation
# accuracy >= TRAIN_MIN_ACCURACY; on the CPU it reaches 1.0 after one epoch of 12,000 images).
# ============================================================================================

TRAIN_RECIPE = "| optimizer=momentum lr=0.05 batch_size=128 schedule=cosine augment=on"
TRAIN_SMALL = ("conv(16, k=3, s=2) bn relu6 ir(24, e=4, s=2) ir(24, e=4) ir(40, e=4, s=2) gap "
               "dense(10)")
TRAIN_MIN_ACCURACY = 0.9


def synthetic_cifar(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uint8 images (N, 32, 32, 3) and labels: smooth class patterns plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (NUM_CLASSES, 4, 4, 3))
    patterns = coarse.repeat(8, axis=1).repeat(8, axis=2)  # 4x4 blocks -> 32x32
    labels = np.arange(count) % NUM_CLASSES
    noise = rng.normal(0, 60, (count, 32, 32, 3))
    images = np.clip(patterns[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


def train_check(device: torch.device, epochs: int, images: int, seed: int) -> bool:
    from evo.data.dataset import from_arrays
    from evo.net.train import TrainBudget, train_candidate

    x, y = synthetic_cifar(images, seed)
    dataset = from_arrays(x, y, name="synthetic-cifar", seed=seed, hflip=True)
    sample = sample_phenotypes("cnn_full", 1, np.random.default_rng(seed))[0]
    networks = [("small-ir", f"{TRAIN_SMALL} {TRAIN_RECIPE}"),
                ("reference", f"{REFERENCE} {TRAIN_RECIPE}"), ("cnn_full", sample)]
    print(f"training: evo.net.train.train_candidate on {device}, synthetic CIFAR-shaped data "
          f"({len(dataset.train)} train / {len(dataset.val)} val images, generated here), "
          f"{epochs} epoch(s) per network")
    header = (f"{'network':<10} {'status':<7} {'val acc':>8} {'loop img/s':>11} "
              f"{'seconds':>8}  reason")
    print(header)
    print("-" * len(header))
    passed = True
    for name, text in networks:
        resolved = resolve(parse_arch(text), INPUT_SHAPE, NUM_CLASSES)
        result = train_candidate(resolved, dataset, TrainBudget(epochs=epochs),
                                 device=str(device), threads=1, seed=seed)
        accuracy = result.metrics.get("val_accuracy", float("nan"))
        rate = result.metrics.get("images_per_second", float("nan"))
        print(f"{name:<10} {result.status:<7} {accuracy:>8.4f} {rate:>11,.0f} "
              f"{result.metrics['seconds']:>8.1f}  {result.reason}")
        passed &= result.ok
        if name == "small-ir":
            passed &= accuracy >= TRAIN_MIN_ACCURACY
    for name, text in networks:
        print(f"[{name}] {resolve(parse_arch(text), INPUT_SHAPE, NUM_CLASSES).canonical_text()}")
    print(f"training section {'passed' if passed else 'FAILED'} (needs every network ok and "
          f"small-ir val accuracy >= {TRAIN_MIN_ACCURACY})")
    return passed


if __name__ == "__main__":
    sys.exit(main())
