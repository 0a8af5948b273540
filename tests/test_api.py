"""The Python API (evo/api.py) against the CLI on one tiny real digits search started from
Python: the same front as ``evo front --json``, the same counts as ``evo runs --json``, the same
CSV bytes as ``evo front --csv``, and one clear error where pandas is missing."""

from __future__ import annotations

import csv
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from evo import api
from evo.config import SearchConfig
from evo.errors import EvoError
from tests._runs_helpers import TINY, cli


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> api.Run:
    """A tiny search run by ``evo.api.search`` (the digits run the other run tests use)."""
    run_dir = tmp_path_factory.mktemp("api") / "run"
    return api.search(SearchConfig(**TINY, run_dir=str(run_dir)))


def test_search_from_python_writes_a_run_evo_front_reads(
        run: api.Run, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "front", str(run.path), "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["status"] == "finished"
    assert document["front"]
    assert run.config.seed == TINY["seed"] and run.config.population == TINY["population"]


def test_front_equals_evo_front_json(run: api.Run, capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _err = cli(capsys, "front", str(run.path), "--json")
    document = json.loads(out)
    # Through JSON, as the CLI prints them (tuples become lists, paths text).
    assert json.loads(json.dumps(run.front(), default=str)) == document["front"]
    info = json.loads(json.dumps(run.info(), default=str))
    assert info == {k: v for k, v in document.items() if k != "front"}


def test_evaluations_count_as_evo_runs_counts(
        run: api.Run, capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _err = cli(capsys, "runs", str(run.path), "--json")
    (summary,) = json.loads(out)
    rows = list(run.evaluations())
    assert len(rows) == summary["members"]
    tally = Counter(row["outcome"] for row in rows)
    assert {name: tally.get(name, 0) for name in summary["counts"]} == summary["counts"]
    for row in rows:  # flat: every value a scalar a CSV cell or DataFrame column takes
        assert not any(isinstance(v, dict | list) for v in row.values()), row
    trained = [r for r in rows if r["outcome"] == "trained"]
    assert trained and all(0 <= r["val_accuracy"] <= 1 and isinstance(r["params"], int)
                           for r in trained)
    front_members = {r["member"] for r in run.front()}
    assert front_members <= {r["member"] for r in rows}


def test_to_csv_equals_evo_front_csv(run: api.Run, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = cli(capsys, "front", str(run.path), "--csv", str(tmp_path / "cli.csv"))
    assert code == 0, err
    written = run.to_csv(tmp_path / "api.csv")
    assert written.read_bytes() == (tmp_path / "cli.csv").read_bytes()
    with written.open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    rows = run.to_rows()
    assert [list(r) for r in rows] == [header] * len(run.front())
    as_text = [{k: "" if v is None else str(v) for k, v in r.items()} for r in rows]
    with written.open(newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle)) == as_text


def test_to_pandas_without_pandas_is_one_clear_error(
        run: api.Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas fails, as uninstalled
    with pytest.raises(EvoError) as caught:
        run.to_pandas()
    assert "pandas" in caught.value.message and "pip install pandas" in caught.value.hint


def test_to_pandas_with_pandas_is_the_csv_table(run: api.Run) -> None:
    pytest.importorskip("pandas", reason="pandas is optional and not installed here")
    frame = run.to_pandas()
    assert list(frame.columns) == list(run.to_rows()[0])
    assert len(frame) == len(run.front())


def test_bad_input_is_an_evo_error(tmp_path: Path) -> None:
    with pytest.raises(EvoError, match="no run here"):
        api.open_run(tmp_path)
    with pytest.raises(EvoError):
        api.search(SearchConfig(**{**TINY, "population": 0}, run_dir=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
