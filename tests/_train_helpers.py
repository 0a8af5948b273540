"""What the training tests share: one torch thread, sklearn's digits, and one call that
resolves a phenotype for the data and trains it on the CPU.

A test module takes the fixtures by naming them at module level
(``digits = _train_helpers.digits``); each module still gets its own module-scoped copy.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from evo.arch import ResolvedArch, parse_arch, resolve
from evo.data.dataset import Dataset, load_dataset
from evo.net.train import EvalResult, TrainBudget, train_candidate


@pytest.fixture(autouse=True)
def one_torch_thread() -> None:
    """Two cores are shared by the whole suite: every test trains with one thread."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """sklearn's digits, loaded once per test module."""
    return load_dataset("digits")


def resolved_on(text: str, data: Dataset) -> ResolvedArch:
    """``text`` resolved for ``data``'s input shape and class count."""
    return resolve(parse_arch(text), data.input_shape, data.num_classes)


def train_on(text: str, data: Dataset, epochs: int = 3, *, seed: int = 0,
             **kwargs: Any) -> EvalResult:
    """Train ``text`` on ``data`` on the CPU for ``epochs`` (``kwargs`` go to train_candidate)."""
    return train_candidate(resolved_on(text, data), data, TrainBudget(epochs=epochs),
                           device="cpu", seed=seed, **kwargs)
