"""Export one model to many formats: the registry of exporters, and ``export_all`` that runs them.

An exporter (``export.onnx_formats``, ``export.ir_formats``) only builds its files and says how
to run them; checking parity and accuracy, writing the manifest and turning any failure into a
table row is done here, once, so a new format is one small class added to ``EXPORTERS`` and its
name to ``export.names``. Heavy libraries are imported inside the exporters; a caller that only
validates format names imports ``export.names`` instead.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from export.errors import ExportError
from export.evaluate import (
    accuracy_of,
    check_parity,
    evaluate_accuracy,
    random_inputs,
    torch_logits,
)
from export.ir_formats import IrFp16, IrFp32, IrInt8
from export.job import Built, Exporter, ExportJob
from export.litert_formats import LitertFp32, LitertInt8
from export.manifest import MANIFEST_NAME, build_manifest, file_entries, write_manifest
from export.names import ALL_FORMATS, IR_FORMATS, parse_formats
from export.onnx_formats import OnnxFp16, OnnxFp32, OnnxInt8
from export.request import (
    OUTPUT_NAME,
    ExportInputs,
    ExportOptions,
    LabelledData,
    make_inputs,
)
from export.results import AccuracyResult, ArtifactResult, ExportReport
from export.tools import describe_error, tool_versions

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "ALL_FORMATS",
    "EXPORTERS",
    "Built",
    "ExportJob",
    "Exporter",
    "export_all",
    "export_one",
    "parse_formats",
]

_ARTIFACT_NAMES = ("model.onnx", "model.xml", "model.bin", "model.tflite", MANIFEST_NAME)

# In the order of ALL_FORMATS; tests check that every name has its exporter.
EXPORTERS: Mapping[str, Exporter] = {
    exporter.name: exporter
    for exporter in (
        OnnxFp32(), OnnxFp16(), OnnxInt8(), IrFp32(), IrFp16(), IrInt8(), LitertFp32(), LitertInt8()
    )
}


def export_all(
    model: nn.Module,
    input_shape: tuple[int, int, int] | list[int],
    out_dir: Path,
    formats: str | Sequence[str] = ALL_FORMATS,
    *,
    calibration: np.ndarray | None = None,
    evaluation: tuple[np.ndarray, np.ndarray] | LabelledData | None = None,
    validation: tuple[np.ndarray, np.ndarray] | LabelledData | None = None,
    class_names: Sequence[str] = (),
    mean: Sequence[float] = (),
    std: Sequence[float] = (),
    source: Mapping[str, Any] | None = None,
    options: ExportOptions | None = None,
) -> ExportReport:
    """Export one model to every requested format under ``out_dir/<format>/``.

    Bad input (unknown format, unwritable ``out_dir``, a model that does not run on the input
    shape, missing data a requested option needs) raises ``ExportError`` before any work; a
    format that fails after that is a failed row with its reason, and the others still run.
    """
    options = options or ExportOptions()
    names = parse_formats(formats)
    inputs = make_inputs(
        model,
        tuple(input_shape),  # type: ignore[arg-type]
        calibration=calibration,
        evaluation=evaluation,
        validation=validation,
        class_names=tuple(class_names),
        mean=tuple(mean),
        std=tuple(std),
        source=source,
    )
    _check_request(inputs, options, names)
    out_dir = Path(out_dir)
    _ensure_writable(out_dir)
    job = ExportJob(inputs, options)
    classes = _check_model_runs(job)
    torch_accuracy = None
    if inputs.evaluation is not None:
        torch_accuracy = accuracy_of(
            torch_logits(job.model, inputs.evaluation.x), inputs.evaluation.y
        )
    rng = np.random.default_rng(options.seed)
    random = random_inputs(rng, options.parity_random, inputs.input_shape)
    samples = _parity_samples(inputs, options)
    output_spec = {"name": OUTPUT_NAME, "shape": [job.batch_dim(), classes], "dtype": "float32"}
    tools = tool_versions()
    rows = tuple(
        export_one(
            EXPORTERS[name],
            job,
            out_dir / name,
            random=random,
            samples=samples,
            torch_accuracy=torch_accuracy,
            output_spec=output_spec,
            tools=tools,
        )
        for name in names
    )
    return ExportReport(
        out_dir=out_dir,
        rows=rows,
        torch_accuracy=torch_accuracy,
        evaluation_samples=0 if inputs.evaluation is None else len(inputs.evaluation),
    )


def export_one(
    exporter: Exporter,
    job: ExportJob,
    directory: Path,
    *,
    random: np.ndarray,
    samples: np.ndarray | None,
    torch_accuracy: float | None,
    output_spec: Mapping[str, Any],
    tools: Mapping[str, str],
) -> ArtifactResult:
    """Build, check and describe one format; every failure becomes the row's reason."""
    started = time.perf_counter()
    base = {
        "format": exporter.name,
        "runtime": exporter.runtime,
        "precision": exporter.precision,
        "directory": directory,
    }
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _ARTIFACT_NAMES:
            (directory / name).unlink(missing_ok=True)
        built = exporter.build(job, directory)
    except Exception as error:
        return ArtifactResult(
            status="failed",
            reason=describe_error(error),
            seconds=time.perf_counter() - started,
            **base,
        )
    files = file_entries(built.files)
    reasons: list[str] = []
    parity = accuracy = None
    try:
        tolerance = job.options.tolerances[exporter.precision]
        parity = check_parity(built.runner(True), job.model, random, samples, tolerance)
        if not parity.passed:
            reasons.append(f"parity: {parity.reason}")
        evaluation = job.inputs.evaluation
        if evaluation is not None and torch_accuracy is not None:
            runner = built.runner(False)
            accuracy = AccuracyResult(
                accuracy=evaluate_accuracy(runner, evaluation),
                torch_accuracy=torch_accuracy,
                samples=len(evaluation),
                executed_precision=runner.executed_precision,
            )
    except Exception as error:
        reasons.append(f"checking: {describe_error(error)}")
    calibration_notes = (
        ()
        if built.calibration is None or built.calibration.note is None
        else (built.calibration.note,)
    )
    result = ArtifactResult(
        status="failed" if reasons else "ok",
        reason="; ".join(reasons) or None,
        files=files,
        parity=parity,
        accuracy=accuracy,
        calibration=built.calibration,
        fp32_weight_layers=built.fp32_weight_layers,
        notes=built.notes + calibration_notes,
        seconds=time.perf_counter() - started,
        **base,
    )
    manifest = build_manifest(
        result,
        input_spec=built.input_spec,
        output_spec=built.output_spec or output_spec,
        mean=job.inputs.mean,
        std=job.inputs.std,
        class_names=job.inputs.class_names,
        versions=built.versions,
        source=job.inputs.source,
        tools=tools,
        extra={"export": built.extra},
    )
    try:
        path = write_manifest(directory, manifest)
    except OSError as error:
        return _replace_status(result, f"writing manifest: {describe_error(error)}")
    return ArtifactResult(**{**_fields(result), "manifest": path})


