"""The export format names, and the one parser of a list of them.

Kept apart from the exporters so that validating ``--export`` or a ``--format`` option (the
search's configuration check, the CLI) imports nothing heavy: no numpy, no torch, no onnx.
Every format here has exactly one exporter in ``export.formats.EXPORTERS``.

The LiteRT formats need an optional extra; ``all`` means every format this installation can
build, so ``--format all`` without the extra still exports the rest and ``litert_note`` says
what was left out and how to install it. Naming a LiteRT format explicitly without the extra
gives a failed row whose reason is the install command.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from export.errors import ExportError

ONNX_FORMATS = ("onnx", "onnx-fp16", "onnx-int8")
IR_FORMATS = ("ir-fp32", "ir-fp16", "ir-int8")
LITERT_FORMATS = ("litert", "litert-int8")
# The canonical order of tables and folders.
ALL_FORMATS = ONNX_FORMATS + IR_FORMATS + LITERT_FORMATS
# Import names the LiteRT formats need (converter, quantiser, interpreter), and their extra.
LITERT_PACKAGES = ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")
LITERT_INSTALL = "pip install 'evo-edge-nas[litert]'"


def missing_litert() -> tuple[str, ...]:
    """The LiteRT packages not installed here (looked up without importing them)."""
    return tuple(name for name in LITERT_PACKAGES if not _installed(name))


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder that refuses the name, a broken package
        return False


def available_formats() -> tuple[str, ...]:
    """What ``all`` means on this installation: every format whose packages are present."""
    if missing_litert():
        return ONNX_FORMATS + IR_FORMATS
    return ALL_FORMATS


def litert_note(spec: str | Sequence[str]) -> str | None:
    """The one line to print when ``all`` leaves the LiteRT formats out, else None."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    if "all" not in {item.strip().lower() for item in items}:
        return None
    missing = missing_litert()
    if not missing:
        return None
    return (
        f"note: {', '.join(LITERT_FORMATS)} left out of 'all' ({', '.join(missing)} not "
        f"installed): {LITERT_INSTALL}"
    )


def parse_formats(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"onnx,ir-fp32"``, ``"all"`` or a list of names -> known names in the canonical order."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = {item.strip().lower() for item in items if item.strip()}
    if "all" in names:
        return available_formats()
    unknown = sorted(names - set(ALL_FORMATS))
    if unknown:
        raise ExportError(
            f"unknown export format {', '.join(unknown)}",
            f"choose from {', '.join(ALL_FORMATS)}, all",
        )
    if not names:
        raise ExportError("no export format given", f"choose from {', '.join(ALL_FORMATS)}, all")
    return tuple(name for name in ALL_FORMATS if name in names)
