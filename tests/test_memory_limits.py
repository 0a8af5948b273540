"""Memory estimated from the resolved architecture, and networks over the limit refused before
anything is allocated (issue 19, item 1): `evo arch show`, a search candidate, retrain, export.

The estimate is held against the peak memory torch really allocates while training small
networks: with glibc's mmap threshold fixed (so freed tensors go back to the system and the
resident peak is the live peak), the estimate lies between 0.9x and 2.5x of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo.arch import parse_arch, resolve
from evo.arch.memory import (
    MemoryLimitError,
    check_memory,
    default_limit,
    estimate_export,
    estimate_inspection,
    estimate_training,
    memory_limit,
    parse_memory,
    refusal,
)
from evo.errors import EvoError
from tests._runs_helpers import cli, copy_run, tiny_digits_run

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "conv(4096, k=15) bn relu " * 4 + "dense(65536) relu"
GB = 10**9


def _capped(args: list[str], address_space: int, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a Python command with its address space capped: an allocation of the network
    would fail (with a traceback), so a clean refusal proves nothing was allocated."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, preexec_fn=cap, env=env)


# ------------------------------------------------------------------ the estimate itself


def test_hostile_text_is_estimated_in_microseconds_without_torch():
    probe = ("import sys, time\nt = time.perf_counter()\n"
             "from evo.arch import parse_arch, resolve\n"
             "from evo.arch.memory import estimate_training, estimate_inspection\n"
             f"r = resolve(parse_arch({HOSTILE!r}), (1, 28, 28), 10)\n"
             "e = estimate_training(r), estimate_inspection(r)\n"
             "print(round(time.perf_counter() - t, 3), 'torch' in sys.modules, "
             "e[0].total, e[1].total)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    seconds, torch_loaded, train, inspect = out.stdout.split()
    assert torch_loaded == "False" and float(seconds) < 1.0
    # 11.3 G conv weights and 210 G dense weights (4096 x 28 x 28 inputs x 65536 units)
    assert 880 * GB < int(inspect) < 900 * GB and int(train) > 5 * int(inspect)


def test_estimate_grows_with_batch_optimizer_and_purpose():
    r = resolve(parse_arch("conv(16) bn relu maxpool conv(32) relu gap | optimizer=sgd"),
                (3, 32, 32), 10)
    adam = resolve(parse_arch("conv(16) bn relu maxpool conv(32) relu gap | optimizer=adam"),
                   (3, 32, 32), 10)
    assert estimate_training(r, 64, 1).total > estimate_training(r, 16, 1).total
    assert estimate_training(r, 16, 1).batch == 16 and not estimate_training(r, 16, 1).scoring
    scored = estimate_training(r, 16, 1024)  # scoring 1024 images at once is the larger peak
    assert scored.scoring and scored.batch == 1024 and "scoring batch 1024" in scored.describe()
    assert estimate_training(adam, 16).optimizer == 3 * estimate_training(r, 16).optimizer
    assert estimate_inspection(r).total < estimate_export(r).total < estimate_training(r).total
    assert estimate_training(r).params == r.params()


MEASURE = r"""
import json, sys
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
from evo.arch import parse_arch, resolve
from evo.data.dataset import Dataset, Split
from evo.arch.memory import estimate_training
from evo.net.train import TrainBudget, train_candidate

def status(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key))
    return int(line.split()[1]) * 1024

rng = np.random.default_rng(0)
def dataset(shape, n_train, n_val):
    def split(n):
        return Split(rng.standard_normal((n, *shape), dtype=np.float32),
                     (np.arange(n) % 10).astype(np.int64))
    return Dataset(name="m", source="m", source_sha256="", train=split(n_train),
                   val=split(n_val), test=split(8), input_shape=shape, num_classes=10,
                   class_names=tuple("0123456789"), mean=(0.0,) * shape[0],
                   std=(1.0,) * shape[0], hflip=False, split_seed=0, official_test=False,
                   fingerprint="x")

