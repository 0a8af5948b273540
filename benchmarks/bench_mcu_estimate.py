"""The microcontroller estimate (evo.arch.mcu) against TensorFlow Lite Micro on random networks.

    .venv/bin/python benchmarks/bench_mcu_estimate.py [--per-cell 8] [--seed 0]
        [--grammars cnn_topology,cnn_full,mobile] [--shapes 1x28x28,3x32x32]
        [--records FILE.jsonl] [--from-records FILE.jsonl] [--fit]

For each shipped grammar and input shape, random phenotypes (uniform genomes, default GE
settings) are built with trained-like weights (batch-norm statistics and biases drawn at random,
as training leaves them: untrained ones are zero, which the converter drops and which calibrate
to degenerate int8 scales), converted to full-integer LiteRT by ``export.litert`` (calibrated on
random normal samples) and loaded in TensorFlow Lite Micro: ``arena_bytes`` is the arena it
allocates, ``flash_bytes`` the file's size. The table gives the estimate's error in percent of
the measurement (positive: an overestimate) per grammar and shape: median |error|, largest
|error| and the largest underestimate, which sets ``evo.arch.mcu.SAFETY_MARGIN``. A network
that fails to convert or to run in TFLite Micro is counted and named, and another is drawn (up
to three times the cell's count). ``--fit`` refits the estimate's tail and flash constants by
least squares on the measured networks (the constants in evo/arch/mcu.py come from it).
``--from-records`` tabulates stored measurements again with the current estimate.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")

import numpy as np

from evo.arch import parse_arch, resolve
from evo.arch.mcu import estimate_mcu
from evo.arch.mcu_graph import lower

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # imported by file path (the tests), random_phenotypes is beside it
    sys.path.insert(0, HERE)
from random_phenotypes import sample_phenotypes  # noqa: E402

GRAMMARS = ("cnn_topology", "cnn_full", "mobile")
SHAPES = ((1, 28, 28), (3, 32, 32))
CLASSES = 10
CALIBRATION = 8


def trained_like(model: Any, seed: int) -> Any:
    """``model`` with batch-norm statistics, affine parameters and biases drawn as training
    leaves them (the converter folds and quantises these; zeros would vanish)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
            elif isinstance(module, torch.nn.Conv2d | torch.nn.Linear) and \
                    module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.05)
    return model.eval()


def measure_network(text: str, shape: tuple[int, int, int], folder: Path,
                    seed: int = 0, keep: bool = False) -> dict[str, Any]:
    """Convert one phenotype to int8 LiteRT (``folder/model.tflite``, kept with ``keep``) and
    measure it; the estimate beside it. Never raises for the network's own failure
    (``status`` says, ``reason`` why)."""
    import torch

    from evo.net.model import build_model
    from export.errors import ExportError
    from export.litert import convert_litert_int8, tflm_arena_bytes

    torch.set_num_threads(1)
    resolved = resolve(parse_arch(text), shape, CLASSES)
    estimate = estimate_mcu(resolved)
    record: dict[str, Any] = {"text": text, "shape": list(shape),
                              "estimate": estimate.to_dict()}
    started = time.perf_counter()
    path = Path(folder) / "model.tflite"
    try:
        model = trained_like(build_model(resolved, torch.Generator().manual_seed(seed)), seed)
        samples = np.random.default_rng(seed).standard_normal((CALIBRATION, *shape))
        record["flash_bytes"] = convert_litert_int8(model, shape, samples.astype(np.float32),
                                                    path)
        record["arena_bytes"] = tflm_arena_bytes(path)
    except ExportError as error:
        return {**record, "status": "failed", "reason": error.message[:200]}
    finally:
        record["seconds"] = round(time.perf_counter() - started, 1)
        if not keep:
            path.unlink(missing_ok=True)
    record["status"] = "ok"
    for name in ("arena_bytes", "flash_bytes"):
        record[f"{name}_error_pct"] = 100.0 * (estimate.to_dict()[name] - record[name]) \
            / record[name]
    return record


def reestimated(record: dict[str, Any]) -> dict[str, Any]:
    """A stored record with the estimate of the current code (the measurements kept)."""
    resolved = resolve(parse_arch(record["text"]), tuple(record["shape"]), CLASSES)
    estimate = estimate_mcu(resolved).to_dict()
    record = {**record, "estimate": estimate}
    if record["status"] == "ok":
        for name in ("arena_bytes", "flash_bytes"):
            record[f"{name}_error_pct"] = 100.0 * (estimate[name] - record[name]) / record[name]
    return record


