"""NSGA-II selection checked against pymoo 0.6.2 and against the definitions themselves.

pymoo 0.6.2's default sorting already calls moocore, so ranks are compared with pymoo's own
pure-Python fast non-dominated sort (``Dominator``-based), an independent implementation.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pymoo.core.population import Population
from pymoo.core.problem import Problem
from pymoo.operators.survival.rank_and_crowding import RankAndCrowding
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.dominator import Dominator
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from evo.moo.nsga2 import (
    crowded_tournament,
    crowding_distance,
    nondominated_ranks,
    rank_and_crowding,
    survive,
    tournament,
)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def pymoo_ranks(F: np.ndarray) -> np.ndarray:
    _, rank = NonDominatedSorting(dominator=Dominator()).do(F, return_rank=True)
    return np.asarray(rank)


def pymoo_survivors(F: np.ndarray, n: int) -> np.ndarray:
    pop = Population.new("F", F, "index", np.arange(len(F)))
    problem = Problem(n_var=1, n_obj=F.shape[1])
    kept = RankAndCrowding().do(problem, pop, n_survive=n, random_state=np.random.default_rng(0))
    return np.sort(kept.get("index"))


def cut_is_tied(F: np.ndarray, n: int) -> bool:
    """True when the survivors of ``F`` are not unique: equal crowding at the cut of the front."""
    fronts = NonDominatedSorting(dominator=Dominator()).do(F)
    taken = 0
    for front in fronts:
        if taken + len(front) > n:
            cd = np.sort(calc_crowding_distance(F[front]))[::-1]
            room = n - taken
            return bool(cd[room - 1] == cd[room])
        taken += len(front)
    return False


grid_points = st.integers(2, 3).flatmap(
    lambda m: arrays(
        np.float64, st.tuples(st.integers(1, 40), st.just(m)), elements=st.integers(0, 4)
    )
)
continuous_points = st.integers(2, 3).flatmap(
    lambda m: st.integers(3, 60).flatmap(
        lambda n: st.integers(0, 2**32 - 1).map(
            lambda seed: np.random.default_rng(seed).random((n, m))
        )
    )
)


@given(grid_points)
def test_ranks_equal_pymoo_with_ties_and_duplicates(F: np.ndarray) -> None:
    np.testing.assert_array_equal(nondominated_ranks(F), pymoo_ranks(F))


@given(continuous_points)
def test_ranks_equal_pymoo_on_continuous_points(F: np.ndarray) -> None:
    np.testing.assert_array_equal(nondominated_ranks(F), pymoo_ranks(F))


@given(grid_points)
def test_no_member_of_a_front_is_dominated_by_an_equal_or_later_front(F: np.ndarray) -> None:
    ranks = nondominated_ranks(F)
    for i in range(len(F)):
        for j in range(len(F)):
            if ranks[j] >= ranks[i]:
                assert not dominates(F[j], F[i])
            if ranks[i] > 0 and ranks[j] == ranks[i] - 1 and dominates(F[j], F[i]):
                break
        else:
            assert ranks[i] == 0, "a later front's member must be dominated by the previous front"


@given(continuous_points)
def test_crowding_orders_each_front_as_pymoo(F: np.ndarray) -> None:
    ranks = nondominated_ranks(F)
    ours = crowding_distance(F)
    for r in np.unique(ranks):
        front = np.flatnonzero(ranks == r)
        theirs = calc_crowding_distance(F[front]) if len(front) > 2 else np.full(len(front), np.inf)
        np.testing.assert_allclose(ours[front] / F.shape[1], theirs, rtol=1e-12)
        np.testing.assert_array_equal(
            np.argsort(-ours[front], kind="stable"), np.argsort(-theirs, kind="stable")
        )


def test_crowding_follows_deb_on_a_hand_computed_front() -> None:
    F = np.array([[0.0, 4.0], [1.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    # interior gaps: point 1 -> (3-0)/4 + (4-1)/4 = 1.5; point 2 -> (4-1)/4 + (2-0)/4 = 1.25
    np.testing.assert_allclose(crowding_distance(F), [np.inf, 1.5, 1.25, np.inf])


def test_fronts_of_one_or_two_points_are_infinite() -> None:
    F = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    assert np.isinf(crowding_distance(F)).all()


def test_zero_range_objective_contributes_nothing() -> None:
    # the third objective is constant over the front: it adds no gap and names no boundary
    F = np.array([[0.0, 4.0, 7.0], [1.0, 2.0, 7.0], [3.0, 1.0, 7.0], [4.0, 0.0, 7.0]])
    np.testing.assert_allclose(crowding_distance(F), [np.inf, 1.5, 1.25, np.inf])


def test_duplicates_keep_the_value_at_the_lowest_index_and_copies_get_zero() -> None:
    F = np.array([[1.0, 1.0], [0.0, 2.0], [1.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(crowding_distance(F), [2.0, np.inf, 0.0, np.inf, 0.0])
    pair = np.array([[3.0, 3.0], [3.0, 3.0]])
    np.testing.assert_allclose(crowding_distance(pair), [np.inf, 0.0])


def test_ties_in_one_objective_are_ordered_by_the_others() -> None:
    F = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0], [2.0, 1.0, 1.0], [0.0, 5.0, 5.0]])
    expected = crowding_distance(F)
    for perm in ([1, 0, 2, 3], [3, 2, 1, 0], [2, 3, 0, 1]):
        np.testing.assert_allclose(crowding_distance(F[perm]), expected[perm])


@given(grid_points, st.randoms(use_true_random=False))
def test_crowding_multiset_does_not_depend_on_row_order(F: np.ndarray, random) -> None:
    perm = np.array(random.sample(range(len(F)), len(F)))
    np.testing.assert_allclose(np.sort(crowding_distance(F[perm])), np.sort(crowding_distance(F)))


@given(continuous_points, st.data())
def test_survivors_equal_pymoo_where_the_cut_is_untied(F: np.ndarray, data) -> None:
    n = data.draw(st.integers(1, len(F)))
    kept = survive(F, n, np.random.default_rng(0))
    assert len(kept) == n == len(np.unique(kept))
    if not cut_is_tied(F, n):
        np.testing.assert_array_equal(kept, pymoo_survivors(F, n))


def test_survivors_equal_pymoo_on_a_large_population() -> None:
    F = np.random.default_rng(7).random((400, 3))
    np.testing.assert_array_equal(
        survive(F, 200, np.random.default_rng(1)), pymoo_survivors(F, 200)
    )


@given(grid_points, st.data())
def test_survival_keeps_whole_better_fronts(F: np.ndarray, data) -> None:
    n = data.draw(st.integers(0, len(F)))
    kept = survive(F, n, np.random.default_rng(3))
    ranks = nondominated_ranks(F)
    if n and n < len(F):
        worst_kept = ranks[kept].max()
        assert set(np.flatnonzero(ranks < worst_kept)) <= set(kept)


@given(grid_points, st.integers(0, 2**32 - 1), st.data())
def test_survival_is_deterministic_for_a_given_rng(F: np.ndarray, seed: int, data) -> None:
    n = data.draw(st.integers(0, len(F)))
    violation = data.draw(arrays(np.float64, len(F), elements=st.sampled_from([0.0, 0.5, 2.0])))
    first = survive(F, n, np.random.default_rng(seed), violation)
    second = survive(F, n, np.random.default_rng(seed), violation)
    np.testing.assert_array_equal(first, second)


def test_ties_at_the_cut_are_broken_by_the_rng() -> None:
    # two infinite extremes and room for one: only the rng can choose
    extremes = np.array([[0.0, 1.0], [1.0, 0.0]])
    picks = {int(survive(extremes, 1, np.random.default_rng(seed))[0]) for seed in range(20)}
    assert picks == {0, 1}


@given(grid_points, st.data())
def test_feasible_always_outranks_infeasible(F: np.ndarray, data) -> None:
    violation = data.draw(
        arrays(np.float64, len(F), elements=st.sampled_from([0.0, 0.0, 0.1, 1.0, np.inf]))
    )
    ranks, crowding = rank_and_crowding(F, violation)
    feasible = violation == 0
    if feasible.any() and (~feasible).any():
        assert ranks[feasible].max() < ranks[~feasible].min()
    assert (crowding[~feasible] == 0).all()
    n = data.draw(st.integers(0, len(F)))
    kept = survive(F, n, np.random.default_rng(0), violation)
    if n <= feasible.sum():
        assert feasible[kept].all()
    else:
        assert set(np.flatnonzero(feasible)) <= set(kept)


def test_infeasible_points_rank_by_violation_and_their_objectives_are_ignored() -> None:
    F = np.array([[0.0, 0.0], [np.nan, np.nan], [5.0, 5.0], [np.nan, 1.0], [1.0, 2.0]])
    violation = np.array([3.0, 0.5, 0.0, 0.5, 0.0])
    ranks, _ = rank_and_crowding(F, violation)
    np.testing.assert_array_equal(ranks, [3, 2, 1, 2, 0])
    all_bad, _ = rank_and_crowding(F[:2], [2.0, 1.0])
    np.testing.assert_array_equal(all_bad, [1, 0])


def test_tournament_prefers_rank_then_crowding_and_never_picks_the_unique_worst() -> None:
    F = np.array([[0.0, 3.0], [1.0, 1.0], [3.0, 0.0], [2.0, 2.0], [4.0, 4.0]])
    winners = tournament(F, None, 500, np.random.default_rng(5))
    assert 4 not in winners
    # a feasible point beats an infeasible one whatever its objectives
    duel = tournament(np.array([[9.0, 9.0], [0.0, 0.0]]), [0.0, 1.0], 50, np.random.default_rng(1))
    assert (duel == 0).all()
    # equal rank: larger crowding wins
    duel = crowded_tournament([0, 0], [1.0, 2.0], 20, np.random.default_rng(2))
    assert (duel == 1).all()


def test_tournament_is_deterministic_and_fair_on_full_ties() -> None:
    first = crowded_tournament(np.zeros(10), np.ones(10), 1000, np.random.default_rng(11))
    second = crowded_tournament(np.zeros(10), np.ones(10), 1000, np.random.default_rng(11))
    np.testing.assert_array_equal(first, second)
    counts = np.bincount(first, minlength=10)
    assert counts.min() > 50  # every point wins a fair share of its coin flips
    assert (crowded_tournament([0], [0.0], 3, np.random.default_rng(0)) == 0).all()


def test_bad_input_is_rejected() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="finite"):
        nondominated_ranks(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        crowding_distance(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="violation"):
        survive(np.zeros((2, 2)), 1, rng, violation=[-1.0, 0.0])
    with pytest.raises(ValueError, match="cannot keep"):
        survive(np.zeros((2, 2)), 3, rng)
    assert len(survive(np.zeros((0, 2)), 0, rng)) == 0
