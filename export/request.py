"""What an export needs, as plain data: the inputs, the options and the parity tolerances.

Everything a format needs arrives here, so exporters never reach into a run directory or
``evo``; the CLI (or any other caller) fills these from wherever its models live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from export.errors import ExportError
from export.litert_io import IO_TYPES as LITERT_IO_TYPES
from export.tolerance import DEFAULT_TOLERANCES, Tolerance

if TYPE_CHECKING:
    from torch import nn

# Importers of this module use the tolerances from here too (export.tolerance owns them).
__all__ = ["DEFAULT_TOLERANCES", "INPUT_NAME", "OUTPUT_NAME", "ExportInputs", "ExportOptions",
           "LabelledData", "Tolerance", "make_inputs"]

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ExportOptions:
    """How to export; the defaults are what ``evo export`` uses.

    ``calibration_size`` caps the calibration samples of INT8 formats (fewer are used, and
    said, when fewer are given). ``max_accuracy_drop`` (percentage points) switches ir-int8 to
    NNCF's accuracy-controlled quantisation, which needs validation data. ``embed_preprocessing``
    gives IR artifacts a u8 NHWC input that is divided by ``pixel_scale`` and normalised inside
    the model. ``onnx_exporter="auto"`` tries torch's dynamo exporter and falls back to the
    TorchScript one. ``threads`` bounds the runtimes' threads (None: their default).
    ``calibration_hint`` says how this caller supplies calibration data when an INT8 format has
    none (the CLI names its option; empty: ``export_all``'s ``calibration=``). ``litert_io`` is
    the input/output type of litert-int8: ``int8``, ``uint8`` or ``float``.
    """

    dynamic_batch: bool = False
    calibration_size: int = 300
    max_accuracy_drop: float | None = None
    embed_preprocessing: bool = False
    pixel_scale: float = 255.0
    onnx_exporter: Literal["auto", "dynamo", "torchscript"] = "auto"
    opset: int | None = None
    parity_random: int = 8
    parity_samples: int = 32
    tolerances: Mapping[str, Tolerance] = field(default_factory=lambda: DEFAULT_TOLERANCES)
    seed: int = 0
    threads: int | None = None
    calibration_hint: str = ""
    litert_io: str = "int8"

    def __post_init__(self) -> None:
        if self.calibration_size < 1:
            raise ExportError(
                f"calibration size must be at least 1, got {self.calibration_size}",
                "300 is NNCF's default",
            )
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop <= 100:
            raise ExportError(
                f"maximum accuracy drop must be 0..100 percentage points, got "
                f"{self.max_accuracy_drop}",
                "e.g. 1.0 for one point",
            )
        if self.pixel_scale <= 0:
            raise ExportError(f"pixel scale must be positive, got {self.pixel_scale}", "e.g. 255")
        if self.parity_random < 1:
            raise ExportError("parity needs at least one random input", "parity_random >= 1")
        if self.onnx_exporter not in ("auto", "dynamo", "torchscript"):
            raise ExportError(
                f"unknown ONNX exporter {self.onnx_exporter!r}", "auto, dynamo or torchscript"
            )
        if self.litert_io not in LITERT_IO_TYPES:
            raise ExportError(
                f"unknown LiteRT I/O type {self.litert_io!r}", ", ".join(LITERT_IO_TYPES)
            )
        missing = {"fp32", "fp16", "int8"} - set(self.tolerances)
        if missing:
            raise ExportError(
                f"tolerances lack {', '.join(sorted(missing))}", "give fp32, fp16 and int8"
            )


@dataclass(frozen=True)
class LabelledData:
    """Normalised float32 NCHW samples and their integer class labels."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class ExportInputs:
    """One model and everything its artifacts and manifests need."""

    model: nn.Module
    input_shape: tuple[int, int, int]
    calibration: np.ndarray | None = None
    evaluation: LabelledData | None = None
    validation: LabelledData | None = None
    class_names: tuple[str, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)


def make_inputs(
    model: nn.Module,
    input_shape: tuple[int, int, int] | list[int],
    *,
    calibration: np.ndarray | None = None,
    evaluation: tuple[np.ndarray, np.ndarray] | LabelledData | None = None,
    validation: tuple[np.ndarray, np.ndarray] | LabelledData | None = None,
    class_names: tuple[str, ...] | list[str] = (),
    mean: tuple[float, ...] | list[float] = (),
    std: tuple[float, ...] | list[float] = (),
    source: Mapping[str, Any] | None = None,
) -> ExportInputs:
    """Check and normalise what a caller hands in, failing early with a clear message."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ExportError(
            f"input shape must be C,H,W with positive sizes, got {list(input_shape)}",
            "e.g. 1x28x28",
        )
    channels = shape[0]
    mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean_t) != len(std_t) or len(mean_t) not in (0, 1, channels):
        raise ExportError(
            f"mean has {len(mean_t)} values and std {len(std_t)}; both need 1 or {channels}",
            "one value per input channel",
        )
    if any(s <= 0 for s in std_t):
        raise ExportError(f"std must be positive, got {list(std_t)}", "check the normalisation")
    cal = None if calibration is None else _samples(calibration, shape, "calibration")
    return ExportInputs(
        model=model,
        input_shape=shape,  # type: ignore[arg-type]
        calibration=cal,
        evaluation=_labelled(evaluation, shape, "evaluation"),
        validation=_labelled(validation, shape, "validation"),
        class_names=tuple(str(c) for c in class_names),
        mean=mean_t,
        std=std_t,
        source=dict(source or {}),
    )


def _samples(x: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or tuple(x.shape[1:]) != shape:
        raise ExportError(
            f"{what} data has shape {list(x.shape)}, expected N x {'x'.join(map(str, shape))}",
            "pass normalised float32 NCHW samples",
        )
    if len(x) == 0:
        raise ExportError(f"{what} data is empty", f"pass at least one sample or no {what} data")
    return np.ascontiguousarray(x, dtype=np.float32)


def _labelled(
    data: tuple[np.ndarray, np.ndarray] | LabelledData | None, shape: tuple[int, ...], what: str
) -> LabelledData | None:
    if data is None:
        return None
    x, y = (data.x, data.y) if isinstance(data, LabelledData) else data
    xs = _samples(x, shape, what)
    ys = np.asarray(y).astype(np.int64).reshape(-1)
    if len(ys) != len(xs):
        raise ExportError(
            f"{what} data has {len(xs)} samples but {len(ys)} labels", "one label per sample"
        )
    return LabelledData(xs, ys)
