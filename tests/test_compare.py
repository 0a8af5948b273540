"""`evo compare` (several runs, grouped by label, in one fixed normalisation, with the median,
spread, Mann-Whitney U test and 50 % attainment surfaces) and the hypervolume and compute
columns of `evo runs`. Runs are real synthetic searches (real SQLite, milliseconds each)."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import moocore
import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from evo.config import SearchConfig
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.engine import Search
from evo.search.synthetic import SyntheticProblem
from tests._runs_helpers import cli
from tests._search_helpers import blocks_file, run_synthetic

SEEDS = (1, 2, 3)


def _run(tmp: Path, name: str, **kw) -> Path:
    base = dict(grammar=str(blocks_file(tmp)), population=6, generations=3, seed=1,
                run_dir=str(tmp / name), quiet=True)
    base.update(kw)
    return run_synthetic(SearchConfig(**base))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Two set-ups, three seeds each: population 8 ("big") and population 4 ("small")."""
    tmp = tmp_path_factory.mktemp("compare")
    return {"big": [_run(tmp, f"big{s}", population=8, seed=s) for s in SEEDS],
            "small": [_run(tmp, f"small{s}", population=4, seed=s) for s in SEEDS]}


def _labels(runs: dict[str, list[Path]]) -> list[str]:
    """``--label big=RUN,RUN,RUN`` (the paths) and ``--label small=DIR/small*`` (a pattern)."""
    small = f"{runs['small'][0].parent}/small*"
    return ["--label", f"big={','.join(map(str, runs['big']))}", "--label", f"small={small}"]


def _compare_json(capsys, runs: dict[str, list[Path]], out: Path) -> dict:
    every = [str(p) for paths in runs.values() for p in paths]
    code, text, err = cli(capsys, "compare", *every, *_labels(runs), "--out", str(out), "--json")
    assert code == 0, err
    return json.loads(text)


def _fixed_hypervolume(run_dir: Path) -> float:
    """The last front's hypervolume in the fixed normalisation, computed here from the front
    every command reads (x = (log10 params - 2) / 4, y = error, reference (1, 1))."""
    store = RunStore.open(run_dir, write=False)
    try:
        front = front_of(store)
    finally:
        store.close(checkpoint=False)
    pts = np.array([[min(max((math.log10(ev.objectives["params"]) - 2) / 4, 0.0), 1.0),
                     min(max(ev.objectives["error"], 0.0), 1.0)] for _i, ev in front])
    return float(moocore.hypervolume(pts, ref=[1.0, 1.0]))


def test_groups_median_spread_and_mann_whitney_match_scipy(runs, capsys, tmp_path):
    data = _compare_json(capsys, runs, tmp_path / "out")
    assert "x = (log10 params - 2) / 4" in data["normalisation"] and data["spread"] == "min-max"
    finals = {name: [_fixed_hypervolume(p) for p in paths] for name, paths in runs.items()}
    groups = {g["name"]: g for g in data["groups"]}
    for name, values in finals.items():
        assert groups[name]["final_hypervolumes"] == pytest.approx(values, abs=1e-12)
        assert groups[name]["median"] == pytest.approx(float(np.median(values)))
        assert (groups[name]["min"], groups[name]["max"]) == pytest.approx(
            (min(values), max(values)))
    expected = mannwhitneyu(finals["big"], finals["small"], alternative="two-sided")
    (test,) = data["tests"]
    assert (test["first"], test["second"]) == ("big", "small")
    assert test["p_value"] == pytest.approx(float(expected.pvalue))
    assert test["u"] == pytest.approx(float(expected.statistic))
    assert test["smallest_possible_p"] == pytest.approx(0.1)  # 2 / C(6, 3)
    for run in data["runs"]:  # the curve ends where the last front is
        assert run["hypervolumes"][-1] == run["final_hypervolume"]
        assert run["generations"] == [0, 1, 2, 3]


