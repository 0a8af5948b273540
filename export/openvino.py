"""Torch -> OpenVINO IR (FP32, FP16, NNCF INT8), optional embedded u8 preprocessing.

The IR comes straight from the torch module through ``openvino.convert_model`` (no ONNX in
between), so an ONNX export problem does not take the IR formats down with it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import openvino as ov

from export.errors import ExportError
from export.request import INPUT_NAME, OUTPUT_NAME, LabelledData
from export.tools import quiet_tools

if TYPE_CHECKING:
    from torch import nn

WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul", "ConvolutionBackpropData")
_COMPUTE_LAYER_TYPES = ("Convolution", "FullyConnected", "MatMul", "Deconvolution")
_WEIGHT_PATH_OPS = (
    "Convert",
    "Multiply",
    "Subtract",
    "Reshape",
    "FakeQuantize",
    "Unsqueeze",
    "Squeeze",
    "Transpose",
)
_QUANTISED_RUNTIME = ("u8", "i8")


def torch_to_ov(
    model: nn.Module, input_shape: tuple[int, int, int], *, dynamic_batch: bool = False
) -> ov.Model:
    """Convert an eval-mode module; input ``input`` and output ``logits`` as in the ONNX files."""
    import torch

    batch = 2 if dynamic_batch else 1
    example = torch.zeros((batch, *input_shape), dtype=torch.float32)
    shape = [-1 if dynamic_batch else 1, *input_shape]
    with quiet_tools():
        converted = ov.convert_model(model, example_input=example, input=[shape])
    if len(converted.inputs) != 1 or len(converted.outputs) != 1:
        raise ExportError(
            f"model has {len(converted.inputs)} inputs and {len(converted.outputs)} outputs",
            "export needs one image input and one logits output",
        )
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    converted.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return converted


def save_ir(model: ov.Model, xml_path: Path, *, compress_to_fp16: bool) -> tuple[Path, Path]:
    """Write ``.xml`` and ``.bin``; both are the artifact, so both count towards its size."""
    ov.save_model(model.clone(), str(xml_path), compress_to_fp16=compress_to_fp16)
    return xml_path, xml_path.with_suffix(".bin")


def ir_version(xml_path: Path) -> int:
    """The IR format version written in the ``<net version=...>`` root of the ``.xml``."""
    root = ElementTree.parse(xml_path).getroot()
    return int(root.get("version", "0"))


@dataclass(frozen=True)
class AccuracyControl:
    """NNCF's accuracy-controlled quantisation: validation drop at most ``max_drop_points``."""

    validation: LabelledData
    max_drop_points: float


def quantize_int8(
    model: ov.Model,
    calibration: np.ndarray,
    *,
    accuracy_control: AccuracyControl | None = None,
) -> ov.Model:
    """NNCF post-training INT8 quantisation, calibrated on every sample in ``calibration``.

    With ``accuracy_control`` NNCF reverts the most harmful layers to float until the drop on
    the validation data is within bounds. Either way NNCF leaves some patterns in float, e.g.
    the 1x1 convolutions of squeeze-and-excitation blocks.
    """
    import nncf

    samples = [calibration[i : i + 1] for i in range(len(calibration))]
    dataset = nncf.Dataset(samples)
    with quiet_tools():
        if accuracy_control is None:
            return nncf.quantize(model.clone(), dataset, subset_size=len(samples))
        validation = accuracy_control.validation
        items = [(validation.x[i : i + 1], int(validation.y[i])) for i in range(len(validation))]
        return nncf.quantize_with_accuracy_control(
            model.clone(),
            dataset,
            nncf.Dataset(items),
            _validation_fn,
            max_drop=accuracy_control.max_drop_points / 100.0,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(samples),
        )


def _validation_fn(compiled: Any, items: Iterable[tuple[np.ndarray, int]]) -> tuple[float, list]:
    """Top-1 accuracy plus each item's hit, the metric shape NNCF's accuracy control ranks by."""
    hits = [float(np.argmax(compiled(x)[0]) == label) for x, label in items]
    return (float(np.mean(hits)) if hits else 0.0), hits


def embed_preprocessing(
    model: ov.Model, mean: Sequence[float], std: Sequence[float], pixel_scale: float
) -> ov.Model:
    """Give the model a u8 NHWC input; scaling, normalisation and layout happen inside it.

    A camera frame then goes in as it is, and the runtime fuses the preprocessing with the
    first layer instead of the application doing it in Python.
    """
    from openvino.preprocess import PrePostProcessor

    channels = model.inputs[0].get_partial_shape()[1].get_length()
    mean_c = _per_channel(mean, channels)
    std_c = _per_channel(std, channels)
    model = model.clone()
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    steps = ppp.input().preprocess()
    steps.convert_element_type(ov.Type.f32)
    steps.scale(float(pixel_scale))
    steps.mean(mean_c)
    steps.scale(std_c)
    built = ppp.build()
    built.inputs[0].get_tensor().set_names({INPUT_NAME})
    return built


def _per_channel(values: Sequence[float], channels: int) -> list[float]:
    if len(values) == channels:
        return [float(v) for v in values]
    if len(values) == 1:
        return [float(values[0])] * channels
    raise ExportError(
        f"{len(values)} normalisation values for {channels} channels", "one value per channel"
    )


def fp32_weight_layers(model: ov.Model) -> tuple[tuple[str, ...], int]:
    """Weighted layers whose weights stayed float, and how many weighted layers there are.

    In an INT8 IR every quantised weight is an 8-bit constant; one that is still f32/f16 is a
    layer NNCF chose to keep in float, which the size ratio has to be read with.
    """
    kept: list[str] = []
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() not in WEIGHTED_OPS or op.get_input_size() < 2:
            continue
        constant = _weight_constant(op.input_value(1).get_node())
        if constant is None:
            continue
        total += 1
        if constant.get_element_type() in (ov.Type.f32, ov.Type.f16, ov.Type.bf16):
            kept.append(op.get_friendly_name())
    return tuple(kept), total


def _weight_constant(node: Any) -> Any | None:
    for _ in range(16):
        kind = node.get_type_name()
        if kind == "Constant":
            return node
        if kind not in _WEIGHT_PATH_OPS:
            return None
        node = node.input_value(0).get_node()
    return None


def compile_ir(xml_path: Path, *, f32: bool, threads: int | None = None) -> Any:
    """Compile on CPU; ``f32`` pins the inference precision so parity measures the export.

    Without ``f32`` the CPU plugin's default applies (bf16 on CPUs with AVX-512 BF16 or AMX),
    which is what a deployment gets; ``executed_precision`` reads back which it was.
    """
    config: dict[str, Any] = {}
    if f32:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return ov.Core().compile_model(str(xml_path), "CPU", config)


def executed_precision(compiled: Any) -> str:
    """What the CPU ran: its float precision, plus int8 where quantised layers run in int8."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    floating = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        if (
            info["layerType"].astype(str) in _COMPUTE_LAYER_TYPES
            and info["runtimePrecision"].astype(str) in _QUANTISED_RUNTIME
        ):
            return f"int8+{floating}"
    return floating
