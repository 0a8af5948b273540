"""Proxy budgets: --train-subset / --val-subset are stratified, seeded and deterministic, part
of the evaluation key, and the final retrain goes back to the full data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from evo.config import SearchConfig
from evo.data.dataset import Dataset, load_dataset
from evo.data.subset import stratified_sample, subset_dataset
from evo.nas.datasets import dataset_of, run_dataset
from evo.nas.problem import TrainingProblem, problem_factory
from evo.post.retrain import retrain
from evo.report.show import member_details
from evo.run.store import RunStore
from evo.search.loop import run_search

PHENOTYPE = "conv(8, k=3) bn relu maxpool(2) gap"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", None, 5)


@given(counts=st.lists(st.integers(1, 60), min_size=1, max_size=10), fraction=st.floats(0, 1),
       seed=st.integers(0, 2**32))
def test_a_sample_has_the_size_asked_and_the_class_proportions(
        counts: list[int], fraction: float, seed: int) -> None:
    y = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    size = round(fraction * len(y))
    index = stratified_sample(y, size, np.random.default_rng(seed))
    assert len(index) == size == len(np.unique(index))
    assert np.all(np.diff(index) > 0)  # sorted: source order kept
    taken = np.bincount(y[index], minlength=len(counts))
    assert np.all(np.abs(taken - np.asarray(counts) * size / len(y)) < 1)  # each within one
    again = stratified_sample(y, size, np.random.default_rng(seed))
    assert np.array_equal(index, again)


def test_subsets_are_stratified_seeded_and_keep_test_and_normalisation(digits: Dataset) -> None:
    cut = subset_dataset(digits, 300, 100, seed=5)
    assert (len(cut.train), len(cut.val), len(cut.test)) == (300, 100, len(digits.test))
    assert cut.test is digits.test and (cut.mean, cut.std) == (digits.mean, digits.std)
    full_share = np.bincount(digits.train.y) / len(digits.train)
    assert np.all(np.abs(np.bincount(cut.train.y) - full_share * 300) < 1)
    assert cut.fingerprint != digits.fingerprint
    again = subset_dataset(digits, 300, 100, seed=5)
    assert again.fingerprint == cut.fingerprint and np.array_equal(again.train.x, cut.train.x)
    other_seed = subset_dataset(digits, 300, 100, seed=6)
    assert other_seed.fingerprint != cut.fingerprint
    assert not np.array_equal(other_seed.train.y, cut.train.y) or \
        not np.array_equal(other_seed.train.x, cut.train.x)
    # the training subset does not depend on the validation size, and vice versa
    assert np.array_equal(subset_dataset(digits, 300, 50, seed=5).train.x, cut.train.x)
    assert np.array_equal(subset_dataset(digits, None, 100, seed=5).val.x, cut.val.x)
    described = cut.describe()
    assert described["sizes"] == {"train": 300, "val": 100, "test": len(digits.test)}
    assert described["subset"]["full_fingerprint"] == digits.fingerprint
    assert described["subset"]["full_sizes"] == {"train": len(digits.train),
                                                 "val": len(digits.val)}
    assert json.loads(json.dumps(described)) == described
    assert subset_dataset(digits, None, 10**6, seed=5) is digits  # all of it: nothing changes


def test_the_evaluation_key_changes_with_each_subset(tmp_path: Path) -> None:
    def key(**subsets) -> str:
        config = SearchConfig(grammar="cnn_topology", seed=5, export=(), bench=(), **subsets)
        return TrainingProblem(config, tmp_path).candidate(PHENOTYPE)[0]

    keys = [key(), key(train_subset=300), key(train_subset=400), key(val_subset=100),
            key(train_subset=300, val_subset=100)]
    assert len(set(keys)) == len(keys)
    assert key(train_subset=300) == keys[1]  # deterministic
    assert key(train_subset=10**6) == keys[0]  # a subset of everything is the full data


def test_search_trains_on_subsets_and_the_final_retrain_on_all_data(tmp_path: Path) -> None:
    config = SearchConfig(grammar="cnn_topology", dataset="digits", population=2, generations=0,
                          epochs=1, seed=5, export=(), bench=(), train_subset=300,
                          val_subset=90, run_dir=str(tmp_path / "run"))
    run_dir = run_search(config, problem_factory=problem_factory())
    store = RunStore.open(run_dir, write=False)
    try:
        described = store.meta("problem")["dataset"]
        trained = [ev for ev in store.evaluations().values() if ev.status == "ok"]
    finally:
        store.close(checkpoint=False)
    assert described["sizes"]["train"] == 300 and described["sizes"]["val"] == 90
    assert trained and all(ev.metrics["val_total"] == 90 for ev in trained)
    assert all(ev.metrics["images_seen"] == 300 for ev in trained)
    full = run_dataset(run_dir, described, config, "retrain")
    assert full.fingerprint == described["subset"]["full_fingerprint"]
    assert len(full.train) == len(dataset_of(SearchConfig(seed=5)).train) > 300
    budget = member_details(run_dir, trained[0].individual_id)["budget"]  # what evo show states
    assert (budget["train_images"], budget["val_images"], budget["subset_seed"]) == (300, 90, 5)
    assert budget["full_train_images"] == len(full.train)
    assert budget["final_train_images"] == len(full.train) + len(full.val)
    outcomes = retrain(run_dir, epochs=1)
    assert outcomes and all(o.status == "ok" for o in outcomes)
    for outcome in outcomes:
        assert outcome.record.metrics["train_images"] == len(full.train) + len(full.val)
        assert outcome.record.metrics["dataset_fingerprint"] == full.fingerprint
        assert outcome.record.test_total == len(full.test)
