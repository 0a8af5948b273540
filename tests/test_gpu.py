"""The GPU path of training, and the scripts of the GPU check.

Tests marked ``gpu`` need a CUDA device and are skipped without one (benchmarks/gpu_check.sh
runs them on a GPU machine, which has PyTorch and numpy but not moocore, OpenVINO or Ray: so
this module imports nothing else of note, and gpu_check.sh runs it with ``--noconftest``). They
check what makes small networks fast there: bf16 autocast and channels_last in the real training
loop, the dataset resident on the GPU, fused optimizers, and no host-device synchronisation per
training step. The other tests run the check's scripts on the CPU.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

from evo.arch import parse_arch, resolve
from evo.data.dataset import Dataset, from_arrays, load_dataset
from evo.net.budget import TrainBudget
from evo.net.device import autocast, to_device
from evo.net.model import build_model
from evo.net.recipe import make_optimizer
from evo.net.train import EvalResult, train_candidate

ROOT = Path(__file__).resolve().parent.parent
CIFAR_ZIP = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.zip"
NET = ("conv(16, k=3) bn relu ir(16, e=2, s=2, se=on) ir(24, e=4, s=2) gap dropout(0.1) "
       "dense(10) | optimizer=momentum lr=0.05 batch_size=64 augment=on")
CUDA = torch.device("cuda", 0)
SYNC_WARNING = "synchronizing CUDA operation"


def on_gpu(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test ``gpu`` and skip it, with the reason, where PyTorch sees no CUDA device."""
    skip = pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason=f"no CUDA device (PyTorch {torch.__version__}): runs on a GPU machine, "
               "see benchmarks/gpu_check.sh")
    return pytest.mark.gpu(skip(test))


def _module(name: str) -> ModuleType:
    """A script of benchmarks/, imported as a module."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _cifar_like(count: int, seed: int) -> Dataset:
    """Learnable CIFAR-shaped data (class colour patterns plus noise), split and normalised."""
    rng = np.random.default_rng(seed)
    patterns = rng.uniform(0, 255, (10, 4, 4, 3)).repeat(8, axis=1).repeat(8, axis=2)
    y = np.arange(count) % 10
    x = np.clip(patterns[y] + rng.normal(0, 60, (count, 32, 32, 3)), 0, 255).astype(np.uint8)
    return from_arrays(x, y, x_test=x[:50], y_test=y[:50], name=f"cifar-like-{count}",
                       seed=0, hflip=True)


def _train(dataset: Dataset, epochs: int = 1) -> EvalResult:
    resolved = resolve(parse_arch(NET), dataset.input_shape, dataset.num_classes)
    result = train_candidate(resolved, dataset, TrainBudget(epochs=epochs), device="cuda:0",
                             threads=1, seed=0)
    assert result.ok, result.reason
    return result


# --------------------------------------------------------------------------------- on a GPU


@on_gpu
def test_cuda_training_runs_bf16_channels_last_on_resident_data() -> None:
    """Every convolution of the training loop sees a channels_last input on the GPU and,
    under autocast, computes in bf16; the dataset is uploaded once and kept there."""
    dataset = _cifar_like(710, seed=1)
    calls: list[tuple[bool, str, bool, bool, torch.dtype]] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
               ) -> None:
        if isinstance(module, nn.Conv2d):
            x = inputs[0]
            calls.append((module.training, x.device.type,
                          x.is_contiguous(memory_format=torch.channels_last),
                          module.weight.is_contiguous(memory_format=torch.channels_last),
                          output.dtype))

    handle = nn.modules.module.register_module_forward_hook(record)
    try:
        result = _train(dataset)
    finally:
        handle.remove()
    training = [c for c in calls if c[0]]
    assert len(training) >= 10 * 3  # 10 steps of a 3-block network at least
    assert {c[1] for c in training} == {"cuda"}
    assert all(c[2] and c[3] for c in training), "a convolution ran outside channels_last"
    assert {c[4] for c in training} == {torch.bfloat16}
    assert result.metrics["device"] == "cuda:0" and result.metrics["memory_format"] == \
        "channels_last"
    x_first, y_first = to_device(dataset.train.x, dataset.train.y, CUDA)
    x_again, _ = to_device(dataset.train.x, dataset.train.y, CUDA)
    assert x_again is x_first and x_first.is_cuda and y_first.is_cuda


@on_gpu
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop"])
def test_optimizers_on_cuda_are_fused_or_multi_tensor(name: str) -> None:
    resolved = resolve(parse_arch(NET), (3, 32, 32), 10)
    model = build_model(resolved, torch.Generator().manual_seed(0)).to(
        CUDA, memory_format=torch.channels_last)
    recipe = dataclasses.replace(resolved.recipe, optimizer=name, lr=0.01)
    optimizer = make_optimizer(model, recipe, CUDA)
    if name == "rmsprop":  # no fused RMSprop in PyTorch: one multi-tensor kernel per step part
        assert optimizer.defaults["foreach"] is True
    else:
        assert optimizer.defaults["fused"] is True
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.randn((8, 3, 32, 32), device=CUDA).contiguous(memory_format=torch.channels_last)
    with autocast(CUDA):
        loss = nn.functional.cross_entropy(model(x).float(), torch.arange(8, device=CUDA))
    loss.backward()
    optimizer.step()
    after = list(model.parameters())
    assert all(bool(torch.isfinite(p).all()) for p in after)
    assert sum(not torch.equal(a, b) for a, b in zip(after, before, strict=True)) > len(after) // 2


def _syncs_during(action: Callable[[], object]) -> int:
    """Host-device synchronisations PyTorch reports while ``action`` runs (a synchronous
    upload of pageable memory counts too)."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            action()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum(SYNC_WARNING in str(w.message) for w in caught)


