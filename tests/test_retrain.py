"""Retraining chosen members on train+validation: test accuracy recorded with its spread and
image count, the first seed's weights kept as the retrain's own file, the run lock honoured.
Real networks on digits (one tiny search per session, copied before anything writes to it)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from evo.config import SearchConfig
from evo.data.dataset import load_dataset
from evo.errors import EvoError
from evo.net.checkpoint import load_checkpoint
from evo.post.postsearch import final_retrain_step
from evo.post.retrain import latest_retrains, retrain, retrain_records, retrain_seed
from evo.post.retrain_events import RetrainDone, RetrainEpoch, RetrainSeedDone, RetrainStarted
from evo.run.front import front_of
from evo.run.retrains import retrain_weights
from evo.run.store import RunStore
from tests._runs_helpers import cli, copy_run, tiny_digits_run
from tests._search_helpers import blocks_file, run_synthetic

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_digits_run(tmp_path_factory)


@pytest.fixture(scope="module")
def retrained(run, tmp_path_factory) -> tuple[Path, int, list, list]:
    """A copy of the run whose smallest front member was retrained with two seeds."""
    dest = copy_run(run, tmp_path_factory.mktemp("retrain") / "run")
    store = RunStore.open(dest, write=False)
    smallest = min(front_of(store), key=lambda m: m[1].objectives["params"])[0].id
    store.close(checkpoint=False)
    events: list = []
    outcomes = retrain(dest, [smallest], epochs=1, seeds=2,
                       listener=events.append)
    return dest, smallest, outcomes, events


def _dataset():
    return load_dataset("digits", None, 5)


def test_retrain_records_test_accuracy_mean_spread_and_images(retrained):
    run_dir, member, outcomes, _events = retrained
    assert [o.status for o in outcomes] == ["ok"]
    record = outcomes[0].record
    test_images = len(_dataset().test)
    assert record.member == member and record.epochs == 1 and record.seeds == 2
    assert record.test_total == test_images
    accuracies = [c / test_images for c in record.test_correct]
    assert record.accuracies == pytest.approx(accuracies)
    assert record.test_accuracy_mean == pytest.approx(statistics.fmean(accuracies))
    assert record.test_accuracy_std == pytest.approx(statistics.stdev(accuracies))
    per_seed = record.metrics["per_seed"]
    assert [s["seed"] for s in per_seed] == [
        retrain_seed(5, _key(run_dir, member), i) for i in range(2)]
    assert per_seed[0]["seed"] != per_seed[1]["seed"]
    assert record.metrics["train_images"] == len(_dataset().train) + len(_dataset().val)
    store = RunStore.open(run_dir, write=False)
    assert retrain_records(store, member) == [record]
    store.close(checkpoint=False)


def _key(run_dir: Path, member: int) -> str:
    store = RunStore.open(run_dir, write=False)
    try:
        return store.individual(member).eval_key
    finally:
        store.close(checkpoint=False)


def test_first_seed_weights_are_the_retrained_checkpoint_and_reproduce_its_score(retrained):
    run_dir, member, outcomes, _events = retrained
    record = outcomes[0].record
    assert record.number == 1 and record.weights == f"models/retrained-{member}-1.pt"
    store = RunStore.open(run_dir, write=False)
    assert retrain_weights(store, member, 1) == (record, run_dir / record.weights)
    store.close(checkpoint=False)
    ckpt = load_checkpoint(run_dir / record.weights)
    assert ckpt.metadata["member"] == member and ckpt.metadata["trained_on"] == "train+val"
    test = _dataset().test
    with torch.no_grad():
        predictions = ckpt.model(torch.from_numpy(test.x)).argmax(dim=1).numpy()
    assert int((predictions == test.y).sum()) == record.test_correct[0]


def test_retrain_reports_progress_events(retrained):
    _run_dir, member, _outcomes, events = retrained
    kinds = [type(event) for event in events]
    assert kinds.count(RetrainStarted) == 2 and kinds.count(RetrainSeedDone) == 2
    assert kinds[-1] is RetrainDone and events[-1].outcome.member == member
    epochs = [event for event in events if isinstance(event, RetrainEpoch)]
    assert epochs and all(e.member == member and "test_accuracy" in e.data for e in epochs)


def test_retrain_is_deterministic_on_cpu(retrained):
    run_dir, member, outcomes, _events = retrained
    again = retrain(run_dir, [member], epochs=1, seeds=1)[0].record
    assert again.test_correct == outcomes[0].record.test_correct[:1]
    store = RunStore.open(run_dir, write=False)
    rows = retrain_records(store, member)
    # Each retrain keeps its own file: the later one did not replace the earlier one's.
    assert [(r.number, r.weights) for r in rows] == [
        (1, f"models/retrained-{member}-1.pt"), (2, f"models/retrained-{member}-2.pt")]
    assert all((run_dir / r.weights).is_file() for r in rows)
    assert latest_retrains(store)[store.individual(member).eval_key].id == again.id
    store.close(checkpoint=False)


def test_front_shows_test_accuracy_beside_validation(retrained, capsys):
    run_dir, member, outcomes, _events = retrained
    code, out, err = cli(capsys, "front", str(run_dir), "--json")
    assert code == 0, err
    rows = {r["member"]: r for r in json.loads(out)["front"]}
    assert rows[member]["test_images"] == outcomes[0].record.test_total
    assert rows[member]["test_accuracy"] is not None
    assert all(r.get("test_accuracy") is None for m, r in rows.items() if m != member)
    code, out, _err = cli(capsys, "front", str(run_dir))
    assert code == 0 and "test acc" in out and f"of {outcomes[0].record.test_total}" in out


def test_a_locked_run_is_run_in_progress_exit_2(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    store = RunStore.open(dest, write=True)  # a search (or another retrain) in progress
    try:
        with pytest.raises(EvoError, match="run in progress"):
            retrain(dest, None, epochs=1)
        code, _out, err = cli(capsys, "retrain", str(dest), "--epochs", "1")
        assert code == 2 and "run in progress" in err
    finally:
        store.close()


def test_unknown_or_untrained_members_name_the_valid_ids(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    code, _out, err = cli(capsys, "retrain", str(dest), "--member", "999")
    assert code == 2 and "no member 999" in err and "1 to 8" in err
    with pytest.raises(EvoError, match="--seeds must be at least 1"):
        retrain(dest, None, seeds=0)
    store = RunStore.open(dest, write=False)
    assert retrain_records(store) == []
    store.close(checkpoint=False)


def test_cli_retrain_json_and_final_step_skips_done_members(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    store = RunStore.open(dest, write=False)
    front = [ind.id for ind, _ev in front_of(store)]
    smallest = min(front_of(store), key=lambda m: m[1].objectives["params"])[0].id
    store.close(checkpoint=False)
    code, out, err = cli(capsys, "retrain", str(dest), "--member", str(smallest), "--epochs",
                         "1", "--json")
    assert code == 0, err
    data = json.loads(out)  # progress lines went to stderr
    assert [d["member"] for d in data] == [smallest]
    assert data[0]["retrain"]["test_images"] == len(_dataset().test)
    assert "test images" in err
    # --final-epochs after a search: the front, one seed; members done with this budget skip.
    lines: list[str] = []
    config = SearchConfig.from_dict({**_stored_config(dest), "final_epochs": 1})
    final_retrain_step(dest, config, lines.append)
    store = RunStore.open(dest, write=False)
    counts = {m: len(retrain_records(store, m)) for m in front}
    store.close(checkpoint=False)
    assert counts == dict.fromkeys(front, 1)
    assert any(f"member {smallest}: already retrained" in line for line in lines)


def _stored_config(run_dir: Path) -> dict:
    store = RunStore.open(run_dir, write=False)
    try:
        return store.meta("config")
    finally:
        store.close(checkpoint=False)


def test_a_synthetic_run_has_nothing_to_retrain(tmp_path):
    run_dir = run_synthetic(SearchConfig(grammar=str(blocks_file(tmp_path)), population=4,
                                         generations=1, run_dir=str(tmp_path / "syn")))
    with pytest.raises(EvoError, match="no dataset"):
        retrain(run_dir, None)
