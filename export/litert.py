"""LiteRT (TensorFlow Lite) artifacts from a torch module, without TensorFlow.

``litert_torch`` lowers the module to an FP32 ``.tflite``; ai-edge-quantizer's static recipe
``static_wi8_ai8`` turns that into a full-integer model (int8 weights and activations,
min/max calibrated on training samples; ``export.litert_fold`` makes int8 the ops it leaves in
float), whose input/output type ``export.litert_io`` sets.
The model keeps torch's NCHW input: ``litert_torch`` transposes inside the graph, so the
artifact takes the same normalised samples as every other format, and ``tensor_specs`` reads
the layout back from the file rather than assuming it. ``tflm_arena_bytes`` (from
``export.litert_micro``) is the RAM TensorFlow Lite Micro needs to run a model.

Everything heavy is imported inside the functions: ``evo --help`` and format-name checks never
load these packages, and ``litert_available`` lets ``--format all`` skip them when absent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.errors import ExportError
from export.evaluate import Runner
from export.litert_buffers import inline_buffers
from export.litert_fold import fold_float_islands
from export.litert_io import IO_TYPES, check_io_type, set_io_type
from export.litert_micro import tflm_arena_bytes
from export.names import LITERT_INSTALL, missing_litert
from export.tools import quiet_tools

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "INSTALL_HINT",
    "IO_TYPES",
    "QUANT_RECIPE",
    "convert_litert",
    "convert_litert_int8",
    "float_flatbuffer",
    "litert_available",
    "litert_runner",
    "quantise_int8",
    "tensor_specs",
    "tflm_arena_bytes",
]

INSTALL_HINT = LITERT_INSTALL
QUANT_RECIPE = "static_wi8_ai8"
_INT_TYPES = ("int8", "uint8")


def litert_available() -> bool:
    """Whether the LiteRT formats can be built here."""
    return not missing_litert()


def convert_litert(model: nn.Module, input_shape: tuple[int, int, int], path: Path) -> int:
    """Write the FP32 ``.tflite`` of ``model`` for one C,H,W sample; returns bytes written."""
    return _write(Path(path), float_flatbuffer(model, input_shape))


def convert_litert_int8(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    calibration: np.ndarray,
    path: Path,
    io_type: str = "int8",
) -> int:
    """Write the full-integer ``.tflite`` of ``model``; returns bytes written.

    ``calibration`` holds normalised float32 NCHW training samples; every activation's int8
    range is their min/max. ``io_type`` is the type of the model's input and output. A model
    whose quantised graph still computes in float raises ``ExportError`` naming the tensors,
    since it would not be the integer-only model a microcontroller needs.
    """
    check_io_type(io_type)
    samples = np.asarray(calibration, dtype=np.float32)
    if samples.ndim != 4 or tuple(samples.shape[1:]) != tuple(input_shape) or not len(samples):
        raise ExportError(
            f"calibration data has shape {list(samples.shape)}, expected N x "
            f"{'x'.join(map(str, input_shape))}",
            "pass normalised float32 NCHW training samples",
        )
    return _write(Path(path), quantise_int8(float_flatbuffer(model, input_shape), samples, io_type))


def quantise_int8(float_model: bytes, samples: np.ndarray, io_type: str = "int8") -> bytes:
    """The full-integer flatbuffer of an FP32 one (what ``convert_litert_int8`` writes).

    Apart so that an export builds the FP32 conversion once for both LiteRT formats.
    """
    check_io_type(io_type)
    quantised = fold_float_islands(_quantise(float_model, np.asarray(samples, dtype=np.float32)))
    _check_full_integer(quantised)
    return set_io_type(quantised, io_type)


def tensor_specs(path: Path) -> dict[str, dict[str, Any]]:
    """The input and output of a ``.tflite`` as the file states them, for the manifest.

    Each has its shape, dtype, layout (the input's, found by matching the C,H,W of NCHW or
    the H,W,C of NHWC; a square single-channel input matches both and is reported NCHW, the
    order ``litert_torch`` keeps) and quantisation scale and zero point (None for float).
    """
    interpreter = _interpreter(Path(path), threads=1)
    specs = {}
    for key, detail in (
        ("input", interpreter.get_input_details()[0]),
        ("output", interpreter.get_output_details()[0]),
    ):
        scales = detail["quantization_parameters"]["scales"]
        zero_points = detail["quantization_parameters"]["zero_points"]
        specs[key] = {
            "tensor": detail["name"],
            "shape": [int(d) for d in detail["shape"]],
            "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scales[0]) if len(scales) else None,
            "zero_point": int(zero_points[0]) if len(zero_points) else None,
        }
    return specs


def input_layout(shape: Sequence[int], input_shape: tuple[int, int, int]) -> str:
    """``NCHW`` or ``NHWC``: which order of ``input_shape`` the model's input has."""
    channels, height, width = input_shape
    if list(shape[1:]) == [channels, height, width]:
        return "NCHW"
    if list(shape[1:]) == [height, width, channels]:
        return "NHWC"
    raise ExportError(
        f"the model's input has shape {list(shape)}, not {'x'.join(map(str, input_shape))} "
        "in NCHW or NHWC",
        "the conversion changed the input; report this model",
    )


