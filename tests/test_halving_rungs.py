"""Successive halving, the pure rules: the rung schedule, a candidate's epochs at a rung, the
promotion order on synthetic learning curves, and the plan of a generation's rungs from stored
rung results (deterministic whatever order results arrived in)."""

from __future__ import annotations

import random

import pytest

from evo.run.rungs import RungResult
from evo.run.status import Status
from evo.search.contract import Job
from evo.search.rungs import Entry, plan, quota, ranked, scaled_epochs, schedule
from evo.search.synthetic import CurveEvaluator, CurveProblem


@pytest.mark.parametrize(("min_epochs", "eta", "epochs", "rungs"), [
    (1, 3, 5, (1, 3, 5)),       # the example
    (1, 3, 9, (1, 3, 9)),       # a power of eta ends exactly
    (1, 3, 10, (1, 3, 9, 10)),  # the last rung is capped at --epochs
    (2, 2, 10, (2, 4, 8, 10)),
    (1, 2, 1, (1,)),            # one epoch: one rung, full fidelity
    (4, 3, 4, (4,)),
    (6, 3, 4, (4,)),            # a first rung beyond the budget is the budget
])
def test_the_schedule_is_min_epochs_times_eta_powers_capped_at_epochs(min_epochs, eta, epochs,
                                                                      rungs):
    assert schedule(min_epochs, eta, epochs) == rungs


def test_a_candidates_epochs_at_a_rung_follow_its_recipe_multiplier():
    # --epochs 5, rungs 1, 3, 5; a recipe multiplier of 2 gives a full budget of 10 epochs.
    assert [scaled_epochs(r, 5, 5) for r in (1, 3, None)] == [1, 3, 5]
    assert [scaled_epochs(r, 10, 5) for r in (1, 3, None)] == [2, 6, 10]
    assert [scaled_epochs(r, 2, 5) for r in (1, 3, None)] == [1, 1, 2]  # never below 1
    assert scaled_epochs(5, 7, 5) == 7  # a rung at --epochs is the candidate's whole budget


def test_promotion_order_is_rank_then_crowding_then_member_id():
    entries = [
        Entry("d", 4, True, {"error": 0.4, "params": 2000.0}),   # dominated by a: rank 1
        Entry("b", 2, True, {"error": 0.2, "params": 500.0}),    # front, inside: finite crowding
        Entry("c", 3, True, {"error": 0.3, "params": 100.0}),    # front boundary
        Entry("a", 1, True, {"error": 0.1, "params": 1000.0}),   # front boundary
        Entry("x", 0, False, {"error": 0.0, "params": 10.0}),    # failed: never continues
    ]
    assert ranked(entries, ("error", "params")) == ["a", "c", "b", "d"]
    assert [quota(n, 3) for n in (1, 2, 3, 4, 9, 10)] == [1, 1, 1, 2, 3, 4]
    # An objective not every ok entry has (a latency, measured only after the last rung) is
    # left out of the ranking rather than guessed.
    partial = [Entry("p", 1, True, {"error": 0.3, "latency:ort:cpu": 1.0}),
               Entry("q", 2, True, {"error": 0.2})]
    assert ranked(partial, ("error", "latency:ort:cpu")) == ["q", "p"]


def _curves(n: int, epochs: int = 5) -> tuple[CurveEvaluator, list[str]]:
    evaluator = CurveProblem(epochs=epochs).evaluator()
    texts = [f"conv( {8 * (i % 4 + 1)} , {3 + 2 * (i % 2)} ) " + "bn " * (i % 5) + f"| bs={i}"
             for i in range(n)]
    return evaluator, texts


def _train(evaluator: CurveEvaluator, text: str, key: str, rung: int, rungs: tuple[int, ...],
           member: int, results: dict) -> RungResult:
    """One rung of a synthetic candidate, continued from its previous rung's state."""
    previous = results.get((key, rung - 1))
    resume = None if previous is None else f'{{"epochs": {previous.epochs}}}'.encode()
    epochs = None if rung == len(rungs) - 1 else rungs[rung]
    out = evaluator(Job(member, key, text, 0, epochs=epochs, resume=resume))
    return RungResult(key, rung, out.metrics["epochs_run"], out.status, out.objectives,
                      out.metrics, out.metrics.get("state"), member)


