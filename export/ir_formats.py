"""The OpenVINO IR formats: FP32, FP16 (compressed weights) and INT8 (NNCF).

All three start from the one model ``ExportJob.openvino_fp32`` converts once per model; they
differ only in how it becomes the stored model, and all can embed the preprocessing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from export.errors import ExportError
from export.evaluate import U8Input
from export.job import Built, ExportJob
from export.request import INPUT_NAME
from export.results import CalibrationInfo


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
