"""Torch -> ONNX (FP32), and from it ONNX FP16 and static QDQ INT8, as single files.

Every ONNX artifact goes through ``save_onnx``: debug metadata stripped, ``onnx.checker`` run,
weights kept inside the one ``.onnx`` file, so the file size is the model's size.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import onnx

from export.errors import ExportError
from export.request import INPUT_NAME, OUTPUT_NAME
from export.tools import describe_error, quiet_tools

if TYPE_CHECKING:
    from torch import nn

ONNX_DEFAULT_DOMAINS = ("", "ai.onnx")
TORCHSCRIPT_DEFAULT_OPSET = 18


@dataclass(frozen=True)
class OnnxExport:
    """An FP32 ONNX model from torch, and which exporter made it (and why, if it fell back)."""

    proto: onnx.ModelProto
    exporter: Literal["dynamo", "torchscript"]
    fallback_reason: str | None = None


def torch_to_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    dynamic_batch: bool = False,
    exporter: Literal["auto", "dynamo", "torchscript"] = "auto",
    opset: int | None = None,
) -> OnnxExport:
    """Export an eval-mode module; ``auto`` prefers dynamo and falls back to TorchScript.

    A dynamic batch is exported from an example batch of 2, because torch specialises a
    dimension whose example size is 1.
    """
    if exporter in ("auto", "dynamo"):
        try:
            return OnnxExport(_export_dynamo(model, input_shape, dynamic_batch, opset), "dynamo")
        except Exception as error:
            if exporter == "dynamo":
                raise
            reason = describe_error(error)
    else:
        reason = None
    proto = _export_torchscript(model, input_shape, dynamic_batch, opset)
    return OnnxExport(proto, "torchscript", None if reason is None else f"dynamo: {reason}")


def _example(input_shape: tuple[int, int, int], dynamic_batch: bool):  # -> torch.Tensor
    import torch

    return torch.zeros((2 if dynamic_batch else 1, *input_shape), dtype=torch.float32)


def _export_dynamo(
    model: nn.Module, input_shape: tuple[int, int, int], dynamic_batch: bool, opset: int | None
) -> onnx.ModelProto:
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with quiet_tools():
        program = torch.onnx.export(
            model,
            (_example(input_shape, dynamic_batch),),
            None,
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    if program is None:
        raise ExportError("torch's dynamo exporter returned no program", "try torchscript")
    return program.model_proto


def _export_torchscript(
    model: nn.Module, input_shape: tuple[int, int, int], dynamic_batch: bool, opset: int | None
) -> onnx.ModelProto:
    import io

    import torch

    buffer = io.BytesIO()
    with quiet_tools():
        torch.onnx.export(
            model,
            (_example(input_shape, dynamic_batch),),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
            if dynamic_batch
            else None,
            opset_version=opset or TORCHSCRIPT_DEFAULT_OPSET,
            do_constant_folding=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def strip_debug_metadata(proto: onnx.ModelProto) -> None:
    """Remove per-node metadata and doc strings that exporters attach for debugging (in place).

    torch's dynamo exporter records the module path and stack of every node; that costs tens of
    kB per node in big graphs and says nothing a deployed model needs. Fields are cleared, not
    set to "", because a present empty string is still serialised.
    """
    _clear(proto)
    _strip_graph(proto.graph)
    for function in proto.functions:
        _clear(function)
        for node in function.node:
            _strip_node(node)


def _clear(message: Any) -> None:
    message.ClearField("doc_string")
    message.ClearField("metadata_props")


def _strip_graph(graph: onnx.GraphProto) -> None:
    _clear(graph)
    for values in (graph.input, graph.output, graph.value_info):
        for value in values:
            _clear(value)
    for tensor in graph.initializer:
        _clear(tensor)
    for node in graph.node:
        _strip_node(node)


def _strip_node(node: onnx.NodeProto) -> None:
    _clear(node)
    for attribute in node.attribute:
        attribute.ClearField("doc_string")
        if attribute.HasField("g"):
            _strip_graph(attribute.g)
        for graph in attribute.graphs:
            _strip_graph(graph)


def save_onnx(proto: onnx.ModelProto, path: Path) -> None:
    """Strip, check and write one self-contained ``.onnx`` file."""
    proto = copy.deepcopy(proto)
    strip_debug_metadata(proto)
    if proto.ByteSize() >= 2**31:
        raise ExportError(
            f"model is {proto.ByteSize()} bytes; one ONNX file holds under 2 GiB",
            "edge models should be far smaller; check the architecture",
        )
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def opset_of(proto: onnx.ModelProto) -> int:
    """The default-domain opset, which is what runtimes check support for."""
    for entry in proto.opset_import:
        if entry.domain in ONNX_DEFAULT_DOMAINS:
            return int(entry.version)
    raise ExportError("ONNX model imports no default-domain opset", "re-export the model")


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """FP16 weights and compute with FP32 input and output, so callers feed the same arrays."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    with quiet_tools():
        converted = convert_float_to_float16(copy.deepcopy(proto), keep_io_types=True)
        # The converter appends the input/output casts at the end of the node list;
        # onnx.checker (and some runtimes) require nodes in topological order.
        OnnxModel.graph_topological_sort(converted.graph, is_deterministic=True)
    return converted


class _Calibration:
    """onnxruntime's calibration reader protocol over an array of single samples."""

    def __init__(self, samples: np.ndarray) -> None:
        self._samples = samples
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._samples):
            return None
        sample = self._samples[self._next : self._next + 1]
        self._next += 1
        return {INPUT_NAME: sample}

    def rewind(self) -> None:
        self._next = 0


def quantize_int8_qdq(proto: onnx.ModelProto, calibration: np.ndarray) -> onnx.ModelProto:
    """Static QDQ INT8: u8 activations, per-channel s8 weights, MinMax ranges from calibration.

    u8 activations with s8 weights is what onnxruntime's CPU kernels run fastest; the model is
    pre-processed (shape inference, graph optimisation) first, as onnxruntime recommends.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Calibration, CalibrationDataReader):
        pass

    with tempfile.TemporaryDirectory(prefix="evo-onnx-int8-") as tmp:
        prepared, quantised = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        with quiet_tools():
            quant_pre_process(copy.deepcopy(proto), str(prepared))
            quantize_static(
                str(prepared),
                str(quantised),
                Reader(calibration),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                use_external_data_format=False,
            )
        return onnx.load_model(str(quantised))
