"""`evo front --plot/--csv`: the picture of every evaluated candidate with the front highlighted
and labelled, infeasible candidates marked, hypervolume and bounds in the caption; the CSV form.
Synthetic runs for speed, plus one real retrained digits run for the test-error markers."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from PIL import Image

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.post.retrain import retrain
from evo.report.front_plot import plot_data, plot_front
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.engine import Search
from evo.search.synthetic import SyntheticProblem
from tests._runs_helpers import cli, copy_run, tiny_digits_run
from tests._search_helpers import blocks_file, run_synthetic


@pytest.fixture(scope="module")
def constrained_run(tmp_path_factory) -> Path:
    """A synthetic run with a parameter limit, so some evaluated candidates are infeasible."""
    tmp = tmp_path_factory.mktemp("plot")
    return run_synthetic(SearchConfig(grammar=str(blocks_file(tmp)), population=10,
                                      generations=4, seed=4, constraint=("params<=1e5",),
                                      run_dir=str(tmp / "run")))


def _front_ids(run_dir: Path) -> list[int]:
    store = RunStore.open(run_dir, write=False)
    try:
        return [ind.id for ind, _ev in front_of(store)]
    finally:
        store.close(checkpoint=False)


def test_plot_data_has_every_evaluation_the_front_and_the_infeasible(constrained_run):
    store = RunStore.open(constrained_run, write=False)
    try:
        data = plot_data(store)
        evaluations = store.evaluations()
        assert len(data.points) == len(evaluations)
        kinds = {p.kind for p in data.points}
        assert {"feasible", "infeasible"} <= kinds
        for p in data.points:
            if p.kind == "infeasible":
                assert p.params > 1e5
        assert [f.member for f in data.front] == [ind.id for ind, _ev in front_of(store)]
        assert data.hypervolume == store.generation(store.last_generation())["hypervolume"]
    finally:
        store.close(checkpoint=False)
    caption = data.caption()
    assert f"{data.hypervolume:.4f}" in caption
    assert "error linear [0, 1]" in caption and "params log10 [100, 1e+08]" in caption
    assert "params<=1e5" in caption


def test_png_is_written_and_non_trivial(constrained_run, tmp_path):
    path = tmp_path / "out" / "front.png"
    plot_front(constrained_run, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000
    with Image.open(path) as image:
        assert image.size == (1200, 840)
        assert len(set(image.convert("RGB").getdata())) > 50  # a drawing, not a blank canvas
    assert not list(path.parent.glob(".*.tmp"))


def test_svg_labels_every_front_member_and_marks_the_infeasible(constrained_run, tmp_path):
    path = tmp_path / "front.svg"
    plot_front(constrained_run, path)
    text = path.read_text()
    labels = set(re.findall(r">#(\d+)<", text))
    assert labels == {str(m) for m in _front_ids(constrained_run)}
    assert "infeasible (misses a constraint)" in text
    assert "Hypervolume" in text and "parameters (count, log scale)" in text


def test_cli_front_writes_plot_and_csv(constrained_run, tmp_path, capsys):
    png, table = tmp_path / "f.png", tmp_path / "f.csv"
    code, out, err = cli(capsys, "front", str(constrained_run), "--plot", str(png), "--csv",
                         str(table))
    assert code == 0, err
    assert f"wrote {png}" in out and f"wrote {table}" in out
    with table.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["member"]) for r in rows] == _front_ids(constrained_run)
    assert {"params", "val_accuracy", "test_accuracy", "objective:error"} <= set(rows[0])
    assert all(float(r["params"]) <= 1e5 for r in rows)
    # With --json the "wrote" lines go to stderr, so stdout stays one JSON document.
    code, out, err = cli(capsys, "front", str(constrained_run), "--json", "--plot",
                         str(tmp_path / "g.svg"))
    assert code == 0 and out.lstrip().startswith("{") and "wrote" in err


def test_unknown_plot_format_is_exit_2_before_any_work(constrained_run, tmp_path, capsys):
    code, out, err = cli(capsys, "front", str(constrained_run), "--plot",
                         str(tmp_path / "front.jpg"))
    assert code == 2 and ".png or .svg" in err and out == ""
    assert not (tmp_path / "front.jpg").exists()


def test_a_run_with_nothing_evaluated_has_nothing_to_plot(tmp_path):
    config = SearchConfig(grammar=str(blocks_file(tmp_path)), population=4,
                          run_dir=str(tmp_path / "empty"))
    Search.create(tmp_path / "empty", config, SyntheticProblem()).close("interrupted")
    with pytest.raises(EvoError, match="nothing evaluated"):
        plot_front(tmp_path / "empty", tmp_path / "x.png")


def test_retrained_members_get_test_error_markers(tmp_path_factory, tmp_path):
    run = copy_run(tiny_digits_run(tmp_path_factory), tmp_path / "run")
    store = RunStore.open(run, write=False)
    smallest = min(front_of(store), key=lambda m: m[1].objectives["params"])[0].id
    store.close(checkpoint=False)
    record = retrain(run, [smallest], epochs=1, seeds=1)[0].record
    path = tmp_path / "front.svg"
    data = plot_front(run, path)
    tested = [f for f in data.front if f.test_error is not None]
    assert [f.member for f in tested] == [smallest]
    assert tested[0].test_error == pytest.approx(1 - record.test_accuracy_mean)
    text = path.read_text()
    assert f"test error after retrain (1, {record.test_total} images)" in text
    assert "cnn_topology on digits" in text
    assert f"validation error on {data.val_images} images" in text
