"""The network, data and training that tests/test_export.py and tests/test_litert_export.py
export: sklearn's digits, seeded, and the module-scoped ``digits`` and ``trained`` fixtures.

Kept apart so the test modules hold tests; everything runs on one torch thread. A test module
takes the fixtures by naming them at module level (``digits = _export_helpers.digits``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from export.formats import export_all
from export.request import ExportOptions
from export.results import ExportReport

INPUT_SHAPE = (1, 8, 8)
MEAN, STD = (0.5,), (0.5,)
# Digits pixels are 0..16; the data below is x / 16 normalised with MEAN and STD, so a raw
# u8 frame is divided by 16 inside an IR with embedded preprocessing.
PIXEL_SCALE = 16.0
CLASS_NAMES = tuple(str(digit) for digit in range(10))
SOURCE = {"run": "runs/digits-test", "member": 7, "weights": "retrained"}


# The reference network of issue 8: a plain conv/pool/dense member of grammars/cnn_topology.bnf
# (two 3x3 convolutions with batch norm, max pooling, two hidden dense layers), ~94k parameters
# on 1x8x8 digits. Built by evo's architecture language; the export library itself never
# imports evo.
REFERENCE_PHENOTYPE = (
    "conv(32, k=3) bn relu conv(64, k=3) bn relu maxpool(2) flatten dense(64) relu dense(128) relu "
)


def reference_network(seed: int = 0) -> nn.Sequential:
    from evo.arch import parse_arch, resolve
    from evo.net.model import build_model

    resolved = resolve(parse_arch(REFERENCE_PHENOTYPE), INPUT_SHAPE, len(CLASS_NAMES))
    return build_model(resolved, torch.Generator().manual_seed(seed))


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, gate: nn.Module) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)
        self.gate = gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(torch.relu(self.reduce(self.pool(x)))))


def se_network(gate: nn.Module) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        SqueezeExcite(16, gate),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


def digits_splits() -> dict[str, np.ndarray]:
    """Normalised digits in a seeded 1077/360/360 train/validation/test split."""
    data = load_digits()
    x = ((data.images.astype(np.float32) / PIXEL_SCALE - MEAN[0]) / STD[0])[:, None]
    order = np.random.default_rng(0).permutation(len(x))
    train, val, test = order[:1077], order[1077:1437], order[1437:]
    return {
        "x_train": x[train],
        "y_train": data.target[train],
        "x_val": x[val],
        "y_val": data.target[val],
        "x_test": x[test],
        "y_test": data.target[test],
    }


def train(model: nn.Module, digits: dict[str, np.ndarray], epochs: int = 8) -> nn.Module:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = torch.from_numpy(digits["x_train"]), torch.from_numpy(digits["y_train"])
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits() -> dict[str, np.ndarray]:
    """The digits splits, made once per test module."""
    return digits_splits()


@pytest.fixture(scope="module")
def trained(digits: dict[str, np.ndarray]) -> nn.Module:
    """The reference network trained on the digits, once per test module."""
    return train(reference_network(), digits)


def export_trained(
    model: nn.Module, digits: dict[str, np.ndarray], out: Path, formats: str
) -> ExportReport:
    """Export ``model`` to ``formats`` as a run's member is exported: calibrated on training
    images, scored on the test split, with the class names, normalisation and source."""
    return export_all(
        model,
        INPUT_SHAPE,
        out,
        formats,
        calibration=digits["x_train"][:300],
        evaluation=(digits["x_test"], digits["y_test"]),
        class_names=CLASS_NAMES,
        mean=MEAN,
        std=STD,
        source=SOURCE,
        options=ExportOptions(threads=1),
    )
