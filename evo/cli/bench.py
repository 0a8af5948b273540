"""``evo targets`` and ``evo bench PATH...|RUN_DIR``: which targets this machine has, and
latency on them.

Thin on purpose: the measuring lives in ``hardware`` (which also runs on the edge box as
``python -m hardware``) and, for a run's exported members, in ``evo.post.benchrun``; this module
parses options, calls them and prints rich tables. The runtimes are imported only inside the
command bodies, so ``evo --help`` stays fast.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from evo.errors import EvoError

if TYPE_CHECKING:
    from rich.console import Console

    from evo.post.bench_import import ImportOutcome
    from evo.post.benchrun import RunBench
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
    paths: list[Path] = typer.Argument(
        ...,
        metavar="PATH",
        help="Model files: ONNX (.onnx), OpenVINO IR (.xml) or LiteRT (.tflite); or one run "
        "folder (its exported members).",
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        "-t",
        help="Comma-separated targets, e.g. ort:cpu,ov:CPU,ov:NPU,litert:cpu "
        "(default: ort:cpu and ov:CPU where installed; for .tflite files litert:cpu too).",
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
    import_file: Path | None = typer.Option(
        None,
        "--import",
        metavar="RESULTS.json",
        help="Bring a results file of `python -m hardware bench --out` (measured on an edge "
        "device) into the run folder given as PATH; matched to members by sha256.",
    ),
) -> None:
    """Measure model files, or a run's exported members, on targets (docs/latency.md)."""
    if as_json and csv_file is not None:
        raise EvoError("--json and --csv cannot be used together", "choose one output")
    run_dir = _run_dir_argument(paths, import_file is not None)
    if import_file is not None:
        assert run_dir is not None
        _import(run_dir, import_file, as_json)
        return
    if run_dir is not None:
        _bench_run(run_dir, target, threads, protocol.value, as_json, csv_file)
        return
    labels = model_labels([str(path) for path in paths])
    results = bench_files(paths, target, threads, protocol.value, quiet=as_json, labels=labels)
    if as_json:
        typer.echo(json.dumps(results.to_dict(), indent=2))
    else:
        print_results(results, labels)
    if csv_file is not None:
        write_csv(results, csv_file)
        sys.stderr.write(f"evo: wrote {csv_file}\n")
    if results.failures:
        raise typer.Exit(1)


def _run_dir_argument(paths: list[Path], importing: bool) -> Path | None:
    """The run folder when PATH is one, else None (model files); a folder among several
    paths, or a folder that holds no run, is a user error."""
    folders = [p for p in paths if p.is_dir()]
    if importing and (len(paths) != 1 or not folders):
        raise EvoError("--import needs exactly one run folder as PATH",
                       "evo bench --import results.json runs/NAME")
    if not folders:
        return None
    if len(paths) > 1:
        raise EvoError(f"{folders[0]}: a run folder must be the only PATH",
                       "bench one run folder, or model files")
    from evo.run.layout import is_run_dir

    if not is_run_dir(folders[0]):
        raise EvoError(f"{folders[0]}: neither a model file nor a run folder (no run.db)",
                       "give .onnx/.xml files or a folder written by evo search")
    return folders[0]


def _bench_run(run_dir: Path, target: str | None, threads: int, protocol: str, as_json: bool,
               csv_file: Path | None) -> None:
    from evo.post.benchrun import PairResult, bench_run

    def progress(p: PairResult) -> None:
        if as_json or p.status == "not applicable":
            return
        label = f"member {p.model.member} {p.model.format}"
        if p.measurement is not None:
            note = f"{p.measurement.latency.median_ms:.4f} ms median"
            sys.stderr.write(f"evo: measured {label} on {p.target}: {note}\n")
        else:
            sys.stderr.write(f"evo: failed {label} on {p.target}\n")

    results = bench_run(run_dir, target, protocol, threads, on_result=progress)
    if as_json:
        typer.echo(json.dumps(results.to_dict(), indent=2))
    else:
        print_run_results(results)
    if csv_file is not None:
        _write_rows(results.csv_rows(), csv_file)
        sys.stderr.write(f"evo: wrote {csv_file}\n")
    if results.failures:
        raise typer.Exit(1)


