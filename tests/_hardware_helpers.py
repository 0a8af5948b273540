"""Small real models for the hardware tests, built without torch (onnx.helper + OpenVINO), and
the torch-free runner started on a simulated small machine where some packages are missing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_net_onnx(
    path: Path,
    size: int | str = 16,
    channels: int = 8,
    seed: int = 0,
    batch: int | str = 1,
) -> Path:
    """Conv -> ReLU -> global average pool -> Gemm: a 10-class classifier on 3 x size x size.

    A string ``batch`` or ``size`` makes that axis dynamic (a named ONNX dimension).
    """
    rng = np.random.default_rng(seed)
    initializers = [
        numpy_helper.from_array(
            rng.standard_normal((channels, 3, 3, 3)).astype(np.float32) * 0.2, "w1"
        ),
        numpy_helper.from_array(np.zeros(channels, np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((10, channels)).astype(np.float32), "wf"),
        numpy_helper.from_array(np.zeros(10, np.float32), "bf"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        initializers,
    )
    return _save(graph, path)


def qdq_conv_onnx(path: Path, size: int = 16, channels: int = 8, seed: int = 0) -> Path:
    """An INT8 (QuantizeLinear/DequantizeLinear) convolution, as NNCF/ORT quantizers write."""
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal((channels, 3, 3, 3)).astype(np.float32)
    scale = np.float32(np.abs(weights).max() / 127)
    quantized = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
    initializers = [
        numpy_helper.from_array(quantized, "wq"),
        numpy_helper.from_array(np.array(scale, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.02, np.float32), "xs"),
        numpy_helper.from_array(np.array(128, np.uint8), "xz"),
        numpy_helper.from_array(np.zeros(channels, np.float32), "b1"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("Conv", ["xd", "wd", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, size, size])],
        initializers,
    )
    return _save(graph, path)


def to_ir(onnx_path: Path, xml_path: Path, fp16: bool = False) -> Path:
    """Convert with OpenVINO (the export package's route), FP32 or FP16-compressed weights."""
    import openvino

    model = openvino.convert_model(str(onnx_path))
    openvino.save_model(model, str(xml_path), compress_to_fp16=fp16)
    return xml_path


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


REPO = Path(__file__).resolve().parents[1]

# Run as ``python -c``: importing any top-level module named in argv[1] (comma-separated) fails,
# torch must then be unimportable (so argv[1] must name it), and ``python -m hardware ARGS``
# runs; any blocked module still loaded at the end is printed as "leaked: [...]" on stderr.
_BOOTSTRAP = textwrap.dedent(
    """
    import runpy, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: small machine)")
            return None

    sys.meta_path.insert(0, Blocker())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("torch could still be imported")
    sys.argv = ["hardware", *sys.argv[2:]]
    try:
        runpy.run_module("hardware", run_name="__main__", alter_sys=True)
    finally:
        leaked = sorted(n for n in sys.modules if n.split(".")[0] in BLOCKED)
        if leaked:
            print("leaked:", leaked, file=sys.stderr)
    """
)


def hardware_without(*args: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """Run ``python -m hardware ARGS`` where importing any ``blocked`` top-level module fails:
    the machine the runner is shipped to has only its runtimes (``blocked`` names torch)."""
    return subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, ",".join(blocked), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
