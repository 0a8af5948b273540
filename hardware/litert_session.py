"""Open a ``.tflite`` on ``litert:cpu``: the ``ai-edge-litert`` interpreter with XNNPACK.

The settings the latency protocol promises, spelled out: ``num_threads`` as asked, the default
(AUTO) op resolver, which applies the XNNPACK delegate to every operator it takes, and inputs
set once before timing. An integer model takes quantised input, so its example input is random
over the whole range of its own integer type (a float sample quantised with the tensor's
scale and zero point lands anywhere in that range); a float input gets standard-normal values
as on the other targets. The interpreter reports no per-call latency, so the wall clock around
``invoke`` is the latency; no call overhead is estimated (there is no do-nothing call through
the same path to time, and a different call would misstate it), so that column stays empty.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hardware.errors import HardwareError
from hardware.models import ModelInfo
from hardware.sessions import OpenModel, timed_load
from hardware.targets import TargetInfo


def open_litert(model: ModelInfo, target: TargetInfo, threads: int) -> OpenModel:
    """Load ``model`` into the LiteRT interpreter (a one-line HardwareError if it cannot)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise HardwareError(
            f"{target.name}: ai-edge-litert is not installed", "pip install ai-edge-litert"
        ) from None

    def load() -> Any:
        interpreter = Interpreter(model_path=model.path, num_threads=threads)
        _make_static(interpreter)
        interpreter.allocate_tensors()
        return interpreter

    interpreter, load_ms = timed_load(
        load,
        f"{model.path}: LiteRT cannot load it",
        "check the file is a complete .tflite model this ai-edge-litert version supports",
    )
    details = interpreter.get_input_details()
    specs = tuple(
        (str(d["name"]), tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]).name)
        for d in details
    )
    for detail, array in zip(details, example_inputs(details), strict=True):
        interpreter.set_tensor(detail["index"], array)

    def run() -> float | None:
        interpreter.invoke()
        return None

    config = {
        "num_threads": str(threads),
        "op_resolver": "AUTO (XNNPACK delegate applied by default)",
        "inputs": "set once before timing",
    }
    return OpenModel(
        infer=run,
        load_ms=load_ms,
        executed_precision=model.stored_precision,  # the interpreter runs the stored types
        config=config,
        inputs=specs,
        latency_source="wall clock around Interpreter.invoke (Python side)",
    )


def example_inputs(details: list[dict[str, Any]]) -> list[np.ndarray]:
    """Seeded inputs of each tensor's own type: integers over their full range."""
    rng = np.random.default_rng(0)
    arrays = []
    for detail in details:
        kind = np.dtype(detail["dtype"])
        shape = tuple(int(x) for x in detail["shape"])
        if kind.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(kind))
        elif kind.kind in "iu":
            info = np.iinfo(kind)
            arrays.append(rng.integers(info.min, int(info.max) + 1, shape, dtype=kind))
        else:
            arrays.append(rng.integers(0, 2, shape).astype(kind))
    return arrays


def _make_static(interpreter: Any) -> None:
    """Batch 1: a dynamic batch becomes 1, any other dynamic size is an error."""
    for detail in interpreter.get_input_details():
        signature = [int(x) for x in detail.get("shape_signature", detail["shape"])]
        if all(size > 0 for size in signature):
            continue
        if any(size <= 0 for size in signature[1:]):
            raise HardwareError(
                f"input {detail['name']!r} has a dynamic size beyond the batch",
                "export the model with static input shapes (only the batch may be dynamic)",
            )
        interpreter.resize_tensor_input(detail["index"], [1, *signature[1:]], strict=True)
