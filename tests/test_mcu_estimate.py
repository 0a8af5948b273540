"""Microcontroller budgets: the estimate of TFLite Micro's arena and the flash, held to the truth.

The pure estimate (evo.arch.mcu, evo.arch.mcu_graph) is checked by properties over every
shipped grammar's phenotypes and by TFLite Micro's planner decisions measured once; then real
int8 conversions of random phenotypes of every grammar are loaded in TFLite Micro and the
predicted graph, arena and flash compared (the sweep is benchmarks/bench_mcu_estimate.py); a
model whose weights the quantiser would store outside the flatbuffer still runs right in TFLite
Micro; the objectives parse with their units; a tiny real search under an arena constraint
skips what is over it, and the export of its front records the measured figures.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evo.arch import Conv, Dense, parse_arch, resolve
from evo.arch.mcu import bound, estimate_mcu, measured_text, plan_arena
from evo.arch.mcu_graph import lower, needs_pad
from evo.errors import EvoError
from evo.ge.grammar import load_grammar
from evo.ge.mapper import map_genome
from evo.moo.objectives import objective_kind, parse_constraint, parse_objectives
from evo.nas.mcu import estimate_stored, mcu_named, mcu_refusal, mcu_values

ROOT = Path(__file__).resolve().parents[1]
GRAMMARS = ("cnn_topology", "cnn_full", "mobile")
_LOADED = {name: load_grammar(name) for name in GRAMMARS}


def _bench() -> Any:
    """benchmarks/bench_mcu_estimate.py, imported as a module."""
    path = ROOT / "benchmarks" / "bench_mcu_estimate.py"
    spec = importlib.util.spec_from_file_location("bench_mcu_estimate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _needs_litert() -> None:
    for name, why in (("litert_torch", "conversion"), ("ai_edge_quantizer", "int8"),
                      ("tflite_micro", "the arena")):
        pytest.importorskip(name, reason=f"{why} needs the litert extra: "
                            "pip install 'evo-edge-nas[litert]'")


# --- the objectives ---------------------------------------------------------------------------


def test_the_objectives_parse_with_byte_units() -> None:
    assert objective_kind("arena_bytes") == objective_kind("flash_bytes") == "bytes"
    assert parse_objectives("error,arena_bytes,flash_bytes") == (
        "error", "arena_bytes", "flash_bytes")
    assert parse_constraint("arena_bytes<=64kB").limit == 64_000
    assert parse_constraint("flash_bytes<=256KiB").limit == 262_144
    assert parse_constraint("flash_bytes < 1MB").limit == 1_000_000
    assert parse_constraint("arena_bytes<=20000").limit == 20_000
    with pytest.raises(EvoError, match="unit 'ms' does not fit arena_bytes"):
        parse_constraint("arena_bytes<=64ms")
    assert mcu_named(("error", "params"), (parse_constraint("flash_bytes<=1MB"),))
    assert not mcu_named(("error", "params"), (parse_constraint("params<=1M"),))


# --- the planner and the graph ----------------------------------------------------------------


def test_the_planner_breaks_ties_as_tflite_micro_does() -> None:
    """A network whose two 28x28x48 maps tie in size: TFLite Micro's planner places the later
    one first, which leaves no room for the 28x28x8 map below them (measured: 81,536 bytes;
    placing the earlier one first would give 75,264)."""
    buffers = [(784, 0, 0), (784, 0, 1), (50176, 1, 2), (6272, 2, 3), (37632, 3, 4),
               (37632, 4, 5), (9408, 5, 6), (48, 6, 7), (32, 7, 8), (16, 8, 9), (10, 9, 9)]
    assert plan_arena(buffers) == 81_536


def test_the_int8_mean_asks_for_scratch_memory_as_tflite_micro_does() -> None:
    """Global average pooling over 1,280 channels: TFLite Micro's int8 MEAN plans an int32 sum
    per output (5,120 bytes) beside its tensors, which sets this network's peak (measured:
    26,912 bytes of activations; without the scratch buffers the plan is 26,208)."""
    text = ("conv(24, k=3) bn hardswish ir(24, e=1, k=5, se=on, act=relu6, n=4) "
            "ir(24, e=1, k=3, s=2, se=on, act=relu6, n=2) ir(48, e=1, k=7, s=2, act=relu6) "
            "conv(1280, k=1) bn relu6 gap")
    assert estimate_mcu(resolve(parse_arch(text), (1, 16, 16), 10)).activations == 26_912


@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 12), st.integers(0, 6)),
                min_size=1, max_size=25))
def test_the_planner_lies_between_the_live_peak_and_the_sum(raw: list[tuple[int, int, int]]
                                                           ) -> None:
    buffers = [(size, first, first + span) for size, first, span in raw]
    aligned = [(-(-size // 16) * 16, first, last) for size, first, last in buffers]
    live_peak = max(sum(s for s, f, la in aligned if f <= t <= la) for t in range(19))
    top = plan_arena(buffers)
    assert live_peak <= top <= sum(s for s, _, _ in aligned)
    assert top % 16 == 0


@pytest.mark.parametrize(("size", "kernel", "stride", "pad", "padded"), [
    (28, 3, 1, 1, False), (28, 3, 2, 1, True), (7, 3, 2, 1, False), (14, 5, 2, 2, True),
    (7, 5, 2, 2, False), (28, 3, 1, 0, False), (8, 3, 1, 2, True)])
def test_torch_padding_needs_a_pad_operator_where_same_padding_differs(
        size: int, kernel: int, stride: int, pad: int, padded: bool) -> None:
    assert needs_pad(size, kernel, stride, pad) is padded


def _phenotype(grammar: str, codons: list[int]) -> str | None:
    derivation = map_genome(_LOADED[grammar], codons, max_wraps=0, max_tree_depth=90)
    return derivation.phenotype if derivation.valid else None


def _int8_weights(resolved: Any) -> int:
    """Convolution and dense weights of the network's plain layers (blocks aside)."""
    total = 0
    for item in resolved.layers:
        if isinstance(item.layer, Conv):
            total += item.in_shape[0] * item.layer.filters * item.layer.kernel ** 2
        elif isinstance(item.layer, Dense):
            total += item.in_shape[0] * item.layer.units
    return total


