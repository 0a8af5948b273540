"""``python -m hardware``: the torch-free runner for the edge device itself.

Plain argparse and plain text, because the edge box has only numpy and the runtimes installed
(no typer, no rich, no torch, no evo). Results go to a JSON file that ``evo bench --import``
reads on the workstation.

    python -m hardware targets [--json]
    python -m hardware bench MODEL... [--target ov:NPU,litert:cpu,...] [--threads N]
                                      [--protocol full|quick] [--json] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from hardware.errors import HardwareError
from hardware.latency import PROTOCOLS, Measurement
from hardware.runner import BenchFailure, run_bench
from hardware.targets import detect_targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "targets":
            return _targets(args.json)
        return _bench(args)
    except HardwareError as exc:
        sys.stderr.write(f"hardware: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("hardware: interrupted\n")
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hardware",
        description="Measure ONNX / OpenVINO IR / LiteRT models on this machine's targets "
        "(no torch).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    targets = commands.add_parser("targets", help="List targets (runtime:device) and status.")
    targets.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

    bench = commands.add_parser("bench", help="Measure model files with the latency protocol.")
    bench.add_argument("models", nargs="+", metavar="MODEL", help=".onnx, .xml or .tflite files")
    bench.add_argument(
        "--target",
        action="append",
        metavar="T[,T...]",
        help="Targets, e.g. ort:cpu,ov:CPU,ov:NPU,litert:cpu (default: ort:cpu and ov:CPU "
        "where installed, and litert:cpu for .tflite files).",
    )
    bench.add_argument("--threads", type=int, default=1, help="Inference threads (default 1).")
    bench.add_argument(
        "--protocol", choices=sorted(PROTOCOLS), default="full", help="Latency protocol."
    )
    bench.add_argument("--json", action="store_true", help="Print the results as JSON.")
    bench.add_argument("--out", metavar="FILE", help="Write the results file (JSON) here.")
    return parser


def _targets(as_json: bool) -> int:
    infos = detect_targets()
    if as_json:
        print(json.dumps([info.to_dict() for info in infos], indent=1))
        return 0
    rows = [
        [
            info.name,
            info.device_name or "-",
            info.precisions_text,
            info.status,
            "tested on hardware" if info.tested_on_hardware else "untested on hardware",
        ]
        for info in infos
    ]
    print(_table(["target", "device", "precisions", "status", "tested"], rows))
    return 0


def _bench(args: argparse.Namespace) -> int:
    def progress(row: Measurement | BenchFailure) -> None:
        if isinstance(row, Measurement):
            text = f"{row.latency.median_ms:.4f} ms median ({row.protocol.name} protocol)"
            sys.stderr.write(f"measured {row.model.path} on {row.target}: {text}\n")
        else:
            sys.stderr.write(f"failed {row.model_path} on {row.target}: {row.error}\n")

    results = run_bench(
        args.models,
        targets=args.target,
        protocol=args.protocol,
        threads=args.threads,
        on_result=progress,
    )
    if args.out:
        path = results.save(args.out)
        sys.stderr.write(f"wrote {path}\n")
    if args.json:
        print(json.dumps(results.to_dict(), indent=1))
    else:
        rows = [
            [
                m.model.path,
                m.target,
                str(m.model.size_bytes),
                f"{m.model.stored_precision}/{m.executed_precision}",
                f"{m.load_ms:.1f}",
                f"{m.first_inference_ms:.3f}",
                f"{m.latency.median_ms:.4f}",
                f"{m.latency.p90_ms:.4f}",
                f"{m.latency.min_ms:.4f}",
                str(m.latency.n),
                f"{m.throughput_ips:.1f}",
                "-" if m.call_overhead_ms is None else f"{m.call_overhead_ms:.4f}",
            ]
            for m in results.measurements
        ]
        header = [
            "model", "target", "size (bytes)", "stored/executed", "load (ms)", "first (ms)",
            "median (ms)", "p90 (ms)", "min (ms)", "n", "throughput (inf/s)", "overhead (ms)",
        ]  # fmt: skip
        print(_table(header, rows))
        for failure in results.failures:
            print(f"failed: {failure.model_path} on {failure.target}: {failure.error}")
        for skipped in results.not_applicable:
            print(f"n/a: {skipped.model_path} on {skipped.target}: {skipped.reason}")
        print(f"protocol {results.protocol.name}, {results.threads} thread(s); host "
              f"{results.host.summary()}")  # fmt: skip
    return 1 if results.failures else 0


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    sys.exit(main())
