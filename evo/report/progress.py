"""What a person sees while a search runs: live bars on a terminal, one line per event
elsewhere, or nothing with --quiet.

Plain lines suit CI logs and ``nohup`` (no escape codes, nothing redrawn); the terminal view
(:mod:`evo.report.rich_progress`) prints the same result lines above its bars, so a copied screen
reads like the log. The words of both come from :mod:`evo.report.progress_state`.
"""

from __future__ import annotations

import sys
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TextIO

from evo.report.progress_state import (
    SearchStats,
    batch_label,
    generation_text,
    measured_text,
    result_text,
    start_text,
)
from evo.report.rich_progress import RichReporter
from evo.search.contract import (
    BatchStarted,
    Event,
    GenerationDone,
    Listener,
    MemberMeasured,
    Notice,
    ResultArrived,
    SearchDone,
    SearchStarted,
)


def make_reporter(quiet: bool, stream: TextIO | None = None
                  ) -> tuple[Listener | None, AbstractContextManager[Any]]:
    """The progress view for ``stream`` (default stdout): nothing with ``quiet``, live rich
    bars on a terminal, plain lines otherwise (CI logs, ``nohup``, pipes). Returns the listener
    and a context manager that must enclose the search (it starts and stops live display)."""
    stream = stream or sys.stdout
    if quiet:
        return None, nullcontext()
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        reporter = RichReporter(stream=stream)
        return reporter, reporter
    return LineReporter(stream), nullcontext()


class LineReporter:
    """Listener for a search's events that prints one line per event; the progress inside a
    candidate (epochs, batches) is left to the live view."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.stats = SearchStats()  # the run's compute, for the generation lines

    def _print(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:7.1f}s] {text}\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        match event:
            case SearchStarted():
                self.stats.start(event)
                self._print(start_text(event))
            case BatchStarted(generation=generation, size=size):
                self._print(f"{batch_label(generation)}: {size} individuals")
            case ResultArrived(result=result):
                self.stats.add_result(result)
                self._print(f"  {result_text(result)}")
            case GenerationDone():
                self._print(generation_text(event, self.stats.compute))
            case SearchDone(reason=reason):
                self._print(f"search finished: {reason}")
            case MemberMeasured():
                self._print(f"  {measured_text(event)}")
            case Notice(text=text):
                self._print(text)
