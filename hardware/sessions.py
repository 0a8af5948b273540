"""Open a model on one target and expose "run one inference" with the runtime's own timing.

Each runtime gets exactly the settings the latency protocol promises, spelled out rather than
left to defaults that change between releases: onnxruntime gets explicit providers and
``intra_op_num_threads``; OpenVINO gets ``INFERENCE_NUM_THREADS``, ``NUM_STREAMS`` 1 and the
``LATENCY`` hint where the device supports them (LiteRT: ``hardware.litert_session``). The
settings the runtime actually applied are read back and recorded, as is the precision it
executes in.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from hardware.errors import HardwareError, one_line
from hardware.models import ModelInfo
from hardware.onnx_identity import ONNX_ELEM_TYPES, identity_onnx
from hardware.targets import ORT_PROVIDERS, TargetInfo, not_applicable, ov_core

InputSpec = tuple[str, tuple[int, ...], str]  # (name, static shape, numpy dtype name)
_Loaded = TypeVar("_Loaded")

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
_OV_PRECISIONS = {"f32": "FP32", "f16": "FP16", "bf16": "BF16"}
_OV_COMPUTE_LAYERS = frozenset(
    {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul"}
)
_OV_RECORDED_PROPERTIES = (
    "PERFORMANCE_HINT",
    "NUM_STREAMS",
    "INFERENCE_NUM_THREADS",
    "INFERENCE_PRECISION_HINT",
    "ENABLE_CPU_PINNING",
    "EXECUTION_DEVICES",
)
_OVERHEAD_PROBE_RUNS = 200


@dataclass
class OpenModel:
    """A compiled model ready to run; ``infer()`` returns the runtime's own latency or None."""

    infer: Callable[[], float | None]
    load_ms: float
    executed_precision: str
    config: dict[str, str]
    inputs: tuple[InputSpec, ...]
    latency_source: str
    # Median Python-side cost of one call, where it cannot be read off each inference.
    probe_call_overhead: Callable[[], float | None] = field(default=lambda: None)


def open_model(model: ModelInfo, target: TargetInfo, threads: int) -> OpenModel:
    """Load and compile ``model`` for ``target`` (a one-line HardwareError if it cannot)."""
    if target.target.runtime == "ort" and model.format == "ir":
        raise HardwareError(
            f"{model.path}: onnxruntime reads ONNX only, not OpenVINO IR",
            "measure IR files on an ov:* target, or pass the .onnx file",
        )
    reason = not_applicable(target.target, model.format)
    if reason is not None:
        raise HardwareError(f"{model.path}: {reason}", "measure it on a target that reads it")
    if target.target.runtime == "litert":
        from hardware.litert_session import open_litert

        return open_litert(model, target, threads)
    if target.target.runtime == "ort":
        return _open_ort(model, target, threads)
    return _open_ov(model, target, threads)


def example_inputs(specs: tuple[InputSpec, ...]) -> list[np.ndarray]:
    """Fixed, seeded inputs: latency must not depend on which random numbers went in."""
    rng = np.random.default_rng(0)
    arrays = []
    for _name, shape, dtype in specs:
        kind = np.dtype(dtype)
        if kind.kind == "f":
            arrays.append(rng.standard_normal(shape).astype(kind))
        else:  # integers and bools: 0/1 is valid for any index-like or mask input
            arrays.append(rng.integers(0, 2, shape).astype(kind))
    return arrays


def _static_shape(model: ModelInfo, name: str, dims: list[Any]) -> tuple[int, ...]:
    """Batch 1, static shapes: a dynamic batch becomes 1, any other dynamic size is an error."""
    shape = []
    for axis, dim in enumerate(dims):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
        elif axis == 0:
            shape.append(1)
        else:
            raise HardwareError(
                f"{model.path}: input {name!r} has dynamic size on axis {axis}",
                "export the model with static input shapes (only the batch may be dynamic)",
            )
    return tuple(shape)


# --- onnxruntime ------------------------------------------------------------------------------


