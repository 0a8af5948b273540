"""One exporter per format behind one small interface, and ``export_all`` that runs them.

An exporter only builds its files and says how to run them; checking parity and accuracy,
writing the manifest and turning any failure into a table row is done here, once, so a new
format is one small class added to ``EXPORTERS``. Heavy libraries are imported inside the
exporters, so ``parse_formats`` is cheap for a CLI to call.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np

from export.errors import ExportError
from export.evaluate import (
    Runner,
    U8Input,
    accuracy_of,
    check_parity,
    evaluate_accuracy,
    random_inputs,
    torch_logits,
)
from export.manifest import MANIFEST_NAME, build_manifest, file_entries, write_manifest
from export.request import (
    INPUT_NAME,
    OUTPUT_NAME,
    ExportInputs,
    ExportOptions,
    LabelledData,
    make_inputs,
)
from export.results import AccuracyResult, ArtifactResult, CalibrationInfo, ExportReport
from export.tools import describe_error, tool_versions

if TYPE_CHECKING:
    from torch import nn

ALL_FORMATS = ("onnx", "onnx-fp16", "onnx-int8", "ir-fp32", "ir-fp16", "ir-int8")
_ARTIFACT_NAMES = ("model.onnx", "model.xml", "model.bin", MANIFEST_NAME)


def parse_formats(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"onnx,ir-fp32"``, ``"all"`` or a list of names -> known names in the canonical order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {item.strip().lower() for item in items if item.strip()}
    if "all" in names:
        return ALL_FORMATS
    unknown = sorted(names - set(ALL_FORMATS))
    if unknown:
        raise ExportError(
            f"unknown export format {', '.join(unknown)}",
            f"choose from {', '.join(ALL_FORMATS)}, all",
        )
    if not names:
        raise ExportError("no export format given", f"choose from {', '.join(ALL_FORMATS)}, all")
    return tuple(name for name in ALL_FORMATS if name in names)


@dataclass(frozen=True)
class Built:
    """What an exporter wrote, and how to run it (``f32=True``: pinned float32 for parity)."""

    files: tuple[Path, ...]
    runner: Callable[[bool], Runner]
    input_spec: Mapping[str, Any]
    versions: Mapping[str, Any]
    calibration: CalibrationInfo | None = None
    fp32_weight_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


class Exporter(Protocol):
    """One format: its name, runtime and stored precision, and how to build it."""

    name: ClassVar[str]
    runtime: ClassVar[str]
    precision: ClassVar[str]

    def build(self, job: ExportJob, directory: Path) -> Built: ...


class ExportJob:
    """State the formats of one model share: the reference module and cached conversions.

    The FP32 ONNX model feeds the ONNX FP16 and INT8 formats and the converted OpenVINO model
    feeds the IR formats; each is built once, and a failure is remembered so every format that
    depends on it fails with the same reason instead of retrying.
    """

    def __init__(self, inputs: ExportInputs, options: ExportOptions) -> None:
        self.inputs = inputs
        self.options = options
        self.model = _reference_copy(inputs.model)
        self._cache: dict[str, Any] = {}

    def shared(self, key: str, build: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = build()
            except Exception as error:
                self._cache[key] = error
        value = self._cache[key]
        if isinstance(value, Exception):
            raise ExportError(f"{key} failed: {describe_error(value)}") from value
        return value

    def onnx_fp32(self) -> Any:
        from export.onnx import torch_to_onnx

        shape, options = self.inputs.input_shape, self.options
        return self.shared(
            "ONNX export",
            lambda: torch_to_onnx(
                self.model,
                shape,
                dynamic_batch=options.dynamic_batch,
                exporter=options.onnx_exporter,
                opset=options.opset,
            ),
        )

    def openvino_fp32(self) -> Any:
        from export.openvino import torch_to_ov

        shape, dynamic = self.inputs.input_shape, self.options.dynamic_batch
        return self.shared(
            "OpenVINO conversion", lambda: torch_to_ov(self.model, shape, dynamic_batch=dynamic)
        )

    def calibration(self, method: str) -> tuple[np.ndarray, CalibrationInfo]:
        """Up to ``calibration_size`` samples, and a note when fewer exist than were asked."""
        data = self.inputs.calibration
        if data is None:
            raise ExportError(
                "INT8 needs calibration data and none was given",
                self.options.calibration_hint
                or f"pass calibration= with up to {self.options.calibration_size} training "
                "samples",
            )
        requested = self.options.calibration_size
        used = min(requested, len(data))
        note = None
        if used < requested:
            note = (
                f"calibrated on {used} samples, fewer than the {requested} asked "
                f"(only {used} given)"
            )
        return data[:used], CalibrationInfo(requested, used, method, note)

    def batch_dim(self) -> int | str:
        return "batch" if self.options.dynamic_batch else 1

    def float_input_spec(self) -> dict[str, Any]:
        return {
            "name": INPUT_NAME,
            "shape": [self.batch_dim(), *self.inputs.input_shape],
            "layout": "NCHW",
            "dtype": "float32",
            "expects": "float samples normalised with the manifest's mean and std",
        }


def _reference_copy(model: nn.Module) -> nn.Module:
    """A CPU float32 eval copy, so exporting neither moves nor switches the caller's model."""
    try:
        return copy.deepcopy(model).float().cpu().eval()
    except Exception as error:
        raise ExportError(
            f"cannot copy the model for export: {describe_error(error)}", "pass a plain nn.Module"
        ) from error


