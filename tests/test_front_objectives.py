"""`evo front` in the objectives the run searched (issue 13, items 2 and 7).

A run searched on error and latency shows, in its table and plot, the in-search latency the
front was selected on, with its p10-p90 spread and a note when members' spreads overlap;
latencies measured after export are a separate column in which a full-protocol figure is never
replaced by a quick one. Counts are integers and phenotypes canonical in every run output.

Real: a tiny search on digits timed with onnxruntime (quick protocol), real latency
measurements, real SQLite; a synthetic run for the three-objective plot.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from evo.arch import parse_arch, spec_to_text
from evo.config import SearchConfig
from evo.nas.problem import problem_factory
from evo.report.front_measured import preferred
from evo.report.front_plot import plot_data, plot_front
from evo.report.front_text import format_ms, overlapping, spread_notes
from evo.report.readable import integral_counts
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.loop import run_search
from tests._runs_helpers import TINY, cli, copy_run, tiny_digits_run
from tests._search_helpers import blocks_file, run_synthetic

torch.set_num_threads(1)

LATENCY = "latency:ort:cpu"


@pytest.fixture(scope="module")
def latency_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished search on error and onnxruntime latency (4 members x 2 generations)."""
    run_dir = tmp_path_factory.mktemp("front-objectives") / "run"
    run_search(SearchConfig(**{**TINY, "objectives": ("error", LATENCY)}, run_dir=str(run_dir)),
               problem_factory=problem_factory())
    return run_dir


def _front(run_dir: Path) -> list[tuple]:
    store = RunStore.open(run_dir, write=False)
    try:
        return front_of(store)
    finally:
        store.close(checkpoint=False)


# ---------------------------------------------------------------- in-search spread


def test_each_in_search_latency_stores_p10_and_p90_beside_its_median(latency_run):
    store = RunStore.open(latency_run, write=False)
    try:
        timed = [ev for ev in store.evaluations().values() if LATENCY in ev.objectives]
    finally:
        store.close(checkpoint=False)
    assert timed
    for ev in timed:
        entry = ev.metrics["latency"]["ort:cpu"]
        assert entry["median_ms"] == ev.objectives[LATENCY]
        assert 0 < entry["p10_ms"] <= entry["median_ms"] <= entry["p90_ms"]
        assert entry["protocol"] == "quick" and entry["threads"] == 1 and entry["runs"] >= 30


# ---------------------------------------------------------------- the table


def test_table_and_json_show_the_searched_latency_with_its_spread(latency_run, capsys):
    code, out, err = cli(capsys, "front", str(latency_run), "--json")
    assert code == 0, err
    rows = json.loads(out)["front"]
    assert [r["member"] for r in rows] == [ind.id for ind, _ev in _front(latency_run)]
    code, table, err = cli(capsys, "front", str(latency_run))
    assert code == 0, err
    assert "latency ort:cpu (searched)" in table
    assert "Searched objectives, the values the front was selected on" in table
    for row in rows:
        spread = row["objective_spread"][LATENCY]
        median = row["objectives"][LATENCY]
        assert spread["p10_ms"] <= median <= spread["p90_ms"]
        # The search's own timing rows are not "measured after export".
        assert "latency" not in row and not row.get("extra")
        digits = re.search(r"\.(\d+)", format_ms(median)).group(1)
        cell = (f"{format_ms(median)} ms ({spread['p10_ms']:.{len(digits)}f}–"
                f"{spread['p90_ms']:.{len(digits)}f})")
        assert cell in table
    assert "measured after export" not in table


def test_a_note_names_members_whose_spreads_overlap(latency_run, tmp_path, capsys):
    run = copy_run(latency_run, tmp_path / "run")
    members = _front(run)
    assert len(members) >= 2
    (ind_a, ev_a), (ind_b, ev_b) = members[0], members[1]
    code, out, _err = cli(capsys, "front", str(run))
    if not overlapping([(ind.id, *_span(ev)) for ind, ev in members]):
        assert "differ by less than their spread" not in out
    # Member b's timing spread now reaches over a's median: the two are not told apart.
    median_a = ev_a.objectives[LATENCY]
    low, high = _span(ev_b)
    entry_b = {**ev_b.metrics["latency"]["ort:cpu"], "p10_ms": min(low, median_a),
               "p90_ms": max(high, median_a)}
    store = RunStore.open(run, write=True)
    try:
        with store.transaction() as conn:
            store.update_evaluation(conn, ev_b.key, objectives={},
                                    metrics={"latency": {"ort:cpu": entry_b}})
    finally:
        store.close()
    code, out, err = cli(capsys, "front", str(run))
    assert code == 0, err
    code, data, _err = cli(capsys, "front", str(run), "--json")
    rows = json.loads(data)["front"]
    groups = overlapping([(r["member"], r["objective_spread"][LATENCY]["p10_ms"],
                           r["objective_spread"][LATENCY]["p90_ms"]) for r in rows])
    assert any({ind_a.id, ind_b.id} <= set(g) for g in groups)
    (note,) = spread_notes(rows, ["error", LATENCY])
    assert note in " ".join(out.split())
    assert "differ by less than their spread" in note


