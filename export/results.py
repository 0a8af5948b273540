"""What an export produced, as frozen data that serialises to JSON for ``run.db`` and tables.

Sizes are bytes on disk summed over every file an artifact needs (``.xml`` and ``.bin`` for IR);
MB means 10^6 bytes. Accuracies are fractions in 0..1; drops are percentage points.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from export.tolerance import Tolerance

BYTES_PER_MB = 1_000_000
PRECISION_COLUMN = "precision (stored→executed)"
# OpenVINO's names for executed float types, shown in the names used for stored precision.
_SHOWN_AS_STORED = {"f32": "fp32", "f16": "fp16"}


@dataclass(frozen=True)
class FileEntry:
    """One file of an artifact, enough to verify a copy of it."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class ParityResult:
    """How far an artifact's outputs are from torch's on the same inputs."""

    passed: bool
    max_abs_diff_random: float
    max_abs_diff_samples: float | None
    top1_agreement_samples: float | None
    bound_random: float | None
    bound_samples: float | None
    random_inputs: int
    real_samples: int
    tolerance: Tolerance
    executed_precision: str | None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a non-finite difference (NaN or overflow in the artifact) becomes text."""
        data = {
            key: (str(value) if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in asdict(self).items()
        }
        data["tolerance"] = self.tolerance.to_dict()
        return data


@dataclass(frozen=True)
class CalibrationInfo:
    """How many samples an INT8 format was calibrated on, and whether that was fewer than asked."""

    requested: int
    used: int
    method: str
    note: str | None = None


@dataclass(frozen=True)
class AccuracyResult:
    """Top-1 accuracy of one artifact, run by its own runtime, against torch on the same data."""

    accuracy: float
    torch_accuracy: float
    samples: int
    executed_precision: str | None

    @property
    def drop_points(self) -> float:
        """Percentage points lost against torch (negative: the artifact did better)."""
        return (self.torch_accuracy - self.accuracy) * 100.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drop_points": self.drop_points}


@dataclass(frozen=True)
class ArtifactResult:
    """One row of the export table: a format that was written and checked, or failed and why."""

    format: str
    runtime: str
    precision: str
    status: Literal["ok", "failed"]
    reason: str | None
    directory: Path
    files: tuple[FileEntry, ...] = ()
    parity: ParityResult | None = None
    accuracy: AccuracyResult | None = None
    calibration: CalibrationInfo | None = None
    fp32_weight_layers: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    manifest: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of every file the artifact needs (the manifest excluded)."""
        return sum(f.bytes for f in self.files)

    @property
    def size_mb(self) -> float:
        """Size in MB, where MB is 10^6 bytes."""
        return self.size_bytes / BYTES_PER_MB

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "runtime": self.runtime,
            "precision": self.precision,
            "status": self.status,
            "reason": self.reason,
            "directory": str(self.directory),
            "files": [asdict(f) for f in self.files],
            "size_bytes": self.size_bytes,
            "size_mb": self.size_mb,
            "parity": None if self.parity is None else self.parity.to_dict(),
            "accuracy": None if self.accuracy is None else self.accuracy.to_dict(),
            "calibration": None if self.calibration is None else asdict(self.calibration),
            "fp32_weight_layers": list(self.fp32_weight_layers),
            "notes": list(self.notes),
            "manifest": None if self.manifest is None else str(self.manifest),
            "seconds": self.seconds,
        }

    def table_row(self) -> dict[str, str]:
        """The row as text under ``TABLE_COLUMNS`` (units in the headers)."""
        acc = self.accuracy
        par = self.parity
        notes = list(self.notes)
        if self.reason:
            notes.insert(0, self.reason)
        executed = None
        if acc is not None:
            executed = acc.executed_precision
        elif par is not None:
            executed = par.executed_precision
        return {
            "format": self.format,
            "status": self.status,
            PRECISION_COLUMN: precision_text(self.precision, executed),
            "size (bytes)": str(self.size_bytes) if self.files else "-",
            "size (MB = 10^6 bytes)": f"{self.size_mb:.3f}" if self.files else "-",
            "size vs FP32 (%)": "-",
            "test accuracy (%)": "-" if acc is None else f"{acc.accuracy * 100:.2f}",
            "drop vs torch (points)": "-" if acc is None else f"{acc.drop_points:+.2f}",
            "parity max |diff|": "-" if par is None else _parity_text(par),
            "notes": "; ".join(notes),
        }


