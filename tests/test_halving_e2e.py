"""``evo search --fidelity halving`` with real training on digits (seconds): rung results,
stopped candidates and their states in the run folder, a promoted candidate bit-equal to one
trained straight to the budget, and the early abort of a network built to diverge."""

from __future__ import annotations

import io

import pytest
import torch

from evo.config import SearchConfig
from evo.nas.problem import TrainingProblem
from evo.run.status import Status
from evo.run.store import RunStore
from evo.search.contract import Job, derive_seed
from tests._runs_helpers import cli

torch.set_num_threads(1)


@pytest.mark.slow
def test_a_tiny_halving_search_on_digits_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, out, err = cli(capsys, "search", "--fidelity", "halving", "--grammar", "cnn_topology",
                         "--population", "4", "--generations", "0", "--epochs", "3",
                         "--seed", "5", "--no-export", "--no-bench", "--run-dir", str(run_dir))
    assert code == 0, err
    store = RunStore.open(run_dir, write=False)
    try:
        config = SearchConfig.from_dict(store.meta("config"))
        evaluations = store.evaluations()
        rungs = store.rung_results()
        promoted = [(store.individual(ev.individual_id), ev) for ev in evaluations.values()
                    if ev.status == Status.OK]
    finally:
        store.close(checkpoint=False)
    assert {r for _k, r in rungs} == {0, 1}  # rungs at 1 and 3 epochs
    stopped = [ev for ev in evaluations.values() if ev.status == Status.STOPPED]
    assert stopped and promoted and "stopped" in out
    for ev in stopped:  # not promoted: each can continue from its state in a later generation
        if not ev.reason.startswith("not promoted"):
            assert ev.reason.startswith("no better than chance")  # --early-abort: for good
            continue
        state = run_dir / "states" / f"{ev.key[:24]}-e{ev.metrics['rung_epochs']}.pt"
        assert state.is_file() and ev.weights is None
    # A promoted candidate, continued from its 1-epoch state to 3 epochs, equals the same
    # network trained straight to 3 epochs, bit for bit.
    problem = TrainingProblem(config, run_dir)
    evaluator = problem.evaluator()
    ind, ev = promoted[0]
    key, text = problem.candidate(ind.phenotype or "")
    assert key == ev.key
    straight = evaluator(Job(ind.id, key, text, derive_seed(config.seed, key)))
    assert straight.objectives == ev.objectives
    assert straight.metrics["loss_curve"] == ev.metrics["loss_curve"]
    stored = torch.load(run_dir / ev.weights, weights_only=True)["state_dict"]
    fresh = torch.load(io.BytesIO(straight.files[ev.weights]), weights_only=True)["state_dict"]
    assert stored.keys() == fresh.keys()
    assert all(torch.equal(stored[name], fresh[name]) for name in stored)


@pytest.mark.slow
def test_early_abort_stops_a_network_built_to_diverge(tmp_path):
    config = SearchConfig(epochs=2, fidelity="halving", export=(), bench=())
    problem = TrainingProblem(config, tmp_path)
    evaluator = problem.evaluator()
    # Adam at the largest rate drives two ReLU layers dead within the first epoch.
    text = "conv(16, k=3) relu conv(16, k=3) relu gap | optimizer=adam lr=1"
    described = problem.candidate(text)
    assert not isinstance(described, str)
    key, text = described
    result = evaluator(Job(1, key, text, derive_seed(0, key), epochs=1))
    assert result.status == Status.STOPPED
    assert result.reason.startswith("no better than chance")
    assert "state" not in result.metrics and not result.files  # nothing to continue from
    # Early abort is part of the evaluation key: off, the same network is another evaluation.
    off = TrainingProblem(config.replace(early_abort="off"), tmp_path)
    assert off.candidate(text)[0] != key
    assert "early_abort" not in off.describe() and problem.describe()["early_abort"] is True
