"""What every exporter shares: the interface, what a build returns, and the per-model job.

``ExportJob`` holds the reference module of one model and the conversions several formats
start from (the FP32 ONNX graph, the converted OpenVINO model), each built once. Heavy
libraries are imported inside its methods.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from export.errors import ExportError
from export.evaluate import Runner
from export.request import INPUT_NAME, ExportInputs, ExportOptions
from export.results import CalibrationInfo
from export.tools import describe_error

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Built:
    """What an exporter wrote, and how to run it (``f32=True``: pinned float32 for parity)."""

    files: tuple[Path, ...]
    runner: Callable[[bool], Runner]
    input_spec: Mapping[str, Any]
    versions: Mapping[str, Any]
    calibration: CalibrationInfo | None = None
    fp32_weight_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    output_spec: Mapping[str, Any] | None = None  # None: float32 logits, as most formats give


class Exporter(Protocol):
    """One format: its name, runtime and stored precision, and how to build it."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    precision: ClassVar[str]

    def build(self, job: ExportJob, directory: Path) -> Built: ...


class ExportJob:
    """State the formats of one model share: the reference module and cached conversions.

    The FP32 ONNX model feeds the ONNX FP16 and INT8 formats and the converted OpenVINO model
    feeds the IR formats; each is built once, and a failure is remembered so every format that
    depends on it fails with the same reason instead of retrying.
    """

    def __init__(self, inputs: ExportInputs, options: ExportOptions) -> None:
        self.inputs = inputs
        self.options = options
        self.model = _reference_copy(inputs.model)
        self._cache: dict[str, Any] = {}

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = build()
            except Exception as error:
                self._cache[key] = error
        value = self._cache[key]
        if isinstance(value, Exception):
            raise ExportError(f"{key} failed: {describe_error(value)}") from value
        return value

    def onnx_fp32(self) -> Any:
        from export.onnx import torch_to_onnx

        shape, options = self.inputs.input_shape, self.options
        return self.shared(
            "ONNX export",
            lambda: torch_to_onnx(
                self.model,
                shape,
                dynamic_batch=options.dynamic_batch,
                exporter=options.onnx_exporter,
                opset=options.opset,
            ),
        )

    def openvino_fp32(self) -> Any:
        from export.openvino import torch_to_ov

        shape, dynamic = self.inputs.input_shape, self.options.dynamic_batch
        return self.shared(
            "OpenVINO conversion", lambda: torch_to_ov(self.model, shape, dynamic_batch=dynamic)
        )

    def calibration(self, method: str) -> tuple[np.ndarray, CalibrationInfo]:
        """Up to ``calibration_size`` samples, and a note when fewer exist than were asked."""
        data = self.inputs.calibration
        if data is None:
            raise ExportError(
                "INT8 needs calibration data and none was given",
                self.options.calibration_hint
                or f"pass calibration= with up to {self.options.calibration_size} training "
                "samples",
            )
        requested = self.options.calibration_size
        used = min(requested, len(data))
        note = None
        if used < requested:
            note = (
                f"calibrated on {used} samples, fewer than the {requested} asked "
                f"(only {used} given)"
            )
        return data[:used], CalibrationInfo(requested, used, method, note)

    def batch_dim(self) -> int | str:
        return "batch" if self.options.dynamic_batch else 1

    def float_input_spec(self) -> dict[str, Any]:
        return {
            "name": INPUT_NAME,
            "shape": [self.batch_dim(), *self.inputs.input_shape],
            "layout": "NCHW",
            "dtype": "float32",
            "expects": "float samples normalised with the manifest's mean and std",
        }


def _reference_copy(model: nn.Module) -> nn.Module:
    """A CPU float32 eval copy, so exporting neither moves nor switches the caller's model."""
    try:
        return copy.deepcopy(model).float().cpu().eval()
    except Exception as error:
        raise ExportError(
            f"cannot copy the model for export: {describe_error(error)}", "pass a plain nn.Module"
        ) from error
