"""Model building, parameter and MAC counts, standalone source, ``evo arch show``, GPU check."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from evo.arch import parse_arch, resolve
from evo.cli.app import main
from evo.net.model import (
    InvertedResidualBlock,
    LayerRow,
    build_model,
    count_macs,
    count_params,
    layer_table,
)
from evo.net.torch_source import torch_source
from tests.test_arch import specs

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
EVERY_KIND = (
    "conv(16, k=5, s=2, p=valid) bn relu conv(8, k=2, p=3) relu6 maxpool(3, s=1) "
    "dwsep(24, k=5, act=hardswish) ir(24, e=1) ir(24, e=4, k=7, s=2, se=on, act=hardswish, n=2) "
    "ir(32, e=2.5, se=on, act=leakyrelu) leakyrelu(0.2) avgpool(2) gap dropout(0.3) dense(32) "
    "bn hardswish dense(10)"
)


def _resolved(text: str, shape=(1, 8, 8), classes: int = 10):
    return resolve(parse_arch(text), shape, classes)


# --------------------------------------------------------------------------------------------
# MACs and parameters against hand-computed values (MACs: out_c * in_c/groups * k*k * H_out*W_out
# for convolutions, in * out for linear layers; biases, BN, pooling, activations not counted).


@pytest.mark.parametrize(
    ("text", "shape", "rows"),
    [
        (
            "conv(8)", (1, 8, 8),
            [("conv(8, k=3, s=1, p=1)", (8, 8, 8), 8 * 9 + 8, 8 * 1 * 9 * 64),
             ("flatten", (512,), 0, 0),
             ("dense(10)", (10,), 512 * 10 + 10, 512 * 10)],
        ),
        (
            "conv(4, k=5, s=2, p=valid) bn relu", (3, 11, 11),
            [("conv(4, k=5, s=2, p=0)", (4, 4, 4), 4 * 3 * 25, 4 * 3 * 25 * 16),
             ("bn", (4, 4, 4), 8, 0),
             ("relu", (4, 4, 4), 0, 0),
             ("flatten", (64,), 0, 0),
             ("dense(10)", (10,), 650, 640)],
        ),
        (
            "dwsep(16) maxpool bn relu gap", (8, 4, 4),
            [("dwsep(16, k=3, s=1, act=relu)", (16, 4, 4), 8 * 9 + 16 + 8 * 16 + 32,
              8 * 9 * 16 + 8 * 16 * 16),
             ("maxpool(2, s=2)", (16, 2, 2), 0, 0),
             ("bn", (16, 2, 2), 32, 0),
             ("relu", (16, 2, 2), 0, 0),
             ("gap", (16,), 0, 0),
             ("dense(10)", (10,), 170, 160)],
        ),
        (
            # hidden 16: expand 8->16, depthwise 3x3, SE 16->4->16 on 1x1, project 16->8
            "ir(8, e=2, se=on)", (8, 4, 4),
            [("ir(8, e=2, k=3, s=1, se=on, act=relu6)", (8, 4, 4),
              (128 + 32) + (144 + 32) + (64 + 4 + 64 + 16) + (128 + 16),
              8 * 16 * 16 + 16 * 9 * 16 + 16 * 4 + 4 * 16 + 16 * 8 * 16),
             ("flatten", (128,), 0, 0),
             ("dense(10)", (10,), 1290, 1280)],
        ),
        (
            # no expansion stage when e=1; stride 2 halves 8x8 to 4x4
            "ir(24, e=1, k=5, s=2) avgpool(2) dropout(0.5)", (16, 8, 8),
            [("ir(24, e=1, k=5, s=2, se=off, act=relu6)", (24, 4, 4),
              (16 * 25 + 32) + (16 * 24 + 48), 16 * 25 * 16 + 16 * 24 * 16),
             ("avgpool(2, s=2)", (24, 2, 2), 0, 0),
             ("dropout(0.5)", (24, 2, 2), 0, 0),
             ("flatten", (96,), 0, 0),
             ("dense(10)", (10,), 970, 960)],
        ),
        (
            "gap dense(6) bn leakyrelu dense(3)", (5, 3, 3),
            [("gap", (5,), 0, 0),
             ("dense(6)", (6,), 30, 30),  # no bias: batch norm follows
             ("bn", (6,), 12, 0),
             ("leakyrelu(0.01)", (6,), 0, 0),
             ("dense(10)", (10,), 70, 60)],
        ),
    ],
)
def test_layer_table_matches_hand_computed_params_and_macs(text, shape, rows):
    resolved = _resolved(text, shape)
    table = layer_table(resolved)
    assert table == [LayerRow(*row) for row in rows]
    model = build_model(resolved)
    assert count_params(model) == sum(r[2] for r in rows) == resolved.params()
    assert count_macs(model, shape) == sum(r[3] for r in rows)


def test_counts_for_a_network_with_every_layer_kind_agree():
    resolved = _resolved(EVERY_KIND, (3, 32, 32))
    model = build_model(resolved)
    rows = layer_table(resolved, model)
    assert [r.name for r in rows] == [item.text for item in resolved.layers]
    assert [r.output_shape for r in rows] == [item.out_shape for item in resolved.layers]
    assert sum(r.params for r in rows) == count_params(model) == resolved.params()
    assert sum(r.macs for r in rows) == count_macs(model, (3, 32, 32))
    assert [r.params for r in rows] == [item.params for item in resolved.layers]


@settings(max_examples=20)
@given(specs(), st.sampled_from([(1, 8, 8), (3, 5, 9), (2, 1, 1), (3, 32, 32)]))
def test_built_shapes_and_counts_match_the_resolution_for_any_spec(spec, shape):
    resolved = resolve(spec, shape, 4)
    model = build_model(resolved)
    rows = layer_table(resolved, model)  # raises when a built shape differs from resolve()
    assert sum(r.params for r in rows) == count_params(model) == resolved.params()


def test_count_macs_runs_in_eval_mode_and_restores_the_mode():
    resolved = _resolved("conv(4) bn relu maxpool maxpool maxpool gap dense(4) bn")
    model = build_model(resolved)
    model.train()
    assert count_macs(model, (1, 8, 8)) > 0  # BN on a 1x1 map of one sample needs eval mode
    assert model.training
    model.eval()
    count_macs(model, (1, 8, 8))
    assert not model.training


# --------------------------------------------------------------------------------------------
# Building


def test_build_model_gives_logits_and_the_structure_of_the_resolved_layers():
    resolved = _resolved(EVERY_KIND, (3, 32, 32))
    model = build_model(resolved).eval()
    assert isinstance(model, nn.Sequential) and len(model) == len(resolved.layers)
    with torch.no_grad():
        out = model(torch.randn(3, 3, 32, 32))
    assert out.shape == (3, 10) and out.dtype == torch.float32
    blocks = [m for m in model if isinstance(m, InvertedResidualBlock)]
    residual = [item.residual for item in resolved.layers if item.text.startswith("ir(")]
    assert [b.residual for b in blocks] == residual == [True, False, True, False]
    # The first convolution is followed by BN: no bias; the second is not: bias.
    assert model[0].bias is None and model[3].bias is not None


def test_initialisation_is_deterministic_and_leaves_the_global_rng_alone():
    resolved = _resolved(EVERY_KIND, (3, 32, 32))

    def weights(model):
        return [t.clone() for t in model.state_dict().values()]

    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = weights(build_model(resolved, torch.Generator().manual_seed(7)))
    assert torch.equal(torch.get_rng_state(), before)
    b = weights(build_model(resolved, torch.Generator().manual_seed(7)))
    c = weights(build_model(resolved, torch.Generator().manual_seed(8)))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))
    torch.manual_seed(5)
    d = weights(build_model(resolved))
    torch.manual_seed(5)
    e = weights(build_model(resolved))
    assert all(torch.equal(x, y) for x, y in zip(d, e, strict=True))
    assert all(torch.isfinite(t.float()).all() for t in d)


def test_a_small_network_learns_digits_with_the_default_recipe():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(y)
    resolved = _resolved("conv(16) bn relu maxpool conv(32) bn relu gap")
    recipe = resolved.recipe
    model = build_model(resolved, torch.Generator().manual_seed(0))
    assert (recipe.optimizer, recipe.schedule) == ("adam", "cosine")
    opt = torch.optim.Adam(model.parameters(), recipe.lr)
    epochs, n_train = 4, 1400
    steps = epochs * -(-n_train // recipe.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(0)
    train, test = slice(0, n_train), slice(n_train, None)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=gen)
        for i in range(0, n_train, recipe.batch_size):
            batch = order[i:i + recipe.batch_size]
            loss = nn.functional.cross_entropy(model(x[train][batch]), y[train][batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    assert accuracy > 0.9


# --------------------------------------------------------------------------------------------
# Standalone source


def test_torch_source_runs_alone_and_matches_build_model(tmp_path):
    resolved = _resolved(EVERY_KIND, (3, 32, 32))
    source = torch_source(resolved)
    assert "evo" not in "".join(
        line for line in source.splitlines() if line.startswith(("import", "from"))
    )
    module = tmp_path / "net.py"
    module.write_text(source)
    model = build_model(resolved, torch.Generator().manual_seed(3)).eval()
    # Non-trivial BN statistics so eval mode exercises them.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = model(x)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.save(x, tmp_path / "x.pt")
    driver = (
        "import sys, torch\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import net\n"
        "model = net.build_model()\n"
        "model.load_state_dict(torch.load(sys.argv[1] + '/weights.pt', weights_only=True),"
        " strict=True)\n"
        "model.eval()\n"
        "with torch.no_grad():\n"
        "    out = model(torch.load(sys.argv[1] + '/x.pt', weights_only=True))\n"
        "torch.save(out, sys.argv[1] + '/out.pt')\n"
        "import runpy\n"
        "runpy.run_path(sys.argv[1] + '/net.py', run_name='__main__')\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", driver, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr
    out = torch.load(tmp_path / "out.pt", weights_only=True)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    # Run as a script, it builds the network and prints its size.
    assert f"{count_params(model)} parameters; logits for a batch of 2: (2, 10)" in run.stdout


def test_torch_source_includes_only_the_helpers_it_uses():
    plain = torch_source(_resolved("conv(8) bn relu gap"))
    assert "class InvertedResidualBlock" not in plain and "def dwsep" not in plain
    mobile = torch_source(_resolved("ir(8, se=on) dwsep(8)"))
    assert "class SqueezeExcite" in mobile and "def dwsep" in mobile
    compile(plain, "plain.py", "exec")
    compile(mobile, "mobile.py", "exec")


# --------------------------------------------------------------------------------------------
# evo arch show


def _cli(argv, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_arch_show_prints_the_table_totals_and_what_was_dropped(capsys, monkeypatch):
    text = "conv(8) maxpool maxpool maxpool maxpool gap dense(64) relu"
    code, out, err = _cli(["arch", "show", text, "--input", "1x8x8"], capsys, monkeypatch)
    assert code == 0, err
    resolved = _resolved(text)
    model = build_model(resolved)
    assert "maxpool(2, s=2)" in out and "8x1x1" in out
    assert f"{count_params(model):,}" in out and f"{count_macs(model, (1, 8, 8)):,}" in out
    assert "dropped for 1x8x8: layer 5 maxpool(2, s=2): dropped" in out
    assert resolved.key() in out
    assert "MACs: batch 1" in out


def test_arch_show_json_reads_files_and_stdin(capsys, monkeypatch, tmp_path):
    text = "ir(16, s=2, se=on) gap"
    path = tmp_path / "net.arch"
    path.write_text(text + "\n")
    code, out, err = _cli(["arch", "show", str(path), "--input", "3x32x32", "--classes", "5",
                           "--json"], capsys, monkeypatch)
    assert code == 0, err
    data = json.loads(out)
    resolved = _resolved(text, (3, 32, 32), 5)
    assert data["key"] == resolved.key()
    assert data["canonical"] == resolved.canonical_text()
    assert data["params"] == resolved.params()
    assert data["layers"][-1] == {"layer": "dense(5)", "output_shape": [5], "params": 85,
                                  "macs": 80}
    assert data["recipe"]["optimizer"] == "adam"
    monkeypatch.setattr(sys, "stdin", type("S", (), {"read": lambda self: text})())
    code, out2, _ = _cli(["arch", "show", "-", "--input", "3x32x32", "--classes", "5",
                          "--json"], capsys, monkeypatch)
    assert code == 0 and json.loads(out2)["key"] == data["key"]


def test_arch_show_torch_prints_the_source(capsys, monkeypatch):
    code, out, err = _cli(["arch", "show", "conv(8) gap", "--torch", "--input", "1x28x28"],
                          capsys, monkeypatch)
    assert code == 0, err
    assert out == torch_source(_resolved("conv(8) gap", (1, 28, 28)))


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["arch", "show", "conv(8) bnn"], "unknown layer at column 9: 'bnn'"),
        (["arch", "show", "missing.arch"], "missing.arch: no such file"),
        (["arch", "show", "gap", "--input", "8x8"], "--input '8x8' is not CxHxW"),
        (["arch", "show", "gap", "--torch", "--json"], "--torch and --json cannot be combined"),
    ],
)
def test_arch_show_errors_are_one_line_and_exit_2(argv, words, capsys, monkeypatch):
    code, _, err = _cli(argv, capsys, monkeypatch)
    assert code == 2
    assert err.startswith("evo: error: ") and words in err
    assert err.count("\n") == 1


# --------------------------------------------------------------------------------------------
# benchmarks/gpu_check.py: the parts that run without a GPU


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks/gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


def test_gpu_check_imports_nothing_beyond_torch_and_numpy():
    probe = (
        "import sys\n"
        "sys.path.insert(0, 'benchmarks')\n"
        "import numpy, gpu_check\n"
        "gpu_check.sample_phenotypes('mobile', 2, numpy.random.default_rng(0))\n"
        "bad = {'onnx', 'onnxruntime', 'openvino', 'moocore', 'sklearn', 'rich', 'typer',"
        " 'scipy', 'matplotlib'}\n"
        "print('LOADED', sorted(n for n in sys.modules if n.split('.')[0] in bad))\n"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": "."})
    assert run.returncode == 0, run.stderr
    assert "LOADED []" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_gpu_check_without_cuda_exits_nonzero_with_a_clear_line():
    env = {**os.environ, "PYTHON": sys.executable}
    run = subprocess.run(["bash", "benchmarks/gpu_check.sh"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120, env=env)
    assert run.returncode == 2
    assert run.stderr.startswith("gpu_check: no CUDA device")
    assert "nothing was checked" in run.stderr


def test_gpu_check_logic_passes_on_the_cpu():
    gpu_check = _gpu_check()
    import numpy as np

    phenotypes = gpu_check.sample_phenotypes("cnn_full", 3, np.random.default_rng(0))
    assert len(set(phenotypes)) == 3
    assert gpu_check.relative_error(torch.tensor([1.0, -2.0]), torch.tensor([1.0, -2.5])) == 0.2
    text = "conv(8, s=2) bn relu ir(8, e=2, s=2, se=on) gap dropout(0.2)"
    sample = gpu_check.Sample("test", text, resolve(parse_arch(text), (3, 32, 32), 10))
    outcome = gpu_check.check_network(sample, torch.device("cpu"), batch=4, iters=1, repeats=2,
                                      seed=0)
    assert outcome.failures == []
    assert outcome.fp32_err == 0.0 and outcome.grad_err == 0.0
    assert 0 < outcome.bf16_err < gpu_check.BF16_TOL
    assert len(outcome.fast) == len(outcome.slow) == 2
    assert outcome.params == sample.resolved.params()