def _ort_options(ort: Any, threads: int) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _ort_providers(device: str) -> list[str]:
    # CPU stays second for CUDA so ops without a CUDA kernel still run (recorded in config).
    provider = ORT_PROVIDERS[device]
    return [provider] if device == "cpu" else [provider, "CPUExecutionProvider"]


def timed_load(load: Callable[[], _Loaded], failure: str, hint: str) -> tuple[_Loaded, float]:
    """``load()`` and its wall time in ms, the same on every runtime: whatever the runtime
    raises becomes one HardwareError line, ``failure (reason)`` with ``hint``; our own
    HardwareError (a shape that cannot be made static) passes through unchanged."""
    start = time.perf_counter()
    try:
        loaded = load()
    except HardwareError:
        raise
    except Exception as exc:
        raise HardwareError(f"{failure} ({one_line(exc)})", hint) from None
    return loaded, (time.perf_counter() - start) * 1e3


def _open_ort(model: ModelInfo, target: TargetInfo, threads: int) -> OpenModel:
    import onnxruntime as ort

    providers = _ort_providers(target.target.device)
    session, load_ms = timed_load(
        lambda: ort.InferenceSession(
            model.path, sess_options=_ort_options(ort, threads), providers=providers
        ),
        f"{model.path}: onnxruntime cannot load it",
        "check the file is a complete ONNX model this onnxruntime version supports",
    )
    applied = session.get_providers()
    if applied[0] != providers[0]:
        raise HardwareError(
            f"{target.name}: onnxruntime fell back to {applied[0]} ({providers[0]} did not start)",
            "check the CUDA/cuDNN libraries that onnxruntime-gpu needs",
        )

    specs = tuple(
        (
            arg.name,
            _static_shape(model, arg.name, list(arg.shape)),
            np.dtype(_ort_dtype(model, arg.type)).name,
        )
        for arg in session.get_inputs()
    )
    arrays = example_inputs(specs)
    run = _ort_bound_runner(session, specs, arrays)
    config = {
        "providers": ",".join(applied),
        "intra_op_num_threads": str(threads),
        "inter_op_num_threads": "1",
        "execution_mode": "sequential",
        "graph_optimization_level": "all",
        "binding": "io_binding, inputs bound once",
    }

    def probe() -> float | None:
        return _ort_call_overhead(ort, threads, providers, specs, arrays)

    return OpenModel(
        infer=run,
        load_ms=load_ms,
        executed_precision=model.stored_precision,  # onnxruntime has no precision hint
        config=config,
        inputs=specs,
        latency_source="wall clock around InferenceSession.run_with_iobinding (Python side)",
        probe_call_overhead=probe,
    )


def _ort_dtype(model: ModelInfo, type_name: str) -> Any:
    try:
        return _ORT_DTYPES[type_name]
    except KeyError:
        raise HardwareError(
            f"{model.path}: input type {type_name} is not supported by the benchmark",
            "export the model with float, integer or bool inputs",
        ) from None


def _ort_bound_runner(
    session: Any, specs: tuple[InputSpec, ...], arrays: list[np.ndarray]
) -> Callable[[], float | None]:
    binding = session.io_binding()
    for (name, _shape, _dtype), array in zip(specs, arrays, strict=True):
        binding.bind_cpu_input(name, array)
    for output in session.get_outputs():
        binding.bind_output(output.name)

    def run() -> float | None:
        session.run_with_iobinding(binding)
        return None

    return run


def _ort_call_overhead(
    ort: Any,
    threads: int,
    providers: list[str],
    specs: tuple[InputSpec, ...],
    arrays: list[np.ndarray],
) -> float | None:
    """Median wall time of an Identity model with the same inputs through the same call path.

    onnxruntime reports no per-call latency outside its profiler (which perturbs small models),
    so its Python-side cost is estimated on a model that does next to nothing.
    """
    if any(dtype not in ONNX_ELEM_TYPES for _name, _shape, dtype in specs):
        return None
    try:
        session = ort.InferenceSession(
            identity_onnx(specs), sess_options=_ort_options(ort, threads), providers=providers
        )
    except Exception:
        return None
    run = _ort_bound_runner(session, specs, arrays)
    for _ in range(10):
        run()
    times = []
    for _ in range(_OVERHEAD_PROBE_RUNS):
        start = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


