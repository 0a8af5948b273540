"""Tolerances derived from the precision a runtime executed in, as pure functions.

OpenVINO's CPU plugin defaults to bf16 on CPUs with AVX-512 BF16 or AMX and to f32 elsewhere,
so any comparison at the default precision takes its bound from the precision read back. These
tests need no runtime: they pin the bound for f32 and bf16 and check that real rounding to each
type stays inside it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from export.errors import ExportError
from export.evaluate import KERNEL_ATOL, fragile_predictions, logit_tolerance
from export.results import precision_text


def test_f32_bound_is_the_kernel_tolerance_plus_a_few_f32_ulps() -> None:
    assert logit_tolerance(16.0, "f32") == KERNEL_ATOL + 16.0 * 2.0**-21
    assert logit_tolerance(16.0, "fp32") == logit_tolerance(16.0, "f32")
    assert logit_tolerance(0.0, "f32") == KERNEL_ATOL


def test_bf16_bound_is_eight_units_of_its_last_place() -> None:
    # bf16 keeps 8 significant bits: one unit of the last place of 16 is 2**-8 * 16.
    assert logit_tolerance(16.0, "bf16") == KERNEL_ATOL + 16.0 * 2.0**-5
    assert logit_tolerance(-16.0, "bf16") == logit_tolerance(16.0, "bf16")
    # The logit difference seen on a CPU with native bf16 (0.0296 on logits near 14.5).
    assert 0.0296 < logit_tolerance(14.5, "bf16") < 1.0


def test_the_coarsest_precision_decides() -> None:
    fp16 = logit_tolerance(10.0, "fp16")
    assert logit_tolerance(10.0, "fp32", "f32") < fp16 < logit_tolerance(10.0, "fp16", "bf16")
    assert logit_tolerance(10.0, "fp16", "bf16") == logit_tolerance(10.0, "bf16")
    assert logit_tolerance(10.0, "fp16", None) == fp16  # onnxruntime reports none
    assert logit_tolerance(10.0, "fp32", "-") == logit_tolerance(10.0, "f32")


def test_int8_has_no_logit_bound() -> None:
    assert logit_tolerance(10.0, "fp32", "int8+bf16") is None
    assert logit_tolerance(10.0, "int8") is None


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ExportError, match="unknown precision 'f64'"):
        logit_tolerance(1.0, "f64")


_LOGITS = arrays(
    np.float32,
    st.tuples(st.integers(1, 8), st.integers(2, 12)),
    elements=st.floats(-64, 64, width=32),
)


@given(_LOGITS)
def test_rounding_to_bf16_stays_inside_the_bf16_bound(logits: np.ndarray) -> None:
    rounded = torch.from_numpy(logits).to(torch.bfloat16).float().numpy()
    assert np.max(np.abs(rounded - logits)) <= logit_tolerance(np.max(np.abs(logits)), "bf16")


@given(_LOGITS)
def test_rounding_to_f16_stays_inside_the_fp16_bound(logits: np.ndarray) -> None:
    rounded = logits.astype(np.float16).astype(np.float32)
    assert np.max(np.abs(rounded - logits)) <= logit_tolerance(np.max(np.abs(logits)), "fp16")


def test_f32_bound_rejects_a_bf16_sized_difference() -> None:
    # The failure on bf16 CPUs: logits near 14 off by 0.03 are far outside the f32 bound.
    assert logit_tolerance(14.5, "f32") < 0.0296


def test_fragile_predictions_are_the_near_ties_for_the_precision() -> None:
    reference = np.array([[16.0, 0.0, 0.0], [8.0, 7.9, 0.0], [5.0, 4.99999, 0.0]])
    # bf16 at scale 16: bound 0.5001, so margins up to 1.0002 may flip.
    assert fragile_predictions(reference, "fp32", "bf16").tolist() == [False, True, True]
    # f32: bound about 1e-4, so only the 1e-5 margin may flip.
    assert fragile_predictions(reference, "fp32", "f32").tolist() == [False, False, True]
    assert fragile_predictions(reference, "int8", "int8+f32").all()


@given(_LOGITS)
def test_bf16_rounding_flips_only_fragile_predictions(logits: np.ndarray) -> None:
    rounded = torch.from_numpy(logits).to(torch.bfloat16).float().numpy()
    flipped = np.argmax(rounded, axis=1) != np.argmax(logits, axis=1)
    assert not np.any(flipped & ~fragile_predictions(logits, "bf16"))


def test_table_shows_stored_then_executed_precision() -> None:
    assert precision_text("fp32", "bf16") == "fp32→bf16"
    assert precision_text("fp32", "f32") == "fp32→fp32"
    assert precision_text("fp16", "f32") == "fp16→fp32"
    assert precision_text("int8", "int8+bf16") == "int8→int8+bf16"
    assert precision_text("fp32", None) == "fp32→-"
