"""NSGA-II selection (Deb et al. 2002) over plain arrays: ranks, crowding, tournament, survival.

Every objective is minimised. Functions take an objective matrix ``F`` of shape
``(n_points, n_objectives)`` (and optionally a total constraint ``violation`` per point) and return
ranks, distances or indices; they know nothing of networks, which is what lets the tests prove them
on textbook problems against pymoo.

Constraint domination (how invalid genomes and failed trainings are ranked): a point with
``violation == 0`` is feasible. Feasible points are sorted into Pareto fronts as usual; every
infeasible point ranks after all of them, ordered by violation alone (lower total violation is a
better rank, equal violation shares a rank). Infeasible points have crowding distance 0 and their
objective values are never read, so they may be NaN.

Determinism: given the same arrays, results never depend on the order of the points except for
which of several identical copies is preferred (the lowest index); randomness only enters through
the ``numpy.random.Generator`` passed in, and only where a true tie must be broken.
"""

from __future__ import annotations

import math

import moocore
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "crowded_tournament",
    "crowding_distance",
    "nondominated_ranks",
    "rank_and_crowding",
    "survive",
    "tournament",
]


def _objectives(F: ArrayLike) -> NDArray[np.float64]:
    """Check the shape and finiteness once, so the numeric code below can trust its input."""
    arr = np.asarray(F, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"objectives must be a 2-D array (points x objectives), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(
            "objective values of feasible points must be finite; "
            "mark failed points infeasible through `violation` instead"
        )
    return arr


def _violation(violation: ArrayLike | None, n_points: int) -> NDArray[np.float64]:
    if violation is None:
        return np.zeros(n_points)
    v = np.asarray(violation, dtype=np.float64)
    if v.shape != (n_points,):
        raise ValueError(f"violation must have shape ({n_points},), got {v.shape}")
    if np.isnan(v).any() or (v < 0).any():
        raise ValueError("violation must be >= 0 (0 = feasible) and not NaN")
    return v


def nondominated_ranks(F: ArrayLike) -> NDArray[np.int64]:
    """Pareto rank of each point, 0 for the first (non-dominated) front.

    Delegates to moocore's ``pareto_rank`` (O(n log n) for two objectives) instead of our own
    O(M N^2) loops. Identical points never dominate each other, so duplicates share a rank.
    """
    arr = _objectives(F)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(moocore.pareto_rank(arr), dtype=np.int64)


def crowding_distance(F: ArrayLike, ranks: ArrayLike | None = None) -> NDArray[np.float64]:
    """Deb's crowding distance of each point, computed within its own front.

    Points are grouped by ``ranks`` (default: their non-dominated ranks; pass zeros to treat the
    whole of ``F`` as one front). Within a front, for each objective the points are sorted, the two
    boundary points get an infinite distance and every other point adds the gap between its two
    neighbours divided by that objective's range within the front; an objective whose range is
    zero contributes nothing (not even to its boundary points, which are then undefined). Fronts
    of one or two points are all infinite. The sum is not divided by the number of objectives
    (pymoo divides; the order is the same).

    Ties and duplicates, the deterministic rule:

    - identical objective vectors in one front are counted once: the copy with the lowest index
      gets the distance of that vector, every other copy gets 0, so copies are the first to go at
      a cut and a front of two identical points is one point (infinite) plus a copy (0);
    - points tied in one objective are ordered by the remaining objectives, lexicographically in
      column order, so reordering the rows reorders the result and changes nothing else (apart
      from which copy of a duplicate carries the value).
    """
    arr = _objectives(F)
    n_points, n_obj = arr.shape
    rk = nondominated_ranks(arr) if ranks is None else np.asarray(ranks, dtype=np.int64)
    if rk.shape != (n_points,):
        raise ValueError(f"ranks must have shape ({n_points},), got {rk.shape}")
    out = np.zeros(n_points)
    if n_points == 0:
        return out

    keyed = np.column_stack([rk.astype(np.float64), arr])
    unique, first = np.unique(keyed, axis=0, return_index=True)
    u_rank = unique[:, 0].astype(np.int64)
    u_obj = unique[:, 1:]
    dist = np.zeros(len(unique))
    for j in range(n_obj):
        others = [u_obj[:, k] for k in reversed(range(n_obj)) if k != j]
        order = np.lexsort([*others, u_obj[:, j], u_rank])
        values = u_obj[order, j]
        sorted_rank = u_rank[order]
        is_start = np.r_[True, sorted_rank[1:] != sorted_rank[:-1]]
        is_end = np.r_[sorted_rank[1:] != sorted_rank[:-1], True]
        segment = np.cumsum(is_start) - 1
        starts = np.flatnonzero(is_start)
        ends = np.flatnonzero(is_end)
        span = values[ends] - values[starts]
        span_of = span[segment]
        prev_value = np.r_[values[:1], values[:-1]]
        next_value = np.r_[values[1:], values[-1:]]
        with np.errstate(divide="ignore", invalid="ignore"):
            gap = np.where(span_of > 0, (next_value - prev_value) / span_of, 0.0)
        boundary = (is_start | is_end) & (span_of > 0)
        gap[boundary] = np.inf
        dist[order] += gap
    front_size = np.bincount(u_rank - u_rank.min())[u_rank - u_rank.min()]
    dist[front_size <= 2] = np.inf
    out[first] = dist
    return out