# --- OpenVINO ---------------------------------------------------------------------------------


def _open_ov(model: ModelInfo, target: TargetInfo, threads: int) -> OpenModel:
    import openvino

    core = ov_core()
    device = target.target.device
    config = _ov_config(core, device, threads)

    def load() -> Any:
        ov_model = core.read_model(model.path)
        _ov_make_static(model, ov_model)
        return core.compile_model(ov_model, device, config)

    compiled, load_ms = timed_load(
        load,
        f"{model.path}: OpenVINO cannot load it on {target.name}",
        "check the file is a complete model and the device supports its operations",
    )

    request = compiled.create_infer_request()
    specs = tuple(
        (
            port.get_any_name() if port.get_names() else f"input{index}",
            tuple(int(d) for d in port.get_shape()),
            np.dtype(port.get_element_type().to_dtype()).name,
        )
        for index, port in enumerate(compiled.inputs)
    )
    arrays = example_inputs(specs)
    for index, array in enumerate(arrays):
        request.set_input_tensor(index, openvino.Tensor(array))

    def run() -> float | None:
        request.infer()
        return float(request.latency)

    applied = _ov_applied(compiled)
    applied["requested"] = ",".join(f"{k}={v}" for k, v in config.items()) or "none"
    return OpenModel(
        infer=run,
        load_ms=load_ms,
        executed_precision=_ov_executed_precision(compiled, model.stored_precision),
        config=applied,
        inputs=specs,
        latency_source="openvino InferRequest.latency (inside the runtime)",
    )


def _ov_config(core: Any, device: str, threads: int) -> dict[str, str]:
    try:
        supported = set(core.get_property(device, "SUPPORTED_PROPERTIES"))
    except Exception:
        supported = set()
    wanted = {
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1",
        "INFERENCE_NUM_THREADS": str(threads),
    }
    return {key: value for key, value in wanted.items() if key in supported}


def _ov_make_static(model: ModelInfo, ov_model: Any) -> None:
    shapes = {}
    for index, port in enumerate(ov_model.inputs):
        partial = port.get_partial_shape()
        if partial.is_static:
            continue
        if partial.rank.is_dynamic:
            raise HardwareError(
                f"{model.path}: input {index} has dynamic rank",
                "export the model with static input shapes",
            )
        dims = [d.get_length() if d.is_static else None for d in partial]
        shapes[index] = list(_static_shape(model, port.get_any_name(), dims))
    if shapes:
        ov_model.reshape(shapes)


def _ov_applied(compiled: Any) -> dict[str, str]:
    applied = {}
    for key in _OV_RECORDED_PROPERTIES:
        try:
            value = compiled.get_property(key)
        except Exception:
            continue
        if hasattr(value, "get_type_name"):
            value = value.get_type_name()
        elif hasattr(value, "name") and not isinstance(value, str):  # pybind11 enums
            value = value.name
        elif isinstance(value, list | tuple):
            value = ",".join(str(v) for v in value)
        applied[key] = str(value)
    return applied


def _ov_executed_precision(compiled: Any, stored: str) -> str:
    """INT8 where the executed graph runs convolutions/matmuls in 8 bit, else the precision hint.

    A stored FP16 IR usually executes in FP32 on CPUs without native FP16, which is exactly the
    difference between stored and executed precision a user must see.
    """
    try:
        for op in compiled.get_runtime_model().get_ops():
            info = op.get_rt_info()
            if "layerType" not in info or "runtimePrecision" not in info:
                continue
            layer = info["layerType"].astype(str)
            if layer in _OV_COMPUTE_LAYERS and info["runtimePrecision"].astype(str) in {"u8", "i8"}:
                return "INT8"
    except Exception:
        pass
    try:
        hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    except Exception:
        return f"{stored} (device does not report its precision)"
    return _OV_PRECISIONS.get(hint, hint)
