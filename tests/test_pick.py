"""``evo pick``: the exported model that meets a budget, from a run's stored figures.

Real throughout: the tiny digits run, two front members exported to onnx and ir-fp32 by the
export library, timed on this machine (ov:CPU with the quick protocol, one ONNX file on ort:cpu
with the full one). Budgets are set from the stored figures, so every expectation holds on any
machine however fast.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from tests._runs_helpers import cli, copy_run, tiny_digits_run

torch.set_num_threads(1)


def _stored(run_dir: Path) -> tuple[dict, list[dict]]:
    """(export rows by (member, format), current measurements) through evo.run."""
    from evo.run.exports import latest_exports
    from evo.run.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        exports = {(row["individual_id"], row["format"]): row
                   for rows in latest_exports(store).values() for row in rows.values()}
        measured = [m for m in store.measurements() if m["source"] == "local"
                    and (m["individual_id"], m["format"]) in exports]
    finally:
        store.close(checkpoint=False)
    return exports, measured


@pytest.fixture(scope="module")
def picked_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two front members exported (onnx, ir-fp32); every file timed on ov:CPU (quick); on
    ort:cpu only the less accurate member's ONNX (full protocol), the other left unmeasured."""
    from evo.post.benchrun import bench_run
    from evo.post.exporting import export_members
    from evo.run.front import front_of
    from evo.run.store import RunStore

    run_dir = copy_run(tiny_digits_run(tmp_path_factory), tmp_path_factory.mktemp("pick") / "r")
    store = RunStore.open(run_dir, write=False)
    members = {ind.id: ev.key for ind, ev in front_of(store)}
    store.close(checkpoint=False)
    export_members(run_dir, list(members)[:2], ("onnx", "ir-fp32"))
    bench_run(run_dir, "ov:CPU", "quick")
    exports, _ = _stored(run_dir)
    worse = min((acc["accuracy"], m) for (m, f), acc in exports.items() if f == "onnx")[1]
    bench_run(run_dir, "ort:cpu", "full", eval_keys=[members[worse]])
    return run_dir


def _pick(capsys, run_dir: Path, *args: str) -> tuple[int, str, str]:
    return cli(capsys, "pick", str(run_dir), *args)


def _json(capsys, run_dir: Path, *args: str) -> tuple[int, dict]:
    code, out, err = _pick(capsys, run_dir, *args, "--json")
    assert code in (0, 1), err
    return code, json.loads(out)


def test_budget_selects_the_fitting_formats_best_first_and_prints_its_path(picked_run, capsys):
    exports, _ = _stored(picked_run)
    small = min(exports.values(), key=lambda row: row["bytes"])
    fitting = {k for k, row in exports.items() if row["individual_id"] == small["individual_id"]}
    limit = max(exports[k]["bytes"] for k in fitting)
    assert all(row["bytes"] > limit for k, row in exports.items() if k not in fitting)
    code, out, err = _pick(capsys, picked_run, "--target", "ov:CPU", "--max-bytes",
                           f"{limit}B", "--max-latency", "10s")
    assert code == 0, err
    rows = [line.split() for line in out.splitlines()
            if re.match(r"^\s*(★\s+)?\d+\s+(onnx|ir)", line)]
    assert rows[0][0] == "★" and all(r[0] != "★" for r in rows[1:])
    assert {(int(r[-9]), r[-8]) for r in rows} == fitting  # status "fits, quick": two words
    (path_line,) = [line for line in out.splitlines() if line.startswith("path: ")]
    assert Path(path_line[len("path: "):]).is_file()
    assert "over budget: 2 of 4 candidates (--max-bytes 2)" in out

    code, data = _json(capsys, picked_run, "--target", "ov:CPU")
    accuracies = [c["test_accuracy"] for c in data["candidates"]]
    assert code == 0 and len(accuracies) == 4 and accuracies == sorted(accuracies, reverse=True)
    assert data["best"] == data["candidates"][0] and data["best"]["best"]
    assert [c["best"] for c in data["candidates"]] == [True, False, False, False]
    best_size = exports[(data["best"]["member"], data["best"]["format"])]["bytes"]
    assert data["best"]["size_bytes"] == best_size


def test_json_shape_and_units(picked_run, capsys):
    code, data = _json(capsys, picked_run, "--target", "OV:cpu", "--max-latency", "2000us",
                       "--max-bytes", "1.5MB", "--min-accuracy", "5%", "--format", "ir-fp32")
    assert code == 0
    assert set(data) == {"run_dir", "target", "budget", "best", "candidates", "over_budget",
                         "not_measured", "measure_command", "closest", "binding",
                         "measured_elsewhere", "unusable"}
    assert data["target"] == "ov:CPU"
    assert data["budget"] == {"max_latency_ms": 2.0, "max_bytes": 1_500_000,
                              "min_accuracy": 0.05, "formats": ["ir-fp32"]}
    assert {c["format"] for c in data["candidates"]} == {"ir-fp32"}
    for c in data["candidates"]:
        assert set(c) >= {"member", "format", "status", "best", "path", "size_bytes",
                          "test_accuracy", "test_samples", "accuracy_precision",
                          "stored_precision", "executed_precision", "median_ms", "p10_ms",
                          "p90_ms", "protocol", "host", "misses"}
        assert c["p10_ms"] <= c["median_ms"] <= c["p90_ms"] < 2.0
        assert c["stored_precision"] == "fp32" and c["test_samples"] > 0
    assert [b["option"] for b in data["binding"]] == ["--max-latency", "--max-bytes",
                                                      "--min-accuracy"]


