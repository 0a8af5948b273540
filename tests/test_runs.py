"""`evo runs`: every run under a folder with its status (running, finished, interrupted, busy),
generations, evaluations, best accuracy, smallest model and last update. Runs are synthetic
(real SQLite stores and real flocks, no training): the status logic is what is under test."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.report.runs import find_runs, list_runs, summarize
from evo.run.counts import OUTCOMES, counts_of
from evo.run.front import front_of
from evo.run.store import RunStore
from evo.search.engine import Search
from evo.search.synthetic import SyntheticProblem
from tests._runs_helpers import cli
from tests._search_helpers import blocks_file, run_synthetic


def _config(tmp_path: Path, run_dir: Path, **kw) -> SearchConfig:
    base = dict(grammar=str(blocks_file(tmp_path)), population=6, generations=3, seed=2,
                run_dir=str(run_dir))
    base.update(kw)
    return SearchConfig(**base)


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    """runs/finished (done), runs/interrupted (created, then its process went away)."""
    root = tmp_path / "runs"
    run_synthetic(_config(tmp_path, root / "finished"))
    search = Search.create(root / "interrupted", _config(tmp_path, root / "interrupted"),
                           SyntheticProblem())
    search.ask()  # the initial population is committed, then the driver "dies"
    search.store.close()
    return root


def test_finished_run_summary_matches_the_store(runs_dir):
    summary = summarize(runs_dir / "finished")
    assert summary.status == "finished"
    assert summary.generations_done == 3 and summary.generations_planned == 3
    store = RunStore.open(runs_dir / "finished", write=False)
    front = front_of(store)
    assert summary.counts == counts_of(store) and summary.counts.trained > 0
    assert summary.counts.evaluated == store.count_trained()
    assert summary.counts.total == store.count_individuals()
    assert summary.members == store.count_individuals() == 24
    assert summary.best_accuracy == max(ev.metrics["val_accuracy"] for _i, ev in front)
    assert summary.smallest_params == min(ev.objectives["params"] for _i, ev in front)
    store.close(checkpoint=False)
    assert summary.dataset == "synthetic-zdt1"
    assert time.time() - 120 < summary.last_update <= time.time()


def test_a_run_whose_process_went_away_is_interrupted(runs_dir):
    summary = summarize(runs_dir / "interrupted")
    assert summary.status == "interrupted"  # run.db still says "running"; nobody holds the lock
    assert summary.generations_done is None and summary.members == 6
    assert summary.best_accuracy is None and summary.counts.evaluated == 0


def test_a_run_whose_lock_is_held_is_running(runs_dir, tmp_path):
    store = RunStore.open(runs_dir / "interrupted", write=True)  # as a live driver would
    try:
        assert summarize(runs_dir / "interrupted").status == "running"
        search = Search.create(runs_dir / "new", _config(tmp_path, runs_dir / "new"),
                               SyntheticProblem())
        try:
            assert summarize(runs_dir / "new").status == "running"
        finally:
            search.close()
    finally:
        store.close()
    assert summarize(runs_dir / "interrupted").status == "interrupted"


def test_a_finished_run_another_command_writes_to_is_busy(runs_dir):
    store = RunStore.open(runs_dir / "finished", write=True)  # e.g. evo retrain
    try:
        assert summarize(runs_dir / "finished").status == "busy"
    finally:
        store.close()
    assert summarize(runs_dir / "finished").status == "finished"


def test_a_damaged_database_is_a_row_not_a_crash(runs_dir):
    (runs_dir / "broken").mkdir()
    (runs_dir / "broken" / "run.db").write_bytes(b"this is not sqlite" * 100)
    summaries = {Path(s.path).name: s for s in list_runs(runs_dir)}
    assert summaries["broken"].status == "unreadable" and summaries["broken"].counts is None
    assert "not a readable" in summaries["broken"].note
    assert summaries["finished"].status == "finished"


def test_find_runs_sees_nested_runs_but_not_inside_a_run(runs_dir, tmp_path):
    run_synthetic(_config(tmp_path, runs_dir / "group" / "deep", generations=0))
    (runs_dir / "finished" / "export" / "inner").mkdir(parents=True)
    (runs_dir / "finished" / "export" / "inner" / "run.db").write_text("")
    names = [p.relative_to(runs_dir).as_posix() for p in find_runs(runs_dir)]
    assert names == ["finished", "group/deep", "interrupted"]
    assert find_runs(runs_dir / "finished") == [runs_dir / "finished"]
    with pytest.raises(EvoError, match="no such folder"):
        find_runs(runs_dir / "missing")


def test_list_runs_is_newest_first(runs_dir, tmp_path):
    run_synthetic(_config(tmp_path, runs_dir / "latest", generations=0))
    assert Path(list_runs(runs_dir)[0].path).name == "latest"


def test_cli_runs_table_and_json(runs_dir, capsys):
    code, out, err = cli(capsys, "runs", str(runs_dir))
    assert code == 0, err
    assert "finished" in out and "interrupted" in out and "3 of 3" in out
    assert "\x1b[" not in out  # not a terminal: no escape codes
    store = RunStore.open(runs_dir / "finished", write=False)
    counts = counts_of(store)
    store.close(checkpoint=False)
    shown = [line.split("│")[5].strip() for line in out.splitlines()
             if line.count("│") > 5 and line.split("│")[5].strip()]
    assert counts.text("\n") in "\n".join(shown)  # one outcome a line, every word
    code, out, _err = cli(capsys, "runs", str(runs_dir), "--json")
    data = {Path(r["path"]).name: r for r in json.loads(out)}
    assert code == 0 and set(data) == {"finished", "interrupted"}
    assert data["finished"]["status"] == "finished"
    assert list(data["finished"]["counts"]) == list(OUTCOMES)
    assert sum(data["finished"]["counts"].values()) == data["finished"]["members"] == 24
    assert data["finished"]["last_update_iso"].startswith(time.strftime("%Y-"))


def test_cli_runs_on_a_missing_folder_is_exit_2(tmp_path, capsys):
    code, _out, err = cli(capsys, "runs", str(tmp_path / "nope"))
    assert code == 2 and "no such folder" in err
    (tmp_path / "empty").mkdir()
    code, out, _err = cli(capsys, "runs", str(tmp_path / "empty"))
    assert code == 0 and "no runs under" in out
