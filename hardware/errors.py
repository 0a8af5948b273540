"""One exception type for bad input to ``hardware``: a one-line message plus the fix.

``hardware`` must run on an edge box without ``evo``, so it cannot reuse ``evo.errors``; the
shape is the same (message, hint) so the ``evo`` CLI and ``python -m hardware`` both turn it
into a single stderr line and exit code 2.
"""

from __future__ import annotations

import re

# OpenVINO prefixes its messages with the C++ source location of each rethrow.
_SOURCE_LOCATION = re.compile(r"^(Exception from )?\S+\.(cpp|hpp|h):\d+:?$")


class HardwareError(Exception):
    """A target, model file or results file the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


def one_line(exc: BaseException, limit: int = 200) -> str:
    """First line of a runtime's (often multi-line, C++-flavoured) error, cut to ``limit``.

    Runtime errors arrive with stack frames and file paths of the C++ sources; a user needs the
    first sentence, and our errors promise one line.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    meaningful = [line for line in lines if not _SOURCE_LOCATION.match(line)]
    text = (meaningful or lines or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
