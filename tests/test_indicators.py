"""Indicators on declared scales: normalisation, hypervolume and IGD+ against their definitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from evo.errors import EvoError
from evo.moo.indicators import (
    ObjectiveScale,
    default_scale,
    default_scales,
    hypervolume,
    igd_plus,
    normalise,
    reference_point,
)

UNIT = (ObjectiveScale("a", "linear", 0.0, 1.0), ObjectiveScale("b", "linear", 0.0, 1.0))
unit_points = arrays(
    np.float64,
    st.tuples(st.integers(1, 25), st.just(2)),
    elements=st.floats(0.0, 1.0, allow_nan=False),
)


def staircase_hypervolume(points: np.ndarray) -> float:
    """2-D hypervolume against (1, 1) by sweeping points sorted on the first objective."""
    volume, best_second = 0.0, 1.0
    for x, y in sorted(map(tuple, points)):
        if y < best_second:
            volume += (1.0 - x) * (best_second - y)
            best_second = y
    return volume


def igd_plus_by_definition(points: np.ndarray, reference: np.ndarray) -> float:
    """Mean over reference points of the distance to the nearest point, counting only excess."""
    excess = np.maximum(points[None, :, :] - reference[:, None, :], 0.0)
    return float(np.sqrt((excess**2).sum(axis=2)).min(axis=1).mean())


@pytest.mark.parametrize(
    ("name", "transform", "lower", "upper"),
    [
        ("error", "linear", 0.0, 1.0),
        ("params", "log10", 1e2, 1e8),
        ("macs", "log10", 1e2, 1e8),
        ("onnx_bytes", "log10", 1e2, 1e8),
        ("ir_int8_bytes", "log10", 1e2, 1e8),
        ("latency", "log10", 1e-3, 1e3),
        ("latency_ort_cpu", "log10", 1e-3, 1e3),
    ],
)
def test_default_scales(name: str, transform: str, lower: float, upper: float) -> None:
    assert default_scale(name) == ObjectiveScale(name, transform, lower, upper)


def test_unknown_objective_has_no_default() -> None:
    with pytest.raises(EvoError, match="no default scale"):
        default_scale("accuracy")


@pytest.mark.parametrize(
    ("transform", "lower", "upper", "message"),
    [
        ("cubic", 0.0, 1.0, "unknown transform"),
        ("linear", 1.0, 1.0, "not a range"),
        ("linear", 0.0, math.inf, "not a range"),
        ("log10", 0.0, 10.0, "positive lower bound"),
    ],
)
def test_bad_scales_are_rejected(transform: str, lower: float, upper: float, message: str) -> None:
    with pytest.raises(EvoError, match=message):
        ObjectiveScale("x", transform, lower, upper)


@given(
    st.sampled_from(["error", "params", "macs", "onnx_bytes", "latency_ms"]),
    st.floats(1e-3, 1e3),
    st.floats(1.5, 1e3),
    st.sampled_from(["linear", "log10"]),
)
def test_scales_round_trip_through_plain_dicts_and_json(
    name: str, lower: float, factor: float, transform: str
) -> None:
    scale = ObjectiveScale(name, transform, lower, lower * factor)
    assert ObjectiveScale.from_dict(scale.to_dict()) == scale
    assert ObjectiveScale.from_dict(json.loads(json.dumps(scale.to_dict()))) == scale


def test_from_dict_rejects_missing_unknown_and_bad_values() -> None:
    good = default_scale("error").to_dict()
    with pytest.raises(EvoError, match="missing keys"):
        ObjectiveScale.from_dict({k: v for k, v in good.items() if k != "upper"})
    with pytest.raises(EvoError, match="unknown keys"):
        ObjectiveScale.from_dict({**good, "unit": "ms"})
    with pytest.raises(EvoError, match="numbers"):
        ObjectiveScale.from_dict({**good, "lower": "low"})


def test_normalise_maps_bounds_to_0_and_1_log_midpoints_to_half_and_clips() -> None:
    scales = default_scales(["error", "params", "latency_ms"])
    F = np.array(
        [
            [0.0, 1e2, 1e-3],
            [1.0, 1e8, 1e3],
            [0.25, 1e5, 1.0],
            [-0.5, 0.0, 1e6],  # outside every bound (and 0 params, below the log range)
        ]
    )
    expected = np.array([[0, 0, 0], [1, 1, 1], [0.25, 0.5, 0.5], [0, 0, 1]], dtype=float)
    np.testing.assert_allclose(normalise(F, scales), expected, atol=1e-12)


@given(arrays(np.float64, 20, elements=st.floats(1.0, 1e9)))
def test_normalise_is_monotone_and_bounded(values: np.ndarray) -> None:
    scaled = normalise(values[:, None], [default_scale("params")])[:, 0]
    assert ((scaled >= 0) & (scaled <= 1)).all()
    order = np.argsort(values, kind="stable")
    assert (np.diff(scaled[order]) >= 0).all()


def test_normalise_rejects_wrong_shapes_and_nan() -> None:
    with pytest.raises(ValueError, match="matrix"):
        normalise(np.zeros((3, 3)), UNIT)
    with pytest.raises(ValueError, match="NaN"):
        normalise(np.array([[np.nan, 0.0]]), UNIT)


def test_hypervolume_known_values() -> None:
    assert hypervolume(np.array([[0.5, 0.5]]), UNIT) == pytest.approx(0.25)
    assert hypervolume(np.array([[0.0, 0.0]]), UNIT) == pytest.approx(1.0)
    assert hypervolume(np.array([[2.0, 0.0], [0.5, 7.0]]), UNIT) == 0.0  # beyond the bounds
    assert hypervolume(np.zeros((0, 2)), UNIT) == 0.0
    # a model of 1e5 params (0.5 on the log scale) with error 0.2: (1 - 0.2) * (1 - 0.5)
    scales = default_scales(["error", "params"])
    assert hypervolume(np.array([[0.2, 1e5]]), scales) == pytest.approx(0.4)
    np.testing.assert_array_equal(reference_point(3), [1.0, 1.0, 1.0])


@given(unit_points)
def test_hypervolume_equals_the_staircase_area(points: np.ndarray) -> None:
    assert hypervolume(points, UNIT) == pytest.approx(staircase_hypervolume(points), abs=1e-12)


@given(unit_points, st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)))
def test_adding_a_point_never_lowers_hypervolume(points: np.ndarray, extra) -> None:
    more = np.vstack([points, np.array(extra)[None, :]])
    assert hypervolume(more, UNIT) >= hypervolume(points, UNIT) - 1e-12
    assert 0.0 <= hypervolume(more, UNIT) <= 1.0


@given(unit_points, unit_points)
def test_igd_plus_matches_its_definition(points: np.ndarray, reference: np.ndarray) -> None:
    assert igd_plus(points, reference, UNIT) == pytest.approx(
        igd_plus_by_definition(points, reference), abs=1e-12
    )


def test_igd_plus_is_measured_in_normalised_units() -> None:
    scales = (ObjectiveScale("a", "linear", 0.0, 10.0), ObjectiveScale("b", "linear", 0.0, 10.0))
    front = np.array([[0.0, 10.0], [2.0, 5.0], [5.0, 2.0], [10.0, 0.0]])
    assert igd_plus(front, front, scales) == 0.0
    shifted = front + 1.0  # one unit worse in both objectives, then clipped to the bounds
    expected = igd_plus_by_definition(np.clip(shifted, 0.0, 10.0) / 10.0, front / 10.0)
    assert igd_plus(shifted, front, scales) == pytest.approx(expected)
    assert igd_plus(np.zeros((0, 2)), front, scales) == math.inf
    with pytest.raises(ValueError, match="reference front"):
        igd_plus(front, np.zeros((0, 2)), scales)
