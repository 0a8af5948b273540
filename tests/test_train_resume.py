"""Continuable training (successive halving): a candidate trained in segments 1 -> 3 -> 5
equals, bit for bit, one trained straight to 5; the saved state is safe to load and checked."""

from __future__ import annotations

import functools
import io

import pytest
import torch

from evo.data.dataset import Dataset
from evo.errors import EvoError
from evo.net.resume import TrainingStateError
from evo.net.train import EvalResult
from tests import _train_helpers
from tests._train_helpers import train_on

# Dropout (global RNG), augmentation (the data-order generator), batch norm (buffers), Adam
# (optimizer state) and a cosine schedule (step index): everything a segment must carry on.
DROPOUT_AUGMENT = ("conv(4) bn relu conv(8, s=2) bn relu gap dropout(0.3) dense(10) | "
                   "optimizer=adam lr=0.01 batch_size=64 augment=on schedule=cosine "
                   "label_smoothing=0.1 weight_decay=0.0001")
MOMENTUM_STEP = ("conv(4) relu conv(8, s=2) relu gap dense(10) | optimizer=nesterov lr=0.05 "
                 "batch_size=128 schedule=step weight_decay=0.001")


one_torch_thread = _train_helpers.one_torch_thread
digits = _train_helpers.digits


_train = functools.partial(train_on, seed=5)  # text, data, epochs, train_candidate's kwargs


def _assert_same(a: EvalResult, b: EvalResult) -> None:
    assert a.status == b.status == "ok"
    assert a.metrics["val_accuracy"] == b.metrics["val_accuracy"]
    assert a.metrics["loss_curve"] == b.metrics["loss_curve"]
    assert a.state_dict.keys() == b.state_dict.keys()
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_segments_1_3_5_equal_straight_5_with_dropout_and_augmentation(digits: Dataset) -> None:
    straight = _train(DROPOUT_AUGMENT, digits, 5)
    first = _train(DROPOUT_AUGMENT, digits, 5, stop_after=1)
    # progress on the middle segment only: per-epoch scoring must not disturb anything
    middle = _train(DROPOUT_AUGMENT, digits, 5, stop_after=3, resume=first.state,
                    progress=lambda _: None)
    last = _train(DROPOUT_AUGMENT, digits, 5, resume=middle.state)
    _assert_same(straight, last)
    assert straight.state is None and last.state is None  # nothing left to continue
    assert [r.metrics["epochs_run"] for r in (first, middle, last)] == [1, 3, 5]
    assert [r.metrics["epochs_trained"] for r in (first, middle, last)] == [1, 2, 2]
    per_epoch = len(digits.train)  # 1259 images, batch 64: no single-image batch is dropped
    assert [r.metrics["images_seen"] for r in (first, middle, last)] == \
        [per_epoch, 2 * per_epoch, 2 * per_epoch]
    assert straight.metrics["images_seen"] == 5 * per_epoch
    assert all(r.metrics["epochs_planned"] == 5 for r in (first, middle, last))
    assert len(middle.metrics["loss_curve"]) == 3
    assert middle.metrics["loss_curve"] == straight.metrics["loss_curve"][:3]


def test_segments_equal_straight_with_momentum_and_step_schedule(digits: Dataset) -> None:
    straight = _train(MOMENTUM_STEP, digits, 3)
    first = _train(MOMENTUM_STEP, digits, 3, stop_after=1)
    last = _train(MOMENTUM_STEP, digits, 3, resume=first.state)
    _assert_same(straight, last)


def test_snapshot_scores_the_model_it_stopped_with(digits: Dataset) -> None:
    """A rung result is validation after that many epochs of the long schedule: not the same
    as a training whose whole budget was that many epochs."""
    rung = _train(MOMENTUM_STEP, digits, 3, stop_after=1)
    short = _train(MOMENTUM_STEP, digits, 1)
    assert rung.ok and rung.state is not None and rung.state_dict is not None
    assert rung.metrics["val_total"] == len(digits.val)
    assert rung.objectives["error"] == pytest.approx(1 - rung.metrics["val_accuracy"])
    assert not all(torch.equal(rung.state_dict[k], short.state_dict[k])
                   for k in short.state_dict)


def test_state_loads_without_running_code(digits: Dataset) -> None:
    state = _train(MOMENTUM_STEP, digits, 3, stop_after=2).state
    payload = torch.load(io.BytesIO(state), weights_only=True)
    assert payload["epochs_run"] == 2 and payload["epochs_planned"] == 3
    assert payload["device_type"] == "cpu" and isinstance(payload["step"], int)
    assert all(isinstance(t, torch.Tensor) and t.device.type == "cpu"
               for t in payload["model"].values())


def test_bad_states_and_stops_are_one_line_errors(digits: Dataset) -> None:
    first = _train(MOMENTUM_STEP, digits, 3, stop_after=1)
    with pytest.raises(TrainingStateError, match="does not load"):
        _train(MOMENTUM_STEP, digits, 3, resume=first.state[: len(first.state) // 2])
    with pytest.raises(TrainingStateError, match="not one evo wrote"):
        buffer = io.BytesIO()
        torch.save({"weights": torch.zeros(2)}, buffer)
        _train(MOMENTUM_STEP, digits, 3, resume=buffer.getvalue())
    with pytest.raises(TrainingStateError, match="training of 3 epochs, not 4"):
        _train(MOMENTUM_STEP, digits, 4, resume=first.state)
    with pytest.raises(TrainingStateError, match="another network"):
        _train(DROPOUT_AUGMENT.replace("conv(4)", "conv(6)"), digits, 3, resume=first.state)
    with pytest.raises(EvoError, match="above the 1 epoch"):
        _train(MOMENTUM_STEP, digits, 3, stop_after=1, resume=first.state)
    with pytest.raises(EvoError, match="stop_after=0"):
        _train(MOMENTUM_STEP, digits, 3, stop_after=0)


def test_stop_after_past_the_budget_is_the_full_budget(digits: Dataset) -> None:
    """A rung above a candidate's own budget (a recipe with epochs_mult) ends its training."""
    capped = _train(MOMENTUM_STEP + " epochs_mult=0.5", digits, 4, stop_after=3)
    assert capped.ok and capped.state is None and capped.metrics["epochs_run"] == 2
