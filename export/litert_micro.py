"""The tensor arena TensorFlow Lite Micro needs for a ``.tflite``: the RAM figure of a firmware.

Measured, not estimated: ``tflite_micro``'s Python interpreter is the TFLM C++ runtime with its
``RecordingMicroAllocator``, which counts every byte it takes from the arena (activations as
planned by its memory planner, plus the interpreter's own persistent structures) and reports
the total through ``print_allocations()``. That report is written by C++ to file descriptor 2,
out of Python's reach, so it is captured at the descriptor for the duration of the call.

Why the recorded total rather than bisecting the smallest arena that allocates: the total is
the figure TFLM itself documents for sizing ``tensor_arena`` in a firmware, it takes one
allocation instead of about twenty, and a bisection on this host finds a few bytes less only
because the host's ``malloc`` happens to align the arena start (on a device the start
alignment is the firmware's). The figure is then checked: an interpreter given exactly that
many bytes must allocate and run one inference. Where it cannot (a kernel that asks for scratch
memory while it runs, which the recording does not count: seen with float CUMSUM and ERF, not
with the int8 layers of the shipped grammars), the answer is the smallest arena that does run,
found by bisection above the total to TFLM's 16-byte alignment.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from export.errors import ExportError

TFLM_INSTALL_HINT = "pip install 'evo-edge-nas[litert]' (it includes tflite-micro)"
_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
# Arena sizes tried to load a model before its need is known: from 1 MiB, doubling up to
# 1 GiB (a model needing more is far outside any microcontroller and is reported as such).
_FIRST_ARENA = 1 << 20
_LAST_ARENA = 1 << 30
_SHORTAGE = ("Failed to resize buffer", "Failed to allocate", "Unable to allocate")
_ALIGNMENT = 16  # TFLM aligns arena allocations to 16 bytes: bisection stops at that step


def tflm_arena_bytes(path: Path) -> int:
    """Bytes of tensor arena TFLite Micro allocates to run the model at ``path`` once.

    Raises ``ExportError`` with TFLM's own reason when it cannot load or run the model (an
    operator it lacks, a type its kernels do not take).
    """
    runtime = _runtime()
    path = Path(path)
    try:
        model = path.read_bytes()
    except OSError as error:
        raise ExportError(
            f"cannot read {path}: {error.strerror or error}", "export the model first"
        ) from error
    arena = _FIRST_ARENA
    while True:
        interpreter, log = _run(runtime, model, arena)
        if interpreter is not None:
            break
        if not any(marker in log for marker in _SHORTAGE) or arena >= _LAST_ARENA:
            raise ExportError(
                f"TFLite Micro cannot run {path.name}: {_reason(log)}",
                "use operators and int8/float types TFLite Micro supports",
            )
        arena *= 2
    with _captured_stderr() as read:
        interpreter.print_allocations()
        printed = read()
    match = _TOTAL.search(printed)
    if match is None:
        raise ExportError(
            "TFLite Micro printed no arena total", "check the installed tflite-micro version"
        )
    total = int(match.group(1))
    if _run(runtime, model, total)[0] is not None:
        return total
    # Scratch memory a kernel asks for while it runs is not in the recorded total: the
    # smallest arena that also runs lies between the total and the arena that worked.
    low, high = total, arena
    while high - low > _ALIGNMENT:
        middle = (low + high) // 2
        if _run(runtime, model, middle)[0] is None:
            low = middle
        else:
            high = middle
    return -(-high // _ALIGNMENT) * _ALIGNMENT  # rounded up: more arena never stops a model


def _runtime() -> Any:
    try:
        from tflite_micro import runtime
    except ImportError as error:
        raise ExportError("tflite_micro is not installed", TFLM_INSTALL_HINT) from error
    return runtime


def _run(runtime: Any, model: bytes, arena: int) -> tuple[Any | None, str]:
    """Load and invoke once on a zero input; the interpreter, or None and what TFLM printed."""
    with _captured_stderr() as read:
        try:
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena)
            detail = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            interpreter.invoke()
        except Exception as error:
            return None, f"{read()}\n{type(error).__name__}: {error}"
        printed = read()
    return interpreter, printed


def _reason(log: str) -> str:
    """The first informative line TFLM printed (the error's own text as a fallback)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in lines:
        if not line.startswith("[RecordingMicroAllocator]"):
            return line[:200]
    return "unknown error"


@contextlib.contextmanager
def _captured_stderr() -> Iterator[Any]:
    """Send file descriptor 2 to a temporary file; yields a function returning its text.

    Process-wide for its short duration: other threads' stderr in that window is captured
    too, which is why it wraps only the TFLM calls.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        restored = False

        def read() -> str:
            nonlocal restored
            if not restored:
                os.dup2(saved, 2)
                restored = True
            sink.seek(0)
            return sink.read().decode("utf-8", "replace")

        try:
            yield read
        finally:
            if not restored:
                os.dup2(saved, 2)
            os.close(saved)
