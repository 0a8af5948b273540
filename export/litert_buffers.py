"""Keep every weight inside the ``.tflite`` flatbuffer, where TensorFlow Lite Micro reads it.

ai-edge-quantizer writes a model whose weight buffers (of 1 KiB or more) total 256 KiB or more
with those buffers *after* the flatbuffer, referenced by offset and size (a layout made for
models over 2 GB). LiteRT reads that layout; TensorFlow Lite Micro does not: it takes such a
weight for an empty tensor, plans it into the arena and computes with whatever the arena holds
(wrong outputs, and an arena figure hundreds of kilobytes too large). So every quantised model
is rewritten with its buffers inline, the layout a firmware's C array holds.
"""

from __future__ import annotations


def inline_buffers(model_bytes: bytes) -> bytes:
    """``model_bytes`` with every offset-referenced buffer moved into the flatbuffer (the
    same bytes when there is none)."""
    from ai_edge_litert.tools import flatbuffer_utils

    header = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    if not any(buffer.offset for buffer in header.buffers or []):
        return bytes(model_bytes)
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))  # resolves them
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
