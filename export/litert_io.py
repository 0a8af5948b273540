"""Give a full-integer ``.tflite`` the input/output type the device wants: int8, uint8 or float.

ai-edge-quantizer's static recipe quantises the model's own input and output tensors, so its
models take and return int8. A camera pipeline often hands uint8 frames, and a host that wants
to call the model like the float one needs float; TensorFlow's converter offers both through
``inference_input_type``, which is unavailable without TensorFlow. This module does what that
option does, on the flatbuffer: a new boundary tensor of the asked type, joined to the int8
graph by one QUANTIZE (uint8 <-> int8, a requantise with the same scale and the zero point
moved by 128) or QUANTIZE / DEQUANTIZE (float <-> int8) op, so every kernel inside stays int8
and TFLite Micro, which has both ops, still runs the model.
"""

from __future__ import annotations

import copy
from typing import Any

from export.errors import ExportError

IO_TYPES = ("int8", "uint8", "float")
_UINT8_SHIFT = 128  # the uint8 zero point of the same real values is the int8 one plus 128
# Op versions for int8 kernels (TFLite's op_version.cc): QUANTIZE to int8 and DEQUANTIZE from it
# are version 2 in every runtime that has them.
_OP_VERSION = 2


def check_io_type(io_type: str) -> str:
    """The I/O type, or one clear error naming the choices."""
    if io_type not in IO_TYPES:
        raise ExportError(f"unknown LiteRT I/O type {io_type!r}", f"one of {', '.join(IO_TYPES)}")
    return io_type


def set_io_type(model_bytes: bytes, io_type: str) -> bytes:
    """The int8-I/O model ``model_bytes`` with its single input and output of ``io_type``."""
    check_io_type(io_type)
    if io_type == "int8":
        return bytes(model_bytes)
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    if len(model.subgraphs) != 1:
        raise ExportError(
            f"expected one subgraph, the model has {len(model.subgraphs)}",
            "export a plain classifier",
        )
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ExportError(
            f"expected one input and one output, the model has {len(graph.inputs)} and "
            f"{len(graph.outputs)}",
            "export a classifier that returns one logits tensor",
        )
    old_in, old_out = graph.inputs[0], graph.outputs[0]
    for index in (old_in, old_out):
        if graph.tensors[index].type != schema.TensorType.INT8:
            raise ExportError(
                f"tensor {graph.tensors[index].name!r} is not int8",
                "the I/O type can only be changed on a full-integer model",
            )
    if io_type == "uint8":
        in_type = out_type = schema.TensorType.UINT8
        in_op = out_op = _opcode(model, schema, schema.BuiltinOperator.QUANTIZE)
        in_options = out_options = schema.BuiltinOptions.QuantizeOptions
    else:
        in_type = out_type = schema.TensorType.FLOAT32
        in_op = _opcode(model, schema, schema.BuiltinOperator.QUANTIZE)
        out_op = _opcode(model, schema, schema.BuiltinOperator.DEQUANTIZE)
        in_options = schema.BuiltinOptions.QuantizeOptions
        out_options = schema.BuiltinOptions.DequantizeOptions
    new_in = _boundary_tensor(model, graph, schema, old_in, in_type)
    new_out = _boundary_tensor(model, graph, schema, old_out, out_type)
    graph.operators.insert(0, _operator(schema, in_op, new_in, old_in, in_options))
    graph.operators.append(_operator(schema, out_op, old_out, new_out, out_options))
    graph.inputs, graph.outputs = [new_in], [new_out]
    for signature in model.signatureDefs or []:
        for entry in signature.inputs or []:
            if entry.tensorIndex == old_in:
                entry.tensorIndex = new_in
        for entry in signature.outputs or []:
            if entry.tensorIndex == old_out:
                entry.tensorIndex = new_out
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _opcode(model: Any, schema: Any, builtin: int) -> int:
    """Index of ``builtin``'s operator code, added when the model has none yet."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and not code.customCode:
            code.version = max(code.version, _OP_VERSION)
            return index
    entry = schema.OperatorCodeT()
    entry.builtinCode = builtin
    # The schema's old one-byte field holds codes up to 127; larger ones store 127 there.
    last_one_byte_code = schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES
    entry.deprecatedBuiltinCode = min(builtin, last_one_byte_code)
    entry.version = _OP_VERSION
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _boundary_tensor(model: Any, graph: Any, schema: Any, inner: int, tensor_type: int) -> int:
    """A copy of tensor ``inner`` typed ``tensor_type``; it takes the public name, the inner
    one gets an ``_int8`` suffix, so the signature and tools still show the usual names."""
    original = graph.tensors[inner]
    tensor = copy.deepcopy(original)
    tensor.type = tensor_type
    model.buffers.append(schema.BufferT())
    tensor.buffer = len(model.buffers) - 1
    if tensor_type == schema.TensorType.FLOAT32:
        tensor.quantization = None
    else:
        params = tensor.quantization
        params.zeroPoint = [int(z) + _UINT8_SHIFT for z in params.zeroPoint]
    name = original.name.decode() if isinstance(original.name, bytes) else str(original.name)
    original.name = f"{name}_int8"
    tensor.name = name
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _operator(schema: Any, opcode: int, source: int, target: int, options_type: int) -> Any:
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs, op.outputs = [source], [target]
    op.builtinOptionsType = options_type
    op.builtinOptions = (
        schema.QuantizeOptionsT()
        if options_type == schema.BuiltinOptions.QuantizeOptions
        else schema.DequantizeOptionsT()
    )
    return op
