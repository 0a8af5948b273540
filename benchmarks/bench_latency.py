"""Agreement of our latency protocol with OpenVINO's own ``benchmark_app``.

For a fixed set of conv nets (below; from well under 1 ms to several ms on a 1-thread CPU) each
round measures every model twice, interleaved: with ``hardware.measure`` (full protocol, ov:CPU,
1 thread) and with ``benchmark_app -m M -d CPU -hint none -nthreads 1 -nstreams 1 -nireq 1
-api sync -t 5 -infer_precision P`` (its ``Median:`` line), where P is the precision our
measurement read back from its compiled model (the CPU's default: f32, or bf16 on CPUs with
AVX-512 BF16 or AMX), so both tools time the same precision by construction. The order of the
two alternates between rounds so a drift in machine load hits both equally. Printed: per model
the executed precision, the ratio ours/benchmark_app of the medians (median over rounds, with
min..max spread) and whether it is within +/-10 %; beside it, as a diagnostic, the ratio of the
minimum latencies (insensitive to other processes taking the CPU) and the machine's 1-minute
load average during the model's rounds.

    .venv/bin/python benchmarks/bench_latency.py [--rounds 5] [--keep DIR]

Needs onnx (to build the models), openvino and its ``benchmark_app``; no torch.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from hardware.host import describe_host
from hardware.latency import FULL, measure

# name -> (input size, [(out channels, stride), ...]); 3x3 conv + ReLU blocks, then pool + FC.
MODELS: dict[str, tuple[int, list[tuple[int, int]]]] = {
    "tiny_16px_1conv": (16, [(8, 1)]),
    "small_32px_3conv": (32, [(16, 1), (32, 2), (32, 1)]),
    "medium_48px_5conv": (48, [(32, 1), (32, 2), (64, 1), (64, 2), (64, 1)]),
    "large_64px_5conv": (64, [(16, 1), (32, 1), (64, 2), (64, 1), (64, 1)]),
}
TOLERANCE = 0.10
BENCHMARK_APP_ARGS = [
    "-d", "CPU", "-hint", "none", "-nthreads", "1", "-nstreams", "1", "-nireq", "1",
    "-api", "sync", "-t", "5",
]  # fmt: skip
_STATISTIC = re.compile(r"(Median|Min):\s+([0-9.]+)\s+(us|ms)")
_PRECISION_LINE = re.compile(r"INFERENCE_PRECISION_HINT:\s*<Type: '(\w+)'>")


def build_model(folder: Path, name: str, size: int, blocks: list[tuple[int, int]]) -> Path:
    """Write NAME.onnx and convert it to OpenVINO IR NAME.xml/.bin (FP32); return the .xml."""
    rng = np.random.default_rng(0)
    nodes, inits, previous, channels = [], [], "x", 3
    for i, (out, stride) in enumerate(blocks):
        weight = rng.standard_normal((out, channels, 3, 3)).astype(np.float32)
        weight *= np.sqrt(2.0 / (channels * 9))
        inits += [
            numpy_helper.from_array(weight, f"w{i}"),
            numpy_helper.from_array(np.zeros(out, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node(
                "Conv", [previous, f"w{i}", f"b{i}"], [f"c{i}"], pads=[1, 1, 1, 1],
                strides=[stride, stride],
            ),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
        ]  # fmt: skip
        previous, channels = f"r{i}", out
    inits += [
        numpy_helper.from_array(rng.standard_normal((10, channels)).astype(np.float32), "wf"),
        numpy_helper.from_array(np.zeros(10, np.float32), "bf"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [previous], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx_path = folder / f"{name}.onnx"
    onnx.save(model, str(onnx_path))

    import openvino

    xml_path = folder / f"{name}.xml"
    openvino.save_model(openvino.convert_model(str(onnx_path)), str(xml_path), False)
    return xml_path


# hardware.measure's executed precision -> benchmark_app's -infer_precision value, and back
# from the type name benchmark_app reports for its compiled model.
OV_PRECISION = {"FP32": "f32", "BF16": "bf16", "FP16": "f16"}
REPORTED_PRECISION = {"float32": "FP32", "bfloat16": "BF16", "float16": "FP16"}


def benchmark_app_ms(executable: str, model: Path, precision: str) -> tuple[float, float]:
    """(median, min) latency in ms from benchmark_app's report (it prints us or ms), run at
    ``precision`` (``FP32``/``BF16``/``FP16``, what our own measurement executed)."""
    done = subprocess.run(
        [
            executable,
            "-m",
            str(model),
            *BENCHMARK_APP_ARGS,
            "-infer_precision",
            OV_PRECISION[precision],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = {
        name: float(value) / 1000.0 if unit == "us" else float(value)
        for name, value, unit in _STATISTIC.findall(done.stdout + done.stderr)
    }
    if done.returncode != 0 or set(found) != {"Median", "Min"}:
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"benchmark_app failed on {model.name}: {' | '.join(tail)}")
    reported = {REPORTED_PRECISION.get(t, t) for t in _PRECISION_LINE.findall(done.stdout)}
    if reported != {precision}:
        raise RuntimeError(f"benchmark_app ran {model.name} at {reported}, ours at {precision}")
    return found["Median"], found["Min"]


@dataclass
class Pair:
    ours_ms: float
    reference_ms: float
    ours_min_ms: float
    reference_min_ms: float
    load_average: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.reference_ms

    @property
    def min_ratio(self) -> float:
        return self.ours_min_ms / self.reference_min_ms


def measure_ours(path: Path) -> tuple[float, float, str]:
    """(median, min) latency in ms and the precision the CPU executed (read back)."""
    measured = measure(path, "ov:CPU", FULL, threads=1)
    return measured.latency.median_ms, measured.latency.min_ms, measured.executed_precision


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--keep", type=Path, help="build the models here and keep them")
    args = parser.parse_args()

    beside_python = Path(sys.executable).with_name("benchmark_app")
    executable = str(beside_python) if beside_python.exists() else shutil.which("benchmark_app")
    if executable is None:
        sys.exit("benchmark_app not found (it is installed with the openvino package)")

    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench_latency_"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: build_model(folder, name, *spec) for name, spec in MODELS.items()}

    host = describe_host()
    started = datetime.now(UTC)
    print(f"# bench_latency: ours (hardware.measure, {FULL.name} protocol) vs benchmark_app")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"date (UTC): {started.isoformat(timespec='seconds')}")
    print(f"machine: {host.summary()}; Python {platform.python_version()}")
    print(f"benchmark_app {' '.join(BENCHMARK_APP_ARGS)} -infer_precision <what ours executed>")
    print(f"CPUs: {os.cpu_count()}; 1-minute load average at start: {os.getloadavg()[0]:.1f}\n")

    pairs: dict[str, list[Pair]] = {name: [] for name in MODELS}
    precisions: dict[str, str] = {}  # set by our first measurement (round 1 measures ours first)
    clock = time.perf_counter()
    for round_index in range(args.rounds):
        for name, path in paths.items():
            load_before = os.getloadavg()[0]
            if round_index % 2 == 0:
                ours, ours_min, executed = measure_ours(path)
                precision = precisions.setdefault(name, executed)
                reference, reference_min = benchmark_app_ms(executable, path, precision)
            else:
                reference, reference_min = benchmark_app_ms(executable, path, precisions[name])
                ours, ours_min, executed = measure_ours(path)
            if executed != precisions[name]:
                raise RuntimeError(f"{name}: ran at {executed}, earlier {precisions[name]}")
            load = (load_before + os.getloadavg()[0]) / 2
            pair = Pair(ours, reference, ours_min, reference_min, load)
            pairs[name].append(pair)
            print(
                f"round {round_index + 1}/{args.rounds} {name}: ours {ours:.4f} ms, "
                f"benchmark_app {reference:.4f} ms, ratio {pair.ratio:.3f}, "
                f"min ratio {pair.min_ratio:.3f}, load {load:.1f}",
                file=sys.stderr,
                flush=True,
            )

    print("| model | executed precision (both) | ours median (ms) | benchmark_app median (ms) | "
          "ratio of medians (median over rounds) | spread (min..max) | within +/-10 % | "
          "ratio of mins | load avg (1 min) |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    misses = 0
    for name, rows in pairs.items():
        ratios = [p.ratio for p in rows]
        ratio = statistics.median(ratios)
        inside = abs(ratio - 1.0) <= TOLERANCE
        misses += not inside
        print(
            f"| {name} | {precisions[name]} | {statistics.median(p.ours_ms for p in rows):.4f} | "
            f"{statistics.median(p.reference_ms for p in rows):.4f} | {ratio:.3f} | "
            f"{min(ratios):.3f}..{max(ratios):.3f} | {'yes' if inside else 'NO'} | "
            f"{statistics.median(p.min_ratio for p in rows):.3f} | "
            f"{min(p.load_average for p in rows):.1f}..{max(p.load_average for p in rows):.1f} |"
        )
    elapsed = time.perf_counter() - clock
    print(f"\n{args.rounds} rounds x {len(MODELS)} models in {elapsed / 60:.1f} min; "
          f"{misses} model(s) outside +/-{TOLERANCE:.0%}")  # fmt: skip
    if args.keep is None:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
