"""A ``.tflite`` file on disk: is it a LiteRT model, and in which precision are its tensors.

Read without running anything, like the ONNX and IR inspectors in ``hardware.models``: the
flatbuffer's file identifier (``TFL3`` at bytes 4..8) says it is a LiteRT model, and the tensor
types (read with the schema module ``ai_edge_litert`` ships, when installed) give the stored
precision: INT8 when any tensor is 8-bit integer (a full-integer model, even with float I/O),
else FP16 when any is half, else FP32.
"""

from __future__ import annotations

from pathlib import Path

from hardware.errors import HardwareError, one_line

_IDENTIFIER = b"TFL3"
_HINT = "give a .tflite file written by a LiteRT converter"
# schema TensorType values: FLOAT16=1, UINT8=3, INT8=9, INT4=17.
_INT_TYPES = frozenset({3, 9, 17})
_FLOAT16 = 1


def inspect_tflite(path: Path) -> tuple[list[Path], str]:
    """The files (just the one) and the stored precision of a ``.tflite`` model."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise HardwareError(f"{path}: cannot read it ({one_line(exc)})", _HINT) from None
    if len(head) < 8 or head[4:8] != _IDENTIFIER:
        raise HardwareError(f"{path}: not a LiteRT model (no TFL3 identifier)", _HINT)
    return [path], _precision(path)


def _precision(path: Path) -> str:
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return "unknown"
    data = path.read_bytes()
    try:
        model = schema.Model.GetRootAs(data, 0)
        types = {
            model.Subgraphs(g).Tensors(t).Type()
            for g in range(model.SubgraphsLength())
            for t in range(model.Subgraphs(g).TensorsLength())
        }
    except Exception as exc:  # a truncated flatbuffer raises from struct unpacking
        raise HardwareError(f"{path}: not a LiteRT model ({one_line(exc)})", _HINT) from None
    if types & _INT_TYPES:
        return "INT8"
    if _FLOAT16 in types:
        return "FP16"
    return "FP32"
