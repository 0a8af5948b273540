"""The LiteRT formats, run by the LiteRT interpreter (XNNPACK): FP32 and full-integer INT8.

Both start from the one FP32 flatbuffer ``litert_torch`` converts once per model (a failed
conversion fails both rows with the same reason). The manifest's input and output are read
back from the written file: the layout the model takes, its dtype and, for integer tensors,
the scale and zero point a device quantises with (``q = round(x / scale) + zero_point``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from export.job import Built, ExportJob
from export.request import INPUT_NAME, OUTPUT_NAME
from export.results import CalibrationInfo

_CONVERSION = "LiteRT conversion"
_FILE = "model.tflite"


def _float_model(job: ExportJob) -> bytes:
    from export.litert import float_flatbuffer

    shape = job.inputs.input_shape
    return job.shared(_CONVERSION, lambda: float_flatbuffer(job.model, shape))


class LitertFp32:
    name: ClassVar[str] = "litert"
    runtime: ClassVar[str] = "litert"
    precision: ClassVar[str] = "fp32"

    def build(self, job: ExportJob, directory: Path) -> Built:
        path = directory / _FILE
        path.write_bytes(_float_model(job))
        return _litert_built(job, path)


class LitertInt8:
    name: ClassVar[str] = "litert-int8"
    runtime: ClassVar[str] = "litert"
    precision: ClassVar[str] = "int8"

    def build(self, job: ExportJob, directory: Path) -> Built:
        from export.litert import QUANT_RECIPE, quantise_int8

        io_type = job.options.litert_io
        samples, info = job.calibration(
            f"ai-edge-quantizer {QUANT_RECIPE}: min/max per tensor, per-channel weights; "
            f"{io_type} input and output"
        )
        path = directory / _FILE
        path.write_bytes(quantise_int8(_float_model(job), samples, io_type))
        return _litert_built(job, path, calibration=info, io_type=io_type)


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in ("litert-torch", "ai-edge-quantizer", "ai-edge-litert"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _litert_built(
    job: ExportJob, path: Path, *, calibration: CalibrationInfo | None = None,
    io_type: str | None = None,
) -> Built:
    from export.litert import input_layout, litert_runner, tensor_specs

    shape, threads = job.inputs.input_shape, job.options.threads
    specs = tensor_specs(path)
    source, target = specs["input"], specs["output"]
    layout = input_layout(source["shape"], shape)
    integer_input = source["scale"] is not None
    input_spec = {
        "name": INPUT_NAME,
        "tensor": source["tensor"],
        "shape": source["shape"],
        "layout": layout,
        "dtype": source["dtype"],
        "scale": source["scale"],
        "zero_point": source["zero_point"],
        "expects": (
            "normalised samples quantised as round(x / scale) + zero_point, saturated"
            if integer_input
            else "float samples normalised with the manifest's mean and std"
        ),
    }
    output_spec = {
        "name": OUTPUT_NAME,
        "tensor": target["tensor"],
        "shape": target["shape"],
        "dtype": target["dtype"],
        "scale": target["scale"],
        "zero_point": target["zero_point"],
        "logits": (
            "(q - zero_point) * scale" if target["scale"] is not None else "the values as they are"
        ),
    }
    notes: tuple[str, ...] = ()
    if job.options.dynamic_batch:
        notes = ("LiteRT artifacts have a fixed batch of 1 (--dynamic-batch applies to ONNX/IR)",)
    extra: dict[str, Any] = {"litert_conversion": "litert_torch from the torch module"}
    if io_type is not None:
        extra["io_type"] = io_type
    return Built(
        files=(path,),
        runner=lambda f32: litert_runner(path, shape, threads=threads),
        input_spec=input_spec,
        versions={"litert_versions": _versions()},
        calibration=calibration,
        notes=notes,
        extra=extra,
        output_spec=output_spec,
    )
