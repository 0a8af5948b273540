"""Model files on disk: which format, which files, how many bytes, which stored precision.

Read before any runtime touches the file, so a corrupt or non-model file fails at once with one
line (not after minutes of measuring other models), and so size on disk counts every file a
deployment must copy (``.xml`` + ``.bin``; ``.onnx`` + external data; one ``.tflite``).

Only parsers that execute nothing are used: the ``onnx`` protobuf reader when installed (an edge
box may lack it), the OpenVINO reader otherwise, the standard-library XML parser for IR, and
``hardware.tflite_file`` (the flatbuffer identifier and tensor types) for LiteRT.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.errors import HardwareError, one_line
from hardware.tflite_file import inspect_tflite

MODEL_SUFFIXES = {".onnx": "onnx", ".xml": "ir", ".tflite": "tflite"}

_QUANTIZED_ONNX_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "ConvInteger",
        "MatMulInteger",
    }
)
# onnx TensorProto data types: INT8=3, UINT8=2, FLOAT16=10, BFLOAT16=16, INT4=22, UINT4=21.
_ONNX_INT8_TYPES = frozenset({2, 3, 21, 22})
_ONNX_FLOAT16 = 10
_ONNX_BFLOAT16 = 16
_ONNX_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

_ONNX_HINT = "give a .onnx file written by an exporter"
_IR_INT_WEIGHTS = frozenset({"i8", "u8", "i4", "u4"})


@dataclass(frozen=True)
class ModelInfo:
    """A model file as it sits on disk."""

    path: str
    format: str  # "onnx" | "ir" | "tflite"
    files: tuple[str, ...]  # every file that makes up the model, model file first
    size_bytes: int  # sum over ``files``
    sha256: str  # of all files' contents, in ``files`` order
    stored_precision: str  # FP32 | FP16 | BF16 | INT8 | unknown

    @property
    def name(self) -> str:
        return Path(self.path).name

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "files": list(self.files),
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "stored_precision": self.stored_precision,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        return cls(
            path=str(data["path"]),
            format=str(data["format"]),
            files=tuple(str(f) for f in data["files"]),
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            stored_precision=str(data["stored_precision"]),
        )


def inspect_model(path: str | Path) -> ModelInfo:
    """Read a ``.onnx``, OpenVINO ``.xml`` or ``.tflite`` file far enough to know it is a model."""
    path = Path(path)
    if not path.is_file():
        raise HardwareError(
            f"{path}: no such model file", "give the path of a .onnx, .xml or .tflite file"
        )
    fmt = MODEL_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise HardwareError(
            f"{path}: not a model file (expected .onnx, OpenVINO IR .xml or LiteRT .tflite)",
            "give the path of a .onnx, .xml or .tflite file",
        )
    inspect = {"ir": _inspect_ir, "onnx": _inspect_onnx, "tflite": inspect_tflite}[fmt]
    files, precision = inspect(path)
    return ModelInfo(
        path=str(path),
        format=fmt,
        files=tuple(str(f) for f in files),
        size_bytes=sum(f.stat().st_size for f in files),
        sha256=_sha256(files),
        stored_precision=precision,
    )


def _sha256(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _inspect_ir(path: Path) -> tuple[list[Path], str]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError, ValueError) as exc:
        raise HardwareError(
            f"{path}: not an OpenVINO IR model (unreadable XML: {one_line(exc)})",
            "give the .xml written by openvino.save_model, next to its .bin",
        ) from None
    layers = root.findall("./layers/layer")
    if root.tag != "net" or not layers:
        raise HardwareError(
            f"{path}: not an OpenVINO IR model (no <net> with layers)",
            "give the .xml written by openvino.save_model, next to its .bin",
        )
    types = {layer.get("type", "") for layer in layers}
    weight_types = {
        (data.get("element_type") or "")
        for layer in layers
        if layer.get("type") == "Const"
        for data in layer.findall("data")
    }
    files = [path]
    if "Const" in types:
        weights = path.with_suffix(".bin")
        if not weights.is_file():
            raise HardwareError(
                f"{path}: weights file {weights.name} is missing",
                "keep the .bin written by openvino.save_model next to the .xml",
            )
        files.append(weights)
    if "FakeQuantize" in types or weight_types & _IR_INT_WEIGHTS:
        precision = "INT8"
    elif "f16" in weight_types:
        precision = "FP16"
    elif "bf16" in weight_types:
        precision = "BF16"
    else:
        precision = "FP32"
    return files, precision


def _inspect_onnx(path: Path) -> tuple[list[Path], str]:
    try:
        import onnx
    except ImportError:
        return [path], _onnx_precision_via_openvino(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise HardwareError(f"{path}: not an ONNX model ({one_line(exc)})", _ONNX_HINT) from None
    graph = model.graph
    if not graph.node or not graph.output:
        raise HardwareError(
            f"{path}: not an ONNX model (no graph nodes or outputs)",
            _ONNX_HINT,
        )
    files = [path]
    for tensor in graph.initializer:
        if tensor.data_location != _ONNX_EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        external = (path.parent / location).resolve()
        if path.parent.resolve() not in external.parents or not external.is_file():
            raise HardwareError(
                f"{path}: external data file {location!r} is missing or outside the model folder",
                "keep the external data next to the .onnx file",
            )
        if external not in files:
            files.append(external)
    ops = {node.op_type for node in graph.node}
    types = {tensor.data_type for tensor in graph.initializer}
    if ops & _QUANTIZED_ONNX_OPS or types & _ONNX_INT8_TYPES:
        precision = "INT8"
    elif _ONNX_FLOAT16 in types:
        precision = "FP16"
    elif _ONNX_BFLOAT16 in types:
        precision = "BF16"
    else:
        precision = "FP32"
    return files, precision


def _onnx_precision_via_openvino(path: Path) -> str:
    """Without the ``onnx`` package, let OpenVINO's ONNX reader tell; else say "unknown"."""
    try:
        import openvino
    except ImportError:
        return "unknown"
    try:
        with _quiet_native_stderr():  # its ONNX parser logs to fd 2 before raising
            model = openvino.Core().read_model(str(path))
    except Exception as exc:
        raise HardwareError(f"{path}: not an ONNX model ({one_line(exc)})", _ONNX_HINT) from None
    return ov_model_precision(model)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence C++ logging on file descriptor 2; our one-line error replaces it."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as sink:
            os.dup2(sink.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def ov_model_precision(model: Any) -> str:
    """Stored precision of an ``openvino.Model`` from its operations and constants."""
    kinds: set[str] = set()
    for op in model.get_ops():
        type_name = op.get_type_name()
        if type_name == "FakeQuantize":
            return "INT8"
        if type_name == "Constant":
            kinds.add(op.get_element_type().get_type_name())
    if kinds & _IR_INT_WEIGHTS:
        return "INT8"
    if "f16" in kinds:
        return "FP16"
    if "bf16" in kinds:
        return "BF16"
    return "FP32"