def test_the_plan_promotes_the_best_third_at_each_barrier_on_learning_curves():
    rungs = schedule(1, 3, 5)
    evaluator, texts = _curves(10)
    participants = [(f"k{i}", i + 1) for i in range(10)]
    text_of = {f"k{i}": texts[i] for i in range(10)}
    results: dict = {}
    seen_rungs = []
    while True:
        current = plan(participants, results, rungs, 3, ("error", "params"))
        if current.done:
            break
        seen_rungs.append((current.rung, len(current.jobs)))
        assert not current.copies  # a full budget of 5 epochs: 1, 3, 5 are all distinct
        for key, rung in current.jobs:
            member = dict(participants)[key]
            results[key, rung] = _train(evaluator, text_of[key], key, rung, rungs, member,
                                        results)
    assert seen_rungs == [(0, 10), (1, 4), (2, 2)]
    # The promoted are the first ceil(n/3) of each rung's order, on that rung's errors.
    entries0 = [Entry(k, m, True, results[k, 0].objectives) for k, m in participants]
    top0 = ranked(entries0, ("error", "params"))[:4]
    assert {k for (k, r) in results if r == 1} == set(top0)
    stopped = [d for d in current.decisions if d.kind == "stopped"]
    final = [d for d in current.decisions if d.kind == "final"]
    assert len(stopped) == 8 and len(final) == 2
    assert {d.key for d in final} == {k for (k, r) in results if r == 2}
    assert all(d.entered == 10 and d.promoted == 4 for d in stopped if d.rung == 0)
    assert sorted(d.place for d in stopped if d.rung == 0) == [5, 6, 7, 8, 9, 10]
    # A promoted candidate's last rung is its full training: the same error as training
    # straight to 5 epochs.
    for d in final:
        straight = evaluator(Job(1, d.key, text_of[d.key], 0))
        assert results[d.key, 2].objectives == straight.objectives
    # The plan depends on the stored rows only, not on the order they arrived in.
    items = list(results.items())
    random.Random(0).shuffle(items)
    again = plan(participants, dict(items), rungs, 3, ("error", "params"))
    assert again.decisions == current.decisions and again.barriers == current.barriers


def test_a_failed_or_stopped_rung_result_is_final_and_never_promoted():
    rungs = (1, 3, 5)
    results = {
        ("a", 0): RungResult("a", 0, 1, Status.OK, {"error": 0.5}, {}, "s/a", 1),
        ("b", 0): RungResult("b", 0, 1, Status.FAILED, {"error": 1.0}, {}, None, 2),
        ("c", 0): RungResult("c", 0, 1, Status.STOPPED, {"error": 0.9}, {}, None, 3),
    }
    current = plan([("a", 1), ("b", 2), ("c", 3)], results, rungs, 3, ("error",))
    assert current.rung == 1 and current.jobs == [("a", 1)]
    assert {(d.key, d.kind) for d in current.decisions} == {("b", "final"), ("c", "final")}


def test_a_rung_with_the_epochs_a_candidate_already_has_is_a_copy_not_a_job():
    # --epochs 5 and a recipe multiplier of 0.4: a full budget of 2 epochs, so rungs 1, 3, 5
    # are 1, 1, 2 of its own epochs: rung 1 needs no training.
    rungs = (1, 3, 5)
    rung0 = RungResult("a", 0, 1, Status.OK, {"error": 0.5}, {"epochs_planned": 2}, "s/a", 1)
    current = plan([("a", 1)], {("a", 0): rung0}, rungs, 3, ("error",))
    assert current.copies == [("a", 1)] and not current.jobs
    rung1 = RungResult("a", 1, 1, Status.OK, {"error": 0.5}, {"epochs_planned": 2}, "s/a", 1)
    current = plan([("a", 1)], {("a", 0): rung0, ("a", 1): rung1}, rungs, 3, ("error",))
    assert current.jobs == [("a", 2)] and not current.copies
