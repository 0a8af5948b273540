"""Keep third-party tools quiet and name their versions.

The exporters, NNCF and torch's ONNX exporter print progress bars and registration warnings
to stdout; a ``--json`` caller needs stdout clean, so their chatter is sent to stderr and
their loggers are turned down while they run.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from importlib import metadata

_TOOL_PACKAGES = ("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "numpy")
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "nncf", "onnxruntime")


@contextlib.contextmanager
def quiet_tools() -> Iterator[None]:
    """Route tool stdout to stderr and silence their warnings for the duration."""
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def tool_versions() -> dict[str, str]:
    """Versions of every package an artifact depends on, for its manifest."""
    versions = {"python": sys.version.split()[0]}
    for package in _TOOL_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def describe_error(error: BaseException) -> str:
    """One line for a table cell: our own errors as they are, others with their type name."""
    from export.errors import ExportError

    if isinstance(error, ExportError):
        return str(error)
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
