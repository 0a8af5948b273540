"""Microcontroller figures of an exported ``litert-int8`` model, beside the search's estimate.

A search ranks candidates by the estimate of :mod:`evo.arch.mcu`; the exported int8 model is
what a firmware runs, so each ``litert-int8`` artifact of a run's export is loaded in TensorFlow
Lite Micro: ``arena_bytes`` is the tensor arena it allocates (``export.litert.tflm_arena_bytes``),
``flash_bytes`` the ``.tflite`` file's size (the C array a firmware stores; TFLite Micro's own
code is not counted). Both go into the export row (``run.db``'s ``details``), ``evo export
--json`` and the artifact's ``manifest.json``, with the estimate and its error in percent of the
measured value, so every export checks the estimate again. A model TFLite Micro cannot run keeps
its row, with the reason in ``tflm_reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.arch import ResolvedArch
from evo.arch.mcu import McuEstimate, estimate_mcu, measured_text
from evo.run.layout import export_format_dir

if TYPE_CHECKING:
    from export.results import ExportReport

MCU_FORMAT = "litert-int8"


def _error(estimate: int, measured: int | None) -> float | None:
    """The estimate's error in percent of the measured value (positive: an overestimate)."""
    return None if not measured else round(100.0 * (estimate - measured) / measured, 2)


@dataclass(frozen=True)
class McuMeasurement:
    """TFLite Micro's arena and the file's size for one int8 model, and the estimate."""

    arena_bytes: int | None  # None: TFLite Micro could not run the model (see reason)
    flash_bytes: int
    estimate: McuEstimate
    reason: str | None = None
    operators: tuple[str, ...] = ()  # builtin operators the model uses, for the op resolver

    def to_dict(self) -> dict[str, Any]:
        return {
            "arena_bytes": self.arena_bytes, "flash_bytes": self.flash_bytes,
            "tflm_operators": list(self.operators),
            "tflm_resolver_calls": [resolver_call(name) for name in self.operators],
            "mcu_estimate": self.estimate.to_dict(),
            "arena_estimate_error_pct": _error(self.estimate.arena_bytes, self.arena_bytes),
            "flash_estimate_error_pct": _error(self.estimate.flash_bytes, self.flash_bytes),
            "tflm_reason": self.reason,
        }

    def describe(self) -> str:
        """``TFLite Micro arena 12,345 bytes (estimate 12,300, -0.4 %); flash ...``."""
        return measured_text(self.to_dict()) or ""

def measure_model(path: Path, resolved: ResolvedArch, io_type: str = "int8") -> McuMeasurement:
    """TFLite Micro's arena for the int8 model at ``path`` and its size, with the estimate for
    ``resolved`` (the network it was exported from)."""
    from export.errors import ExportError
    from export.litert import tflm_arena_bytes

    estimate = estimate_mcu(resolved, io_type)
    flash = Path(path).stat().st_size
    operators = model_operators(path)
    try:
        return McuMeasurement(tflm_arena_bytes(path), flash, estimate, operators=operators)
    except ExportError as error:
        return McuMeasurement(None, flash, estimate, error.message, operators)


def model_operators(path: Path) -> tuple[str, ...]:
    """The builtin operators a ``.tflite`` uses (``CONV_2D``, ...), sorted: what a firmware's
    ``MicroMutableOpResolver`` must register."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    names = {value: key for key, value in vars(flatbuffer_utils.schema_fb.BuiltinOperator).items()
             if not key.startswith("_")}
    return tuple(sorted({names[max(code.builtinCode, code.deprecatedBuiltinCode)]
                         for code in model.operatorCodes}))


def resolver_call(operator: str) -> str:
    """TFLite Micro's registration method of a builtin: ``CONV_2D`` -> ``AddConv2D``."""
    return "Add" + "".join(part.capitalize() for part in operator.split("_")).replace("2d", "2D")


def measure_export(report: ExportReport, files_dir: Path, resolved: ResolvedArch,
                   io_type: str = "int8") -> dict[str, dict[str, Any]]:
    """The figures of each ok ``litert-int8`` row of ``report`` by format, its files read in
    ``files_dir`` (the member's folder the report was written to, staging included); each
    row's manifest gets the same keys."""
    from export.manifest import read_manifest, write_manifest

    measured: dict[str, dict[str, Any]] = {}
    for row in report.rows:
        if row.format != MCU_FORMAT or not row.ok or not row.files:
            continue
        folder = export_format_dir(files_dir, row.format)
        figures = measure_model(folder / row.files[0].name, resolved, io_type).to_dict()
        manifest = read_manifest(folder)
        write_manifest(folder, {**manifest, **figures})
        measured[row.format] = figures
    return measured