@settings(max_examples=40)
@given(st.sampled_from(GRAMMARS), st.lists(st.integers(0, 100_000), min_size=80, max_size=80),
       st.sampled_from([(1, 8, 8), (1, 28, 28), (3, 32, 32)]))
def test_every_phenotype_of_every_grammar_estimates_within_physical_bounds(
        grammar: str, codons: list[int], shape: tuple[int, int, int]) -> None:
    text = _phenotype(grammar, codons)
    if text is None:
        return
    resolved = resolve(parse_arch(text), shape, 10)
    estimate = estimate_mcu(resolved)
    graph = lower(resolved)
    assert estimate.flash_bytes >= estimate.weight_bytes >= _int8_weights(resolved)
    # Every operator's input and output are alive together; nothing is placed twice.
    pairs = max(sum(graph.tensors[t] for t in {*op.inputs, op.output}) for op in graph.ops)
    assert pairs <= estimate.activations <= sum(-(-b // 16) * 16 for b in graph.tensors)
    assert estimate.arena_bytes == estimate.activations + estimate.persistent
    assert estimate.persistent > 24 * estimate.tensors
    floats = estimate_mcu(resolved, "float")
    assert floats.arena_bytes > estimate.arena_bytes and floats.ops == estimate.ops + 2


@given(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3, 5]),
       st.sampled_from([(1, 28, 28), (3, 32, 32)]))
def test_a_wider_layer_never_needs_less_arena_or_flash(narrow: int, extra: int, kernel: int,
                                                       shape: tuple[int, int, int]) -> None:
    def estimate(width: int) -> Any:
        text = f"conv({width}, k={kernel}) bn relu gap dense(32) relu"
        return estimate_mcu(resolve(parse_arch(text), shape, 10))

    small, wide = estimate(narrow), estimate(min(narrow + extra, 4096))
    assert wide.arena_bytes >= small.arena_bytes
    assert wide.flash_bytes >= small.flash_bytes
    assert wide.weight_bytes >= small.weight_bytes


def test_an_unknown_io_type_is_one_clear_error() -> None:
    resolved = resolve(parse_arch("conv(8) bn relu gap"), (1, 8, 8), 10)
    with pytest.raises(EvoError, match="unknown LiteRT I/O type 'int4'"):
        estimate_mcu(resolved, "int4")


# --- inside a search ----------------------------------------------------------------------------


