"""The LiteRT formats: litert (FP32) and litert-int8 (full integer), built without TensorFlow.

A network trained on sklearn's digits is exported to both and checked against torch, scored on
the test split and described by its manifest; the int8 model's I/O type is switched to uint8
and float; every layer kind of the shipped grammars converts, quantises to integer-only
kernels and runs in LiteRT and TFLite Micro; a model that cannot convert is a failed row, and
one TFLite Micro cannot run is a clear error. Real conversions, one torch thread.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip(
    "litert_torch", reason="the LiteRT formats need the litert extra: "
    "pip install 'evo-edge-nas[litert]'"
)  # fmt: skip
pytest.importorskip("ai_edge_quantizer", reason="litert-int8 needs ai-edge-quantizer (litert)")

import torch
from torch import nn

from export.errors import ExportError
from export.formats import export_all
from export.litert import (
    convert_litert,
    float_flatbuffer,
    litert_runner,
    quantise_int8,
    tensor_specs,
)
from export.request import DEFAULT_TOLERANCES, ExportOptions, Tolerance
from tests import _export_helpers
from tests._export_helpers import INPUT_SHAPE, MEAN, STD, export_trained

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
FORMATS = "litert,litert-int8"


digits = _export_helpers.digits
trained = _export_helpers.trained


@pytest.fixture(scope="module")
def report(trained: nn.Module, digits: dict[str, np.ndarray], tmp_path_factory):
    return export_trained(trained, digits, tmp_path_factory.mktemp("litert"), FORMATS)


def _manifest(row) -> dict:
    return json.loads(row.manifest.read_text())


# --- a trained network ----------------------------------------------------------------------


def test_both_formats_match_torch_and_keep_its_accuracy(report) -> None:
    assert [row.format for row in report.rows] == ["litert", "litert-int8"]
    assert report.torch_accuracy > 0.9
    for row in report.rows:
        assert row.ok, (row.format, row.reason)
        assert row.runtime == "litert"
        assert row.accuracy.samples == 360
        assert abs(row.accuracy.drop_points) <= 2.0, row.format
    fp32, int8 = report.row("litert"), report.row("litert-int8")
    # FP32 is the same arithmetic in another kernel order: within 1e-4 + 1e-4 x the largest
    # logit (the fp32 tolerance), on random inputs and on real samples.
    assert fp32.parity.passed
    assert fp32.parity.tolerance == DEFAULT_TOLERANCES["fp32"]
    assert fp32.parity.max_abs_diff_random <= fp32.parity.bound_random
    assert fp32.parity.max_abs_diff_samples <= fp32.parity.bound_samples
    assert int8.parity.top1_agreement_samples >= 0.9
    assert int8.calibration.used == 300 and "static_wi8_ai8" in int8.calibration.method
    # Int8 weights: well under half the FP32 file.
    assert report.size_ratio("litert-int8") < 0.4
    table = {row["format"]: row for row in report.table()}
    assert table["litert"]["precision (stored→executed)"] == "fp32→fp32"
    assert table["litert-int8"]["precision (stored→executed)"] == "int8→int8"


def test_manifests_state_the_layout_and_quantisation_the_file_has(report) -> None:
    fp32, int8 = _manifest(report.row("litert")), _manifest(report.row("litert-int8"))
    assert fp32["input"]["layout"] == int8["input"]["layout"] == "NCHW"
    assert fp32["input"]["shape"] == [1, *INPUT_SHAPE]
    assert fp32["input"]["dtype"] == fp32["output"]["dtype"] == "float32"
    assert fp32["input"]["scale"] is None and fp32["output"]["zero_point"] is None
    for side in ("input", "output"):
        assert int8[side]["dtype"] == "int8"
        assert int8[side]["scale"] > 0
        assert -128 <= int8[side]["zero_point"] <= 127
    assert int8["export"]["io_type"] == "int8"
    assert int8["files"][0]["name"] == "model.tflite"
    assert int8["litert_versions"]["litert-torch"] == "0.10.0"
    assert int8["normalisation"] == {"mean": list(MEAN), "std": list(STD)}


def test_the_manifests_scale_and_zero_point_run_the_model(report, digits, trained) -> None:
    """What a firmware does with the manifest alone gives torch's predictions."""
    from ai_edge_litert.interpreter import Interpreter

    row = report.row("litert-int8")
    manifest = _manifest(row)
    source, target = manifest["input"], manifest["output"]
    interpreter = Interpreter(model_path=str(row.directory / "model.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    source_index = interpreter.get_input_details()[0]["index"]
    target_index = interpreter.get_output_details()[0]["index"]
    x = digits["x_test"][:100]
    predictions = []
    for sample in x:
        q = np.clip(np.round(sample / source["scale"]) + source["zero_point"], -128, 127)
        interpreter.set_tensor(source_index, q[None].astype(np.int8))
        interpreter.invoke()
        out = interpreter.get_tensor(target_index).astype(np.float32)
        predictions.append(np.argmax((out - target["zero_point"]) * target["scale"]))
    with torch.inference_mode():
        expected = trained(torch.from_numpy(x)).argmax(1).numpy()
    assert np.mean(np.array(predictions) == expected) >= 0.95


def test_io_type_uint8_and_float(report, trained, digits, tmp_path) -> None:
    int8_row = report.row("litert-int8")
    int8_spec = tensor_specs(int8_row.directory / "model.tflite")
    float_model = float_flatbuffer(trained, INPUT_SHAPE)
    calibration = digits["x_train"][:300]
    x = digits["x_test"]
    reference = litert_runner(int8_row.directory / "model.tflite", INPUT_SHAPE, threads=1)(x)
    outputs = {}
    for io_type in ("uint8", "float"):
        path = tmp_path / f"{io_type}.tflite"
        path.write_bytes(quantise_int8(float_model, calibration, io_type))
        spec = tensor_specs(path)
        runner = litert_runner(path, INPUT_SHAPE, threads=1)
        assert runner.executed_precision == "int8"  # the kernels inside stay int8
        outputs[io_type] = runner(x)
        if io_type == "uint8":
            for side in ("input", "output"):
                assert spec[side]["dtype"] == "uint8"
                # The same real values: same scale, zero point moved by 128.
                assert spec[side]["scale"] == pytest.approx(int8_spec[side]["scale"])
                assert spec[side]["zero_point"] == int8_spec[side]["zero_point"] + 128
        else:
            assert spec["input"]["dtype"] == spec["output"]["dtype"] == "float32"
            assert spec["input"]["scale"] is None
    # uint8 <-> int8 requantisation with one scale is exact: the same logits to the bit.
    np.testing.assert_array_equal(outputs["uint8"], reference)
    # float I/O quantises inside the model (rounding halves away from zero, not to even).
    assert np.mean(outputs["float"].argmax(1) == reference.argmax(1)) >= 0.99


def test_litert_io_option_is_checked() -> None:
    with pytest.raises(ExportError, match="unknown LiteRT I/O type 'int4'"):
        ExportOptions(litert_io="int4")
    with pytest.raises(ExportError, match="unknown LiteRT I/O type"):
        quantise_int8(b"", np.zeros((1, *INPUT_SHAPE), np.float32), "int16")
    done = subprocess.run(
        [sys.executable, "-m", "evo", "export", "nowhere", "--litert-io", "int16"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "evo: error: unknown LiteRT I/O type 'int16' (int8, uint8, float)"
    ]


# --- every layer kind of the shipped grammars ----------------------------------------------

# Two networks that hold every layer kind (and block option: stride 2, kernels 1-7, expansion
# 1 and 6, squeeze-and-excitation, the residual shortcut, every activation) between them.
GAP_NET = (
    "conv(16, k=3) bn relu conv(16, k=5, s=2) bn relu6 conv(16, k=1) bn hardswish "
    "conv(16, k=7) bn leakyrelu(0.1) maxpool(2) dwsep(24, k=3, act=relu6) "
    "ir(24, e=3, k=3, se=on, act=hardswish) ir(32, e=1, k=5, se=off, act=relu6) avgpool(2) "
    "conv(32, k=1) bn relu gap dropout(0.2) dense(32) bn relu dense(16) relu"
)
FLATTEN_NET = (
    "conv(8, k=3) bn leakyrelu(0.1) avgpool(2) ir(8, e=6, k=7, s=2, se=on, act=relu6, n=2) "
    "flatten dropout(0.1) dense(16) relu"
)


def _layer_names(text: str) -> set[str]:
    from evo.arch.syntax import LAYER_ALIASES, SYNTAX_BY_NAME

    words = set(re.findall(r"[a-z][a-z0-9_]*", text.lower()))
    return {LAYER_ALIASES.get(w, w) for w in words} & set(SYNTAX_BY_NAME)


def test_the_composed_networks_hold_every_layer_kind_of_the_shipped_grammars() -> None:
    from evo.ge.grammar import load_grammar

    shipped: set[str] = set()
    for path in sorted((REPO / "grammars").glob("*.bnf")):
        grammar = load_grammar(str(path))
        for rule in grammar.rules.values():
            for choice in rule.choices:
                shipped |= _layer_names(" ".join(s.text for s in choice if not s.is_nt))
    assert {"conv", "ir", "leakyrelu", "gap", "flatten"} <= shipped
    assert shipped <= _layer_names(GAP_NET) | _layer_names(FLATTEN_NET)


@pytest.mark.parametrize(("text", "shape"), [(FLATTEN_NET, (1, 28, 28)), (GAP_NET, (3, 32, 32))])
def test_every_layer_kind_converts_to_integer_kernels_and_runs(text, shape, tmp_path) -> None:
    pytest.importorskip("tflite_micro", reason="TFLite Micro's arena needs tflite-micro")
    from evo.arch import parse_arch, resolve
    from evo.net.model import build_model
    from export.litert import tflm_arena_bytes
    from hardware.models import inspect_model

    torch.set_num_threads(1)
    model = build_model(resolve(parse_arch(text), shape, 10), torch.Generator().manual_seed(0))
    samples = np.random.default_rng(0).standard_normal((32, *shape)).astype(np.float32)
    # Untrained logits nearly tie, so int8 top-1 agreement is checked loosely: this test is
    # about every layer converting and running, the trained network above about accuracy.
    loose = {**DEFAULT_TOLERANCES, "int8": Tolerance(atol=None, min_top1_agreement=0.5)}
    report = export_all(
        model.eval(), shape, tmp_path, FORMATS, calibration=samples,
        options=ExportOptions(threads=1, calibration_size=32, tolerances=loose),
    )  # fmt: skip
    for row in report.rows:
        assert row.ok, (row.format, row.reason)
    int8_file = report.row("litert-int8").directory / "model.tflite"
    assert inspect_model(int8_file).stored_precision == "INT8"
    assert tflm_arena_bytes(int8_file) > 0


# --- what cannot be exported ----------------------------------------------------------------


class DataDependent(nn.Module):
    """Runs in torch, but its branch depends on a value, which torch.export cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x.flatten(1))
        return y if float(y.sum()) > 0 else -y


def test_a_model_that_cannot_convert_is_a_failed_row_with_its_reason(tmp_path) -> None:
    report = export_all(
        DataDependent().eval(), INPUT_SHAPE, tmp_path, FORMATS,
        calibration=np.zeros((4, *INPUT_SHAPE), np.float32), options=ExportOptions(threads=1),
    )  # fmt: skip
    for row in report.rows:
        assert row.status == "failed"
        assert row.reason.startswith("LiteRT conversion failed: ")
        assert "data-dependent" in row.reason
        assert "\n" not in row.reason


class Signs(nn.Module):
    """SIGN converts to LiteRT but TFLite Micro has no kernel for it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.sign(x.flatten(1)))


def test_a_model_tflite_micro_cannot_run_is_a_clear_error(tmp_path) -> None:
    pytest.importorskip("tflite_micro", reason="TFLite Micro's arena needs tflite-micro")
    from export.litert import tflm_arena_bytes

    path = tmp_path / "signs.tflite"
    convert_litert(Signs().eval(), INPUT_SHAPE, path)
    with pytest.raises(ExportError) as caught:
        tflm_arena_bytes(path)
    assert "TFLite Micro cannot run signs.tflite" in str(caught.value)
    assert "SIGN" in str(caught.value)
    with pytest.raises(ExportError, match="cannot read"):
        tflm_arena_bytes(tmp_path / "missing.tflite")


def test_export_help_imports_no_litert_package() -> None:
    probe = textwrap.dedent(
        """
        import sys
        from evo.cli.app import main
        for argv in (["--help"], ["export", "--help"], ["bench", "--help"]):
            try:
                main(argv)
            except SystemExit:
                pass
        heavy = {"litert_torch", "ai_edge_litert", "ai_edge_quantizer", "tflite_micro", "jax"}
        print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_all_leaves_litert_out_with_one_line_when_the_extra_is_missing() -> None:
    """Without litert_torch importable, 'all' is the other six formats and says why."""
    script = textwrap.dedent(
        """
        import sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "litert_torch":
                    raise ModuleNotFoundError(name)

        sys.meta_path.insert(0, Blocker())
        from export.names import litert_note, parse_formats
        print(",".join(parse_formats("all")))
        print(litert_note("all"))
        print(litert_note("onnx,ir-fp32"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert done.returncode == 0, done.stderr
    formats, note, other = done.stdout.splitlines()
    assert formats == "onnx,onnx-fp16,onnx-int8,ir-fp32,ir-fp16,ir-int8"
    assert note == (
        "note: litert, litert-int8 left out of 'all' (litert_torch not installed): "
        "pip install 'evo-edge-nas[litert]'"
    )
    assert other == "None"