def _fields(result: ArtifactResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in ArtifactResult.__dataclass_fields__}


def _replace_status(result: ArtifactResult, reason: str) -> ArtifactResult:
    joined = reason if result.reason is None else f"{result.reason}; {reason}"
    return ArtifactResult(**{**_fields(result), "status": "failed", "reason": joined})


def _check_request(inputs: ExportInputs, options: ExportOptions, names: tuple[str, ...]) -> None:
    if options.embed_preprocessing and not inputs.mean and any(n in IR_FORMATS for n in names):
        raise ExportError(
            "embedded preprocessing needs the normalisation mean and std", "pass mean= and std="
        )
    if options.max_accuracy_drop is not None and "ir-int8" in names and inputs.validation is None:
        raise ExportError(
            "accuracy-controlled INT8 needs validation data",
            "pass validation samples (not the test split) or drop max_accuracy_drop",
        )


def _ensure_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-probe-"):
            pass
    except OSError as error:
        raise ExportError(
            f"cannot write to output directory {out_dir}: {error.strerror or error}",
            "choose a writable --out directory",
        ) from error


def _check_model_runs(job: ExportJob) -> int:
    """Run torch once on a zero input: a wrong input shape is the caller's error, said plainly."""
    shape = job.inputs.input_shape
    try:
        logits = torch_logits(job.model, np.zeros((1, *shape), np.float32))
    except Exception as error:
        raise ExportError(
            f"model does not run on input {'x'.join(map(str, shape))}: {describe_error(error)}",
            "check the input shape (C,H,W)",
        ) from error
    if logits.ndim != 2:
        raise ExportError(
            f"model outputs shape {list(logits.shape)}, expected batch x classes",
            "export takes classifiers that return logits",
        )
    classes = int(logits.shape[1])
    names = job.inputs.class_names
    if names and len(names) != classes:
        raise ExportError(
            f"{len(names)} class names for a model with {classes} outputs", "one name per class"
        )
    return classes


def _parity_samples(inputs: ExportInputs, options: ExportOptions) -> np.ndarray | None:
    source = inputs.evaluation.x if inputs.evaluation is not None else inputs.calibration
    if source is None or options.parity_samples < 1:
        return None
    return source[: options.parity_samples]
