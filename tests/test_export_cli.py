"""`evo export` and the export step of `evo search`, on a real tiny digits run.

One module-scoped search (population 4, one generation, one epoch, a final one-epoch retrain
of the front, default export) backs every test; the commands run in this process through the
console entry point, so torch's exporter warms up once. A params>=5000 constraint keeps the
front small and leaves one member untrained (a member without weights).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from pathlib import Path

import openvino as ov
import pytest
import torch

from evo.cli.app import main
from evo.run.store import RunLock
from export.formats import ALL_FORMATS
from export.manifest import read_manifest, verify_files
from export.results import precision_text
from tests._search_helpers import read_rows

pytestmark = pytest.mark.slow

SEARCH = ["search", "--grammar", "cnn_topology", "--population", "4", "--generations", "1",
          "--epochs", "1", "--final-epochs", "1", "--constraint", "params>=5000", "--seed", "5",
          "--no-bench"]


def evo(*args: str | Path) -> tuple[int, str, str]:
    """Run the `evo` console entry point here; returns exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
        except SystemExit as stop:
            code = stop.code
    return int(code or 0), out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("export-cli") / "run"
    code, out, err = evo(*SEARCH, "--run-dir", run_dir)
    assert code == 0, err
    front = json.loads(evo("front", run_dir, "--json")[1])["front"]
    members = [row["member"] for row in front]
    trained = [r["individual_id"] for r in read_rows(
        run_dir, "SELECT individual_id FROM evaluations WHERE status='ok' ORDER BY individual_id")]
    untrained = [r["id"] for r in read_rows(
        run_dir, "SELECT i.id FROM individuals i JOIN evaluations e ON e.key = i.eval_key"
        " WHERE e.status != 'ok' ORDER BY i.id")]
    return {"dir": run_dir, "stdout": out, "front": front, "members": members,
            "off_front": [m for m in trained if m not in members], "untrained": untrained}


def test_search_exports_the_front_as_onnx_and_ir_fp32_by_default(run):
    run_dir, members = run["dir"], run["members"]
    assert members
    assert "export: front members to onnx, ir-fp32" in run["stdout"]
    rows = read_rows(run_dir, "SELECT * FROM exports ORDER BY id")
    assert {(r["individual_id"], r["format"]) for r in rows} == {
        (m, f) for m in members for f in ("onnx", "ir-fp32")}
    for row in rows:
        folder = run_dir / row["path"]
        assert folder == run_dir / "export" / str(row["individual_id"]) / row["format"]
        manifest = read_manifest(folder)
        assert row["status"] == manifest["status"] == "ok", row["reason"]
        assert row["bytes"] == manifest["size_bytes"] > 0
        assert row["accuracy"] == manifest["accuracy"]["accuracy"]
        assert manifest["parity"]["passed"] and row["parity"] < 1e-3
        # --final-epochs retrained the front first: its checkpoints are what was exported.
        assert manifest["source"]["weights"] == "retrained"
        assert manifest["source"]["member"] == row["individual_id"]
        assert json.loads(row["details"])["source"] == manifest["source"]
        assert verify_files(folder) == []
    for member in run["front"]:
        assert set(member["exports"]) == {"onnx", "ir-fp32"}
        assert member["extra"]["export"] == "onnx, ir-fp32"


def test_export_front_all_formats_writes_one_checked_table(run, tmp_path):
    run_dir, members = run["dir"], run["members"]
    out_dir = tmp_path / "all"
    before = len(read_rows(run_dir, "SELECT id FROM exports"))
    code, out, err = evo("export", run_dir, "--front", "--format", "all", "--out", out_dir)
    assert code == 0, err
    assert out.count("Export of") == 1  # one table for every member and format
    assert f"{len(members) * len(ALL_FORMATS)} artifacts" in out
    assert "MB = 10^6 bytes" in out and "(bytes)" in out
    for fmt in ALL_FORMATS:
        assert fmt in out
    for member in members:
        for fmt in ALL_FORMATS:
            folder = out_dir / str(member) / fmt
            manifest = read_manifest(folder)
            # A row that fails (INT8 of a one-epoch network may miss top-1 agreement) still
            # has its files, its parity and its accuracy, and says so.
            assert manifest["parity"] is not None and manifest["accuracy"] is not None
            assert manifest["accuracy"]["samples"] == run["front"][0]["test_images"]
            assert manifest["source"]["member"] == member
            assert manifest["source"]["weights"] == "retrained"
            assert manifest["source"]["run_dir"] == str(run_dir.resolve())
            assert verify_files(folder) == []
            assert (manifest["status"] == "ok") == (manifest["reason"] is None)
            if fmt.endswith("int8"):
                assert manifest["calibration"]["used"] == 300
    rows = read_rows(run_dir, "SELECT * FROM exports WHERE id > ? ORDER BY id", (before,))
    assert len(rows) == len(members) * len(ALL_FORMATS)
    assert {r["path"] for r in rows} == {
        str((out_dir / str(m) / f).resolve()) for m in members for f in ALL_FORMATS}
    assert all(r["accuracy"] is not None and r["parity"] is not None for r in rows)
    assert all(r["status"] == "ok" for r in rows if r["format"] in ("onnx", "ir-fp32"))
    # Each accuracy is printed beside the precision it ran at: the CPU's default for OpenVINO
    # (bf16 on CPUs with AVX-512 BF16 or AMX), while parity is pinned to f32.
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    lines = out.splitlines()
    for row in rows:
        details = json.loads(row["details"])
        executed = details["accuracy"]["executed_precision"]
        if row["format"].startswith("ir-"):
            assert executed.split("+")[-1] == default
            assert details["parity"]["executed_precision"].split("+")[-1] == "f32"
        cell = precision_text(details["precision"], executed)
        accuracy = f"{row['accuracy'] * 100:.2f}"
        assert any(f" {row['format']} " in line and cell in line and accuracy in line
                   for line in lines), (cell, accuracy)
    assert "at the executed precision shown" in out and "pinned to f32" in out