def _span(ev) -> tuple[float, float]:
    entry = ev.metrics["latency"]["ort:cpu"]
    return entry["p10_ms"], entry["p90_ms"]


def test_overlap_groups_chain_and_leave_separate_members_out():
    spans = [(1, 1.0, 1.2), (2, 1.1, 1.5), (3, 1.45, 1.6), (4, 2.0, 2.1), (5, 3.0, 3.2),
             (6, 3.2, 3.3)]
    assert overlapping(spans) == [[1, 2, 3], [5, 6]]
    assert overlapping([(1, 1.0, 1.1), (2, 1.2, 1.3)]) == []
    rows = [{"member": m, "objective_spread": {LATENCY: {"p10_ms": lo, "p90_ms": hi}}}
            for m, lo, hi in spans]
    (note,) = spread_notes(rows, ["error", LATENCY])
    assert note.startswith(f"{LATENCY}: members 1, 2 and 3; members 5 and 6 differ by less")


# ---------------------------------------------------------------- measured after export


def _measure(path: Path, protocol: str) -> dict:
    from hardware.latency import measure

    return measure(path, "ort:cpu", protocol, 1).to_dict()


def _record(run: Path, member: int, details: dict, source: str) -> None:
    store = RunStore.open(run, write=True)
    try:
        with store.transaction() as conn:
            store.add_measurement(
                conn, individual_id=member, format="onnx", target="ort:cpu",
                protocol=details["protocol"]["name"], host=details["host"],
                median_ms=details["latency"]["median_ms"],
                bytes=details["model"]["size_bytes"], details=details, source=source)
    finally:
        store.close()


def test_measured_after_export_is_its_own_column_and_full_beats_a_later_quick(
        latency_run, tmp_path, capsys):
    run = copy_run(latency_run, tmp_path / "run")
    ind, ev = _front(run)[0]
    # The exported file of the member (same network as the search's ONNX, another file).
    exported = run / "export" / str(ind.id) / "onnx" / "model.onnx"
    exported.parent.mkdir(parents=True)
    shutil.copyfile(run / ev.metrics["onnx"], exported)
    full = _measure(exported, "full")
    quick = [_measure(exported, "quick") for _ in range(2)]
    _record(run, ind.id, full, "local")
    _record(run, ind.id, quick[0], "import")  # imported after the full figure

    code, out, err = cli(capsys, "front", str(run), "--json")
    assert code == 0, err
    row = next(r for r in json.loads(out)["front"] if r["member"] == ind.id)
    assert row["objectives"][LATENCY] == ev.objectives[LATENCY]  # the searched value stays
    assert row["latency"]["ort:cpu"]["protocol"] == "full"
    assert row["latency"]["ort:cpu"]["median_ms"] == full["latency"]["median_ms"]
    assert row["latency"]["ort:cpu"]["p10_ms"] == full["latency"]["p10_ms"]
    cell = f"{full['latency']['median_ms']:.4f} (onnx, full)"
    assert row["extra"] == {"latency ort:cpu measured after export (ms)": cell}
    code, table, _err = cli(capsys, "front", str(run))
    assert cell in table and "Columns 'measured after export' are later benchmarks" in table

    # Among figures of the same protocol, the newest wins.
    rows = [{"target": "ort:cpu", "format": "onnx", "protocol": d["protocol"]["name"],
             "median_ms": d["latency"]["median_ms"]} for d in (quick[0], quick[1])]
    assert preferred(rows) is rows[-1]
    assert preferred([*rows, {**rows[0], "protocol": "full"}, rows[1]])["protocol"] == "full"
    ov = [{"target": "ov:CPU", "format": "ir-fp32", "protocol": "quick"},
          {"target": "ov:CPU", "format": "onnx", "protocol": "full"}]
    assert preferred(ov)["format"] == "ir-fp32"  # FP32 IR first on OpenVINO, as before


