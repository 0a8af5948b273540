"""The ONNX formats, run by onnxruntime: FP32, FP16 and INT8 (static QDQ).

All three start from the one FP32 graph ``ExportJob.onnx_fp32`` converts once per model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from export.job import Built, ExportJob
from export.results import CalibrationInfo


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
