"""The ``litert:cpu`` target: the ai-edge-litert interpreter (XNNPACK) in the latency protocol.

Real LiteRT sessions on an FP32 and a full-integer ``.tflite`` of a small conv net, in process
and through the torch-free runner on a simulated Arm board that has only ai-edge-litert and
numpy (torch, evo, export, onnxruntime and OpenVINO all fail to import there).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="litert:cpu needs ai-edge-litert (litert extra)")
pytest.importorskip(
    "litert_torch", reason="the test models are converted with litert-torch (litert extra)"
)

from hardware.errors import HardwareError
from hardware.latency import measure
from hardware.models import inspect_model
from hardware.runner import BenchResults, run_bench
from hardware.targets import Target, detect_targets, parse_target, resolve_target
from tests._hardware_helpers import hardware_without

pytestmark = pytest.mark.slow
SHAPE = (3, 16, 16)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A small conv net as FP32 and int8 ``.tflite`` (one conversion, one quantisation)."""
    import torch
    from torch import nn

    from export.litert import float_flatbuffer, quantise_int8

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    ).eval()  # fmt: skip
    folder = tmp_path_factory.mktemp("tflite")
    float_model = float_flatbuffer(net, SHAPE)
    samples = np.random.default_rng(0).standard_normal((16, *SHAPE)).astype(np.float32)
    paths = {"fp32": folder / "fp32.tflite", "int8": folder / "int8.tflite"}
    paths["fp32"].write_bytes(float_model)
    paths["int8"].write_bytes(quantise_int8(float_model, samples))
    return paths


@pytest.mark.parametrize("text", ["litert:cpu", "LiteRT:CPU", "tflite:cpu", " litert : cpu "])
def test_litert_target_names(text: str) -> None:
    assert parse_target(text) == Target("litert", "cpu")
    assert parse_target(text).package == "ai-edge-litert"


@pytest.mark.parametrize("text", ["litert:gpu", "litert:npu", "litert:"])
def test_other_litert_devices_are_one_line_errors(text: str) -> None:
    with pytest.raises(HardwareError) as caught:
        parse_target(text)
    assert "\n" not in str(caught.value)


def test_litert_cpu_is_detected() -> None:
    from importlib import metadata

    infos = {info.name: info for info in detect_targets()}
    info = infos["litert:cpu"]
    assert info.available and info.status == "available"
    assert info.runtime_version == metadata.version("ai-edge-litert")
    assert "XNNPACK" in info.device_name
    assert info.precisions_text == "as stored in the model"
    assert info.tested_on_hardware
    assert resolve_target("litert:cpu") == info


def test_tflite_files_are_inspected_without_running(models, tmp_path) -> None:
    assert inspect_model(models["fp32"]).stored_precision == "FP32"
    int8 = inspect_model(models["int8"])
    assert (int8.format, int8.stored_precision) == ("tflite", "INT8")
    assert int8.size_bytes == models["int8"].stat().st_size
    fake = tmp_path / "fake.tflite"
    fake.write_bytes(b"\x00" * 64)
    with pytest.raises(HardwareError, match="not a LiteRT model"):
        inspect_model(fake)


def test_both_precisions_are_measured_with_typed_inputs_and_the_thread_count(models) -> None:
    fp32 = measure(models["fp32"], "litert:cpu", "quick", threads=1)
    assert fp32.inputs[0][1:] == ((1, *SHAPE), "float32")
    assert fp32.executed_precision == "FP32"
    assert dict(fp32.config)["num_threads"] == "1"
    assert fp32.latency.median_ms > 0 and fp32.latency.n >= fp32.protocol.runs
    assert fp32.runtime.startswith("ai-edge-litert ")
    int8 = measure(models["int8"], "litert:cpu", "quick", threads=2)
    assert int8.inputs[0][1:] == ((1, *SHAPE), "int8")  # quantised input, fed as int8
    assert int8.executed_precision == "INT8"
    assert dict(int8.config)["num_threads"] == "2"


def test_example_inputs_span_the_integer_range() -> None:
    from hardware.litert_session import example_inputs

    details = [{"dtype": np.int8, "shape": np.array([1, 3, 16, 16])},
               {"dtype": np.uint8, "shape": np.array([1, 4])}]  # fmt: skip
    signed, unsigned = example_inputs(details)
    assert signed.dtype == np.int8 and signed.min() < -64 and signed.max() > 64
    assert unsigned.dtype == np.uint8 and unsigned.shape == (1, 4)


def test_tflite_on_other_runtimes_is_not_applicable(models, tmp_path) -> None:
    from tests._hardware_helpers import conv_net_onnx

    results = run_bench([models["int8"]], targets="ort:cpu,litert:cpu", protocol="quick")
    assert [m.target for m in results.measurements] == ["litert:cpu"]
    assert [(n.target, n.reason) for n in results.not_applicable] == [
        ("ort:cpu", "onnxruntime reads ONNX only")
    ]
    with pytest.raises(HardwareError, match="nothing to measure"):
        run_bench([models["int8"]], targets="ort:cpu", protocol="quick")
    with pytest.raises(HardwareError, match=r"targets read \.tflite only"):
        measure(conv_net_onnx(tmp_path / "net.onnx"), "litert:cpu", "quick")


# The Arm board: only ai-edge-litert and numpy; everything else fails to import.
_BLOCKED = (
    "torch", "evo", "export", "onnx", "onnxruntime", "openvino", "typer", "rich", "psutil",
    "litert_torch", "ai_edge_quantizer", "tflite_micro", "jax",
)  # fmt: skip
def test_torch_free_runner_measures_tflite_with_only_litert_installed(models, tmp_path) -> None:
    out = tmp_path / "results.json"
    done = hardware_without(
        "bench", str(models["int8"]), str(models["fp32"]), "--protocol", "quick", "--threads",
        "1", "--json", "--out", str(out), blocked=_BLOCKED,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr
    loaded = BenchResults.load(out)
    assert json.loads(done.stdout) == loaded.to_dict()
    # No --target: onnxruntime and OpenVINO are absent, litert:cpu is chosen for .tflite.
    assert [(m.target, m.executed_precision) for m in loaded.measurements] == [
        ("litert:cpu", "INT8"), ("litert:cpu", "FP32"),
    ]  # fmt: skip
    assert [t.name for t in loaded.targets] == ["litert:cpu"]
    listed = hardware_without("targets", "--json", blocked=_BLOCKED)
    assert listed.returncode == 0, listed.stderr
    status = {entry["target"]: entry for entry in json.loads(listed.stdout)}
    assert status["litert:cpu"]["available"]
    assert not status["ort:cpu"]["available"] and not status["ov:CPU"]["available"]
