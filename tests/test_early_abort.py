"""Early abort: a fresh candidate no better than chance after its first epoch is stopped with
the reason; the chance threshold grows with the majority rate and shrinks with the data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from evo.data.dataset import Dataset
from evo.errors import EvoError
from evo.net.budget import chance_threshold
from tests import _train_helpers
from tests._train_helpers import train_on

# Adam at lr=1 through two convolutions: the ReLUs die in the first epoch and the network
# answers one class whatever it sees (loss stays finite, so it is not a NaN failure).
DIVERGES = "conv(8) relu conv(8) relu gap dense(10) | optimizer=adam lr=1 schedule=constant"
LEARNS = "conv(8) relu gap dense(10) | optimizer=adam lr=0.05 batch_size=64"


one_torch_thread = _train_helpers.one_torch_thread
digits = _train_helpers.digits


def test_a_diverging_network_is_stopped_after_one_epoch_with_the_reason(digits: Dataset) -> None:
    threshold = chance_threshold(digits.val.y, digits.num_classes)
    out = train_on(DIVERGES, digits, abort_below=threshold)
    assert out.status == "stopped" and not out.ok
    assert out.reason.startswith("no better than chance: 10.")
    assert "% validation accuracy after epoch 1 (chance 10.0 %, margin 5.5 points over 269 " \
        "images)" in out.reason
    assert out.metrics["epochs_run"] == out.metrics["epochs_trained"] == 1
    assert out.metrics["images_seen"] == len(digits.train)
    assert out.metrics["val_accuracy"] <= threshold
    assert out.objectives["error"] == pytest.approx(1 - out.metrics["val_accuracy"])
    assert out.objectives["params"] > 0
    assert out.state is None and out.state_dict is None
    assert out.describe()["status"] == "stopped"


def test_without_abort_the_same_network_trains_to_the_end(digits: Dataset) -> None:
    out = train_on(DIVERGES, digits)
    assert out.status == "ok" and out.metrics["epochs_run"] == 3


def test_the_check_leaves_a_learning_network_bit_identical(digits: Dataset) -> None:
    threshold = chance_threshold(digits.val.y, digits.num_classes)
    judged = train_on(LEARNS, digits, abort_below=threshold)
    plain = train_on(LEARNS, digits)
    assert judged.ok and judged.metrics["val_accuracy"] == plain.metrics["val_accuracy"]
    assert all(torch.equal(judged.state_dict[k], plain.state_dict[k]) for k in plain.state_dict)


def test_only_a_fresh_training_is_judged(digits: Dataset) -> None:
    """A resumed segment is past its first epoch: even an impossible bar stops nothing."""
    first = train_on(DIVERGES, digits, stop_after=1)
    assert first.ok and first.state is not None
    resumed = train_on(DIVERGES, digits, resume=first.state, abort_below=0.99)
    assert resumed.ok and resumed.metrics["epochs_run"] == 3


def test_a_bar_of_one_or_more_judges_nothing(digits: Dataset) -> None:
    out = train_on(DIVERGES, digits, stop_after=1, abort_below=1.0)
    assert out.ok


def test_threshold_on_digits_validation() -> None:
    labels = np.repeat(np.arange(10), 100)
    assert chance_threshold(labels, 10) == pytest.approx(0.1 + 3 * np.sqrt(0.09 / 1000))
    with pytest.raises(EvoError, match="labels reach 9 but there are 5 classes"):
        chance_threshold(labels, 5)
    with pytest.raises(EvoError, match="no validation labels"):
        chance_threshold(np.array([], dtype=np.int64), 10)


@given(counts=st.lists(st.integers(0, 40), min_size=2, max_size=12).filter(lambda c: sum(c) > 0),
       scale=st.integers(1, 20))
def test_threshold_is_above_the_majority_and_shrinks_with_more_images(
        counts: list[int], scale: int) -> None:
    labels = np.repeat(np.arange(len(counts)), counts)
    more = np.repeat(np.arange(len(counts)), [c * (scale + 1) for c in counts])
    majority = max(counts) / sum(counts)
    small, large = chance_threshold(labels, len(counts)), chance_threshold(more, len(counts))
    assert small >= majority and large >= majority
    if majority < 1:
        assert small > majority and large > majority
    assert large <= small  # same class proportions, more images: a narrower margin
    assert chance_threshold(np.random.default_rng(0).permutation(labels), len(counts)) == small
