"""benchmarks/bench_latency.py times benchmark_app at the precision our measurement executed.

On CPUs whose OpenVINO default is bf16 (AVX-512 BF16, AMX) and on f32-only ones alike, both
tools must time the same computation, so benchmark_app is told our read-back precision and the
precision it reports is checked. One real benchmark_app run per precision (5 s each).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

from hardware.latency import QUICK, measure

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _bench_latency():
    spec = importlib.util.spec_from_file_location(
        "bench_latency", ROOT / "benchmarks" / "bench_latency.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _benchmark_app() -> str:
    beside = Path(sys.executable).with_name("benchmark_app")
    found = str(beside) if beside.exists() else shutil.which("benchmark_app")
    if found is None:
        pytest.skip("benchmark_app is not installed")
    return found


def test_benchmark_app_runs_at_the_precision_ours_executed(tmp_path: Path) -> None:
    bench = _bench_latency()
    executable = _benchmark_app()
    model = bench.build_model(tmp_path, "tiny", *bench.MODELS["tiny_16px_1conv"])
    executed = measure(model, "ov:CPU", QUICK, threads=1).executed_precision
    assert executed in bench.OV_PRECISION  # FP32, or BF16 on CPUs with native bf16
    median, minimum = bench.benchmark_app_ms(executable, model, executed)
    assert 0 < minimum <= median


def test_a_precision_benchmark_app_did_not_run_is_refused(tmp_path: Path) -> None:
    import openvino as ov

    if "FP16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        pytest.skip("this CPU runs f16 natively, so asking for it cannot be refused")
    bench = _bench_latency()
    executable = _benchmark_app()
    model = bench.build_model(tmp_path, "tiny", *bench.MODELS["tiny_16px_1conv"])
    # Without native f16 the CPU plugin runs another precision and benchmark_app says which.
    with pytest.raises(RuntimeError, match=r"benchmark_app ran tiny\.xml at .*, ours at FP16"):
        bench.benchmark_app_ms(executable, model, "FP16")