@on_gpu
def test_no_host_device_sync_per_training_step() -> None:
    """Four times the steps, the same synchronisations: the step loop never waits for the GPU
    (the syncs left are per training: uploads, the epoch's mean loss, scoring, the weights)."""
    few, many = _cifar_like(710, seed=2), _cifar_like(2840, seed=3)
    assert len(few.train) == 640 and len(many.train) == 2560  # 10 and 40 steps of 64, no rest
    _train(_cifar_like(1070, seed=4))  # one-off initialisation out of the way
    syncs_few = _syncs_during(lambda: _train(few, epochs=2))
    syncs_many = _syncs_during(lambda: _train(many, epochs=2))
    assert syncs_few > 0, "the sync counter saw nothing (the epoch's loss.item() is one)"
    assert syncs_many == syncs_few, (
        f"{syncs_many - syncs_few} more host-device syncs for 60 more training steps")


# --------------------------------------------------------------------------------- on the CPU


@pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"{CIFAR_ZIP} is not here")
def test_make_cifar_subset_writes_a_balanced_uint8_npz_that_evo_reads(tmp_path: Path) -> None:
    subset = _module("make_cifar_subset")
    out = tmp_path / "subset.npz"
    counts = subset.build_subset(CIFAR_ZIP, out, 10, 1, seed=0, max_bytes=2**20)
    assert counts["train"] == 100 and counts["test"] == 10 and counts["bytes"] < 2**20
    with np.load(out) as arrays:
        assert arrays["x"].dtype == np.uint8 and arrays["x"].shape == (100, 32, 32, 3)
        assert np.bincount(arrays["y"]).tolist() == [10] * 10
        assert arrays["x_test"].shape == (10, 32, 32, 3)
        assert arrays["class_names"].tolist()[:2] == ["airplane", "automobile"]
        first = arrays["x"].copy()
    dataset = load_dataset(str(out), None, 0)
    assert dataset.input_shape == (3, 32, 32) and dataset.num_classes == 10
    assert len(dataset.test) == 10 and dataset.official_test
    again = tmp_path / "again.npz"
    subset.build_subset(CIFAR_ZIP, again, 10, 1, seed=0, max_bytes=2**20)
    with np.load(again) as arrays:
        assert np.array_equal(arrays["x"], first)  # the same draw from the same seed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.npz", "subset.npz"]


