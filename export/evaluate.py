"""Run an artifact with its own runtime: parity against torch, and accuracy on labelled data.

Runners take normalised float32 NCHW batches of any size and return logits, whatever the
artifact's batch size or input format, so parity and accuracy code is the same for all formats.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.errors import ExportError
from export.request import INPUT_NAME, LabelledData, Tolerance
from export.results import ParityResult

if TYPE_CHECKING:
    from torch import nn

DYNAMIC_CHUNK = 64

# Significant bits (the implicit leading bit included) of the float types an artifact is stored
# or executed in, under the names export uses for stored precision (fp32) and the names
# OpenVINO reports for executed precision (f32, bf16).
SIGNIFICANT_BITS: Mapping[str, int] = {"fp32": 24, "f32": 24, "fp16": 11, "f16": 11, "bf16": 8}
# A logit is a long sum of rounded products and passes through several rounded layers, so one
# unit of the last place of the largest logit is too tight: the bound allows 2**3 of them. On
# the reference network of tests/test_export.py bf16 came to 2**-7.9 of the largest logit, on
# the same network untrained (logits that nearly cancel) to 2**-6.5.
ROUNDING_HEADROOM_BITS = 3
# Even in f32, runtimes sum in another order than torch (Winograd, blocked kernels).
KERNEL_ATOL = 1e-4


@dataclass(frozen=True)
class U8Input:
    """How a normalised sample becomes the u8 NHWC frame an IR with embedded preprocessing takes.

    The frame is rounded to integers, so torch's reference must see the same rounded frame
    (``reference``), or parity would measure the rounding, not the export.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float

    def _stats(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        mean = np.broadcast_to(np.asarray(self.mean, np.float32), (channels,))
        std = np.broadcast_to(np.asarray(self.std, np.float32), (channels,))
        return mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)

    def frame(self, x: np.ndarray) -> np.ndarray:
        mean, std = self._stats(x.shape[1])
        raw = (x * std + mean) * self.pixel_scale
        u8 = np.clip(np.rint(raw), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(u8.transpose(0, 2, 3, 1))

    def reference(self, x: np.ndarray) -> np.ndarray:
        mean, std = self._stats(x.shape[1])
        frame = self.frame(x).transpose(0, 3, 1, 2).astype(np.float32)
        return ((frame / np.float32(self.pixel_scale) - mean) / std).astype(np.float32)


@dataclass(frozen=True)
class Runner:
    """An artifact ready to run: normalised NCHW in, logits out."""

    run_batch: Callable[[np.ndarray], np.ndarray]
    fixed_batch: int | None
    executed_precision: str | None
    u8_input: U8Input | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        feed = x if self.u8_input is None else self.u8_input.frame(x)
        step = self.fixed_batch or DYNAMIC_CHUNK
        outputs = []
        for start in range(0, len(feed), step):
            chunk = feed[start : start + step]
            if self.fixed_batch and len(chunk) < self.fixed_batch:
                pad = np.repeat(chunk[-1:], self.fixed_batch - len(chunk), axis=0)
                outputs.append(self.run_batch(np.concatenate([chunk, pad]))[: len(chunk)])
            else:
                outputs.append(self.run_batch(chunk))
        return np.concatenate(outputs).astype(np.float32)

    def reference_input(self, x: np.ndarray) -> np.ndarray:
        """What torch must see so that its output is comparable with this runner's."""
        return x if self.u8_input is None else self.u8_input.reference(x)


def onnx_runner(path: Path, *, threads: int | None = None) -> Runner:
    """onnxruntime's CPU provider, the runtime an ONNX artifact is meant for on any edge box."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    batch = session.get_inputs()[0].shape[0]

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {INPUT_NAME: x})[0])

    return Runner(run, batch if isinstance(batch, int) else None, None)


def openvino_runner(
    xml_path: Path, *, f32: bool, threads: int | None = None, u8_input: U8Input | None = None
) -> Runner:
    """OpenVINO on CPU; ``f32`` pins inference precision for parity, else the CPU's default."""
    from export.openvino import compile_ir, executed_precision

    compiled = compile_ir(xml_path, f32=f32, threads=threads)
    request = compiled.create_infer_request()
    batch_dim = compiled.inputs[0].get_partial_shape()[0]

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer({0: x})[compiled.outputs[0]])

    fixed = batch_dim.get_length() if batch_dim.is_static else None
    return Runner(run, fixed, executed_precision(compiled), u8_input)