def test_attainment_surfaces_are_the_50_percent_lines_of_each_group(runs, capsys, tmp_path):
    data = _compare_json(capsys, runs, tmp_path / "out")
    assert data["objectives"] == ["error", "params"]
    by_group: dict[str, list[list[tuple[float, float]]]] = {}
    for run in data["runs"]:  # drawn as x = params, y = error
        by_group.setdefault(run["group"], []).append(
            [(params, error) for error, params in run["front_normalised"]])
    assert set(data["attainment_50"]) == {"big", "small"}
    for name, fronts in by_group.items():
        surface = data["attainment_50"][name]
        assert surface, name
        rows = [p for front in fronts for p in front]
        sets = [i for i, front in enumerate(fronts, start=1) for _p in front]
        expected = sorted(map(tuple, moocore.eaf(np.array(rows), sets, percentiles=[50])[:, :2]))
        assert np.allclose(surface, expected)
        for x, y in surface:  # each point is reached by at least 2 of the 3 runs
            reached = sum(any(px <= x + 1e-12 and py <= y + 1e-12 for px, py in front)
                          for front in fronts)
            assert reached >= 2, (name, x, y)
    text = cli(capsys, "compare", *[str(p) for ps in runs.values() for p in ps],
               *_labels(runs), "--out", str(tmp_path / "text"))[1]
    assert "Mann-Whitney U (two-sided), big vs small" in text and "spread (min-max)" in text


def test_page_is_self_contained_with_the_figure_embedded(runs, capsys, tmp_path):
    data = _compare_json(capsys, runs, tmp_path / "out")
    html = Path(data["files"]["page"]).read_text()
    png = Path(data["files"]["figure"]).read_bytes()
    assert png.startswith(b"\x89PNG")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [base64.b64decode(e) for e in embedded] == [png]
    assert json.loads(Path(data["files"]["data"]).read_text())["groups"] == data["groups"]
    for forbidden in (r"https?:", r"file:", r"<link", r"<script", r"url\(", r"href=", r"//",
                      r"@import"):
        assert not re.search(forbidden, html.replace(embedded[0], "")), forbidden
    assert re.findall(r'src="([^",]*)', html) == ["data:image/png;base64"]
    assert "x = (log10 params - 2) / 4" in html and "min-max" in html
    assert "big vs small" in html