out = []
for text, shape, n_train, n_val in json.loads(sys.argv[1]):
    shape = tuple(shape)
    data = dataset(shape, n_train, n_val)
    warm = resolve(parse_arch("conv(4) bn relu maxpool dropout(0.1) gap"), shape, 10)
    train_candidate(warm, data, TrainBudget(epochs=1), device="cpu", seed=0)
    resolved = resolve(parse_arch(text), shape, 10)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
    base = status("VmRSS:")
    result = train_candidate(resolved, data, TrainBudget(epochs=1), device="cpu", seed=0)
    assert result.ok, result.reason
    estimate = estimate_training(resolved, min(resolved.recipe.batch_size, n_train),
                                 min(1024, n_val))
    out.append([text, status("VmHWM:") - base, estimate.total])
print(json.dumps(out))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_estimate_against_the_memory_torch_really_uses():
    nets = [
        ["conv(64) bn relu conv(64) bn relu maxpool | bs=64", [3, 32, 32], 64, 128],
        ["dwsep(32) ir(32, e=4, se=on) ir(32, e=3) gap | bs=32", [3, 16, 16], 64, 64],
        ["dense(2048) relu dense(2048) relu | optimizer=adam bs=32", [1, 8, 8], 64, 64],
        ["conv(32) relu maxpool conv(64) relu dropout(0.3) dense(256) | bs=128 optimizer=sgd",
         [1, 28, 28], 256, 1024],
    ]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(nets)], capture_output=True,
                         text=True, cwd=ROOT, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    for text, peak, estimate in json.loads(out.stdout):
        assert peak > 30e6, (text, peak)  # large enough to measure
        assert 0.9 <= estimate / peak <= 2.5, (text, peak, estimate)


# ------------------------------------------------------------------ the limit


@pytest.mark.parametrize(("text", "value"), [
    ("8GB", 8 * GB), ("512 MB", 512 * 10**6), ("1.5GiB", 3 * 2**29), ("100kb", 100_000),
    ("2TiB", 2 * 2**40), ("4096B", 4096)])
def test_memory_amounts_need_a_unit(text, value):
    assert parse_memory(text) == value == memory_limit(text, workers=4)


@pytest.mark.parametrize("text", ["12", "lots", "-1GB", "0MB", "1e9GB", "9" * 5000 + "GB", ""])
def test_bad_memory_amounts_are_one_line(text):
    with pytest.raises(EvoError, match="is not an amount of memory") as err:
        parse_memory(text)
    assert "8GB" in err.value.hint and len(str(err.value)) < 200


