"""``evo targets`` and ``evo bench PATH...``: which targets this machine has, and latency on them.

Thin on purpose: the measuring lives in ``hardware`` (which also runs on the edge box as
``python -m hardware``); this module parses options, calls it and prints rich tables. The
runtimes are imported only inside the command bodies, so ``evo --help`` stays fast.
"""

from __future__ import annotations

import csv
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from evo.errors import EvoError

if TYPE_CHECKING:
    from rich.console import Console

    from hardware.latency import Measurement
    from hardware.runner import BenchFailure, BenchResults


class ProtocolName(StrEnum):
    full = "full"
    quick = "quick"


def register(app: typer.Typer) -> None:
    app.command("targets")(targets)
    app.command("bench")(bench)


def targets(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List targets (runtime:device): device name, precisions, status, tested on hardware."""
    from hardware.targets import detect_targets

    infos = detect_targets()
    if as_json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    from rich.table import Table

    table = Table(title="Targets on this machine")
    for column in ("target", "device", "precisions", "status", "tested"):
        table.add_column(column)
    for info in infos:
        table.add_row(
            info.name,
            info.device_name or "-",
            info.precisions_text,
            info.status if info.available else f"[dim]{info.status}[/dim]",
            "tested on hardware" if info.tested_on_hardware else "untested on hardware",
        )
    console = _console()
    console.print(table)
    console.print(
        "tested on hardware: exercised by evo's test suite on a real device; the others are "
        "supported through the runtime but never run by us."
    )


def bench(
    paths: list[Path] = typer.Argument(..., help="Model files: ONNX (.onnx) or OpenVINO IR (.xml)"),
    target: str | None = typer.Option(
        None,
        "--target",
        "-t",
        help="Comma-separated targets, e.g. ort:cpu,ov:CPU,ov:NPU "
        "(default: ort:cpu and ov:CPU where installed).",
    ),
    threads: int = typer.Option(1, "--threads", min=1, help="Inference threads (fixed, recorded)."),
    protocol: ProtocolName = typer.Option(
        ProtocolName.full,
        "--protocol",
        help="full: >=10 runs/1 s warm-up, >=100 runs/5 s timed. quick: fewer runs, for searches.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
    csv_file: Path | None = typer.Option(
        None, "--csv", metavar="FILE", help="Also write one CSV row per model and target."
    ),
) -> None:
    """Measure model files on targets with the latency protocol (docs/latency.md)."""
    if as_json and csv_file is not None:
        raise EvoError("--json and --csv cannot be used together", "choose one output")
    results = bench_files(paths, target, threads, protocol.value, quiet=as_json)
    if as_json:
        typer.echo(json.dumps(results.to_dict(), indent=2))
    else:
        print_results(results)
    if csv_file is not None:
        write_csv(results, csv_file)
        sys.stderr.write(f"evo: wrote {csv_file}\n")
    if results.failures:
        raise typer.Exit(1)


def bench_files(
    paths: list[Path], target: str | None, threads: int, protocol: str, quiet: bool = False
) -> BenchResults:
    """Run the hardware bench on files, reporting each row on stderr as it lands."""
    from hardware.runner import run_bench

    def progress(row: Measurement | BenchFailure) -> None:
        if quiet:
            return
        from hardware.latency import Measurement

        if isinstance(row, Measurement):
            note = f"{row.latency.median_ms:.4f} ms median"
            sys.stderr.write(f"evo: measured {row.model.name} on {row.target}: {note}\n")
        else:
            sys.stderr.write(f"evo: failed {Path(row.model_path).name} on {row.target}\n")

    return run_bench(paths, targets=target, protocol=protocol, threads=threads, on_result=progress)


def print_results(results: BenchResults) -> None:
    """One rich table, a row per measured (model, target); failed pairs are listed below it.

    The table keeps the columns a person compares; min, mean, std, max, throughput, wall clock
    and fingerprints are in ``--json`` and ``--csv``.
    """
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"Latency: {results.protocol.name} protocol, {results.threads} thread(s), batch 1",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
    )
    columns = (
        "model", "target", "size\n(bytes)", "precision\n(stored→run)", "load\n(ms)",
        "first\n(ms)", "median\n(ms)", "p90\n(ms)", "n", "overhead\n(ms)", "peak mem\n(MB)",
    )  # fmt: skip
    for column in columns:
        left = column in {"model", "target"}
        table.add_column(column, justify="left" if left else "right", no_wrap=not left)
    for m in results.measurements:
        memory = "-" if m.peak_memory_bytes is None else f"{m.peak_memory_bytes / 1e6:.1f}"
        overhead = "-" if m.call_overhead_ms is None else f"{m.call_overhead_ms:.4f}"
        table.add_row(
            m.model.name, m.target, f"{m.model.size_bytes:,}",
            _precision(m.model.stored_precision, m.executed_precision), f"{m.load_ms:.1f}",
            f"{m.first_inference_ms:.3f}", f"{m.latency.median_ms:.4f}",
            f"{m.latency.p90_ms:.4f}", str(m.latency.n), overhead, memory,
        )  # fmt: skip
    console = _console()
    console.print(table)
    for f in results.failures:
        console.print(f"[red]failed[/red] {f.model_path} on {f.target}: {f.error}", highlight=False)
    for source in sorted({m.latency_source for m in results.measurements}):
        console.print(f"timing: {source}", highlight=False)
    console.print(f"host: {results.host.summary()}", highlight=False)
    if results.protocol.name == "quick":
        console.print("[yellow]quick protocol: for ranking inside a search, not for reporting.[/]")


def _precision(stored: str, executed: str) -> str:
    return stored if stored == executed else f"{stored}→{executed}"


def _console() -> Console:
    """A terminal's own width; 120 columns when piped, so logged tables do not wrap at 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 120))


def write_csv(results: BenchResults, path: Path) -> None:
    rows = results.rows()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)
