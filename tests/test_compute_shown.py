"""The run's training compute (images seen, epochs trained) and both budgets, where a person or
a program reads them: the progress lines, evo runs (+ --json), evo front --json, evo show."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from evo.config import SearchConfig
from evo.report.progress import LineReporter
from evo.report.progress_state import SearchStats
from evo.report.show import budget_rows, search_budget
from evo.run.compute import compute_spent
from evo.run.counts import Counts
from evo.run.store import RunStore
from evo.search.contract import GenerationDone, Result, ResultArrived, SearchStarted, Status
from tests._runs_helpers import cli, tiny_digits_run


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_digits_run(tmp_path_factory)


@pytest.fixture(scope="module")
def spent(run) -> dict:
    """The run's totals, and the same sums taken from its evaluations by hand."""
    store = RunStore.open(run, write=False)
    try:
        totals = compute_spent(store)
        trained = [ev for ev in store.evaluations().values() if ev.source == "trained"]
    finally:
        store.close(checkpoint=False)
    assert totals["images_seen"] == sum(ev.metrics["images_seen"] for ev in trained) > 0
    assert totals["epochs_trained"] == sum(ev.metrics["epochs_trained"] for ev in trained) > 0
    return totals


def test_evo_runs_shows_images_and_epochs_in_the_table_and_json(run, spent, capsys) -> None:
    code, out, err = cli(capsys, "runs", str(run.parent))
    assert code == 0, err
    assert f"{spent['images_seen']:,} img" in out and f"{spent['epochs_trained']} epochs" in out
    code, out, _err = cli(capsys, "runs", str(run.parent), "--json")
    row = next(r for r in json.loads(out) if Path(r["path"]) == run)
    assert row["images_seen"] == spent["images_seen"]
    assert row["epochs_trained"] == spent["epochs_trained"]
    assert isinstance(row["images_seen"], int)


def test_evo_front_json_carries_the_run_compute(run, spent, capsys) -> None:
    code, out, err = cli(capsys, "front", str(run), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["images_seen"] == spent["images_seen"]
    assert data["epochs_trained"] == spent["epochs_trained"]


def test_evo_show_states_both_budgets_and_the_compute(run, spent, capsys) -> None:
    code, out, err = cli(capsys, "show", str(run), "1", "--json")
    assert code == 0, err
    details = json.loads(out)
    budget = details["budget"]
    assert details["compute"] == spent
    assert budget["epochs"] == 1 and budget["fidelity"] == "full" and budget["rungs"] is None
    assert budget["train_images"] == budget["full_train_images"] > 0
    assert budget["subset_seed"] is None and budget["early_abort"] is False
    assert budget["final_train_images"] == budget["full_train_images"] + budget["full_val_images"]
    code, out, err = cli(capsys, "show", str(run), "1")
    assert code == 0, err
    text = " ".join(out.split())
    assert (f"search budget 1 epochs x epochs_mult, full fidelity, early abort off; "
            f"{budget['train_images']:,} training / {budget['val_images']:,} validation images"
            ) in text
    assert (f"final budget evo retrain --epochs N (no --final-epochs) on all "
            f"{budget['final_train_images']:,} training+validation images") in text
    assert (f"run compute {spent['images_seen']:,} training images, "
            f"{spent['epochs_trained']} epochs trained") in text


def test_show_budget_of_a_halving_search_on_subsets() -> None:
    config = SearchConfig(epochs=5, fidelity="halving", final_epochs=20).to_dict()
    problem = {"early_abort": True, "dataset": {
        "sizes": {"train": 5000, "val": 1000, "test": 10000},
        "subset": {"train": 5000, "val": 1000, "seed": 0, "full_fingerprint": "f",
                   "full_sizes": {"train": 54000, "val": 6000}}}}
    budget = search_budget(config, problem)
    assert budget["rungs"] == [1, 3, 5] and budget["final_train_images"] == 60000
    rows = dict(budget_rows(budget, {"images_seen": 123456, "epochs_trained": 40}))
    assert rows["search budget"] == (
        "5 epochs x epochs_mult, successive halving, rungs at 1, 3, 5 epochs, early abort on; "
        "5,000 of 54,000 training / 1,000 of 6,000 validation images (stratified subsets, "
        "seed 0)")
    assert rows["final budget"] == "20 epochs on all 60,000 training+validation images"
    assert rows["run compute"] == "123,456 training images, 40 epochs trained (all candidates)"


def _result(member: int, images: int, epochs: int) -> Result:
    return Result(f"k{member}", member, Status.OK, None, {"error": 0.5, "params": 10.0},
                  {"val_accuracy": 0.5, "images_seen": images, "epochs_trained": epochs},
                  seconds=1.0)


def test_progress_continues_the_stored_compute_and_adds_each_result(tmp_path) -> None:
    """A resumed run's start event carries its totals; each result adds its own figures."""
    config = SearchConfig(population=2, generations=1, max_images=5000)
    counts = Counts(trained=2)
    events = [
        SearchStarted(run_dir=str(tmp_path), config=config, workers=1, counts=Counts(),
                      generation=0, compute={"images_seen": 1000, "epochs_trained": 2}),
        ResultArrived(result=_result(3, 300, 1), counts=Counts(trained=1)),
        ResultArrived(result=_result(4, 600, 2), counts=counts),
        GenerationDone(generation=1, hypervolume=0.5, front=1, counts=counts),
    ]
    stream = io.StringIO()
    lines = LineReporter(stream)
    stats = SearchStats(now=0.0)
    stats.start(events[0], now=0.0)
    for event in events:
        lines(event)
        if isinstance(event, ResultArrived):
            stats.add_result(event.result)
    last = stream.getvalue().splitlines()[-1]
    assert last.endswith(f"{counts.text()}, images seen 1,900, epochs trained 5")
    status = stats.text(now=1.0)
    assert "images seen 1,900 · epochs trained 5 · --max-images 1,900/5,000" in status