def rank_and_crowding(
    F: ArrayLike, violation: ArrayLike | None = None
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Rank and crowding distance of every point under constraint domination.

    The search stores both per generation and feeds them to :func:`crowded_tournament`. Feasible
    points get their Pareto rank and crowding distance; infeasible points get the ranks after the
    last feasible front, one rank per distinct violation level in ascending order, and crowding
    0. With no feasible point, the lowest violation is rank 0.
    """
    raw = np.asarray(F, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] < 1:
        raise ValueError(f"objectives must be a 2-D array (points x objectives), got {raw.shape}")
    n_points = raw.shape[0]
    v = _violation(violation, n_points)
    feasible = v == 0
    ranks = np.zeros(n_points, dtype=np.int64)
    crowding = np.zeros(n_points)
    offset = 0
    if feasible.any():
        feasible_f = _objectives(raw[feasible])
        feasible_ranks = nondominated_ranks(feasible_f)
        ranks[feasible] = feasible_ranks
        crowding[feasible] = crowding_distance(feasible_f, feasible_ranks)
        offset = int(feasible_ranks.max()) + 1
    if (~feasible).any():
        _, level = np.unique(v[~feasible], return_inverse=True)
        ranks[~feasible] = offset + level.reshape(-1)
    return ranks, crowding


def survive(
    F: ArrayLike, n: int, rng: np.random.Generator, violation: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Indices (ascending) of the ``n`` points kept by elitist (mu + lambda) NSGA-II survival.

    Whole fronts are kept in rank order (see :func:`rank_and_crowding` for how infeasible points
    rank); the front that does not fit is cut by descending crowding distance. Points whose
    crowding equals the value at the cut are chosen uniformly at random with ``rng``, which is
    drawn from only when such a tie exists, so the same arrays and generator state always give the
    same survivors.
    """
    ranks, crowding = rank_and_crowding(F, violation)
    total = len(ranks)
    if not 0 <= n <= total:
        raise ValueError(f"cannot keep {n} of {total} points")
    if n == total:
        return np.arange(total, dtype=np.int64)
    per_rank = np.bincount(ranks)
    cut_rank = int(np.searchsorted(np.cumsum(per_rank), n, side="left"))
    kept = np.flatnonzero(ranks < cut_rank)
    room = n - len(kept)
    if room == 0:
        return kept
    front = np.flatnonzero(ranks == cut_rank)
    front_crowding = crowding[front]
    threshold = np.sort(front_crowding)[::-1][room - 1]
    above = front[front_crowding > threshold]
    tied = front[front_crowding == threshold]
    need = room - len(above)
    chosen = tied if len(tied) == need else rng.choice(tied, size=need, replace=False)
    return np.sort(np.concatenate([kept, above, chosen])).astype(np.int64)


def crowded_tournament(
    ranks: ArrayLike, crowding: ArrayLike, n: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Indices of ``n`` winners of binary tournaments under Deb's crowded comparison.

    Lower rank wins, then larger crowding distance, then a fair coin. Pairs are consecutive
    entries of fresh random permutations (as in Deb's reference code), so every point enters about
    the same number of tournaments and never meets itself; a lone point wins every tournament.
    """
    rk = np.asarray(ranks, dtype=np.int64)
    cd = np.asarray(crowding, dtype=np.float64)
    if rk.ndim != 1 or rk.shape != cd.shape:
        raise ValueError("ranks and crowding must be 1-D arrays of the same length")
    if n < 0 or (n > 0 and len(rk) == 0):
        raise ValueError(f"cannot hold {n} tournaments among {len(rk)} points")
    if n == 0 or len(rk) == 1:
        return np.zeros(n, dtype=np.int64)
    pairs_per_permutation = len(rk) // 2
    usable = 2 * pairs_per_permutation
    permutations = math.ceil(n / pairs_per_permutation)
    entrants = np.concatenate([rng.permutation(len(rk))[:usable] for _ in range(permutations)])
    a, b = entrants[0 : 2 * n : 2], entrants[1 : 2 * n : 2]
    coin = rng.random(n) < 0.5
    a_better = (rk[a] < rk[b]) | ((rk[a] == rk[b]) & (cd[a] > cd[b]))
    tie = (rk[a] == rk[b]) & (cd[a] == cd[b])
    return np.where(a_better | (tie & coin), a, b).astype(np.int64)


def tournament(
    F: ArrayLike, violation: ArrayLike | None, n: int, rng: np.random.Generator
) -> NDArray[np.int64]:
    """Indices of ``n`` parents chosen by binary crowded tournament under constraint domination."""
    ranks, crowding = rank_and_crowding(F, violation)
    return crowded_tournament(ranks, crowding, n, rng)
