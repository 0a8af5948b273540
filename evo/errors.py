"""One exception type for bad user input: a one-line message plus the fix.

The CLI turns it into a single stderr line and exit code 2; library code raises it and never
prints, so the same error reaches a user of the Python API intact.
"""

from __future__ import annotations


class EvoError(Exception):
    """Bad input or state the user can fix; ``hint`` says how."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