class OnnxFp32:
    name: ClassVar[str] = "onnx"
    runtime: ClassVar[str] = "onnxruntime"
    precision: ClassVar[str] = "fp32"

    def build(self, job: ExportJob, directory: Path) -> Built:
        from export.onnx import save_onnx

        exported = job.onnx_fp32()
        path = directory / "model.onnx"
        save_onnx(exported.proto, path)
        notes = (
            ()
            if exported.fallback_reason is None
            else (f"TorchScript exporter used; {exported.fallback_reason}",)
        )
        return _onnx_built(job, path, exported, notes=notes)


class OnnxFp16:
    name: ClassVar[str] = "onnx-fp16"
    runtime: ClassVar[str] = "onnxruntime"
    precision: ClassVar[str] = "fp16"

    def build(self, job: ExportJob, directory: Path) -> Built:
        from export.onnx import save_onnx, to_fp16

        exported = job.onnx_fp32()
        path = directory / "model.onnx"
        save_onnx(to_fp16(exported.proto), path)
        return _onnx_built(
            job,
            path,
            exported,
            notes=("FP16 weights and activations inside, FP32 input and output",),
        )


class OnnxInt8:
    name: ClassVar[str] = "onnx-int8"
    runtime: ClassVar[str] = "onnxruntime"
    precision: ClassVar[str] = "int8"

    def build(self, job: ExportJob, directory: Path) -> Built:
        from export.onnx import quantize_int8_qdq, save_onnx

        samples, info = job.calibration("onnxruntime static QDQ, MinMax, per-channel weights")
        exported = job.onnx_fp32()
        path = directory / "model.onnx"
        save_onnx(quantize_int8_qdq(exported.proto, samples), path)
        return _onnx_built(job, path, exported, calibration=info)


def _onnx_built(
    job: ExportJob,
    path: Path,
    exported: Any,
    *,
    calibration: CalibrationInfo | None = None,
    notes: tuple[str, ...] = (),
) -> Built:
    import onnx

    from export.evaluate import onnx_runner
    from export.onnx import opset_of

    stored = onnx.load_model(str(path), load_external_data=False)
    threads = job.options.threads
    return Built(
        files=(path,),
        runner=lambda f32: onnx_runner(path, threads=threads),
        input_spec=job.float_input_spec(),
        versions={"opset": opset_of(stored), "onnx_ir_version": int(stored.ir_version)},
        calibration=calibration,
        notes=notes,
        extra={"onnx_exporter": exported.exporter},
    )