def torch_logits(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The reference outputs, computed the way training evaluated the model (eval, no grad)."""
    import torch

    outputs = []
    with torch.inference_mode():
        for start in range(0, len(x), batch):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start : start + batch]))
            outputs.append(model(chunk).float().cpu().numpy())
    return np.concatenate(outputs)


def accuracy_of(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy as a fraction."""
    return float(np.mean(np.argmax(logits, axis=1) == labels)) if len(labels) else 0.0


def evaluate_accuracy(runner: Runner, data: LabelledData) -> float:
    return accuracy_of(runner(data.x), data.y)


def logit_tolerance(scale: float, *precisions: str | None) -> float | None:
    """The largest ``|runtime - torch|`` to expect for logits of magnitude ``scale``.

    Each precision is a stored (``fp16``) or executed (``bf16``, ``int8+f32``) one; the
    coarsest float among them decides: ``KERNEL_ATOL + scale * 2**-(bits - 3)``, so bf16 (8
    significant bits) allows ``scale / 32`` and f32 about ``1e-4``. A CPU whose OpenVINO
    default is bf16 then gets a bound derived from what it ran instead of failing an f32 one.
    None (unknown, e.g. onnxruntime) adds nothing; any int8 part gives None: quantised logits
    move by more than any useful bound.
    """
    bits = SIGNIFICANT_BITS["f32"]
    for precision in precisions:
        for part in (precision or "").lower().split("+"):
            if part in ("", "-"):
                continue
            if part in ("int8", "i8", "u8"):
                return None
            if part not in SIGNIFICANT_BITS:
                raise ExportError(
                    f"unknown precision {part!r}", f"one of {', '.join(SIGNIFICANT_BITS)}, int8"
                )
            bits = min(bits, SIGNIFICANT_BITS[part])
    return KERNEL_ATOL + abs(float(scale)) * 2.0 ** -(bits - ROUNDING_HEADROOM_BITS)


def fragile_predictions(reference: np.ndarray, *precisions: str | None) -> np.ndarray:
    """Samples whose top-1 class may legitimately differ from torch's at these precisions.

    A prediction can only flip where torch's two best logits are within twice the tolerance
    of each other (one may rise and the other fall by the bound); the scale is the largest
    logit of the batch, as in parity. Every sample is fragile where no bound exists (int8).
    """
    reference = np.asarray(reference, dtype=np.float64)
    bound = logit_tolerance(float(np.max(np.abs(reference), initial=0.0)), *precisions)
    if bound is None:
        return np.ones(len(reference), dtype=bool)
    top2 = np.sort(reference, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) <= 2.0 * bound


def random_inputs(rng: np.random.Generator, count: int, input_shape: Sequence[int]) -> np.ndarray:
    """Standard-normal inputs: in normalised space that spans the data's typical range."""
    return rng.standard_normal((count, *input_shape)).astype(np.float32)


def check_parity(
    runner: Runner,
    reference: nn.Module,
    random: np.ndarray,
    samples: np.ndarray | None,
    tolerance: Tolerance,
) -> ParityResult:
    """Compare with torch on random inputs and real samples; the reason says what broke."""
    diff_random, scale_random, _ = _compare(runner, reference, random)
    bound_random = tolerance.bound(scale_random)
    reasons = []
    if bound_random is not None and not diff_random <= bound_random:
        reasons.append(f"random inputs: max |diff| {diff_random:.3g} > {bound_random:.3g}")
    diff_samples = bound_samples = agreement = None
    if samples is not None and len(samples):
        diff_samples, scale_samples, agreement = _compare(runner, reference, samples)
        bound_samples = tolerance.bound(scale_samples)
        if bound_samples is not None and not diff_samples <= bound_samples:
            reasons.append(f"real samples: max |diff| {diff_samples:.3g} > {bound_samples:.3g}")
        if tolerance.min_top1_agreement is not None and agreement < tolerance.min_top1_agreement:
            reasons.append(
                f"real samples: top-1 agreement {agreement:.3f} < {tolerance.min_top1_agreement}"
            )
    elif tolerance.min_top1_agreement is not None:
        reasons.append("no real samples to check top-1 agreement on")
    return ParityResult(
        passed=not reasons,
        max_abs_diff_random=diff_random,
        max_abs_diff_samples=diff_samples,
        top1_agreement_samples=agreement,
        bound_random=bound_random,
        bound_samples=bound_samples,
        random_inputs=len(random),
        real_samples=0 if samples is None else len(samples),
        tolerance=tolerance,
        executed_precision=runner.executed_precision,
        reason="; ".join(reasons) or None,
    )


def _compare(runner: Runner, reference: nn.Module, x: np.ndarray) -> tuple[float, float, float]:
    got = runner(x)
    expected = torch_logits(reference, runner.reference_input(x))
    if got.shape != expected.shape:
        raise ExportError(
            f"artifact outputs shape {list(got.shape)}, torch {list(expected.shape)}",
            "the artifact does not match this model",
        )
    diff = float(np.max(np.abs(got - expected)))
    if not np.isfinite(diff):
        diff = float("inf")
    agreement = float(np.mean(np.argmax(got, axis=1) == np.argmax(expected, axis=1)))
    return diff, float(np.max(np.abs(expected))), agreement
