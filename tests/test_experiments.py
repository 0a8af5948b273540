"""benchmarks/experiments: the parts that run without a GPU or a long search.

The CIFAR-10 npz builder is what the GPU machine depends on (it sees only the npz built here),
so it is checked on a small zip of real JPEGs: uint8 arrays, labels per class folder, a file
evo's own loader accepts. The Optuna space must write architecture text that evo parses and
resolves, including its largest network (4 blocks of 3 convolutions, flatten, 2 dense layers).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "benchmarks" / "experiments"


@pytest.fixture(autouse=True)
def _experiments_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXPERIMENTS))


def _jpeg_zip(path: Path, classes: list[str], per_class: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for split in ("train", "test"):
            for name in classes:
                for i in range(per_class):
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
                    archive.writestr(f"{split}/{name}/{i:04d}.jpg", buffer.getvalue())


def test_cifar_npz_builder_writes_a_subset_evo_loads(tmp_path: Path) -> None:
    import cifar10_gpu

    from evo.data.dataset import load_dataset

    source = tmp_path / "images.zip"
    _jpeg_zip(source, ["cat", "dog", "ship"], per_class=12)
    npz = cifar10_gpu.build_npz(source, tmp_path / "subset.npz", train_per_class=10,
                                test_per_class=2, seed=0)
    with np.load(npz) as data:
        assert data["x"].shape == (30, 32, 32, 3) and data["x"].dtype == np.uint8
        assert data["x_test"].shape == (6, 32, 32, 3)
        assert sorted(np.bincount(data["y"]).tolist()) == [10, 10, 10]
        assert list(data["class_names"]) == ["cat", "dog", "ship"]
    dataset = load_dataset(str(npz), None, 0)
    assert dataset.input_shape == (3, 32, 32) and dataset.num_classes == 3
    assert len(dataset.test) == 6


def test_optuna_space_writes_text_evo_resolves() -> None:
    optuna = pytest.importorskip("optuna", reason="Optuna is a bench extra: .[bench]")
    import optuna_baseline

    from evo.arch import parse_arch, resolve

    largest = {"blocks": 4, "head": "flatten", "dense": 2, "d0_units": 128, "d1_units": 128}
    for b in range(4):
        largest |= {f"b{b}_convs": 3, f"b{b}_pool": "none"}
        largest |= {f"b{b}c{c}_filters": 64 for c in range(3)}
        largest |= {f"b{b}c{c}_kernel": 7 for c in range(3)}
    text = optuna_baseline.architecture(optuna.trial.FixedTrial(largest))
    assert text.count("conv(64, k=7)") == 12 and "flatten dense(128) relu dense(128)" in text
    resolved = resolve(parse_arch(text), (1, 8, 8), 10)
    assert resolved.canonical_text()
    smallest = {"blocks": 1, "b0_convs": 1, "b0c0_filters": 8, "b0c0_kernel": 1,
                "b0_pool": "max", "head": "gap", "dense": 0}
    text = optuna_baseline.architecture(optuna.trial.FixedTrial(smallest))
    assert text == "conv(8, k=1) bn relu maxpool(2) gap "
    resolve(parse_arch(text), (1, 8, 8), 10)
