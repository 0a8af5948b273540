"""Make a quantised ``.tflite`` full-integer where ai-edge-quantizer leaves a float island.

ai-edge-quantizer 0.10 has no int8 rule for LEAKY_RELU (cnn_full's ``leakyrelu(0.1)``), so it
keeps that op in float between a DEQUANTIZE of its int8 input and a QUANTIZE of its calibrated
output. TFLite, XNNPACK and TFLite Micro all have an int8 LEAKY_RELU that takes different input
and output scales, so the island folds away: the op reads the int8 tensor the DEQUANTIZE read
and writes the int8 tensor the QUANTIZE wrote (with the quantiser's own calibrated scale), and
both conversions and the float tensors between them are removed. A microcontroller then runs
integer kernels only, and the arena holds no float activations.
"""

from __future__ import annotations

from typing import Any

# Ops whose int8 kernels take their input and output scales as given (no constraint the
# quantiser would have had to impose), so folding changes no arithmetic but the float round
# trip. Int8 LEAKY_RELU is op version 2 in TFLite's op_version.cc.
_FOLDABLE_VERSIONS = {"LEAKY_RELU": 2}


def fold_float_islands(model_bytes: bytes) -> bytes:
    """The model with every DEQUANTIZE -> foldable op -> QUANTIZE chain made int8."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    foldable = {getattr(schema.BuiltinOperator, name): name for name in _FOLDABLE_VERSIONS}
    dequantize, quantize = schema.BuiltinOperator.DEQUANTIZE, schema.BuiltinOperator.QUANTIZE
    changed = False
    for graph in model.subgraphs:
        kept = list(graph.operators)
        for op in graph.operators:
            name = foldable.get(codes[op.opcodeIndex])
            if name is None or len(op.inputs) != 1 or len(op.outputs) != 1:
                continue
            before = _only_producer(graph, kept, op.inputs[0], codes, dequantize)
            after = _only_consumer(graph, kept, op.outputs[0], codes, quantize)
            if before is None or after is None:
                continue
            op.inputs, op.outputs = [before.inputs[0]], [after.outputs[0]]
            kept = [other for other in kept if other is not before and other is not after]
            code = model.operatorCodes[op.opcodeIndex]
            code.version = max(code.version, _FOLDABLE_VERSIONS[name])
            changed = True
        graph.operators = kept
    if not changed:
        return bytes(model_bytes)
    for graph in model.subgraphs:
        _drop_unused_tensors(model, graph)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _only_producer(graph: Any, ops: list[Any], tensor: int, codes: list[int], kind: int) -> Any:
    """The ``kind`` op writing ``tensor`` when nothing else reads it, else None."""
    if tensor in graph.inputs or tensor in graph.outputs or _readers(ops, tensor) != 1:
        return None
    for op in ops:
        if tensor in op.outputs:
            return op if codes[op.opcodeIndex] == kind and len(op.inputs) == 1 else None
    return None


def _only_consumer(graph: Any, ops: list[Any], tensor: int, codes: list[int], kind: int) -> Any:
    """The single ``kind`` op reading ``tensor`` (not a graph output), else None."""
    if tensor in graph.outputs or _readers(ops, tensor) != 1:
        return None
    for op in ops:
        if tensor in op.inputs:
            return op if codes[op.opcodeIndex] == kind and len(op.outputs) == 1 else None
    return None


def _readers(ops: list[Any], tensor: int) -> int:
    return sum(list(op.inputs).count(tensor) for op in ops)


def _drop_unused_tensors(model: Any, graph: Any) -> None:
    """Remove tensors no op, graph boundary or signature names, renumbering the rest."""
    used = set(graph.inputs) | set(graph.outputs)
    for op in graph.operators:
        used.update(index for index in op.inputs if index >= 0)
        used.update(op.outputs)
        used.update(op.intermediates or ())
    new_index = {old: new for new, old in enumerate(sorted(used))}
    graph.tensors = [graph.tensors[old] for old in sorted(used)]

    def remap(indices: Any) -> list[int]:
        return [index if index < 0 else new_index[index] for index in indices]

    for op in graph.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates:
            op.intermediates = remap(op.intermediates)
    graph.inputs, graph.outputs = remap(graph.inputs), remap(graph.outputs)
    position = model.subgraphs.index(graph)
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex != position:
            continue
        for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
            entry.tensorIndex = new_index[entry.tensorIndex]