def test_a_constraint_on_the_estimate_skips_before_training_with_the_reason() -> None:
    resolved = resolve(parse_arch("conv(64, k=3) bn relu conv(64, k=3) bn relu gap"),
                       (1, 28, 28), 10)
    values, raw = mcu_values(resolved)
    estimate = raw["mcu_estimate"]
    assert values["arena_bytes"] == round(bound("arena_bytes", estimate["arena_bytes"]))
    assert values["arena_bytes"] > estimate["arena_bytes"]
    skipped = mcu_refusal(resolved, (parse_constraint("arena_bytes<=64kB"),))
    assert skipped is not None
    reason, objectives = skipped
    assert reason.startswith("violates arena_bytes<=64kB (estimated with the safety margin")
    assert reason.endswith("not trained") and objectives == values
    assert mcu_refusal(resolved, (parse_constraint("arena_bytes<=1MB"),)) is None
    assert mcu_refusal(resolved, (parse_constraint("params<=10"),)) is None


def test_stored_figures_read_as_one_line() -> None:
    figures = {"arena_bytes": 10_000, "flash_bytes": 20_000, "arena_estimate_error_pct": 1.5,
               "flash_estimate_error_pct": -0.25,
               "mcu_estimate": {"arena_bytes": 10_150, "flash_bytes": 19_950}}
    assert measured_text(figures) == (
        "TFLite Micro arena 10,000 bytes (estimate 10,150, +1.5 %); flash 20,000 bytes "
        "(estimate 19,950, -0.2 %)")
    failed = {**figures, "arena_bytes": None, "tflm_reason": "no SIGN kernel"}
    assert measured_text(failed).startswith("TFLite Micro cannot run it (no SIGN kernel)")
    assert measured_text({"size_bytes": 3}) is None


# --- against TensorFlow Lite Micro ------------------------------------------------------------


def _operators(path: Path) -> list[str]:
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    names = {v: k for k, v in vars(flatbuffer_utils.schema_fb.BuiltinOperator).items()
             if not k.startswith("_")}
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [names[codes[op.opcodeIndex]] for op in model.subgraphs[0].operators]


@pytest.mark.slow
@pytest.mark.parametrize("grammar", GRAMMARS)
def test_the_estimate_matches_tflite_micro_on_random_phenotypes(grammar: str,
                                                                tmp_path: Path) -> None:
    """Two random networks per grammar at 1x16x16: the predicted operators are the converted
    ones, the arena is TFLite Micro's within 2 % and the measurement stays under the bound a
    constraint is checked against (the benchmark sweeps 1x28x28 and 3x32x32)."""
    _needs_litert()
    bench = _bench()
    shape = (1, 16, 16)
    for index, text in enumerate(bench.sample_phenotypes(grammar, 2,
                                                         np.random.default_rng(7))):
        record = bench.measure_network(text, shape, tmp_path, seed=index, keep=True)
        assert record["status"] == "ok", (text, record.get("reason"))
        predicted = [op.kind for op in lower(resolve(parse_arch(text), shape, 10)).ops]
        reduce = {"MEAN": "REDUCE", "SUM": "REDUCE"}  # a mean over 1x1 converts to a SUM
        assert [reduce.get(k, k) for k in _operators(tmp_path / "model.tflite")] == \
            [reduce.get(k, k) for k in predicted], text
        for name in ("arena_bytes", "flash_bytes"):
            assert record[name] <= bound(name, record["estimate"][name]), (name, text)
        assert abs(record["arena_bytes_error_pct"]) <= 2.0, text
        assert abs(record["flash_bytes_error_pct"]) <= 15.0, text


@pytest.mark.slow
def test_weights_the_quantiser_would_store_outside_the_flatbuffer_stay_inside(tmp_path: Path
                                                                             ) -> None:
    """400 kB of dense weights: ai-edge-quantizer writes them after the flatbuffer, which
    TFLite Micro cannot read (it ran on an arena of garbage); the export keeps them inside."""
    _needs_litert()
    from ai_edge_litert.tools import flatbuffer_utils
    from tflite_micro import runtime

    from export.litert import litert_runner, tflm_arena_bytes

    bench = _bench()
    text, shape = "conv(8, k=3) bn relu flatten dense(64) relu", (1, 28, 28)
    record = bench.measure_network(text, shape, tmp_path, keep=True)
    path = tmp_path / "model.tflite"
    header = flatbuffer_utils.convert_bytearray_to_object(bytearray(path.read_bytes()))
    assert record["flash_bytes"] > 400_000
    assert not any(buffer.offset for buffer in header.buffers)
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    expected = litert_runner(path, shape, threads=1)(x)
    micro = runtime.Interpreter.from_file(str(path), arena_size=tflm_arena_bytes(path))
    detail = micro.get_input_details(0)
    scale, zero = detail["quantization_parameters"]["scales"][0], \
        detail["quantization_parameters"]["zero_points"][0]
    micro.set_input(np.clip(np.rint(x / scale) + zero, -128, 127).astype(np.int8), 0)
    micro.invoke()
    out = micro.get_output_details(0)["quantization_parameters"]
    logits = (micro.get_output(0).astype(np.float32) - out["zero_points"][0]) * out["scales"][0]
    assert np.abs(logits - expected).max() <= 2 * out["scales"][0]
    assert abs(record["arena_bytes_error_pct"]) <= 2.0