TABLE_COLUMNS = (
    "format",
    "status",
    PRECISION_COLUMN,
    "size (bytes)",
    "size (MB = 10^6 bytes)",
    "size vs FP32 (%)",
    "test accuracy (%)",
    "drop vs torch (points)",
    "parity max |diff|",
    "notes",
)


def precision_text(stored: str, executed: str | None) -> str:
    """``stored→executed`` in the arrow style of `evo bench`: ``fp32→bf16``, ``int8→int8+fp32``.

    The executed side is the precision the row's accuracy ran at (without test data: its
    parity's, which OpenVINO runs pinned to f32), so a test accuracy is never read without it;
    ``-`` where the runtime does not report one (onnxruntime picks kernels per node).
    """
    if executed is None:
        return f"{stored}→-"
    parts = (_SHOWN_AS_STORED.get(part, part) for part in executed.split("+"))
    return f"{stored}→{'+'.join(parts)}"


def _parity_text(parity: ParityResult) -> str:
    diff = parity.max_abs_diff_random
    if parity.max_abs_diff_samples is not None:
        diff = max(diff, parity.max_abs_diff_samples)
    verdict = "pass" if parity.passed else "FAIL"
    if (
        parity.tolerance.min_top1_agreement is not None
        and parity.top1_agreement_samples is not None
    ):
        return f"{diff:.2e} {verdict} (top-1 agreement {parity.top1_agreement_samples * 100:.0f} %)"
    return f"{diff:.2e} {verdict}"


@dataclass(frozen=True)
class ExportReport:
    """All rows of one model's export, plus the torch reference they are compared with."""

    out_dir: Path
    rows: tuple[ArtifactResult, ...]
    torch_accuracy: float | None
    evaluation_samples: int

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    def row(self, format_name: str) -> ArtifactResult:
        for row in self.rows:
            if row.format == format_name:
                return row
        raise KeyError(format_name)

    def fp32_counterpart(self, format_name: str) -> str:
        """The FP32 format of the same runtime, which size ratios are taken against."""
        if format_name.startswith("litert"):
            return "litert"
        return "ir-fp32" if format_name.startswith("ir-") else "onnx"

    def size_ratio(self, format_name: str) -> float | None:
        """Bytes of every file of ``format_name`` over those of its FP32 counterpart."""
        return self._ratio(format_name, lambda row: row.size_bytes)

    def weights_ratio(self, format_name: str) -> float | None:
        """Bytes of the weight files only (``.bin`` for IR, the ``.onnx`` for ONNX)."""
        return self._ratio(
            format_name,
            lambda row: sum(f.bytes for f in row.files if not f.name.endswith(".xml")),
        )

    def _ratio(self, format_name: str, measure: Any) -> float | None:
        try:
            row = self.row(format_name)
            base = self.row(self.fp32_counterpart(format_name))
        except KeyError:
            return None
        if not (row.files and base.files) or measure(base) == 0:
            return None
        return measure(row) / measure(base)

    def table(self) -> list[dict[str, str]]:
        """One dict per format under ``TABLE_COLUMNS``, torch's reference first."""
        reference = {column: "" for column in TABLE_COLUMNS}
        reference.update(
            {
                "format": "torch",
                "status": "reference",
                PRECISION_COLUMN: precision_text("fp32", "f32"),
                "size (bytes)": "-",
                "size (MB = 10^6 bytes)": "-",
                "size vs FP32 (%)": "-",
                "test accuracy (%)": "-"
                if self.torch_accuracy is None
                else f"{self.torch_accuracy * 100:.2f}",
                "drop vs torch (points)": "-",
                "parity max |diff|": "-",
                "notes": f"{self.evaluation_samples} test samples"
                if self.evaluation_samples
                else "no test data given",
            }
        )
        rows = []
        for row in self.rows:
            text = row.table_row()
            ratio = self.size_ratio(row.format)
            if ratio is not None:
                text["size vs FP32 (%)"] = f"{ratio * 100:.1f}"
            rows.append(text)
        return [reference, *rows]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "torch_accuracy": self.torch_accuracy,
            "evaluation_samples": self.evaluation_samples,
            "rows": [
                {**row.to_dict(), "size_ratio_vs_fp32": self.size_ratio(row.format)}
                for row in self.rows
            ],
        }
