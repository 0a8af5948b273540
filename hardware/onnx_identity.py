"""A serialized ONNX model that passes each input through ``Identity``, written by hand.

onnxruntime's Python-side cost per call is estimated by timing such a do-nothing model with
the same inputs (see ``hardware.sessions``); writing its few protobuf fields here means the
benchmark needs no ``onnx`` package.
"""

from __future__ import annotations

from collections.abc import Sequence

# numpy dtype -> onnx TensorProto element type, for the overhead probe's Identity model.
ONNX_ELEM_TYPES = {
    "float32": 1,
    "uint8": 2,
    "int8": 3,
    "int32": 6,
    "int64": 7,
    "bool": 9,
    "float16": 10,
    "float64": 11,
}


def identity_onnx(specs: Sequence[tuple[str, tuple[int, ...], str]]) -> bytes:
    """Serialized ONNX model passing each (name, static shape, numpy dtype name) input through
    ``Identity``; the dtype must be one of ``ONNX_ELEM_TYPES``."""
    nodes, inputs, outputs = b"", b"", b""
    for name, shape, dtype in specs:
        out = f"{name}__identity"
        nodes += _field(1, _node(name, out))
        inputs += _field(11, _value_info(name, shape, ONNX_ELEM_TYPES[dtype]))
        outputs += _field(12, _value_info(out, shape, ONNX_ELEM_TYPES[dtype]))
    graph = nodes + _field(2, b"overhead_probe") + inputs + outputs
    opset = _field(1, b"") + _varint_field(2, 13)
    return _varint_field(1, 8) + _field(7, graph) + _field(8, opset)


def _node(source: str, target: str) -> bytes:
    return _field(1, source.encode()) + _field(2, target.encode()) + _field(4, b"Identity")


def _value_info(name: str, shape: tuple[int, ...], elem_type: int) -> bytes:
    dims = b"".join(_field(1, _varint_field(1, d)) for d in shape)
    tensor_type = _varint_field(1, elem_type) + _field(2, dims)
    return _field(1, name.encode()) + _field(2, _field(1, tensor_type))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload
