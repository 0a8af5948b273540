"""Training one candidate: results, failures as data, determinism, keys, checkpoints."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from evo.arch import parse_arch, resolve
from evo.arch.memory import estimate_training
from evo.data.dataset import Dataset, load_dataset
from evo.errors import EvoError
from evo.net.checkpoint import load_checkpoint, save_checkpoint
from evo.net.train import (
    TrainBudget,
    augment_batch,
    evaluation_key,
    learning_rate,
    resolve_device,
    train_candidate,
    train_final,
)
from tests import _train_helpers
from tests._train_helpers import resolved_on

SMALL = "conv(8) bn relu conv(16, s=2) bn relu gap dense(10) | optimizer=adam batch_size=32"
EXPLODES = "conv(16) conv(16) conv(16) flatten dense(10) | optimizer=sgd lr=1 schedule=constant"


one_torch_thread = _train_helpers.one_torch_thread
digits = _train_helpers.digits


def test_trains_and_reports(digits: Dataset) -> None:
    resolved = resolved_on(SMALL + " augment=on", digits)
    seen: list[dict] = []
    result = train_candidate(resolved, digits, TrainBudget(epochs=3), device="cpu", seed=3,
                             progress=seen.append)
    assert result.ok and result.status == "ok" and result.reason == ""
    assert set(result.objectives) == {"error", "params", "macs"}
    metrics = result.metrics
    assert metrics["val_total"] == len(digits.val)
    assert metrics["val_accuracy"] == metrics["val_correct"] / metrics["val_total"]
    assert result.objectives["error"] == pytest.approx(1 - metrics["val_accuracy"])
    assert metrics["val_accuracy"] > 0.3  # far better than chance (0.1) after three epochs
    assert metrics["epochs_run"] == 3 and len(metrics["loss_curve"]) == 3
    assert metrics["loss_curve"][-1] < metrics["loss_curve"][0]
    assert metrics["device"] == "cpu" and metrics["threads"] == 1 and metrics["seconds"] > 0
    assert [p["epoch"] for p in seen] == [1, 2, 3]
    assert seen[-1]["val_accuracy"] == metrics["val_accuracy"]
    assert json.loads(json.dumps(result.describe())) == result.describe()
    assert result.state_dict and all(t.device.type == "cpu" for t in result.state_dict.values())
    assert torch.get_num_threads() == 1  # restored


def test_same_key_and_seed_give_bit_identical_weights(digits: Dataset) -> None:
    resolved = resolved_on(SMALL + " augment=on weight_decay=0.001 label_smoothing=0.1", digits)
    budget = TrainBudget(epochs=2)
    # progress on one run only: scoring between epochs must not disturb the weights
    first = train_candidate(resolved, digits, budget, device="cpu", seed=11,
                            progress=lambda _: None)
    second = train_candidate(resolved, digits, budget, device="cpu", seed=11)
    other = train_candidate(resolved, digits, budget, device="cpu", seed=12)
    assert first.metrics["val_accuracy"] == second.metrics["val_accuracy"]
    assert first.metrics["loss_curve"] == second.metrics["loss_curve"]
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert not all(torch.equal(first.state_dict[k], other.state_dict[k])
                   for k in first.state_dict)


def test_nan_loss_is_a_failed_result(digits: Dataset) -> None:
    result = train_candidate(resolved_on(EXPLODES, digits), digits, TrainBudget(epochs=2),
                             device="cpu", seed=0)
    assert result.status == "failed" and not result.ok
    assert result.reason.startswith("training loss became nan in epoch 1")
    assert result.objectives["error"] == 1.0 and result.objectives["params"] > 0
    assert result.state_dict is None


def test_timeout_is_a_failed_result(digits: Dataset) -> None:
    result = train_candidate(resolved_on(SMALL, digits), digits,
                             TrainBudget(epochs=50, max_seconds=0.05), device="cpu", seed=0)
    assert result.status == "failed"
    assert result.reason.startswith("timeout:") and "0.05 s limit" in result.reason
    assert result.metrics["seconds"] < 10
    assert result.metrics["epochs_run"] == len(result.metrics["loss_curve"]) < 50


def test_size_and_memory_budgets_reject_before_training(digits: Dataset) -> None:
    resolved = resolved_on(SMALL, digits)
    too_many = train_candidate(resolved, digits, TrainBudget(epochs=1, max_params=100),
                               device="cpu", seed=0)
    assert too_many.status == "failed" and too_many.reason.startswith("too large:")
    no_memory = train_candidate(resolved, digits, TrainBudget(epochs=1, max_memory_bytes=1000),
                                device="cpu", seed=0)
    assert no_memory.status == "failed" and "too large for memory" in no_memory.reason
    assert no_memory.metrics["epochs_run"] == 0


def test_memory_estimate_grows_with_batch_and_optimizer(digits: Dataset) -> None:
    sgd = resolved_on(SMALL.replace("optimizer=adam", "optimizer=sgd"), digits)
    small = estimate_training(sgd, 16, scoring_batch=1).total
    assert estimate_training(sgd, 64, scoring_batch=1).total > small
    assert estimate_training(resolved_on(SMALL, digits), 16, scoring_batch=1).total > small


def test_train_final_scores_on_test(digits: Dataset) -> None:
    seen: list[dict] = []
    result = train_final(resolved_on(SMALL, digits), digits, TrainBudget(epochs=1), device="cpu",
                         seed=0, progress=seen.append)
    assert result.ok and result.metrics["scored_on"] == "test"
    assert result.metrics["test_total"] == len(digits.test)
    assert "val_accuracy" not in result.metrics and "test_accuracy" in seen[0]


def test_epochs_follow_the_recipe_multiplier(digits: Dataset) -> None:
    resolved = resolved_on(SMALL + " epochs_mult=0.5", digits)
    result = train_candidate(resolved, digits, TrainBudget(epochs=4), device="cpu", seed=0)
    assert result.metrics["epochs_run"] == 2
    assert TrainBudget(epochs=1).epochs_for(0.1) == 1


def test_evaluation_key_names_everything_that_changes_weights(digits: Dataset) -> None:
    resolved = resolved_on(SMALL, digits)
    base = dict(resolved=resolved, dataset_fingerprint=digits.fingerprint,
                budget=TrainBudget(epochs=5), device_type="cpu", threads=1,
                memory_format="channels_last")
    key = evaluation_key(**base)
    assert key == evaluation_key(**base) and len(key) == 64
    variants = [
        {"resolved": resolved_on(SMALL.replace("conv(8)", "conv(9)"), digits)},
        {"resolved": resolved_on(SMALL + " lr=0.02", digits)},
        {"dataset_fingerprint": load_dataset("digits", seed=1).fingerprint},
        {"budget": TrainBudget(epochs=6)},
        {"budget": TrainBudget(epochs=5, max_seconds=60)},
        {"device_type": "cuda"},
        {"threads": 2},
        {"memory_format": "contiguous"},
    ]
    keys = {evaluation_key(**(base | change)) for change in variants}
    assert len(keys) == len(variants) and key not in keys


def test_augment_batch_is_a_crop_of_the_padded_image() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    for hflip in (False, True):
        out = augment_batch(x, 2, hflip, generator)
        assert out.shape == x.shape
        assert out.is_contiguous(memory_format=torch.channels_last)
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
        for i in range(2):
            windows = [padded[i, :, r:r + 5, c:c + 5] for r in range(5) for c in range(5)]
            if hflip:
                windows += [w.flip(2) for w in windows]
            assert any(torch.equal(out[i], w) for w in windows)
    assert torch.equal(augment_batch(x, 0, False, generator), x)


def test_learning_rate_schedules() -> None:
    assert learning_rate(0.1, "constant", 50, 100) == 0.1
    assert learning_rate(0.1, "cosine", 0, 100) == pytest.approx(0.1)
    assert learning_rate(0.1, "cosine", 50, 100) == pytest.approx(0.05)
    assert learning_rate(0.1, "step", 60, 100) == pytest.approx(0.01)
    assert learning_rate(0.1, "step", 80, 100) == pytest.approx(0.001)


def test_user_errors_still_raise(digits: Dataset) -> None:
    with pytest.raises(EvoError, match="unknown device 'tpu0'"):
        resolve_device("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(EvoError, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(EvoError, match="epochs must be a positive integer"):
        TrainBudget(epochs=0)
    other = resolve(parse_arch(SMALL), (3, 8, 8), 10)
    with pytest.raises(EvoError, match="resolve the spec for this dataset"):
        train_candidate(other, digits, TrainBudget(epochs=1), device="cpu", seed=0)


# The named reference phenotype of grammars/cnn_full.bnf and the genome that derives it.
REFERENCE_GENOME = [0, 1, 0, 1, 0, 3, 1, 0, 0, 3, 1, 0, 1, 0, 0, 0, 5, 1, 0, 0, 0, 0, 1, 2, 0,
                    3, 2, 1, 2, 1, 0, 0]
REFERENCE = ("conv(32, k=3) bn relu conv(32, k=3) bn relu maxpool(2) conv(64, k=3) bn relu gap "
             "dense(64) relu | optimizer=adam lr=0.003 batch_size=32 weight_decay=0.0001 "
             "schedule=cosine label_smoothing=0 augment=off")


@pytest.mark.slow
def test_cnn_full_reference_reaches_95_percent_on_digits(digits: Dataset) -> None:
    from evo.ge.grammar import load_grammar
    from evo.ge.mapper import map_genome

    derived = map_genome(load_grammar("cnn_full"), REFERENCE_GENOME)
    assert derived.valid
    assert "".join(derived.phenotype.split()) == "".join(REFERENCE.split())
    result = train_candidate(resolved_on(derived.phenotype, digits), digits, TrainBudget(epochs=5),
                             device="cpu", threads=1, seed=0)
    assert result.ok and result.metrics["val_accuracy"] >= 0.95


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training(digits: Dataset) -> None:
    result = train_candidate(resolved_on(SMALL + " augment=on", digits), digits,
                             TrainBudget(epochs=3), device="cuda", seed=0)
    assert result.ok and result.metrics["device"] == "cuda:0"
    assert result.metrics["val_accuracy"] > 0.3


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip(digits: Dataset, tmp_path: Path) -> None:
    resolved = resolved_on(SMALL, digits)
    result = train_candidate(resolved, digits, TrainBudget(epochs=1), device="cpu", seed=0)
    path = save_checkpoint(tmp_path / "models" / "a.pt", resolved.canonical_text(),
                           digits.input_shape, digits.num_classes, digits.mean, digits.std,
                           digits.class_names, result.state_dict,
                           metadata={"val_accuracy": result.metrics["val_accuracy"]})
    assert [p.name for p in path.parent.iterdir()] == ["a.pt"]  # no temporary left behind
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["arch"] == resolved.canonical_text()
    loaded = load_checkpoint(path)
    assert loaded.resolved.canonical_text() == resolved.canonical_text()
    assert loaded.class_names == digits.class_names and loaded.mean == digits.mean
    assert loaded.metadata == {"val_accuracy": result.metrics["val_accuracy"]}
    for name, tensor in result.state_dict.items():
        assert torch.equal(loaded.state_dict[name], tensor)
    x = torch.from_numpy(digits.val.x)
    with torch.no_grad():
        predictions = loaded.model(x).argmax(1).numpy()
    assert int((predictions == digits.val.y).sum()) == result.metrics["val_correct"]


def test_checkpoint_failures(digits: Dataset, tmp_path: Path) -> None:
    with pytest.raises(EvoError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.mkdir, (marker,))

    evil.write_bytes(pickle.dumps({"format": Evil()}, protocol=2))
    with pytest.raises(EvoError, match="not a readable evo checkpoint"):
        load_checkpoint(evil)
    assert not marker.exists()
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(EvoError, match="not an evo checkpoint"):
        load_checkpoint(other)
    resolved = resolved_on(SMALL, digits)
    wrong = tmp_path / "wrong.pt"
    save_checkpoint(wrong, resolved.canonical_text(), digits.input_shape, digits.num_classes,
                    digits.mean, digits.std, digits.class_names, {"0.weight": torch.zeros(1)})
    with pytest.raises(EvoError, match="weights do not fit"):
        load_checkpoint(wrong)


def test_eval_result_equality_ignores_weights() -> None:
    from evo.net.train import EvalResult

    a = EvalResult("ok", "", {"error": 0.1}, {"val_accuracy": 0.9}, {"w": torch.zeros(1)})
    b = dataclasses.replace(a, state_dict={"w": torch.ones(1)})
    assert a == b and "state_dict" not in repr(a)
    assert np.isclose(a.objectives["error"], 0.1)
