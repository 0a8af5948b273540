"""Latency of a run's members: ``evo bench RUN_DIR``, ``--import`` of an edge device's results,
the bench step after a search, and ``onnx_bytes`` / ``latency:<target>`` inside the search.

Everything is real: a tiny search trained on digits, exported with the export library, timed
with onnxruntime and OpenVINO on this machine (quick protocol, to keep the file short).
"""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from evo.config import SearchConfig
from evo.run.store import RunLock
from hardware.host import describe_host
from hardware.latency import Measurement
from hardware.targets import resolve_target
from tests._runs_helpers import cli, copy_run, tiny_digits_run
from tests._search_helpers import read_rows

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SEARCH = ["search", "--grammar", "cnn_topology", "--dataset", "digits", "--epochs", "1",
          "--generations", "0", "--seed", "5", "--no-export", "--no-bench", "--quiet"]


def _measurements(run_dir: Path, source: str | None = None) -> list[sqlite3.Row]:
    rows = read_rows(run_dir, "SELECT * FROM measurements ORDER BY id")
    return [r for r in rows if source is None or r["source"] == source]


@pytest.fixture(scope="module")
def benched_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny digits run with two front members exported to onnx and ir-fp32 and
    the post-search bench step run on it (quick protocol, ort:cpu and ov:CPU)."""
    from evo.post import postsearch
    from evo.post.exporting import export_members
    from evo.run.front import front_of
    from evo.run.store import RunStore

    run_dir = copy_run(tiny_digits_run(tmp_path_factory),
                       tmp_path_factory.mktemp("bench") / "run")
    store = RunStore.open(run_dir, write=False)
    members = [ind.id for ind, _ev in front_of(store)][:2]
    store.close(checkpoint=False)
    export_members(run_dir, members, ("onnx", "ir-fp32"))
    config = SearchConfig.from_dict(_config(run_dir)).replace(
        export=("onnx", "ir-fp32"), bench=("ort:cpu", "ov:CPU"))
    said: list[str] = []
    postsearch.bench_step(run_dir, config, said.append)
    assert any("bench: done" in line for line in said), said
    return run_dir


def _config(run_dir: Path) -> dict:
    (row,) = read_rows(run_dir, "SELECT value FROM meta WHERE key='config'")
    return json.loads(row["value"])


def _exports(run_dir: Path) -> list[sqlite3.Row]:
    return read_rows(run_dir, "SELECT * FROM exports WHERE status='ok' ORDER BY id")


# ---------------------------------------------------------------- after a search


def test_bench_step_measures_every_exported_file_and_records_it(benched_run):
    exports = _exports(benched_run)
    assert {r["format"] for r in exports} == {"onnx", "ir-fp32"}
    rows = _measurements(benched_run, "local")
    # onnx on both targets, IR on OpenVINO only (onnxruntime cannot read it)
    pairs = {(r["individual_id"], r["format"], r["target"]) for r in rows}
    expected = set()
    for e in exports:
        expected.add((e["individual_id"], e["format"], "ov:CPU"))
        if e["format"] == "onnx":
            expected.add((e["individual_id"], "onnx", "ort:cpu"))
    assert pairs == expected and len(rows) == len(expected)
    host = describe_host()
    sizes = {(e["individual_id"], e["format"]): e["bytes"] for e in exports}
    for r in rows:
        assert r["protocol"] == "quick"
        assert json.loads(r["host"])["fingerprint"] == host.fingerprint
        m = Measurement.from_dict(json.loads(r["details"]))
        assert m.target == r["target"] and m.threads == 1
        assert 0 < m.latency.min_ms <= m.latency.median_ms <= m.latency.p90_ms
        assert r["median_ms"] == m.latency.median_ms
        assert r["bytes"] == sizes[(r["individual_id"], r["format"])] == m.model.size_bytes


def test_bench_step_again_reuses_what_it_measured(benched_run):
    from evo.post import postsearch

    before = len(_measurements(benched_run))
    config = SearchConfig.from_dict(_config(benched_run)).replace(
        export=("onnx",), bench=("ort:cpu", "ov:CPU"))
    said: list[str] = []
    postsearch.bench_step(benched_run, config, said.append)
    assert len(_measurements(benched_run)) == before
    assert sum("measured before" in line for line in said) == before


def test_front_shows_a_latency_column_per_target(benched_run, capsys):
    code, out, err = cli(capsys, "front", str(benched_run), "--json")
    assert code == 0, err
    front = json.loads(out)["front"]
    exported = {r["individual_id"] for r in _exports(benched_run)}
    shown = [row for row in front if row["member"] in exported]
    assert shown
    for row in shown:
        assert set(row["latency"]) == {"ort:cpu", "ov:CPU"}
        assert row["latency"]["ort:cpu"]["format"] == "onnx"
        assert row["latency"]["ov:CPU"]["format"] == "ir-fp32"  # FP32 IR preferred on OpenVINO
        assert row["latency"]["ov:CPU"]["median_ms"] > 0
    code, out, _ = cli(capsys, "front", str(benched_run))
    assert code == 0 and "ov:CPU" in out and "ort:cpu" in out and "latency" in out


# ---------------------------------------------------------------- evo bench RUN_DIR


def test_evo_bench_run_dir_prints_the_table_and_records_measurements(benched_run, capsys,
                                                                     tmp_path):
    before = len(_measurements(benched_run))
    csv_file = tmp_path / "bench.csv"
    code, out, err = cli(capsys, "bench", str(benched_run), "--protocol", "quick",
                         "--csv", str(csv_file))
    assert code == 0, err
    exports = _exports(benched_run)
    for header in ("member", "format", "size", "(bytes)", "(MB)", "test acc", "ort:cpu",
                   "ov:CPU", "median (ms)", "p90 (ms)"):
        assert header in out
    for e in exports:
        assert f"{e['bytes']:,}" in out
        assert f"{e['accuracy'] * 100:.2f}" in out  # test accuracy of that exported file
    assert "n/a" in out  # IR on onnxruntime
    added = _measurements(benched_run)[before:]
    assert len(added) == 3 * len(exports) // 2  # per member: onnx x 2 targets, IR x 1
    assert all(r["source"] == "local" and r["protocol"] == "quick" for r in added)
    with csv_file.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 2 * len(exports)  # every (model, target) pair, n/a ones included
    assert {r["status"] for r in table} == {"ok", "not applicable"}
    assert all(float(r["median_ms"]) > 0 for r in table if r["status"] == "ok")

    code, out, err = cli(capsys, "bench", str(benched_run), "--protocol", "quick",
                         "--target", "ort:cpu", "--threads", "1", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["protocol"] == "quick" and [t["target"] for t in data["targets"]] == ["ort:cpu"]
    for model in data["models"]:
        entry = model["latency"]["ort:cpu"]
        if model["format"] == "ir-fp32":
            assert entry["status"] == "not applicable"
        else:
            assert entry["status"] == "ok" and entry["median_ms"] <= entry["p90_ms"]
        assert model["size_bytes"] > 0 and 0 <= model["test_accuracy"] <= 1


def test_evo_bench_run_dir_bad_input_exits_2(benched_run, capsys, tmp_path):
    code, _, err = cli(capsys, "bench", str(benched_run), "--target", "ov:GPU")
    assert code == 2 and "ov:GPU is not present" in err
    code, _, err = cli(capsys, "bench", str(tmp_path))
    assert code == 2 and "no run.db" in err
    model = next(benched_run.glob("export/*/onnx/model.onnx"))
    code, _, err = cli(capsys, "bench", str(benched_run), str(model))
    assert code == 2 and "only PATH" in err
    lock = RunLock(benched_run)
    lock.acquire()
    try:
        code, _, err = cli(capsys, "bench", str(benched_run), "--protocol", "quick")
    finally:
        lock.release()
    assert code == 2 and "run in progress" in err


# ---------------------------------------------------------------- --import


def _foreign_model(path: Path) -> Path:
    """A valid ONNX model that no run exported (a Relu)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _device_results(models: list[Path], out: Path) -> Path:
    """What an edge box produces: ``python -m hardware bench ... --json --out FILE``."""
    done = subprocess.run(
        [sys.executable, "-m", "hardware", "bench", *map(str, models), "--target", "ov:CPU",
         "--protocol", "quick", "--json", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def test_import_matches_device_results_to_members_by_sha256(benched_run, capsys, tmp_path):
    onnx_file = next(benched_run.glob("export/*/onnx/model.onnx"))
    member = int(onnx_file.parts[-3])
    ir_file = benched_run / "export" / str(member) / "ir-fp32" / "model.xml"
    # the device sees copies under other names: matching is by content, not by path
    device = tmp_path / "device"
    device.mkdir()
    for source, name in ((onnx_file, "a.onnx"), (ir_file, "b.xml"),
                         (ir_file.with_suffix(".bin"), "b.bin")):
        (device / name).write_bytes(source.read_bytes())
    foreign = _foreign_model(device / "foreign.onnx")
    results = _device_results([device / "a.onnx", device / "b.xml", foreign],
                              tmp_path / "results.json")

    before = len(_measurements(benched_run))
    code, out, err = cli(capsys, "bench", "--import", str(results), str(benched_run))
    assert code == 1  # imported, but one model was not matched
    assert "not matched" in err and "foreign.onnx" in err
    imported = _measurements(benched_run)[before:]
    assert {(r["individual_id"], r["format"], r["target"], r["source"]) for r in imported} == {
        (member, "onnx", "ov:CPU", "import"), (member, "ir-fp32", "ov:CPU", "import")}
    device_host = json.loads(results.read_text())["host"]
    for r in imported:
        assert json.loads(r["host"]) == device_host  # tagged with the device's description
        assert json.loads(r["details"])["host"] == device_host
    assert "imported" in out and str(member) in out

    code, out, _ = cli(capsys, "bench", "--import", str(results), str(benched_run))
    assert code == 1 and "already imported" in out
    assert len(_measurements(benched_run)) == before + 2  # nothing added twice

    only_foreign = _device_results([foreign], tmp_path / "foreign.json")
    code, _, err = cli(capsys, "bench", "--import", str(only_foreign), str(benched_run))
    assert code == 2 and "none of its models" in err
    code, _, err = cli(capsys, "bench", "--import", str(tmp_path / "missing.json"),
                       str(benched_run))
    assert code == 2 and "no such results file" in err


# ---------------------------------------------------------------- inside the search


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny search minimising error and OpenVINO CPU latency (3 candidates, 1 epoch)."""
    from evo.cli.app import main

    run_dir = tmp_path_factory.mktemp("latency") / "run"
    try:
        main([*SEARCH, "--population", "3", "--objectives", "error,latency:OV:cpu",
              "--run-dir", str(run_dir)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    return run_dir


def _plain_key(run_dir: Path, phenotype: str) -> str:
    """The evaluation key the same candidate gets in a run without latency."""
    from evo.nas.problem import TrainingProblem

    config = SearchConfig.from_dict(_config(run_dir)).replace(objectives=("error", "params"))
    key, _text = TrainingProblem(config, run_dir).candidate(phenotype)
    return key


def test_latency_objective_is_measured_stored_and_keyed_by_host(latency_run):
    evaluations = read_rows(latency_run, "SELECT * FROM evaluations WHERE status='ok'")
    assert evaluations
    measurements = _measurements(latency_run)
    assert len(measurements) == len(evaluations)  # one per trained candidate, none twice
    by_member = {r["individual_id"]: r for r in measurements}
    (problem,) = read_rows(latency_run, "SELECT value FROM meta WHERE key='problem'")
    context = json.loads(problem["value"])["measurement"]
    assert context["host"] == describe_host().fingerprint
    assert context["targets"] == {"ov:CPU": resolve_target("ov:CPU").fingerprint}
    for ev in evaluations:
        objectives, metrics = json.loads(ev["objectives"]), json.loads(ev["metrics"])
        latency = objectives["latency:ov:CPU"]  # the canonical spelling of latency:OV:cpu
        row = by_member[ev["individual_id"]]
        assert latency == row["median_ms"] > 0
        assert (row["format"], row["target"], row["protocol"]) == ("onnx", "ov:CPU", "quick")
        onnx_file = latency_run / metrics["onnx"]
        assert onnx_file == latency_run / "models" / f"{ev['key'][:24]}.onnx"
        assert row["bytes"] == onnx_file.stat().st_size == metrics["onnx_bytes"]
        assert "onnx_bytes" not in objectives  # not asked for
        (ind,) = read_rows(latency_run, "SELECT phenotype FROM individuals WHERE id=?",
                       (ev["individual_id"],))
        payload = json.dumps({"evaluation": _plain_key(latency_run, ind["phenotype"]),
                              "measurement": context}, sort_keys=True, separators=(",", ":"))
        assert ev["key"] == hashlib.sha256(payload.encode()).hexdigest()


def test_onnx_bytes_objective_and_latency_constraint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = cli(capsys, *SEARCH, "--population", "2", "--objectives", "error,onnx_bytes",
                       "--constraint", "latency:ov:CPU<=1000ms", "--run-dir", str(run_dir))
    assert code == 0, err
    evaluations = read_rows(run_dir, "SELECT * FROM evaluations WHERE status='ok'")
    assert evaluations
    for ev in evaluations:
        objectives, metrics = json.loads(ev["objectives"]), json.loads(ev["metrics"])
        onnx_file = run_dir / metrics["onnx"]
        assert objectives["onnx_bytes"] == onnx_file.stat().st_size  # reported by the worker
        assert 0 < objectives["latency:ov:CPU"] <= 1000
    (generation,) = read_rows(run_dir, "SELECT violation FROM generations")
    assert all(v == 0 for v in json.loads(generation["violation"]))


def test_warm_start_reuses_latency_measured_on_this_host_only(latency_run, tmp_path, capsys):
    # Same host and targets: evaluations are reused (no training, no new latency), and the
    # missing onnx_bytes is exported from the copied weights by the driver. A limit of 1 us
    # makes every candidate infeasible.
    run_dir = tmp_path / "warm"
    code, _, err = cli(capsys, *SEARCH, "--population", "3", "--objectives", "error,onnx_bytes",
                       "--constraint", "latency:ov:CPU<=1us", "--warm-start", str(latency_run),
                       "--run-dir", str(run_dir))
    assert code == 0, err
    assert _measurements(run_dir) == []  # latency reused, never re-measured
    warm = {r["key"]: json.loads(r["objectives"]) for r in read_rows(latency_run,
                                                                 "SELECT * FROM evaluations")}
    copied = read_rows(run_dir, "SELECT * FROM evaluations")
    assert copied and all(r["source"] == "warm-start" for r in copied)
    for r in copied:
        objectives = json.loads(r["objectives"])
        if r["status"] == "ok":
            assert objectives["latency:ov:CPU"] == warm[r["key"]]["latency:ov:CPU"]
            assert objectives["onnx_bytes"] == (run_dir / json.loads(r["metrics"])["onnx"]
                                                ).stat().st_size
    (generation,) = read_rows(run_dir, "SELECT violation FROM generations")
    assert all(v > 0 for v in json.loads(generation["violation"]))

    # Another host: the warm start is refused before anything runs.
    other = copy_run(latency_run, tmp_path / "other-host")
    conn = sqlite3.connect(other / "run.db")
    with conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key='problem'").fetchone()
        problem = json.loads(value)
        problem["measurement"]["host"] = "0" * 16
        conn.execute("UPDATE meta SET value=? WHERE key='problem'", (json.dumps(problem),))
    conn.close()
    code, _, err = cli(capsys, *SEARCH, "--population", "3", "--objectives",
                       "error,latency:ov:CPU", "--warm-start", str(other),
                       "--run-dir", str(tmp_path / "refused"))
    assert code == 2 and "latency set-up" in err and "machine" in err


_DIES_WHILE_MEASURING = """
import os, sys
import torch
torch.set_num_threads(1)
from evo.config import SearchConfig
from evo.nas.problem import TrainingProblem
from evo.search.loop import run_search

class DiesAtSecondMeasurement(TrainingProblem):
    calls = 0

    def measure(self, evaluation):
        DiesAtSecondMeasurement.calls += 1
        if DiesAtSecondMeasurement.calls == 2:
            os._exit(9)  # as abrupt as kill -9, after the first result was committed
        return super().measure(evaluation)

config = SearchConfig(grammar="cnn_topology", population=3, generations=0, epochs=1, seed=5,
                      objectives=("error", "latency:ov:CPU"), export=(), bench=(),
                      run_dir=sys.argv[1], quiet=True)
run_search(config, problem_factory=DiesAtSecondMeasurement)
"""


def test_resume_after_a_kill_while_measuring_never_measures_twice(tmp_path, capsys):
    run_dir = tmp_path / "run"
    died = subprocess.run([sys.executable, "-c", _DIES_WHILE_MEASURING, str(run_dir)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert died.returncode == 9, died.stderr
    (first,) = _measurements(run_dir)
    code, _, err = cli(capsys, "search", "--resume", str(run_dir), "--quiet")
    assert code == 0, err
    rows = _measurements(run_dir)
    evaluations = read_rows(run_dir, "SELECT * FROM evaluations WHERE status='ok'")
    assert len(rows) == len(evaluations) == len({r["individual_id"] for r in rows})
    assert tuple(rows[0]) == tuple(first)  # the stored one was kept, not measured again
    for ev in evaluations:
        assert json.loads(ev["objectives"])["latency:ov:CPU"] > 0


@pytest.mark.parametrize("option, message", [
    (["--objectives", "error,latency:ov:NPU"], "ov:NPU is not present"),
    (["--constraint", "latency:ort:cuda<=2ms"], "ort:cuda is not present"),
    (["--objectives", "error,latency:ov:MYRIAD"], "NPU"),
    (["--objectives", "error,latency:tpu:0"], "not RUNTIME:DEVICE"),
    (["--bench", "ov:GPU"], "ov:GPU is not present"),
])
def test_absent_or_unknown_target_exits_2_before_training(option, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = cli(capsys, *SEARCH[:-3], "--quiet", "--population", "2", *option,
                       "--run-dir", str(run_dir))
    assert code == 2 and message in err
    assert not (run_dir / "run.db").exists()


# ---------------------------------------------------------------- evo bench FILE...


def test_bench_files_label_models_by_their_path_below_the_shared_folder(tmp_path, capsys):
    from evo.cli.bench import model_labels
    from tests._hardware_helpers import conv_net_onnx

    folders = [tmp_path / "export" / member / "onnx" for member in ("3", "5")]
    for folder in folders:
        folder.mkdir(parents=True)
    first = conv_net_onnx(folders[0] / "model.onnx", size=8)
    second = conv_net_onnx(folders[1] / "model.onnx", size=8, seed=1)
    assert model_labels([str(first), str(second)]) == {
        str(first): "3/onnx/model.onnx", str(second): "5/onnx/model.onnx"}
    assert model_labels([str(first)]) == {str(first): "model.onnx"}
    code, out, err = cli(capsys, "bench", str(first), str(second), "--target", "ort:cpu",
                         "--protocol", "quick")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines() if "ort:cpu" in line] == [
        "3/onnx/model.onnx", "5/onnx/model.onnx"]
    assert "measured 5/onnx/model.onnx on ort:cpu" in err


def test_bench_files_cross_marks_ir_on_onnxruntime_na_and_exits_0(tmp_path, capsys):
    from tests._hardware_helpers import conv_net_onnx, to_ir

    onnx_file = conv_net_onnx(tmp_path / "net.onnx", size=8)
    ir_file = to_ir(onnx_file, tmp_path / "net.xml")
    code, out, err = cli(capsys, "bench", str(onnx_file), str(ir_file), "--target",
                         "ort:cpu,ov:CPU", "--protocol", "quick")
    assert code == 0, err
    ir_rows = [line for line in out.splitlines() if line.split()[:1] == ["net.xml"]]
    assert [row.split()[1] for row in ir_rows] == ["ort:cpu", "ov:CPU"]
    assert ir_rows[0].split()[2:] == ["n/a"] * 9
    assert "n/a: OpenVINO IR runs on OpenVINO (ov:*) targets only" in out
    assert "failed" not in out + err
    code, out, _err = cli(capsys, "bench", str(ir_file), "--target", "ort:cpu", "--protocol",
                          "quick", "--json")
    assert code == 2  # no pair can run at all: bad input, one line
    code, out, _err = cli(capsys, "bench", str(onnx_file), str(ir_file), "--target",
                          "ort:cpu,ov:CPU", "--protocol", "quick", "--json")
    data = json.loads(out)
    assert code == 0 and [(Path(n["model_path"]).name, n["target"])
                          for n in data["not_applicable"]] == [("net.xml", "ort:cpu")]