class _IrExporter:
    """The IR formats differ only in how the converted model is turned into the stored one."""

    name: ClassVar[str]
    runtime: ClassVar[str] = "openvino"
    precision: ClassVar[str]
    compress_to_fp16: ClassVar[bool] = False

    def stored_model(self, job: ExportJob) -> tuple[Any, CalibrationInfo | None]:
        return job.openvino_fp32(), None

    def build(self, job: ExportJob, directory: Path) -> Built:
        from export.evaluate import openvino_runner
        from export.openvino import embed_preprocessing, fp32_weight_layers, ir_version, save_ir

        model, calibration = self.stored_model(job)
        kept, weighted = fp32_weight_layers(model) if self.precision == "int8" else ((), 0)
        inputs, options = job.inputs, job.options
        u8 = None
        input_spec = job.float_input_spec()
        if options.embed_preprocessing:
            model = embed_preprocessing(model, inputs.mean, inputs.std, options.pixel_scale)
            u8 = U8Input(inputs.mean, inputs.std, options.pixel_scale)
            channels, height, width = inputs.input_shape
            input_spec = {
                "name": INPUT_NAME,
                "shape": [job.batch_dim(), height, width, channels],
                "layout": "NHWC",
                "dtype": "uint8",
                "expects": "raw pixels; the model divides by pixel_scale and normalises",
                "embedded_preprocessing": {
                    "pixel_scale": options.pixel_scale,
                    "mean": list(inputs.mean),
                    "std": list(inputs.std),
                },
            }
        xml, binary = save_ir(
            model, directory / "model.xml", compress_to_fp16=self.compress_to_fp16
        )
        threads = options.threads
        notes = []
        if kept:
            notes.append(
                f"{len(kept)} of {weighted} weighted layers kept in float by NNCF (e.g. "
                "squeeze-and-excitation convolutions): the INT8 size ratio has no target"
            )
        return Built(
            files=(xml, binary),
            runner=lambda f32: openvino_runner(xml, f32=f32, threads=threads, u8_input=u8),
            input_spec=input_spec,
            versions={"ir_version": ir_version(xml)},
            calibration=calibration,
            fp32_weight_layers=kept,
            notes=tuple(notes),
            extra={"openvino_conversion": "openvino.convert_model from the torch module"},
        )


class IrFp32(_IrExporter):
    name: ClassVar[str] = "ir-fp32"
    precision: ClassVar[str] = "fp32"


class IrFp16(_IrExporter):
    name: ClassVar[str] = "ir-fp16"
    precision: ClassVar[str] = "fp16"
    compress_to_fp16: ClassVar[bool] = True


class IrInt8(_IrExporter):
    name: ClassVar[str] = "ir-int8"
    precision: ClassVar[str] = "int8"

    def stored_model(self, job: ExportJob) -> tuple[Any, CalibrationInfo | None]:
        from export.openvino import AccuracyControl, quantize_int8

        control = None
        method = "NNCF post-training quantisation"
        if job.options.max_accuracy_drop is not None:
            if job.inputs.validation is None:
                raise ExportError(
                    "accuracy-controlled quantisation needs validation data", "pass validation"
                )
            control = AccuracyControl(job.inputs.validation, job.options.max_accuracy_drop)
            method = (
                "NNCF accuracy-controlled quantisation, max drop "
                f"{job.options.max_accuracy_drop} points on {len(job.inputs.validation)} "
                "validation samples"
            )
        samples, info = job.calibration(method)
        model = quantize_int8(job.openvino_fp32(), samples, accuracy_control=control)
        return model, info


EXPORTERS: Mapping[str, Exporter] = {
    exporter.name: exporter
    for exporter in (OnnxFp32(), OnnxFp16(), OnnxInt8(), IrFp32(), IrFp16(), IrInt8())
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
        output_spec=output_spec,
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
    if options.embed_preprocessing and not inputs.mean and any(n.startswith("ir-") for n in names):
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