@pytest.mark.slow
def test_a_search_under_an_arena_limit_skips_what_is_over_and_its_export_measures_it(
        tmp_path: Path) -> None:
    """A real search on digits (1x8x8) under an arena limit set between the estimates of its
    first population: members over it are skipped untrained with the reason, every ok one is
    under it, and exporting the front to litert-int8 records TFLite Micro's figures, under
    the limit, in the export row, the --json and the manifest."""
    _needs_litert()
    from evo.config import SearchConfig
    from evo.nas.problem import problem_factory
    from evo.post.exporting import export_run
    from evo.run.store import RunStore
    from evo.search.loop import run_search

    bench = _bench()
    texts = bench.sample_phenotypes("cnn_topology", 40, np.random.default_rng(0))
    arenas = sorted(estimate_mcu(resolve(parse_arch(t), (1, 8, 8), 10)).arena_bytes
                    for t in texts)
    limit = int(arenas[len(arenas) // 2])
    config = SearchConfig(grammar="cnn_topology", dataset="digits", population=8, generations=0,
                          epochs=1, seed=3, export=(), bench=(), run_dir=str(tmp_path / "run"),
                          objectives=("error", "arena_bytes"),
                          constraint=(f"arena_bytes<={limit}",))
    run_dir = run_search(config, problem_factory=problem_factory())
    store = RunStore.open(run_dir, write=False)
    try:
        evaluations = store.evaluations()
    finally:
        store.close(checkpoint=False)
    statuses = {ev.status for ev in evaluations.values()}
    assert {"ok", "skipped"} <= statuses, statuses
    for ev in evaluations.values():
        if ev.status == "ok":
            assert ev.objectives["arena_bytes"] <= limit
            assert ev.metrics["mcu_estimate"]["arena_bytes"] < ev.objectives["arena_bytes"]
        elif ev.status == "skipped":
            assert f"violates arena_bytes<={limit}" in (ev.reason or "")
            assert ev.objectives["arena_bytes"] > limit
    # An evaluation stored without the values (a warm start from a run that did not name them)
    # gets them from its checkpoint's network when the driver measures it.
    trained = next(ev for ev in evaluations.values() if ev.status == "ok")
    bare = dataclasses.replace(trained, objectives={"error": trained.objectives["error"]})
    filled = estimate_stored(run_dir, bare)
    assert filled.failure is None
    assert {k: filled.objectives[k] for k in ("arena_bytes", "flash_bytes")} == \
        {k: trained.objectives[k] for k in ("arena_bytes", "flash_bytes")}
    exported = export_run(run_dir, None, "litert-int8", front=True)
    assert exported
    for item in exported:
        row = item.to_dict()["rows"][0]
        assert row["status"] == "ok", row["reason"]
        assert 0 < row["arena_bytes"] <= limit
        assert row["flash_bytes"] == row["size_bytes"]
        assert "AddFullyConnected" in row["tflm_resolver_calls"]
        assert not math.isnan(row["arena_estimate_error_pct"])
        manifest = json.loads((Path(row["directory"]) / "manifest.json").read_text())
        assert manifest["arena_bytes"] == row["arena_bytes"]
        assert manifest["mcu_estimate"]["arena_bytes"] > 0
    store = RunStore.open(run_dir, write=False)
    try:
        details = [row["details"] for row in store.exports()]
    finally:
        store.close(checkpoint=False)
    assert all(d["arena_bytes"] <= limit and "flash_estimate_error_pct" in d for d in details)


def test_a_search_no_candidate_of_which_fits_the_budget_ends_with_nothing_to_export(
        tmp_path: Path) -> None:
    """Every candidate over an arena of 100 bytes is skipped untrained; the search still
    succeeds, and its export step says there is nothing to export instead of failing."""
    out = subprocess.run(
        [sys.executable, "-m", "evo", "search", "--grammar", "cnn_topology", "--population", "2",
         "--generations", "0", "--constraint", "arena_bytes<=100", "--export", "onnx",
         "--no-bench", "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("skipped: violates arena_bytes<=100 (estimated with the safety "
                            "margin") == 2
    assert "export: no feasible member on the front" in out.stdout
