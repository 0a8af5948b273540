"""``evo export``: members of a run, or one evo checkpoint file, to ONNX and OpenVINO IR.

Thin on purpose: choosing weights, loading the run's data and recording in run.db live in
:mod:`evo.post.exporting`, the formats in ``export/``; this module parses options and prints one
table for every member and format. torch, onnx and openvino are imported inside the command.

Exit codes: 0 once the export ran, failed rows included (a failed row is a result, like a
benchmark row: the table and ``--json`` say which and why, and the other rows are written and
recorded); ``--strict`` makes any failed row exit 1 (for scripts that deploy what they export);
2 for bad input (unknown member or format, unwritable output folder, run in progress).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from evo.errors import EvoError

if TYPE_CHECKING:
    from export.request import ExportOptions
    from export.results import ExportReport

DEFAULT_FORMATS = "onnx,ir-fp32"
_FORMATS_HELP = ("Comma-separated: onnx, onnx-fp16, onnx-int8, ir-fp32, ir-fp16, ir-int8, "
                 "litert, litert-int8, or all (LiteRT only when its extra is installed).")
# Table columns (header, justify, key of export.results.ExportReport.table() rows); units in
# the headers.
_COLUMNS = (
    ("member", "right", ""), ("format", "left", "format"), ("status", "left", "status"),
    ("precision stored→ executed", "left", "precision (stored→executed)"),
    ("size (bytes)", "right", "size (bytes)"),
    ("MB (10^6 bytes)", "right", "size (MB = 10^6 bytes)"),
    ("vs FP32 (%)", "right", "size vs FP32 (%)"),
    ("test acc (%)", "right", "test accuracy (%)"),
    ("drop vs torch (points)", "right", "drop vs torch (points)"),
    ("parity max |diff|", "left", "parity max |diff|"),
    ("reason / notes", "left", "notes"),
)
# Said on a failed INT8 row when a checkpoint is exported without data (a run has its own).
CALIBRATION_HINT = ("pass --dataset with the checkpoint's dataset: its training split supplies "
                    "the {} calibration samples of --calibration-size")
_INLINE_NOTE = 20  # longer reasons and notes are printed in full under the table


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    source: Path = typer.Argument(..., metavar="RUN_DIR|MODEL.pt",
                                  help="Run folder written by evo search, or a checkpoint "
                                  "(.pt) saved by evo."),
    member: Optional[list[int]] = typer.Option(  # noqa: UP045 (typer reads typing.Optional)
        None, "--member", help="Member id; repeat for several (default: the front)."),
    front: bool = typer.Option(False, "--front", help="Export the front (with --member: as "
                               "well as the named members)."),
    retrain: Optional[int] = typer.Option(  # noqa: UP045
        None, "--retrain", metavar="N", help="With one --member: the weights of its retrain N "
        "(as numbered by evo show; default: its newest retrain, else the search's weights)."),
    formats: str = typer.Option(DEFAULT_FORMATS, "--format", help=_FORMATS_HELP),
    out: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--out", help="Output folder; each member gets OUT/<member>/<format>/ (default "
        "RUN_DIR/export/; for a checkpoint, <its folder>/<its name>-export/)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (progress "
                                 "lines go to stderr)."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="A batch dimension of "
                                       "any size (default: fixed batch 1)."),
    max_drop: Optional[float] = typer.Option(  # noqa: UP045
        None, "--max-drop", metavar="POINTS", help="ir-int8 with NNCF accuracy control: at "
        "most this many percentage points lost on the validation split."),
    embed_preprocessing: bool = typer.Option(
        False, "--embed-preprocessing", help="IR formats take u8 NHWC frames and normalise "
        "inside the model."),
    pixel_scale: float = typer.Option(255.0, "--pixel-scale", help="With "
                                      "--embed-preprocessing: raw pixels are divided by this "
                                      "(255 for 8-bit images, 16 for sklearn's digits)."),
    calibration_size: int = typer.Option(300, "--calibration-size", help="Training samples "
                                         "that calibrate the INT8 formats."),
    litert_io: str = typer.Option("int8", "--litert-io", help="Input/output type of "
                                  "litert-int8: int8, uint8 or float."),
    threads: Optional[int] = typer.Option(  # noqa: UP045
        None, "--threads", help="Runtime threads while checking (default: the run's "
        "--threads; for a checkpoint, the runtime's default)."),
    input_shape: Optional[str] = typer.Option(  # noqa: UP045
        None, "--input", metavar="CxHxW", help="Checkpoint only: input shape, e.g. 1x28x28 "
        "(default: the one stored in the checkpoint)."),
    dataset: Optional[str] = typer.Option(  # noqa: UP045
        None, "--dataset", help="Checkpoint only: dataset for calibration and test accuracy "
        "(without it: parity on random inputs only, no accuracy, no INT8)."),
    data_dir: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--data-dir", help="Checkpoint only: folder holding the dataset's files."),
    split_seed: Optional[int] = typer.Option(  # noqa: UP045
        None, "--split-seed", help="Checkpoint only: seed of the dataset's splits; use the "
        "run's --seed so the test split is one the network never saw (default 0)."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 when any artifact failed "
                                "(default: failed rows are shown and the exit code is 0)."),
    max_memory: Optional[str] = typer.Option(  # noqa: UP045
        None, "--max-memory", help="Memory the export of one network may use, e.g. 8GB "
        "(default: three quarters of this machine's); a network estimated above it is refused "
        "before it is built."),
) -> None:
    """Export members of a run (or an evo checkpoint) to ONNX, OpenVINO IR and LiteRT, checked.

    Every artifact is compared with torch (parity) and, with data, scored on the test split by
    its own runtime; a manifest.json lies beside each. Uses a member's newest retrain (or
    --retrain N), else the search's weights, and says which; every row is recorded in run.db.
    Failed rows are shown (exit 0; exit 1 with --strict); bad input exits 2.
    """
    from export.formats import parse_formats
    from export.names import litert_note

    names = parse_formats(formats)
    options = _options(dynamic_batch, max_drop, embed_preprocessing, pixel_scale,
                       calibration_size, threads, litert_io)

    def say(text: str) -> None:
        typer.echo(text, err=as_json)

    if note := litert_note(formats):
        say(note)

    if source.is_dir():
        given = [flag for flag, value in (("--input", input_shape), ("--dataset", dataset),
                                          ("--data-dir", data_dir), ("--split-seed", split_seed))
                 if value is not None]
        if given:
            raise EvoError(f"{', '.join(given)} apply to a checkpoint file, not a run folder",
                           "a run exports with its own dataset and splits")
        from evo.post.exporting import export_run

        exported = export_run(source, member or None, names, out, options, front=front,
                              retrain=retrain, say=say, max_memory=max_memory)
        # The second field names the weights: member, retrain number, epochs, file.
        entries = [(str(item.member), item.weights.describe(source),
                    item.source.get("checkpoint"), item.report) for item in exported]
        header: dict[str, Any] = {"run_dir": str(source)}
        members_json = [item.to_dict() for item in exported]
    elif source.is_file():
        if member or front or retrain is not None:
            raise EvoError("--member, --front and --retrain apply to a run folder, not a "
                           "checkpoint file", "pass the run folder, or leave them out")
        from evo.post.exporting import export_checkpoint

        shape = _parse_shape(input_shape) if input_shape else None
        if dataset is None and any(name.endswith("int8") for name in names):
            say("note: without --dataset there is no calibration or test data: INT8 formats "
                "fail and accuracy is not measured")
        report, manifest_source = export_checkpoint(
            source, names, out, options, input_shape=shape, dataset=dataset, data_dir=data_dir,
            split_seed=split_seed or 0, max_memory=max_memory)
        entries = [(source.name, "checkpoint file", str(source), report)]
        header = {"checkpoint": str(source)}
        members_json = [{"member": None, "weights": "checkpoint file",
                         "checkpoint": str(source), "source": manifest_source,
                         **report.to_dict()}]
    else:
        raise EvoError(f"{source}: no such run folder or checkpoint file",
                       "pass a folder written by evo search (runs/NAME) or a .pt it saved")

    failed = sum(not row.ok for *_rest, report in entries for row in report.rows)
    total = sum(len(report.rows) for *_rest, report in entries)
    if as_json:
        typer.echo(json.dumps({**header, "formats": list(names), "artifacts": total,
                               "failed": failed, "members": members_json},
                              indent=2, default=str))
    else:
        _print_table(str(source), entries, failed, total)
    if failed:
        typer.echo(f"evo export: {failed} of {total} artifacts failed (see their reason)",
                   err=True)
        if strict:
            raise typer.Exit(1)


def _options(dynamic_batch: bool, max_drop: float | None, embed_preprocessing: bool,
             pixel_scale: float, calibration_size: int, threads: int | None,
             litert_io: str = "int8") -> ExportOptions:
    from export.request import ExportOptions

    if threads is not None and threads < 1:
        raise EvoError(f"--threads must be at least 1, got {threads}", "e.g. --threads 1")
    return ExportOptions(dynamic_batch=dynamic_batch, calibration_size=calibration_size,
                         max_accuracy_drop=max_drop, embed_preprocessing=embed_preprocessing,
                         pixel_scale=pixel_scale, threads=threads, litert_io=litert_io,
                         calibration_hint=CALIBRATION_HINT.format(calibration_size))


def _parse_shape(text: str) -> tuple[int, int, int]:
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise EvoError(f"--input {text!r} is not CxHxW", "e.g. --input 1x28x28")
    return shape  # type: ignore[return-value]


def _print_table(source: str, entries: list[tuple[str, str, str | None, ExportReport]],
                 failed: int, total: int) -> None:
    """One table for every model and format; long reasons and notes become numbered notes
    under it, so the table stays narrow enough to read and the reasons stay whole."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Export of {source} ({len(entries)} model"
                        f"{'s' * (len(entries) != 1)}, {total} artifacts, {failed} failed)")
    for header, justify, _key in _COLUMNS:
        table.add_column(header, justify=justify, overflow="fold",  # type: ignore[arg-type]
                         no_wrap=_key in ("", "format", "status", "precision (stored→executed)"))
    footnotes: list[str] = []
    for index, (label, _kind, _checkpoint, report) in enumerate(entries):
        for row in report.table():
            notes = row["notes"]
            if len(notes) > _INLINE_NOTE:
                footnotes.append(f"({len(footnotes) + 1}) {label} {row['format']}: {notes}")
                notes = f"see ({len(footnotes)})"
            status = "[red]failed[/red]" if row["status"] == "failed" else row["status"]
            table.add_row(escape(label), row["format"], status,
                          *[escape(row[key]) for _header, _justify, key in _COLUMNS[3:-1]],
                          escape(notes))
        if index < len(entries) - 1:
            table.add_section()
    console = Console(width=max(140, Console().width))
    console.print(table)
    for note in footnotes:
        console.print(escape(note), highlight=False, soft_wrap=True)
    for label, weights, _checkpoint, report in entries:
        name = weights if label.isdigit() else label
        console.print(escape(f"{name} -> {report.out_dir}/<format>/ (manifest.json beside "
                             "each)"), highlight=False, soft_wrap=True)
    console.print("sizes: bytes of every file an artifact needs, MB = 10^6 bytes; accuracy on "
                  "the test split, run by the artifact's own runtime at the executed precision "
                  "shown (OpenVINO: this CPU's default); drop in percentage points against "
                  "torch; parity with OpenVINO pinned to f32", highlight=False, soft_wrap=True)
