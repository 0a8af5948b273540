"""The export format names, and the one parser of a list of them.

Kept apart from the exporters so that validating ``--export`` or a ``--format`` option (the
search's configuration check, the CLI) imports nothing heavy: no numpy, no torch, no onnx.
Every format here has exactly one exporter in ``export.formats.EXPORTERS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from export.errors import ExportError

ONNX_FORMATS = ("onnx", "onnx-fp16", "onnx-int8")
IR_FORMATS = ("ir-fp32", "ir-fp16", "ir-int8")
ALL_FORMATS = ONNX_FORMATS + IR_FORMATS  # the canonical order of tables and folders


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
