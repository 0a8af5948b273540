"""One exception type for bad export input: a one-line message plus the fix.

``export/`` must not import ``evo``, so it carries its own error with the same shape as
``evo.errors.EvoError``; the CLI turns either into one stderr line and exit code 2.
"""

from __future__ import annotations


class ExportError(Exception):
    """Bad input or state the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