def test_json_for_an_off_front_member_uses_the_search_weights(run, tmp_path):
    if not run["off_front"]:
        pytest.skip("every trained member of this run is on the front")
    member = run["off_front"][0]
    code, out, err = evo("export", run["dir"], "--member", member, "--format", "onnx,ir-fp32",
                         "--json", "--out", tmp_path / "json")
    assert code == 0, err
    data = json.loads(out)  # stdout is one JSON document; tool chatter went to stderr
    assert data["failed"] == 0 and data["artifacts"] == 2
    (entry,) = data["members"]
    assert entry["member"] == member and entry["weights"] == "search"
    weights = read_rows(run["dir"], "SELECT e.weights FROM evaluations e JOIN individuals i"
                      " ON i.eval_key = e.key WHERE i.id = ?", (member,))[0]["weights"]
    assert entry["checkpoint"] == weights
    for row in entry["rows"]:
        assert row["status"] == "ok" and row["parity"]["passed"]
        assert row["accuracy"]["samples"] > 0 and row["size_bytes"] > 0


def test_bad_members_formats_and_folders_exit_2_with_one_line(run, tmp_path):
    run_dir = run["dir"]
    count = len(read_rows(run_dir, "SELECT id FROM individuals"))
    cases = [
        (("--member", "999"), ["no member 999", f"1 to {count}"]),
        (("--format", "onnx,tflite"), ["unknown export format tflite"]),
        (("--out", tmp_path / "file" / "sub"), ["cannot write to output directory"]),
    ]
    if run["untrained"]:
        cases.append((("--member", str(run["untrained"][0])), ["no trained weights"]))
    (tmp_path / "file").write_text("not a folder")
    before = len(read_rows(run_dir, "SELECT id FROM exports"))
    for args, words in cases:
        code, out, err = evo("export", run_dir, *args)
        assert code == 2, (args, out, err)
        assert len(err.strip().splitlines()) == 1 and err.startswith("evo: error:")
        for word in words:
            assert word in err, (args, err)
    assert len(read_rows(run_dir, "SELECT id FROM exports")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_exits_2(run, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _out, err = evo("export", run["dir"], "--out", locked / "out")
    finally:
        locked.chmod(0o700)
    assert code == 2 and "cannot write to output directory" in err


def test_a_running_search_blocks_export_with_exit_2(run):
    lock = RunLock(run["dir"])
    lock.acquire()
    try:
        code, _out, err = evo("export", run["dir"], "--format", "onnx")
    finally:
        lock.release()
    assert code == 2 and "run in progress" in err


def test_export_a_checkpoint_file_with_and_without_a_dataset(run, tmp_path):
    member = run["members"][0]
    source = run["dir"] / "models" / f"retrained-{member}-1.pt"
    checkpoint = tmp_path / "model.pt"
    shutil.copy(source, checkpoint)

    code, out, err = evo("export", checkpoint, "--input", "1x8x8", "--format", "onnx,ir-fp32")
    assert code == 0, err
    assert "Export of" in out and "model.pt" in out
    for fmt in ("onnx", "ir-fp32"):
        manifest = read_manifest(tmp_path / "model-export" / fmt)
        assert manifest["status"] == "ok" and manifest["accuracy"] is None
        assert manifest["parity"]["passed"] and manifest["parity"]["real_samples"] == 0
        assert manifest["source"]["checkpoint"] == str(checkpoint.resolve())
        assert manifest["input"]["shape"] == [1, 1, 8, 8]

    code, out, err = evo("export", checkpoint, "--dataset", "digits", "--split-seed", "5",
                         "--format", "onnx", "--json", "--out", tmp_path / "with-data")
    assert code == 0, err
    (entry,) = json.loads(out)["members"]
    (row,) = entry["rows"]
    assert row["accuracy"]["samples"] > 0 and row["parity"]["real_samples"] > 0
    assert entry["source"]["dataset"] == "digits" and entry["source"]["split_seed"] == 5

    # Without data INT8 cannot be calibrated: a failed row, exit 0, or 1 with --strict.
    for extra, expected in (((), 0), (("--strict",), 1)):
        code, out, err = evo("export", checkpoint, "--format", "onnx-int8", "--json",
                             "--out", tmp_path / "int8", *extra)
        assert code == expected, err
        (row,) = json.loads(out)["members"][0]["rows"]
        assert row["status"] == "failed" and "calibration data" in row["reason"]
        assert "1 of 1 artifacts failed" in err

    for args, word in ((("--input", "3x8x8"), "does not fit"),
                       (("--member", "1"), "apply to a run folder"),
                       (("--input", "8x8"), "is not CxHxW")):
        code, _out, err = evo("export", checkpoint, *args)
        assert code == 2 and word in err, (args, err)
    code, _out, err = evo("export", run["dir"], "--input", "1x8x8")
    assert code == 2 and "apply to a checkpoint file" in err
    code, _out, err = evo("export", tmp_path / "nothing-here")
    assert code == 2 and "no such run folder or checkpoint file" in err