def print_run_results(results: RunBench) -> None:
    """One table for the run: a row per exported (member, format), median and p90 per target;
    failed pairs are listed below it."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"{results.run_dir}: exported members, {results.protocol} protocol, "
        f"{results.threads} thread(s), batch 1",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1),
    )
    columns = ["member", "format", "size\n(bytes)", "size\n(MB)", "test acc\n(%)"]
    for info in results.targets:
        columns += [f"{info.name}\nmedian (ms)", f"{info.name}\np90 (ms)"]
    for column in columns:
        table.add_column(column, justify="left" if column in {"member", "format"} else "right",
                         no_wrap=True)
    for model in results.models:
        size = model.size_bytes
        acc = model.test_accuracy
        cells = [str(model.member), model.format, "-" if size is None else f"{size:,}",
                 "-" if size is None else f"{size / 1e6:.3f}",
                 "-" if acc is None else f"{acc * 100:.2f}"]
        for info in results.targets:
            p = results.pair(model, info.name)
            if p is None or p.status == "not applicable":
                cells += ["n/a", "n/a"]
            elif p.measurement is None:
                cells += ["[red]failed[/red]", "-"]
            else:
                cells += [f"{p.measurement.latency.median_ms:.4f}",
                          f"{p.measurement.latency.p90_ms:.4f}"]
        table.add_row(*cells)
    console = _console()
    console.print(table)
    for p in results.failures:
        console.print(f"[red]failed[/red] member {p.model.member} {p.model.format} on "
                      f"{p.target}: {p.error}", highlight=False)
    if any(p.status == "not applicable" for p in results.pairs):
        console.print("n/a: the target's runtime cannot read that format (IR on onnxruntime, "
                      ".tflite off litert:cpu, ONNX/IR on litert:cpu)", highlight=False)
    console.print("test acc: accuracy of each exported file on the run's test split "
                  "(from the export); MB = 10^6 bytes", highlight=False)
    console.print(f"host: {results.host.summary()}", highlight=False)
    from evo.run.layout import db_path

    console.print(f"recorded in {db_path(results.run_dir)} (measurements)", highlight=False)
    if results.protocol == "quick":
        console.print("[yellow]quick protocol: for ranking inside a search, not for reporting.[/]")


def _import(run_dir: Path, results_file: Path, as_json: bool) -> None:
    from evo.post.bench_import import import_results

    outcome = import_results(run_dir, results_file)
    if as_json:
        typer.echo(json.dumps(outcome.to_dict(), indent=2))
    else:
        print_import(outcome)
    for m in outcome.unmatched:
        sys.stderr.write(f"evo: not matched: {m.model.path} on {m.target} (sha256 "
                         f"{m.model.sha256[:16]}...): no exported file of this run has these "
                         "bytes\n")
    if outcome.unmatched:
        raise typer.Exit(1)


def print_import(outcome: ImportOutcome) -> None:
    from rich import box
    from rich.table import Table

    table = Table(title=f"Imported from {outcome.source}", box=box.SIMPLE_HEAD, pad_edge=False,
                  padding=(0, 1))
    for column in ("member", "format", "target", "median\n(ms)", "p90\n(ms)", "protocol",
                   "status"):
        table.add_column(column, justify="right" if "ms" in column else "left", no_wrap=True)
    for status, pairs in (("imported", outcome.imported), ("already imported", outcome.already)):
        for model, m in pairs:
            table.add_row(str(model.member), model.format, m.target,
                          f"{m.latency.median_ms:.4f}", f"{m.latency.p90_ms:.4f}",
                          m.protocol.name, status)
    console = _console()
    console.print(table)
    console.print(f"device: {outcome.host.summary()}", highlight=False)
    for f in outcome.failures:
        console.print(f"the device could not measure {f.model_path} on {f.target}: {f.error}",
                      highlight=False)


def model_labels(paths: Sequence[str]) -> dict[str, str]:
    """What the table calls each model file: its path relative to the folder all of them share,
    so two exports both named ``model.onnx`` stay apart (``3/onnx/model.onnx``,
    ``5/onnx/model.onnx``); keyed by the path as given (``str(Path(path))``)."""
    given = list(dict.fromkeys(str(Path(p)) for p in paths))
    resolved = {p: os.path.abspath(p) for p in given}
    if len(set(resolved.values())) < 2:
        return {p: Path(p).name for p in given}
    common = os.path.commonpath([os.path.dirname(r) for r in resolved.values()])
    return {p: os.path.relpath(r, common) for p, r in resolved.items()}


def bench_files(
    paths: list[Path], target: str | None, threads: int, protocol: str, quiet: bool = False,
    labels: dict[str, str] | None = None,
) -> BenchResults:
    """Run the hardware bench on files, reporting each row on stderr as it lands."""
    from hardware.runner import run_bench

    names = labels or model_labels([str(path) for path in paths])

    def progress(row: Measurement | BenchFailure) -> None:
        if quiet:
            return
        from hardware.latency import Measurement

        if isinstance(row, Measurement):
            note = f"{row.latency.median_ms:.4f} ms median"
            label = names.get(row.model.path, row.model.name)
            sys.stderr.write(f"evo: measured {label} on {row.target}: {note}\n")
        else:
            label = names.get(row.model_path, Path(row.model_path).name)
            sys.stderr.write(f"evo: failed {label} on {row.target}\n")

    return run_bench(paths, targets=target, protocol=protocol, threads=threads, on_result=progress)


def print_results(results: BenchResults, labels: dict[str, str] | None = None) -> None:
    """One rich table, a row per (model, target) in the order given: measured, or ``n/a`` where
    the pair cannot exist (IR on onnxruntime); failed pairs are listed below it. Models are
    named by ``labels`` (default: relative to their common folder, see ``model_labels``).

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
    paths = [m.model.path for m in results.measurements] + [f.model_path for f in
                                                             results.failures]
    paths += [n.model_path for n in results.not_applicable]
    names = labels or model_labels(paths)
    order = {path: i for i, path in enumerate(names)}
    targets = {info.name: i for i, info in enumerate(results.targets)}
    rows: list[tuple[tuple[int, int], list[str]]] = []
    for m in results.measurements:
        memory = "-" if m.peak_memory_bytes is None else f"{m.peak_memory_bytes / 1e6:.1f}"
        overhead = "-" if m.call_overhead_ms is None else f"{m.call_overhead_ms:.4f}"
        rows.append(((order.get(m.model.path, len(order)), targets.get(m.target, 0)), [
            names.get(m.model.path, m.model.name), m.target, f"{m.model.size_bytes:,}",
            _precision(m.model.stored_precision, m.executed_precision), f"{m.load_ms:.1f}",
            f"{m.first_inference_ms:.3f}", f"{m.latency.median_ms:.4f}",
            f"{m.latency.p90_ms:.4f}", str(m.latency.n), overhead, memory,
        ]))  # fmt: skip
    for n in results.not_applicable:
        rows.append(((order.get(n.model_path, len(order)), targets.get(n.target, 0)),
                     [names.get(n.model_path, n.model_path), n.target, *["n/a"] * 9]))
    for _key, cells in sorted(rows, key=lambda row: row[0]):
        table.add_row(*cells)
    console = _console()
    console.print(table)
    for f in results.failures:
        console.print(f"[red]failed[/red] {names.get(f.model_path, f.model_path)} on {f.target}: "
                      f"{f.error}", highlight=False)
    for reason in dict.fromkeys(n.reason for n in results.not_applicable):
        console.print(f"n/a: {reason} (not tried, not a failure)", highlight=False)
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
    _write_rows(results.rows(), path)


def _write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """CSV with the union of the rows' keys (failed rows have fewer), first-seen order."""
    fieldnames = list(dict.fromkeys(key for row in rows for key in row)) or ["model"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