# ---------------------------------------------------------------- the plot


def test_plot_draws_the_searched_objectives(latency_run, tmp_path):
    path = tmp_path / "front.svg"
    data = plot_front(latency_run, path)
    assert data.panels() == ((LATENCY, "error"),)
    for point, (_ind, ev) in zip(data.front, _front(latency_run), strict=True):
        assert point.values[LATENCY] == ev.objectives[LATENCY]
        entry = ev.metrics["latency"]["ort:cpu"]
        assert point.spread[LATENCY] == (entry["p10_ms"], entry["p90_ms"])
    text = path.read_text()
    assert "latency ort:cpu (ms, in search, log scale)" in text
    assert "parameters (count" not in text
    assert "p10-p90 of the in-search latency runs" in text


def test_three_objectives_get_one_panel_per_pair(tmp_path):
    run = run_synthetic(SearchConfig(grammar=str(blocks_file(tmp_path)), population=8,
                                     generations=2, seed=2,
                                     objectives=("error", "params", "macs"),
                                     run_dir=str(tmp_path / "run")))
    store = RunStore.open(run, write=False)
    try:
        data = plot_data(store)
        front = [ind.id for ind, _ev in front_of(store)]
    finally:
        store.close(checkpoint=False)
    assert data.panels() == (("params", "error"), ("macs", "error"), ("params", "macs"))
    path = tmp_path / "front.svg"
    plot_front(run, path)
    text = path.read_text()
    for label in ("parameters (count, log scale)", "MACs (count, log scale)",
                  "error (1 - accuracy)"):
        assert label in text
    for member in front:  # labelled in every panel
        assert len(re.findall(rf">#{member}<", text)) == 3


# ---------------------------------------------------------------- counts and phenotypes


def test_counts_are_ints_and_phenotypes_canonical_in_every_run_output(
        tmp_path_factory, tmp_path, capsys):
    run = tiny_digits_run(tmp_path_factory)
    table = tmp_path / "front.csv"
    code, out, err = cli(capsys, "front", str(run), "--json", "--csv", str(table))
    assert code == 0, err
    rows = json.loads(out)["front"]
    assert any("( " in r["phenotype_raw"] for r in rows)  # the grammar's spacing
    for r in rows:
        assert type(r["params"]) is int and type(r["macs"]) is int
        assert type(r["objectives"]["params"]) is int
        assert isinstance(r["objectives"]["error"], float)
        assert r["phenotype"] == spec_to_text(parse_arch(r["phenotype_raw"]))
    with table.open() as handle:
        written = list(csv.DictReader(handle))
    for r, w in zip(rows, written, strict=True):
        assert w["params"] == str(r["params"]) and w["objective:params"] == str(r["params"])
        assert w["phenotype"] == r["phenotype"] and w["phenotype_raw"] == r["phenotype_raw"]

    member = rows[0]["member"]
    code, out, err = cli(capsys, "show", str(run), str(member), "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["phenotype"] == rows[0]["phenotype"]
    assert shown["phenotype_raw"] == rows[0]["phenotype_raw"]
    assert type(shown["evaluation"]["objectives"]["params"]) is int

    code, out, err = cli(capsys, "runs", str(run.parent), "--json")
    assert code == 0, err
    summary = next(s for s in json.loads(out) if Path(s["path"]) == run)
    assert type(summary["smallest_params"]) is int


def test_integral_counts_leave_fractions_alone():
    value = {"params": 21698.0, "val_accuracy": 1.0, "error": 0.0, "onnx_bytes": 12.0,
             "rows": [{"macs": 3.0, "median_ms": 2.0}], "bytes": 2.5}
    assert integral_counts(value) == {"params": 21698, "val_accuracy": 1.0, "error": 0.0,
                                      "onnx_bytes": 12, "rows": [{"macs": 3, "median_ms": 2.0}],
                                      "bytes": 2.5}
    assert type(integral_counts(value)["val_accuracy"]) is float


def test_latency_statistics_keep_p10_and_read_records_without_it():
    from hardware.latency import LatencyStats, summarize

    stats = summarize([float(v) for v in range(1, 12)])
    assert stats.p10_ms == pytest.approx(2.0) and stats.p90_ms == pytest.approx(10.0)
    assert LatencyStats.from_dict(stats.to_dict()) == stats
    older = {k: v for k, v in stats.to_dict().items() if k != "p10_ms"}
    assert LatencyStats.from_dict(older).p10_ms is None