def test_default_limit_shares_three_quarters_of_the_machine_among_workers():
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert default_limit(1) <= 0.75 * ram and default_limit(1) > 0
    assert abs(default_limit(4) - default_limit(1) // 4) <= 1
    assert memory_limit(None, 2) == memory_limit("auto", 2) == default_limit(2)


def test_refusal_names_the_estimate_and_the_limit():
    r = resolve(parse_arch("conv(64) relu gap"), (3, 32, 32), 10)
    estimate = estimate_training(r, 32, 1)
    assert refusal(estimate, estimate.total) is None
    reason = refusal(estimate, 10**6, "member 3")
    assert reason.startswith("member 3 needs about ") and "to train" in reason
    assert "over the memory limit of 1.0 MB (--max-memory)" in reason
    assert "activations" in reason and "at batch 32" in reason and "\n" not in reason
    with pytest.raises(MemoryLimitError, match="over the memory limit"):
        check_memory(estimate, 10**6)


# ------------------------------------------------------------------ every path refuses


def test_arch_show_refuses_the_hostile_text_without_allocating():
    started = time.perf_counter()
    out = _capped(["-m", "evo", "arch", "show", HOSTILE, "--input", "1x28x28",
                   "--max-memory", "16GB"], address_space=2 * 2**30)
    assert time.perf_counter() - started < 20  # start-up included; the check is microseconds
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "the network needs about 887.2 GB (weights 887.1 GB, activations" in out.stderr
    assert "over the memory limit of 16.0 GB" in out.stderr


def test_arch_show_within_the_limit_still_shows_the_network(capsys):
    code, out, err = cli(capsys, "arch", "show", "conv(8) relu gap", "--max-memory", "1GB")
    assert code == 0 and "total" in out
    code, out, err = cli(capsys, "arch", "show", "conv(8) relu gap", "--torch",
                         "--max-memory", "1kB")
    assert code == 2 and "over the memory limit of 1.0 kB" in err and not out


SEARCH = r"""
import sys
from evo.config import SearchConfig
from evo.nas.problem import problem_factory
from evo.search.loop import run_search
config = SearchConfig(grammar=sys.argv[1], dataset="digits", population=6, generations=0,
                      epochs=1, seed=3, export=(), bench=(), max_memory="2GB",
                      run_dir=sys.argv[2])
run_search(config, problem_factory=problem_factory())
# VmHWM: this process's own high-water mark (ru_maxrss survives exec: it would be pytest's).
with open("/proc/self/status") as status:
    print("PEAK", next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:")))
"""


def test_search_records_a_candidate_over_the_limit_infeasible_with_the_reason(tmp_path):
    import sqlite3

    grammar = tmp_path / "hostile.bnf"
    huge = "conv(4096, k=15) bn relu " * 2  # 3.8 G weights, whatever comes before
    grammar.write_text(f'<net> ::= <l> <l> <l> <l> "dense(64) relu "\n'
                       f'<l> ::= "{huge}" | "conv(4) relu " | "relu " | ""\n')
    run_dir = tmp_path / "run"
    out = _capped(["-c", SEARCH, str(grammar), str(run_dir)], address_space=12 * 2**30,
                  timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split("PEAK")[1]) < 2 * GB  # the 100 GB networks were never built
    conn = sqlite3.connect(run_dir / "run.db")
    rows = conn.execute("SELECT i.id, e.status, e.reason, e.objectives FROM individuals i "
                        "JOIN evaluations e ON e.key = i.eval_key").fetchall()
    conn.close()
    refused = [r for r in rows if r[1] == "skipped"]
    assert refused and len(refused) < len(rows)  # small networks were trained
    for _member, _status, reason, objectives in refused:
        assert "the candidate needs about " in reason and "to train" in reason
        assert reason.endswith("over the memory limit of 2.0 GB (--max-memory); not trained")
        assert json.loads(objectives)["params"] > 3e9

    # `evo show` of the largest refused member names the estimate instead of building it.
    member, _status, _reason, objectives = max(refused, key=lambda r: json.loads(r[3])["params"])
    params = json.loads(objectives)["params"]
    if 4 * params < default_limit():
        pytest.skip("this machine's memory holds the refused network")
    shown = _capped(["-m", "evo", "show", str(run_dir), str(member)], address_space=4 * 2**30)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "no layer table: the network needs about " in " ".join(shown.stdout.split())


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_digits_run(tmp_path_factory)


def test_retrain_over_the_limit_fails_before_building(run, tmp_path, capsys):
    from evo.post.retrain import retrain

    work = copy_run(run, tmp_path / "run")
    outcomes = retrain(work, epochs=1, max_memory="1kB")
    assert outcomes and all(o.status == "failed" for o in outcomes)
    assert all(o.reason.startswith(f"member {o.member} needs about ") for o in outcomes)
    assert all("over the memory limit of 1.0 kB" in o.reason for o in outcomes)
    code, _out, err = cli(capsys, "retrain", str(work), "--epochs", "1", "--max-memory", "1kB")
    assert code == 1 and "Traceback" not in err
    code, _out, err = cli(capsys, "retrain", str(work), "--max-memory", "much")
    assert code == 2 and err.count("\n") == 1 and "not an amount of memory" in err


def test_export_over_the_limit_is_refused_with_one_line(run, tmp_path, capsys):
    work = copy_run(run, tmp_path / "run")
    code, _out, err = cli(capsys, "export", str(work), "--format", "onnx", "--max-memory",
                          "1kB")
    assert code == 2 and err.count("\n") == 1
    assert "network needs about " in err and "to export" in err
    assert "over the memory limit of 1.0 kB" in err
    assert not list((work / "export").glob("*/onnx/*.onnx"))


@pytest.mark.parametrize("shape", ["1x28x" + "9" * 5000, "1x²x8", "1x0x8", "1x8"])
def test_arch_show_refuses_a_bad_input_shape_in_one_line(capsys, shape):
    code, out, err = cli(capsys, "arch", "show", "conv(8) relu gap", "--input", shape)
    assert code == 2 and not out and "is not CxHxW" in err and len(err.splitlines()) == 1