def test_make_cifar_subset_bad_input_is_one_line_and_exit_2(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    subset = _module("make_cifar_subset")
    code = subset.main(["--zip", str(tmp_path / "missing.zip"), "--out", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("make_cifar_subset: ") and err.count("\n") == 1
    assert "no such file" in err
    if CIFAR_ZIP.is_file():
        code = subset.main(["--zip", str(CIFAR_ZIP), "--out", str(tmp_path / "o.npz"),
                            "--train-per-class", "5", "--max-mib", "0.01"])
        err = capsys.readouterr().err
        assert code == 2 and "limit" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


def test_gpu_utilisation_rows_are_this_gpus() -> None:
    sampling = _module("gpu_sampling")
    sampler = sampling.Utilisation(gpu_uuid="abc-1", gpu_index=1)
    sampler.rows = [(0.0, "0", "GPU-xyz-0", 90.0, 1000.0), (0.0, "1", "GPU-abc-1", 40.0, 500.0),
                    (0.2, "1", "GPU-ABC-1", 60.0, 700.0)]
    assert sampler.mine() == [(40.0, 500.0), (60.0, 700.0)]
    assert sampler.stats() == (50.0, 50.0, 2, 700.0)
    one = sampling.Utilisation(gpu_uuid="other", gpu_index=0)  # no UUID match, one GPU: it
    one.rows = [(0.0, "0", "GPU-xyz-0", 90.0, 1000.0)]
    assert one.stats() == (90.0, 90.0, 1, 1000.0)
    cpu = sampling.Utilisation(gpu_uuid=None, gpu_index=-1)
    cpu.start()
    assert cpu.stats() is None and cpu.why_not() == "not sampled: the device is not a GPU"


def test_gpu_check_sh_rejects_an_unknown_argument() -> None:
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--gpu"], capture_output=True,
                         text=True, cwd=ROOT, timeout=30)
    assert run.returncode == 2
    assert run.stderr.startswith("gpu_check: unknown argument '--gpu'")


# A None in sys.modules is how Python spells "not installed" to both ``import`` and
# ``importlib.util.find_spec`` (PyTorch probes optional packages with the latter).
BLOCKER = """\
import sys

for name in ("moocore", "openvino", "ray", "onnx", "onnxruntime", "sklearn", "PIL"):
    sys.modules[name] = None
"""


@pytest.mark.slow
def test_gpu_check_sh_cpu_miniature_runs_without_the_packages_a_gpu_machine_lacks(
        tmp_path: Path) -> None:
    """The whole script in its CPU miniature, every process (spawned workers included) unable
    to import moocore, OpenVINO, Ray, ONNX, scikit-learn or Pillow, as on the GPU machine."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path),
           "OMP_NUM_THREADS": "1"}
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu"], capture_output=True,
                         text=True, cwd=ROOT, timeout=180, env=env)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "no CUDA device" in out  # the gpu tests' skip reason (pytest -ra)
    assert "1/1 networks passed" in out
    table = out[out.index(" K  start s"):]
    rows = [line.split() for line in table.splitlines()[2:4]]
    assert [r[0] for r in rows] == ["1", "2"] and all(r[-1] == "0" for r in rows)
    assert rows[0][1] == "-" and rows[0][4] == "1.00x"  # K=1 ran on K=2's pool
    assert "GPU utilisation not sampled: the device is not a GPU" in table
    summary = out[out.index("=== summary"):].splitlines()[1:]
    assert len(summary) == 3 and all(" passed (" in line for line in summary)
