"""The export library on a small network trained on sklearn's digits, with real runtimes.

One module-scoped export of every format backs most tests; the others export only the formats
they are about. Everything is seeded and runs on one torch thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from torch import nn

from export.errors import ExportError
from export.evaluate import (
    check_parity,
    fragile_predictions,
    logit_tolerance,
    onnx_runner,
    openvino_runner,
    random_inputs,
    torch_logits,
)
from export.formats import ALL_FORMATS, export_all, parse_formats
from export.manifest import read_manifest, verify_files
from export.onnx import strip_debug_metadata, torch_to_onnx
from export.request import DEFAULT_TOLERANCES, ExportOptions, Tolerance
from export.results import BYTES_PER_MB, PRECISION_COLUMN, TABLE_COLUMNS, precision_text
from tests import _export_helpers
from tests._export_helpers import (
    CLASS_NAMES,
    INPUT_SHAPE,
    MEAN,
    PIXEL_SCALE,
    SOURCE,
    STD,
    export_trained,
    reference_network,
    se_network,
)

pytestmark = pytest.mark.slow


digits = _export_helpers.digits
trained = _export_helpers.trained


@pytest.fixture(scope="module")
def report(trained: nn.Module, digits: dict[str, np.ndarray], tmp_path_factory):
    return export_trained(trained, digits, tmp_path_factory.mktemp("export-all"), "all")


def options(**changes) -> ExportOptions:
    return ExportOptions(threads=1, pixel_scale=PIXEL_SCALE, **changes)


# --- every format on the trained network --------------------------------------------------


def test_every_format_is_written_checked_and_evaluated(report) -> None:
    assert [row.format for row in report.rows] == list(ALL_FORMATS)
    assert report.torch_accuracy > 0.9
    for row in report.rows:
        assert row.ok, (row.format, row.reason)
        assert row.parity.passed and row.parity.random_inputs == 8
        assert row.parity.real_samples == 32
        assert row.accuracy.samples == 360
        assert row.accuracy.accuracy > 0.9
        assert abs(row.accuracy.drop_points) <= 2.0, row.format


def test_float_formats_match_torch_closely(report, trained, digits) -> None:
    assert report.row("onnx").parity.max_abs_diff_random < 1e-3
    assert report.row("ir-fp32").parity.max_abs_diff_random < 1e-3
    expected = torch_logits(trained, digits["x_test"])
    for name in ("onnx", "onnx-fp16", "ir-fp32", "ir-fp16"):
        row = report.row(name)
        accuracy = row.accuracy
        # Accuracy runs at the CPU's default precision (bf16 on CPUs with AVX-512 BF16 or AMX):
        # only a prediction within that precision's rounding of a tie may differ from torch's.
        fragile = fragile_predictions(expected, row.precision, accuracy.executed_precision)
        assert abs(accuracy.drop_points) <= 100 * fragile.mean(), (name, accuracy)


def test_ir_parity_runs_in_f32_and_reports_stored_and_executed_precision(report) -> None:
    assert report.row("ir-fp16").precision == "fp16"
    assert report.row("ir-fp16").parity.executed_precision == "f32"
    assert report.row("ir-int8").parity.executed_precision == "int8+f32"
    assert report.row("ir-fp32").parity.executed_precision == "f32"
    row = report.table()[ALL_FORMATS.index("ir-fp16") + 1]
    assert row[PRECISION_COLUMN].startswith("fp16→")


def _device_default_precision() -> str:
    import openvino as ov

    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


@pytest.mark.parametrize("name", ["ir-fp32", "ir-fp16", "ir-int8"])
def test_accuracy_is_computed_at_the_precision_the_table_shows(report, digits, name) -> None:
    """The table's executed precision is the CPU's default, and recompiling at exactly that
    precision gives exactly the accuracy beside it."""
    import openvino as ov

    row = report.row(name)
    executed = row.accuracy.executed_precision
    default = _device_default_precision()
    assert executed == (f"int8+{default}" if name == "ir-int8" else default)
    cell = report.table()[ALL_FORMATS.index(name) + 1][PRECISION_COLUMN]
    assert cell == precision_text(row.precision, executed)
    compiled = ov.Core().compile_model(
        str(row.directory / "model.xml"),
        "CPU",
        {"INFERENCE_PRECISION_HINT": executed.split("+")[-1], "INFERENCE_NUM_THREADS": 1},
    )
    x = digits["x_test"]
    predicted = [int(np.argmax(compiled(x[i : i + 1])[0])) for i in range(len(x))]
    assert np.mean(np.asarray(predicted) == digits["y_test"]) == row.accuracy.accuracy


@pytest.mark.parametrize("hint", [None, "bf16"], ids=["device-default", "bf16-asked"])
def test_predictions_at_the_executed_precision_are_torch_predictions(
    report, trained, digits, hint, record_property
) -> None:
    """What a user gets without pinning: the precision is read back (and recorded), the logits
    are within that precision's bound and every prediction not within it of a tie is torch's.
    Asking for bf16 exercises the bf16 bound on any CPU (one without bf16 runs f32, read back)."""
    import openvino as ov

    config: dict[str, object] = {"INFERENCE_NUM_THREADS": 1}
    if hint is not None:
        config["INFERENCE_PRECISION_HINT"] = hint
    xml = report.row("ir-fp32").directory / "model.xml"
    compiled = ov.Core().compile_model(str(xml), "CPU", config)
    executed = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    record_property("executed_precision", executed)
    assert executed in ("f32", "bf16", "f16")  # f16 is the default on ARM CPUs
    if hint is None:
        assert executed == _device_default_precision()
    x = digits["x_test"]
    got = np.concatenate([compiled(x[i : i + 1])[0] for i in range(len(x))])
    expected = torch_logits(trained, x)
    bound = logit_tolerance(float(np.max(np.abs(expected))), "fp32", executed)
    assert np.max(np.abs(got - expected)) <= bound, executed
    stable = ~fragile_predictions(expected, "fp32", executed)
    assert stable.mean() >= 0.9, executed  # the check covers most of the test split
    np.testing.assert_array_equal(np.argmax(got[stable], 1), np.argmax(expected[stable], 1))


def test_size_is_every_file_of_the_artifact(report) -> None:
    for row in report.rows:
        on_disk = sum((row.directory / f.name).stat().st_size for f in row.files)
        assert row.size_bytes == on_disk
        assert row.size_mb == on_disk / BYTES_PER_MB
    assert sorted(f.name for f in report.row("ir-fp32").files) == ["model.bin", "model.xml"]
    assert [f.name for f in report.row("onnx").files] == ["model.onnx"]


def test_onnx_files_are_self_contained_checked_and_stripped(report) -> None:
    for name in ("onnx", "onnx-fp16", "onnx-int8"):
        directory = report.row(name).directory
        assert sorted(p.name for p in directory.iterdir()) == ["manifest.json", "model.onnx"]
        proto = onnx.load_model(str(directory / "model.onnx"))
        onnx.checker.check_model(proto, full_check=True)
        assert not any(
            t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer
        )
        assert all(not n.metadata_props and not n.doc_string for n in proto.graph.node)
        assert not proto.doc_string and not proto.graph.doc_string
    int8 = onnx.load_model(str(report.row("onnx-int8").directory / "model.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in int8.graph.node}


def test_manifest_describes_the_artifact(report) -> None:
    for row in report.rows:
        manifest = read_manifest(row.directory)
        assert row.manifest == row.directory / "manifest.json"
        assert manifest["format"] == row.format and manifest["status"] == "ok"
        assert verify_files(row.directory) == []
        assert manifest["size_bytes"] == row.size_bytes
        if row.runtime != "litert":  # LiteRT states its file's own tensors: test_litert_export
            assert manifest["input"] == {
                "name": "input",
                "shape": [1, 1, 8, 8],
                "layout": "NCHW",
                "dtype": "float32",
                "expects": "float samples normalised with the manifest's mean and std",
            }
        assert manifest["output"]["name"] == "logits"
        assert manifest["normalisation"] == {"mean": [0.5], "std": [0.5]}
        assert manifest["class_names"] == list(CLASS_NAMES)
        assert manifest["source"] == SOURCE
        assert manifest["parity"]["passed"] is True
        assert manifest["accuracy"]["samples"] == 360
        assert {"torch", "onnx", "onnxruntime", "openvino", "nncf"} <= set(manifest["tools"])
        if row.runtime == "openvino":
            assert manifest["ir_version"] >= 10
        elif row.runtime == "litert":
            assert manifest["litert_versions"]["litert-torch"] != "not installed"
        else:
            assert manifest["opset"] >= 17 and manifest["onnx_ir_version"] >= 8
    assert read_manifest(report.row("ir-int8").directory)["calibration"]["used"] == 300


def test_report_is_json_and_a_table_with_units(report) -> None:
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert [row["format"] for row in data["rows"]] == list(ALL_FORMATS)
    table = report.table()
    assert table[0]["format"] == "torch"
    assert all(tuple(row) == TABLE_COLUMNS for row in table)
    assert "MB = 10^6" in " ".join(TABLE_COLUMNS) and "size (bytes)" in TABLE_COLUMNS
    assert table[1]["size (bytes)"] == str(report.row("onnx").size_bytes)


def test_reference_network_int8_ir_size_and_accuracy(report, trained) -> None:
    """Done-when target: INT8 .bin <= 30 % and whole IR <= 40 % of FP32, drop <= 1 point."""
    assert 90_000 <= sum(p.numel() for p in trained.parameters()) <= 110_000
    assert report.weights_ratio("ir-int8") <= 0.30
    assert report.size_ratio("ir-int8") <= 0.40
    assert report.row("ir-int8").accuracy.drop_points <= 1.0
    assert report.row("ir-int8").fp32_weight_layers == ()


# --- parity failures, bad input, partial failures -----------------------------------------


def test_a_mismatched_model_fails_parity(report, digits) -> None:
    other = reference_network(seed=1).eval()
    random = random_inputs(np.random.default_rng(0), 4, INPUT_SHAPE)
    samples = digits["x_test"][:16]
    runners = {
        "onnx": onnx_runner(report.row("onnx").directory / "model.onnx", threads=1),
        "ir-fp32": openvino_runner(report.row("ir-fp32").directory / "model.xml", f32=True),
    }
    for name, runner in runners.items():
        parity = check_parity(runner, other, random, samples, DEFAULT_TOLERANCES["fp32"])
        assert not parity.passed, name
        assert "max |diff|" in parity.reason
    int8 = onnx_runner(report.row("onnx-int8").directory / "model.onnx", threads=1)
    parity = check_parity(int8, other, random, samples, DEFAULT_TOLERANCES["int8"])
    assert not parity.passed and "top-1 agreement" in parity.reason


def test_parity_beyond_tolerance_fails_the_row_and_says_so(trained, digits, tmp_path) -> None:
    strict = {**DEFAULT_TOLERANCES, "fp32": Tolerance(atol=1e-12)}
    result = export_all(
        trained,
        INPUT_SHAPE,
        tmp_path,
        "onnx",
        evaluation=(digits["x_test"], digits["y_test"]),
        options=options(tolerances=strict),
    )
    row = result.row("onnx")
    assert row.status == "failed" and row.reason.startswith("parity: random inputs")
    assert row.accuracy is not None
    assert read_manifest(row.directory)["status"] == "failed"


def test_unwritable_output_dir_raises_export_error(trained, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError, match="cannot write to output directory"):
        export_all(trained, INPUT_SHAPE, blocker / "out", "onnx", options=options())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"formats": "onnx,tflite"}, "unknown export format tflite"),
        ({"input_shape": (3, 8, 8)}, "does not run on input 3x8x8"),
        ({"input_shape": (8, 8)}, "C,H,W"),
        ({"class_names": ("a", "b")}, "2 class names for a model with 10 outputs"),
        ({"formats": "ir-fp32", "options": ExportOptions(embed_preprocessing=True)}, "mean"),
        ({"formats": "ir-int8", "options": ExportOptions(max_accuracy_drop=1.0)}, "validation"),
        ({"calibration": np.zeros((5, 3, 8, 8), np.float32)}, "calibration data has shape"),
    ],
)
def test_bad_input_is_an_export_error_before_any_work(trained, tmp_path, kwargs, message) -> None:
    call = {"input_shape": INPUT_SHAPE, "formats": "onnx", **kwargs}
    with pytest.raises(ExportError, match=message):
        export_all(trained, out_dir=tmp_path / "out", **call)
    assert not (tmp_path / "out" / "onnx").exists()


def test_int8_without_calibration_is_a_failed_row_and_others_still_run(trained, tmp_path) -> None:
    result = export_all(trained, INPUT_SHAPE, tmp_path, "onnx,onnx-int8", options=options())
    assert result.row("onnx").ok
    failed = result.row("onnx-int8")
    assert failed.status == "failed" and "calibration data" in failed.reason
    assert failed.files == () and failed.manifest is None
    assert not result.ok
    assert "calibration data" in result.table()[2]["notes"]


def test_a_calibration_set_smaller_than_asked_is_said(trained, digits, tmp_path) -> None:
    result = export_all(
        trained,
        INPUT_SHAPE,
        tmp_path,
        "onnx-int8,ir-int8",
        calibration=digits["x_train"][:40],
        options=options(),
    )
    for row in result.rows:
        assert row.ok, row.reason
        assert (row.calibration.requested, row.calibration.used) == (300, 40)
        assert "calibrated on 40 samples, fewer than the 300 asked" in row.calibration.note
        assert row.calibration.note in row.notes
        assert read_manifest(row.directory)["calibration"]["used"] == 40
        # Without test data parity still checks real samples, taken from calibration.
        assert row.parity.real_samples == 32 and row.accuracy is None


# --- options: dynamic batch, embedded preprocessing, accuracy control, exporters -----------


def test_dynamic_batch_runs_any_batch(trained, digits, tmp_path) -> None:
    result = export_all(
        trained,
        INPUT_SHAPE,
        tmp_path,
        "onnx,ir-fp32",
        evaluation=(digits["x_test"], digits["y_test"]),
        options=options(dynamic_batch=True),
    )
    batch = digits["x_test"][:5]
    expected = trained(torch.from_numpy(batch)).detach().numpy()
    for row in result.rows:
        assert row.ok, row.reason
        assert read_manifest(row.directory)["input"]["shape"] == ["batch", 1, 8, 8]
    onnx_run = onnx_runner(result.row("onnx").directory / "model.onnx", threads=1)
    ir_run = openvino_runner(result.row("ir-fp32").directory / "model.xml", f32=True)
    for runner in (onnx_run, ir_run):
        assert runner.fixed_batch is None
        np.testing.assert_allclose(runner.run_batch(batch), expected, atol=1e-4)


def test_embedded_preprocessing_takes_u8_nhwc(trained, digits, tmp_path) -> None:
    result = export_all(
        trained,
        INPUT_SHAPE,
        tmp_path,
        "ir-fp32,ir-int8",
        calibration=digits["x_train"][:300],
        evaluation=(digits["x_test"], digits["y_test"]),
        mean=MEAN,
        std=STD,
        options=options(embed_preprocessing=True),
    )
    import openvino as ov

    expected_test = torch_logits(trained, digits["x_test"])
    for row in result.rows:
        assert row.ok, row.reason
        fragile = fragile_predictions(expected_test, "fp32", row.accuracy.executed_precision)
        # INT8 keeps its quality target; float runs at the CPU's default precision.
        assert abs(row.accuracy.drop_points) <= (
            1.0 if row.format == "ir-int8" else 100 * fragile.mean()
        )
        model = ov.Core().read_model(str(row.directory / "model.xml"))
        assert model.inputs[0].get_element_type() == ov.Type.u8
        assert list(model.inputs[0].get_shape()) == [1, 8, 8, 1]
        manifest = read_manifest(row.directory)
        assert manifest["input"]["layout"] == "NHWC" and manifest["input"]["dtype"] == "uint8"
        assert manifest["input"]["embedded_preprocessing"]["pixel_scale"] == PIXEL_SCALE
    assert result.row("ir-fp32").parity.max_abs_diff_samples < 1e-3
    # A raw digits frame (pixels 0..16) gives torch's answer without any Python preprocessing;
    # f32 pinned, as the CPU's default may be bf16 (8 significant bits, 0.03 on logits near 14).
    raw = load_digits().images[:4].astype(np.uint8)[..., None]
    compiled = ov.Core().compile_model(
        str(result.row("ir-fp32").directory / "model.xml"),
        "CPU",
        {"INFERENCE_NUM_THREADS": 1, "INFERENCE_PRECISION_HINT": "f32"},
    )
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    normalised = ((raw.transpose(0, 3, 1, 2) / PIXEL_SCALE - 0.5) / 0.5).astype(np.float32)
    expected = trained(torch.from_numpy(normalised)).detach().numpy()
    got = np.concatenate([compiled(raw[i : i + 1])[0] for i in range(4)])
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_accuracy_controlled_int8(trained, digits, tmp_path) -> None:
    result = export_all(
        trained,
        INPUT_SHAPE,
        tmp_path,
        "ir-int8",
        calibration=digits["x_train"][:300],
        evaluation=(digits["x_test"], digits["y_test"]),
        validation=(digits["x_val"], digits["y_val"]),
        options=options(max_accuracy_drop=1.0),
    )
    row = result.row("ir-int8")
    assert row.ok, row.reason
    assert "accuracy-controlled" in row.calibration.method
    assert row.accuracy.drop_points <= 1.0


@pytest.mark.parametrize("gate", [nn.Sigmoid(), nn.Hardsigmoid()], ids=["sigmoid", "hardsigmoid"])
def test_squeeze_excitation_convolutions_stay_float_in_int8_ir(digits, tmp_path, gate) -> None:
    torch.manual_seed(0)
    model = se_network(gate).eval()
    result = export_all(
        model,
        INPUT_SHAPE,
        tmp_path,
        "ir-fp32,ir-int8",
        calibration=digits["x_train"][:64],
        options=options(calibration_size=64),
    )
    row = result.row("ir-int8")
    assert row.ok, row.reason
    assert len(row.fp32_weight_layers) == 2
    assert all("reduce" in name or "expand" in name for name in row.fp32_weight_layers)
    assert any("squeeze-and-excitation" in note for note in row.notes)
    assert read_manifest(row.directory)["fp32_weight_layers"] == list(row.fp32_weight_layers)
    assert result.size_ratio("ir-int8") is not None


def test_torchscript_exporter_on_request(trained, tmp_path) -> None:
    result = export_all(
        trained, INPUT_SHAPE, tmp_path, "onnx", options=options(onnx_exporter="torchscript")
    )
    row = result.row("onnx")
    assert row.ok, row.reason
    assert read_manifest(row.directory)["export"]["onnx_exporter"] == "torchscript"


def test_export_leaves_the_callers_model_alone(trained, tmp_path) -> None:
    model = reference_network().train()
    export_all(model, INPUT_SHAPE, tmp_path, "ir-fp32", options=options())
    assert model.training


def test_strip_debug_metadata_removes_exporter_annotations(trained) -> None:
    proto = torch_to_onnx(trained, INPUT_SHAPE, exporter="dynamo").proto
    before = proto.ByteSize()
    assert any(node.metadata_props for node in proto.graph.node)
    strip_debug_metadata(proto)
    assert not any(node.metadata_props for node in proto.graph.node)
    assert proto.ByteSize() < before


# --- format names ------------------------------------------------------------------------


@given(st.lists(st.sampled_from(ALL_FORMATS), min_size=1), st.randoms())
def test_parse_formats_gives_known_names_in_canonical_order(names, rnd) -> None:
    shuffled = list(names)
    rnd.shuffle(shuffled)
    spec = ", ".join(name.upper() if rnd.random() < 0.3 else name for name in shuffled)
    parsed = parse_formats(spec)
    assert set(parsed) == set(names)
    assert list(parsed) == sorted(parsed, key=ALL_FORMATS.index)


def test_parse_formats_all_and_errors() -> None:
    assert parse_formats("all") == ALL_FORMATS
    assert parse_formats(["ir-int8", "onnx"]) == ("onnx", "ir-int8")
    with pytest.raises(ExportError, match="no export format"):
        parse_formats(" , ")


def test_options_reject_nonsense() -> None:
    with pytest.raises(ExportError):
        ExportOptions(calibration_size=0)
    with pytest.raises(ExportError):
        ExportOptions(max_accuracy_drop=-1)
    with pytest.raises(ExportError):
        ExportOptions(tolerances={"fp32": Tolerance(1e-4)})


def test_paths_in_report_are_paths(report) -> None:
    assert isinstance(report.out_dir, Path)
    assert all(isinstance(row.directory, Path) for row in report.rows)