def test_one_run_per_group_skips_spread_test_and_surfaces_with_a_note(runs, capsys, tmp_path):
    one = [str(runs["big"][0]), str(runs["small"][0])]
    code, out, err = cli(capsys, "compare", *one, "--out", str(tmp_path / "o"), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["tests"] == [] and data["attainment_50"] == {}
    assert all(g["min"] is None and g["max"] is None for g in data["groups"])
    assert [g["name"] for g in data["groups"]] == one  # unlabelled: a group each, by path
    assert any(n.startswith("one run per group") for n in data["notes"])
    code, out, _err = cli(capsys, "compare", *one, "--out", str(tmp_path / "t"))
    assert code == 0 and "note: one run per group" in out
    assert "Mann-Whitney U (two-sided)," not in out
    assert "No test" in (tmp_path / "t" / "compare.html").read_text()


def test_other_objectives_use_the_common_stored_scales(tmp_path, capsys):
    macs = [_run(tmp_path, f"m{s}", seed=s, objectives=("error", "macs")) for s in (1, 2)]
    code, out, err = cli(capsys, "compare", *map(str, macs), "--out", str(tmp_path / "o"),
                         "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["normalisation"].startswith("the runs' common stored scales")
    for run, path in zip(data["runs"], macs, strict=True):
        store = RunStore.open(path, write=False)
        stored = [hv for _g, hv in store.hypervolumes()]
        store.close(checkpoint=False)
        assert run["hypervolumes"] == pytest.approx(stored, abs=1e-12)


def _rescaled(run_dir: Path) -> Path:
    """A run whose stored scale for macs differs from the default one."""
    store = RunStore.open(run_dir, write=True)
    scales = [dict(s, upper=1e7) if s["name"] == "macs" else s
              for s in store.meta("objective_scales")]
    with store.transaction() as conn:
        store.set_meta(conn, "objective_scales", scales)
    store.close()
    return run_dir


def _not_started(tmp: Path) -> Path:
    """A run whose initial population is committed but not finished (its driver died)."""
    config = SearchConfig(grammar=str(blocks_file(tmp)), population=6, generations=3, seed=1,
                          run_dir=str(tmp / "early"))
    search = Search.create(tmp / "early", config, SyntheticProblem())
    search.ask()
    search.store.close()
    return tmp / "early"


@pytest.mark.parametrize("case", ["objectives", "no-run", "damaged", "not-started",
                                  "unknown-run-in-label", "bad-label", "two-groups", "twice",
                                  "scales"])
def test_bad_input_is_one_line_and_exit_2(runs, capsys, tmp_path, case):
    a, b = str(runs["big"][0]), str(runs["small"][0])
    args = {
        "objectives": [a, str(_run(tmp_path, "m", objectives=("error", "macs")))],
        "no-run": [a, str(tmp_path)],
        "damaged": [a, str(tmp_path / "bad")],
        "not-started": [a, str(_not_started(tmp_path))],
        "twice": [a, a],
        "unknown-run-in-label": [a, b, "--label", f"x={a},{runs['big'][1]}"],
        "bad-label": [a, b, "--label", "nonsense"],
        "two-groups": [a, b, "--label", f"x={a}", "--label", f"y={a},{b}"],
        "scales": [str(_run(tmp_path, "m1", objectives=("error", "macs"))),
                   str(_rescaled(_run(tmp_path, "m2", objectives=("error", "macs"))))],
    }[case]
    if case == "damaged":
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "run.db").write_bytes(b"not a database" * 100)
    code, out, err = cli(capsys, "compare", *args, "--out", str(tmp_path / "out"))
    assert code == 2, (out, err)
    assert len(err.strip().splitlines()) == 1 and err.startswith("evo: error:"), err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_runs_shows_hypervolume_and_training_compute(tmp_path, capsys):
    root = tmp_path / "runs"
    trained = _run(tmp_path, "runs/trained")
    _run(tmp_path, "runs/plain", seed=2)
    store = RunStore.open(trained, write=True)
    evaluations = list(store.evaluations().values())
    with store.transaction() as conn:
        for number, ev in enumerate(evaluations):
            store.update_evaluation(conn, ev.key, objectives={},
                                    metrics={"epochs_run": 2, "train_seconds": 0.5 + number})
        # As a run written before evo kept compute totals: summed from its evaluations.
        store.set_state(conn, "compute", None)
    last = store.generation(store.last_generation())["hypervolume"]
    store.close()
    code, out, err = cli(capsys, "runs", str(root), "--json")
    assert code == 0, err
    rows = {Path(r["path"]).name: r for r in json.loads(out)}
    assert rows["trained"]["hypervolume"] == pytest.approx(last)
    assert rows["trained"]["epochs_trained"] == 2 * len(evaluations)
    assert rows["trained"]["train_seconds"] == pytest.approx(
        sum(0.5 + n for n in range(len(evaluations))))
    assert rows["trained"]["images_seen"] is None  # the older run never recorded images
    # A synthetic run trains nothing: no training time, and its totals say no compute.
    assert rows["plain"]["train_seconds"] is None and rows["plain"]["epochs_trained"] == 0
    assert rows["plain"]["images_seen"] == 0
    assert rows["plain"]["hypervolume"] is not None
    code, out, _err = cli(capsys, "runs", str(root))
    assert code == 0 and "hypervolume" in out and "compute" in out
    assert f"{last:.4f}" in out and f"{2 * len(evaluations)} epochs" in out