def test_quick_figures_are_eligible_but_flagged(picked_run, capsys):
    code, out, _ = _pick(capsys, picked_run, "--target", "ov:CPU", "--max-latency", "10s")
    assert code == 0 and "fits, quick" in out
    assert (f"quick: latency of the quick protocol (for ranking inside a search); for figures "
            f"to rely on: evo bench {picked_run} --target ov:CPU") in out
    code, data = _json(capsys, picked_run, "--target", "ort:cpu", "--max-latency", "10s")
    (full,) = [c for c in data["candidates"] if c["protocol"] is not None]
    assert code == 0 and full["protocol"] == "full" and full["status"] == "fits"
    assert all(c["status"] == "fits, quick" for c in
               _json(capsys, picked_run, "--target", "ov:CPU")[1]["candidates"])


def test_missing_measurement_is_reported_with_the_command_that_measures_it(picked_run, capsys):
    code, data = _json(capsys, picked_run, "--target", "ort:cpu", "--max-latency", "10s")
    measured = [c for c in data["candidates"] if c["median_ms"] is not None]
    (missing,) = [c for c in data["candidates"] if c["median_ms"] is None]
    assert missing["status"] == "not measured" and not missing["best"]
    # more accurate, but a latency budget cannot be judged without a latency
    assert missing["test_accuracy"] > measured[0]["test_accuracy"]
    assert data["best"]["member"] == measured[0]["member"]
    assert data["measure_command"] == f"evo bench {picked_run} --target ort:cpu"
    code, out, _ = _pick(capsys, picked_run, "--target", "ort:cpu")
    assert code == 0
    assert (f"not measured on ort:cpu: member {missing['member']} onnx; measure them: "
            f"evo bench {picked_run} --target ort:cpu") in out
    # without a latency limit it fits on size and accuracy alone
    assert f"best: member {missing['member']} onnx" in out


def test_nothing_fits_exits_1_naming_the_binding_limit_and_the_margin(picked_run, capsys):
    _, measured = _stored(picked_run)
    on_cpu = [m for m in measured if m["target"] == "ov:CPU"]
    fastest = min(on_cpu, key=lambda m: m["median_ms"])
    limit = round(fastest["median_ms"] / 2, 6)
    code, out, _ = _pick(capsys, picked_run, "--target", "ov:CPU", "--max-latency",
                         f"{limit}ms")
    assert code == 1
    over = fastest["median_ms"] - limit
    assert (f"closest: member {fastest['individual_id']} {fastest['format']} at "
            f"{fastest['median_ms']:.4g} ms, {over:.4g} ms over --max-latency {limit:.4g} ms"
            ) in out
    assert f"binding: --max-latency excludes {len(on_cpu)} of {len(on_cpu)}" in out

    code, data = _json(capsys, picked_run, "--target", "ov:CPU", "--max-latency", f"{limit}ms",
                       "--max-bytes", "1kB")
    assert code == 1 and data["best"] is None and data["candidates"] == []
    options = {m["option"]: m for m in data["closest"]["misses"]}
    assert set(options) == {"--max-latency", "--max-bytes"}
    assert options["--max-bytes"]["margin"] == data["closest"]["size_bytes"] - 1000
    assert {b["option"]: b["excludes"] for b in data["binding"]} == {
        "--max-latency": len(on_cpu), "--max-bytes": len(on_cpu)}


def test_a_measurement_of_replaced_files_does_not_count(picked_run, capsys, tmp_path):
    from evo.post.exporting import export_members

    run_dir = copy_run(picked_run, tmp_path / "run")
    code, data = _json(capsys, run_dir, "--target", "ort:cpu")
    (measured,) = [c for c in data["candidates"] if c["median_ms"] is not None]
    export_members(run_dir, [measured["member"]], ("onnx",))
    code, data = _json(capsys, run_dir, "--target", "ort:cpu", "--max-latency", "10s")
    assert code == 1 and {c["status"] for c in data["candidates"]} == {"not measured"}


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "foo:bar"], "--target: target 'foo:bar' is not RUNTIME:DEVICE"),
    (["--target", "ov:CPU", "--format", "ir-int9"], "--format: unknown export format ir-int9"),
    (["--target", "ov:CPU", "--max-latency", "-2ms"], "--max-latency '-2ms': must be more"),
    (["--target", "ov:CPU", "--max-bytes", "50xB"], "--max-bytes '50xB' is not a size"),
    (["--target", "ov:CPU", "--min-accuracy", "90"], "--min-accuracy '90': an accuracy is at"),
    (["--target", "ov:CPU", "--format", "ir-int8"], "no ir-int8 export"),
    (["--target", "ort:cpu", "--format", "ir-fp32"], "no export that ort:cpu runs"),
    (["--target", "ov:CPU@elsewhere"], "nothing of"),
])
def test_bad_input_is_one_line_and_exit_2(picked_run, capsys, args, message):
    code, out, err = _pick(capsys, picked_run, *args)
    assert code == 2 and out == ""
    assert err.startswith("evo: error: ") and message in err and err.count("\n") == 1


def test_a_run_without_exports_is_bad_input(tmp_path_factory, capsys):
    run_dir = tiny_digits_run(tmp_path_factory)
    code, _, err = _pick(capsys, run_dir, "--target", "ov:CPU")
    assert code == 2
    assert err == (f"evo: error: {run_dir}: no exported members (export them first: "
                   f"evo export {run_dir})\n")
