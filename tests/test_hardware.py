"""hardware/: targets, detection, model files, the latency protocol, results files, the runner.

Real onnxruntime and OpenVINO sessions on small conv nets built with onnx.helper (no torch);
the quick protocol keeps every measurement well under a second.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.errors import HardwareError
from hardware.host import describe_host
from hardware.latency import (
    FULL,
    QUICK,
    LatencyStats,
    Measurement,
    get_protocol,
    measure,
    summarize,
)
from hardware.models import inspect_model
from hardware.onnx_identity import identity_onnx
from hardware.runner import BenchResults, run_bench
from hardware.targets import (
    TESTED_ON_HARDWARE,
    Target,
    detect_targets,
    parse_target,
    parse_targets,
    resolve_target,
)
from tests._hardware_helpers import conv_net_onnx, hardware_without, qdq_conv_onnx, to_ir


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hw_models")
    onnx_path = conv_net_onnx(folder / "conv.onnx")
    qdq_path = qdq_conv_onnx(folder / "qdq.onnx")
    return {
        "onnx": onnx_path,
        "ir": to_ir(onnx_path, folder / "conv.xml"),
        "ir16": to_ir(onnx_path, folder / "conv16.xml", fp16=True),
        "qdq": qdq_path,
        "qdq_ir": to_ir(qdq_path, folder / "qdq.xml"),
    }


@pytest.fixture(scope="module")
def onnx_on_ort(models: dict[str, Path]) -> Measurement:
    return measure(models["onnx"], "ort:cpu", "quick", threads=1)


@pytest.fixture(scope="module")
def ir_on_ov(models: dict[str, Path]) -> Measurement:
    return measure(models["ir"], "ov:CPU", "quick", threads=1)


# --- targets -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ort:cpu", Target("ort", "cpu")),
        ("ORT:CPU", Target("ort", "cpu")),
        ("ort:CUDA", Target("ort", "cuda")),
        ("ov:cpu", Target("ov", "CPU")),
        ("OV:gpu.1", Target("ov", "GPU.1")),
        (" ov:Npu ", Target("ov", "NPU")),
        ("openvino:auto", Target("ov", "AUTO")),
        ("onnxruntime:cpu", Target("ort", "cpu")),
    ],
)
def test_target_names_are_case_insensitive(text: str, expected: Target) -> None:
    assert parse_target(text) == expected
    assert parse_target(expected.name) == expected


def test_parse_targets_splits_commas_and_drops_duplicates() -> None:
    names = [t.name for t in parse_targets("ort:cpu, ov:CPU,ORT:cpu")]
    assert names == ["ort:cpu", "ov:CPU"]
    assert [t.name for t in parse_targets(["ov:npu", "ort:cpu,ov:NPU"])] == ["ov:NPU", "ort:cpu"]


@pytest.mark.parametrize("text", ["cpu", "tf:cpu", "ort:tpu", "ov:", "ov:GPU-1", ""])
def test_malformed_target_is_one_line_error(text: str) -> None:
    with pytest.raises(HardwareError) as caught:
        parse_targets(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("text", ["ov:MYRIAD", "ov:myriad", "ov:VPU", "ov:HDDL"])
def test_myriad_and_vpu_point_to_npu(text: str) -> None:
    with pytest.raises(HardwareError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert "2023.0" in message
    assert "NPU" in message


def test_detection_reports_cpu_targets_and_absent_ones() -> None:
    infos = {info.name: info for info in detect_targets()}
    for name in ("ort:cpu", "ort:cuda", "ov:CPU", "ov:GPU", "ov:NPU", "ov:AUTO"):
        assert name in infos  # listed even when absent, so users see what could be there
    for name in ("ort:cpu", "ov:CPU"):
        info = infos[name]
        assert info.available
        assert info.device_name
        assert info.runtime_version
        assert info.tested_on_hardware
        assert len(info.fingerprint) == 16
    assert "FP32" in infos["ov:CPU"].precisions
    assert infos["ort:cpu"].precisions_text == "as stored in the model"
    for info in infos.values():
        assert info.tested_on_hardware == (info.name in TESTED_ON_HARDWARE)
        assert info.status == "available" or not info.available
    assert {"ort:cpu", "ov:CPU", "litert:cpu"} == TESTED_ON_HARDWARE


def test_target_info_round_trips() -> None:
    from hardware.targets import TargetInfo

    for info in detect_targets():
        again = TargetInfo.from_dict(json.loads(json.dumps(info.to_dict())))
        assert again == info


def test_absent_target_names_the_present_ones() -> None:
    with pytest.raises(HardwareError) as caught:
        resolve_target("ov:GPU.9")
    message = str(caught.value)
    assert "ov:GPU.9 is not present" in message
    assert "present: " in message
    assert "ort:cpu" in message
    assert "ov:CPU" in message
    assert "\n" not in message


# --- model files ---------------------------------------------------------------------------------


def test_size_on_disk_counts_every_file(models: dict[str, Path]) -> None:
    ir = inspect_model(models["ir"])
    xml, weights = models["ir"], models["ir"].with_suffix(".bin")
    assert ir.format == "ir"
    assert ir.files == (str(xml), str(weights))
    assert ir.size_bytes == xml.stat().st_size + weights.stat().st_size
    onnx_info = inspect_model(models["onnx"])
    assert onnx_info.size_bytes == models["onnx"].stat().st_size
    assert len(onnx_info.sha256) == 64


@pytest.mark.parametrize(
    ("key", "precision"),
    [("onnx", "FP32"), ("ir", "FP32"), ("ir16", "FP16"), ("qdq", "INT8"), ("qdq_ir", "INT8")],
)
def test_stored_precision(models: dict[str, Path], key: str, precision: str) -> None:
    assert inspect_model(models[key]).stored_precision == precision


def _bad_files(folder: Path, models: dict[str, Path]) -> dict[str, Path]:
    rng = np.random.default_rng(1)
    files = {
        "random bytes": folder / "random.onnx",
        "text": folder / "text.onnx",
        "empty": folder / "empty.onnx",
        "not xml": folder / "garbage.xml",
        "xml without layers": folder / "nolayers.xml",
        "IR without bin": folder / "nobin.xml",
        "wrong suffix": folder / "model.txt",
    }
    files["random bytes"].write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    files["text"].write_text("this is not a model\n")
    files["empty"].write_bytes(b"")
    files["not xml"].write_text("<net><layers>")
    files["xml without layers"].write_text('<?xml version="1.0"?><net name="x"></net>')
    files["IR without bin"].write_text(models["ir"].read_text())
    files["wrong suffix"].write_bytes(models["onnx"].read_bytes())
    files["missing"] = folder / "does_not_exist.onnx"
    return files


def test_corrupt_or_non_model_files_are_one_line_errors(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    for kind, path in _bad_files(tmp_path, models).items():
        for target in ("ort:cpu", "ov:CPU"):
            with pytest.raises(HardwareError) as caught:
                measure(path, target, "quick")
            message = str(caught.value)
            assert "\n" not in message, kind
            assert str(path) in message, kind


@pytest.mark.parametrize("target", ["ort:cpu", "ov:CPU"])
def test_dynamic_batch_runs_at_batch_1_other_dynamic_axes_refused(
    tmp_path: Path, target: str
) -> None:
    dynamic_batch = conv_net_onnx(tmp_path / "dyn_batch.onnx", batch="N")
    m = measure(dynamic_batch, target, "quick")
    assert m.inputs == (("x", (1, 3, 16, 16), "float32"),)
    dynamic_size = conv_net_onnx(tmp_path / "dyn_size.onnx", size="H")
    with pytest.raises(HardwareError, match="dynamic size on axis 2"):
        measure(dynamic_size, target, "quick")


def test_onnxruntime_refuses_ir(models: dict[str, Path]) -> None:
    with pytest.raises(HardwareError, match="onnxruntime reads ONNX only"):
        measure(models["ir"], "ort:cpu", "quick")


# --- the protocol --------------------------------------------------------------------------------


def test_protocols_are_the_documented_ones() -> None:
    assert (FULL.warmup_runs, FULL.warmup_s, FULL.runs, FULL.seconds) == (10, 1.0, 100, 5.0)
    assert QUICK.name == "quick"
    assert QUICK.runs < FULL.runs
    assert get_protocol("QUICK") is QUICK
    assert get_protocol(FULL) is FULL
    with pytest.raises(HardwareError, match="unknown latency protocol"):
        get_protocol("slow")


@given(st.lists(st.floats(0.001, 1000.0, allow_nan=False), min_size=1, max_size=300))
def test_summary_statistics_are_ordered(samples: list[float]) -> None:
    stats = summarize(samples)
    assert stats.n == len(samples)
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
    assert stats.min_ms - 1e-9 <= stats.mean_ms <= stats.max_ms + 1e-9
    assert stats.std_ms >= 0.0


def test_summary_rejects_empty_or_non_finite() -> None:
    for bad in ([], [1.0, float("nan")], [float("inf")]):
        with pytest.raises(ValueError):
            summarize(bad)


def _assert_sane(m: Measurement, protocol_runs: int) -> None:
    for stats in (m.latency, m.wall):
        assert isinstance(stats, LatencyStats)
        assert stats.n >= protocol_runs
        assert 0 < stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.max_ms
        assert stats.min_ms <= stats.mean_ms <= stats.max_ms
        assert stats.std_ms >= 0
    assert m.latency.n == m.wall.n
    assert m.load_ms > 0
    assert m.first_inference_ms > 0
    assert m.throughput_ips > 0
    assert m.call_overhead_ms is not None
    assert m.call_overhead_ms >= -0.01  # wall minus runtime time; tiny negative = clock jitter
    assert m.peak_memory_bytes is not None and m.peak_memory_bytes >= 0
    assert m.memory_source
    assert m.threads == 1
    assert m.host == describe_host()
    assert m.inputs == (("x", (1, 3, 16, 16), "float32"),)
    assert m.runtime.split()[0] in {"onnxruntime", "openvino"}
    assert m.measured_utc.endswith("+00:00")


def test_onnx_on_onnxruntime(onnx_on_ort: Measurement, models: dict[str, Path]) -> None:
    m = onnx_on_ort
    _assert_sane(m, QUICK.runs)
    assert m.target == "ort:cpu"
    assert m.protocol == QUICK
    assert m.model.format == "onnx"
    assert m.model.size_bytes == models["onnx"].stat().st_size
    assert (m.model.stored_precision, m.executed_precision) == ("FP32", "FP32")
    config = dict(m.config)
    assert config["providers"] == "CPUExecutionProvider"
    assert config["intra_op_num_threads"] == "1"
    assert "wall clock" in m.latency_source
    assert m.latency == m.wall  # onnxruntime offers no per-call timing of its own


def test_ir_on_openvino_times_inside_the_runtime(ir_on_ov: Measurement) -> None:
    m = ir_on_ov
    _assert_sane(m, QUICK.runs)
    assert m.target == "ov:CPU"
    assert m.model.format == "ir"
    config = dict(m.config)
    assert config["INFERENCE_NUM_THREADS"] == "1"
    assert config["NUM_STREAMS"] == "1"
    assert config["PERFORMANCE_HINT"] == "LATENCY"
    assert config["INFERENCE_PRECISION_HINT"] in {"f32", "bf16", "f16"}
    assert "InferRequest.latency" in m.latency_source
    # Python-side wall clock includes the runtime's own time plus the call overhead.
    assert m.wall.median_ms >= m.latency.median_ms * 0.9


def test_onnx_on_openvino(models: dict[str, Path]) -> None:
    m = measure(models["onnx"], "OV:cpu", "quick")
    _assert_sane(m, QUICK.runs)
    assert (m.target, m.model.format) == ("ov:CPU", "onnx")


def test_stored_versus_executed_precision(models: dict[str, Path]) -> None:
    fp16 = measure(models["ir16"], "ov:CPU", "quick")
    assert fp16.model.stored_precision == "FP16"
    assert fp16.executed_precision in {"FP32", "BF16", "FP16"}  # the CPU decides; recorded
    int8 = measure(models["qdq_ir"], "ov:CPU", "quick")
    assert (int8.model.stored_precision, int8.executed_precision) == ("INT8", "INT8")


def test_measurement_json_round_trip(onnx_on_ort: Measurement, ir_on_ov: Measurement) -> None:
    for m in (onnx_on_ort, ir_on_ov):
        data = json.loads(json.dumps(m.to_dict(), allow_nan=False))
        assert Measurement.from_dict(data) == m
        row = m.row()
        assert row["median_ms"] == m.latency.median_ms
        assert row["host_fingerprint"] == describe_host().fingerprint


def test_identity_probe_model_is_valid_onnx() -> None:
    import onnx
    import onnxruntime

    specs = (("x", (1, 3, 4, 4), "float32"), ("k", (2,), "int64"))
    payload = identity_onnx(specs)
    onnx.checker.check_model(onnx.load_from_string(payload))
    session = onnxruntime.InferenceSession(payload, providers=["CPUExecutionProvider"])
    x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4)
    k = np.array([3, 4], dtype=np.int64)
    out_x, out_k = session.run(None, {"x": x, "k": k})
    np.testing.assert_array_equal(out_x, x)
    np.testing.assert_array_equal(out_k, k)


# --- runner and results files --------------------------------------------------------------------


def test_run_bench_and_results_file(tmp_path: Path, models: dict[str, Path]) -> None:
    seen: list[object] = []
    results = run_bench(
        [models["onnx"], models["ir"]], protocol="quick", threads=1, on_result=seen.append
    )
    pairs = [(Path(m.model.path).name, m.target) for m in results.measurements]
    # Default targets: ONNX on both runtimes, IR on OpenVINO only (onnxruntime cannot read it).
    assert pairs == [("conv.onnx", "ort:cpu"), ("conv.onnx", "ov:CPU"), ("conv.xml", "ov:CPU")]
    assert results.failures == ()
    assert len(seen) == 3
    assert results.host == describe_host()

    path = results.save(tmp_path / "out" / "results.json")
    loaded = BenchResults.load(path)
    assert loaded == results
    assert json.loads(path.read_text())["format"] == "evo-hardware-results"
    rows = results.rows()
    assert [r["status"] for r in rows][:3] == ["ok", "ok", "ok"]
    assert rows[3]["model"].endswith("conv.xml") and rows[3]["target"] == "ort:cpu"
    assert rows[3]["status"].startswith("not applicable: ")


def test_explicit_impossible_pair_is_not_applicable(models: dict[str, Path]) -> None:
    results = run_bench([models["ir"]], targets="ort:cpu,ov:CPU", protocol="quick")
    assert [m.target for m in results.measurements] == ["ov:CPU"]
    assert results.failures == ()
    assert [(n.target, "ov:*" in n.reason) for n in results.not_applicable] == [("ort:cpu", True)]
    assert results.rows()[-1]["status"].startswith("not applicable: ")
    assert BenchResults.from_dict(results.to_dict()) == results
    with pytest.raises(HardwareError, match="nothing to measure"):
        run_bench([models["ir"]], targets="ort:cpu", protocol="quick")


def test_run_bench_checks_every_file_before_measuring(
    tmp_path: Path, models: dict[str, Path]
) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    seen: list[object] = []
    with pytest.raises(HardwareError, match=r"bad\.onnx"):
        run_bench([models["onnx"], bad], protocol="quick", on_result=seen.append)
    assert seen == []
    with pytest.raises(HardwareError, match="not present"):
        run_bench([models["onnx"]], targets="ov:NPU.7", protocol="quick", on_result=seen.append)
    assert seen == []


def test_results_file_errors_are_one_line(tmp_path: Path) -> None:
    cases = {
        "missing.json": None,
        "text.json": "not json",
        "other.json": json.dumps({"format": "something-else"}),
        "future.json": json.dumps({"format": "evo-hardware-results", "format_version": 99}),
        "damaged.json": json.dumps({"format": "evo-hardware-results", "format_version": 1}),
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        with pytest.raises(HardwareError) as caught:
            BenchResults.load(path)
        assert "\n" not in str(caught.value)
        assert name in str(caught.value)


# --- the torch-free runner on "the edge box" ----------------------------------------------------

_BLOCKED = ("torch", "evo", "export", "onnx", "typer", "rich", "psutil")

_edge_box = functools.partial(hardware_without, blocked=_BLOCKED)


def test_torch_free_runner_writes_a_results_file(tmp_path: Path, models: dict[str, Path]) -> None:
    out = tmp_path / "results.json"
    done = _edge_box(
        "bench", str(models["onnx"]), "--target", "ort:cpu,ov:CPU", "--protocol", "quick",
        "--json", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr
    printed = json.loads(done.stdout)
    loaded = BenchResults.load(out)
    assert printed == loaded.to_dict()
    assert [m.target for m in loaded.measurements] == ["ort:cpu", "ov:CPU"]
    for m in loaded.measurements:
        assert m.latency.min_ms <= m.latency.median_ms <= m.latency.p90_ms
        # Without the onnx package the stored precision comes from OpenVINO's ONNX reader.
        assert m.model.stored_precision == "FP32"
        assert m.host.fingerprint == describe_host().fingerprint


def test_torch_free_runner_targets_and_errors(tmp_path: Path) -> None:
    listed = _edge_box("targets", "--json")
    assert listed.returncode == 0, listed.stderr
    names = {row["target"]: row for row in json.loads(listed.stdout)}
    assert names["ov:CPU"]["available"] and names["ort:cpu"]["available"]
    assert names["ov:NPU"]["tested_on_hardware"] is False

    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    failed = _edge_box("bench", str(bad), "--protocol", "quick")
    assert failed.returncode == 2
    assert failed.stderr.count("\n") == 1
    assert failed.stderr.startswith("hardware: error: ")


# --- the evo CLI ---------------------------------------------------------------------------------


def test_evo_targets_and_bench(tmp_path: Path, models: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from evo.cli.app import app

    runner = CliRunner()
    listed = runner.invoke(app, ["targets", "--json"])
    assert listed.exit_code == 0, listed.output
    assert {"ort:cpu", "ov:CPU"} <= {row["target"] for row in json.loads(listed.output)}

    table = runner.invoke(app, ["targets"])
    assert table.exit_code == 0
    assert "untested on hardware" in table.output

    measured = runner.invoke(
        app, ["bench", str(models["onnx"]), "--target", "ort:cpu", "--protocol", "quick", "--json"]
    )
    assert measured.exit_code == 0, measured.output
    data = json.loads(measured.output)
    assert [m["target"] for m in data["measurements"]] == ["ort:cpu"]

    csv_path = tmp_path / "bench.csv"
    shown = runner.invoke(
        app, ["bench", str(models["ir"]), "-t", "ov:cpu", "--protocol", "quick", "--csv",
              str(csv_path)],
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "median" in shown.output and "conv.xml" in shown.output
    header, row = csv_path.read_text().splitlines()[:2]
    assert header.startswith("model,format,size_bytes")
    assert ",ov:CPU," in row


def test_evo_bench_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from evo.cli.app import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage")
    for argv in (
        ["bench", str(bad), "--protocol", "quick"],
        ["bench", str(bad), "--target", "ov:MYRIAD"],
    ):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("evo: error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("missing", "present"), [("openvino", "ort:cpu"), ("onnxruntime", "ov:CPU")]
)
def test_runner_with_one_runtime_only(
    tmp_path: Path, models: dict[str, Path], missing: str, present: str
) -> None:
    out = tmp_path / "results.json"
    done = _edge_box(
        "bench", str(models["onnx"]), "--protocol", "quick", "--out", str(out),
        blocked=(*_BLOCKED, missing),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = BenchResults.load(out)
    assert [m.target for m in loaded.measurements] == [present]
    # Stored precision of an ONNX file needs the onnx package or OpenVINO's reader.
    expected = "unknown" if missing == "openvino" else "FP32"
    assert loaded.measurements[0].model.stored_precision == expected

    listed = _edge_box("targets", "--json", blocked=(*_BLOCKED, missing))
    rows = {row["target"]: row for row in json.loads(listed.stdout)}
    assert rows[present]["available"]
    prefix = {"openvino": "ov:", "onnxruntime": "ort:"}[missing]
    absent = [name for name in rows if name.startswith(prefix)]
    assert absent and all(rows[name]["status"] == f"{missing} not installed" for name in absent)