def run_cells(grammars: list[str], shapes: list[tuple[int, int, int]], per_cell: int,
              seed: int, records: Path | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    sink = records.open("a") if records else None
    with tempfile.TemporaryDirectory(prefix="evo-mcu-") as scratch:
        for grammar in grammars:
            for shape in shapes:
                rng = np.random.default_rng(seed)
                ok = 0
                for index, text in enumerate(sample_phenotypes(grammar, 3 * per_cell, rng)):
                    if ok == per_cell:
                        break
                    record = {"grammar": grammar,
                              **measure_network(text, shape, Path(scratch), seed + index)}
                    ok += record["status"] == "ok"
                    out.append(record)
                    print(f"{grammar} {'x'.join(map(str, shape))} #{index}: {record['status']} "
                          f"arena {record.get('arena_bytes')} est "
                          f"{record['estimate']['arena_bytes']}, flash "
                          f"{record.get('flash_bytes')} est {record['estimate']['flash_bytes']}"
                          f" ({record['seconds']} s)", file=sys.stderr, flush=True)
                    if sink:
                        sink.write(json.dumps(record) + "\n")
                        sink.flush()
    return out


def _cell_text(values: list[float]) -> str:
    if not values:
        return "- | - | -"
    under = min(values)
    return (f"{statistics.median(abs(v) for v in values):.1f} | "
            f"{max(abs(v) for v in values):.1f} | {max(0.0, -under):.1f}")


def table(records: list[dict[str, Any]]) -> str:
    """The markdown table: per grammar and shape, the estimate's error in percent."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = collections.defaultdict(list)
    for record in records:
        cells[(record["grammar"], "x".join(map(str, record["shape"])))].append(record)
    lines = ["| grammar | input | measured (failed) | arena: median \\|err\\| % | max \\|err\\| % "
             "| max under % | flash: median \\|err\\| % | max \\|err\\| % | max under % |",
             "|---|---|---|---|---|---|---|---|---|"]
    everything: list[dict[str, Any]] = []
    for (grammar, shape), rows in cells.items():
        ok = [r for r in rows if r["status"] == "ok"]
        everything += ok
        lines.append(f"| {grammar} | {shape} | {len(ok)} ({len(rows) - len(ok)}) | "
                     f"{_cell_text([r['arena_bytes_error_pct'] for r in ok])} | "
                     f"{_cell_text([r['flash_bytes_error_pct'] for r in ok])} |")
    failed = len(records) - len(everything)
    lines.append(f"| all | | {len(everything)} ({failed}) | "
                 f"{_cell_text([r['arena_bytes_error_pct'] for r in everything])} | "
                 f"{_cell_text([r['flash_bytes_error_pct'] for r in everything])} |")
    reasons = collections.Counter(r["reason"] for r in records if r["status"] != "ok")
    for reason, count in reasons.most_common():
        lines.append(f"\nfailed ({count}): {reason}")
    return "\n".join(lines)


def fit(records: list[dict[str, Any]]) -> str:
    """Non-negative least-squares constants from ``records``: the tail per operator kind (on
    bytes) and flash's fixed, per-tensor and per-name parts (on the error relative to size)."""
    from scipy.optimize import nnls

    ok = [r for r in records if r["status"] == "ok"]
    graphs = [lower(resolve(parse_arch(r["text"]), tuple(r["shape"]), CLASSES)) for r in ok]
    kinds = sorted({op.kind for g in graphs for op in g.ops})
    tail_x, tail_y, flash_x, flash_y = [], [], [], []
    for record, graph in zip(ok, graphs, strict=True):
        count = collections.Counter(op.kind for op in graph.ops)
        tail = record["arena_bytes"] - record["estimate"]["activations"]
        tail_x.append([count[k] for k in kinds] + [1])
        tail_y.append(tail - 24 * graph.tensor_count - 8 * graph.channels)
        small = graph.small_constants
        data = graph.weights + 4 * graph.bias + sum(small.values())
        quantised = 2 * graph.channels + len(graph.tensors) + ("sixth" in small)
        units = [sum((1 + op.parameter_tensors) * op.modules for op in graph.ops
                     if op.in_block == block) for block in (False, True)]
        size = record["flash_bytes"]
        flash_x.append([v / size for v in (1, graph.tensor_count, *units)])
        flash_y.append((size - data - 12 * quantised) / size)
    tail_coef = nnls(np.array(tail_x, float), np.array(tail_y, float))[0]
    flash_coef = nnls(np.array(flash_x, float), np.array(flash_y, float))[0]
    tail_text = ", ".join(f"{k}: {v:.0f}" for k, v in zip([*kinds, "fixed"], tail_coef,
                                                          strict=True))
    flash_text = ", ".join(f"{k}: {v:.0f}" for k, v in zip(
        ["fixed", "per tensor", "name path (top level)", "name path (in a block)"], flash_coef,
        strict=True))
    return f"tail per operator: {tail_text}\nflash: {flash_text}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grammars", default=",".join(GRAMMARS))
    parser.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES))
    parser.add_argument("--records", type=Path, help="append every record to this JSONL file")
    parser.add_argument("--from-records", type=Path, help="tabulate a JSONL file with the "
                        "current estimate, convert none")
    parser.add_argument("--fit", action="store_true", help="print least-squares constants")
    args = parser.parse_args()
    if args.from_records:
        records = [reestimated(json.loads(line))
                   for line in args.from_records.read_text().splitlines()]
    else:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
        started = time.perf_counter()
        records = run_cells(args.grammars.split(","), shapes, args.per_cell,  # type: ignore[arg-type]
                            args.seed, args.records)
        print(f"{len(records)} conversions in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    print(table(records))
    if args.fit:
        print(fit(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