def litert_runner(path: Path, input_shape: tuple[int, int, int], *, threads: int | None) -> Runner:
    """The LiteRT interpreter (XNNPACK) behind the ``Runner`` interface of the other formats.

    Normalised float NCHW samples are transposed to the model's layout and, for an integer
    input, quantised with its scale and zero point (``round(x / scale) + zero_point``,
    saturated); integer logits are dequantised, so parity and accuracy compare real values.
    """
    interpreter = _interpreter(Path(path), threads=threads)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    nhwc = input_layout(source["shape"], input_shape) == "NHWC"
    in_type, out_type = np.dtype(source["dtype"]), np.dtype(target["dtype"])
    in_scale, in_zero = source["quantization"]
    out_scale, out_zero = target["quantization"]
    batch = int(source["shape"][0])

    def run(x: np.ndarray) -> np.ndarray:
        feed = x.transpose(0, 2, 3, 1) if nhwc else x
        if in_type.name in _INT_TYPES:
            info = np.iinfo(in_type)
            feed = np.clip(np.rint(feed / in_scale) + in_zero, info.min, info.max)
        interpreter.set_tensor(source["index"], np.ascontiguousarray(feed, dtype=in_type))
        interpreter.invoke()
        out = np.array(interpreter.get_tensor(target["index"]))
        if out_type.name in _INT_TYPES:
            out = (out.astype(np.float32) - out_zero) * np.float32(out_scale)
        return out.astype(np.float32)

    executed = "int8" if in_type.name in _INT_TYPES or _is_integer_graph(path) else "f32"
    return Runner(run, batch, executed)


def float_flatbuffer(model: nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    """The FP32 flatbuffer, converted with progress output off (stdout stays ours)."""
    missing = missing_litert()
    if missing:
        raise ExportError(f"{', '.join(missing)} not installed", INSTALL_HINT)
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    import litert_torch
    import torch

    sample = torch.zeros((1, *input_shape), dtype=torch.float32)
    with quiet_tools(), torch.inference_mode(False):
        edge = litert_torch.convert(model.eval(), (sample,))
    return bytes(edge.model_content())


def _quantise(float_model: bytes, samples: np.ndarray) -> bytes:
    """ai-edge-quantizer's static int8 recipe, calibrated one sample at a time."""
    from ai_edge_quantizer import quantizer, recipe

    with quiet_tools():
        engine = quantizer.Quantizer(bytearray(float_model), getattr(recipe, QUANT_RECIPE)())
        signature, name = _signature_input(float_model)
        data = {signature: [{name: sample[None]} for sample in samples]}
        ranges = engine.calibrate(data, num_threads=1)
        result = engine.quantize(ranges, enable_progress_report=False)
    return inline_buffers(bytes(result.quantized_model))  # TFLite Micro reads no offsets


def _signature_input(model_bytes: bytes) -> tuple[str, str]:
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=model_bytes).get_signature_list()
    if len(signatures) != 1:
        raise ExportError(
            f"the converted model has {len(signatures)} signatures, expected one",
            "export a plain classifier",
        )
    key, entry = next(iter(signatures.items()))
    if len(entry["inputs"]) != 1:
        raise ExportError(
            f"the converted model has {len(entry['inputs'])} inputs, expected one",
            "export a model with one image input",
        )
    return key, entry["inputs"][0]


def _float_tensors(model_bytes: bytes) -> list[str]:
    """Names of float tensors an operator computes (not the graph's own input/output)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    names = []
    for graph in model.subgraphs:
        produced = {index for op in graph.operators for index in op.outputs}
        boundary = set(graph.inputs) | set(graph.outputs)
        for index in sorted(produced - boundary):
            tensor = graph.tensors[index]
            if tensor.type in (schema.TensorType.FLOAT32, schema.TensorType.FLOAT16):
                name = tensor.name
                names.append(name.decode() if isinstance(name, bytes) else str(name))
    return names


def _is_integer_graph(path: Path) -> bool:
    return not _float_tensors(Path(path).read_bytes())


def _check_full_integer(model_bytes: bytes) -> None:
    floats = _float_tensors(model_bytes)
    if floats:
        shown = ", ".join(name.rsplit("/", 1)[-1][:60] for name in floats[:3])
        raise ExportError(
            f"{len(floats)} tensors stay float after int8 quantisation (e.g. {shown})",
            "ai-edge-quantizer has no int8 kernel for these ops; use litert (FP32)",
        )


def _interpreter(path: Path, *, threads: int | None) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def _write(path: Path, content: bytes) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return len(content)
