"""What a person sees while a search runs: live bars on a terminal, one line per event
elsewhere, or nothing with --quiet.

Plain lines suit CI logs and ``nohup`` (no escape codes, nothing redrawn); the terminal view
(:mod:`evo.rich_progress`) prints the same result lines above its bars, so a copied screen
reads like the log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TextIO

Listener = Callable[[str, dict[str, Any]], None]


def result_text(r: Any) -> str:
    """One evaluation result as a person reads it (shared by the plain and rich views)."""
    if r.status == "ok":
        acc = r.metrics.get("val_accuracy")
        images = r.metrics.get("val_total")
        of = f" of {images}" if images else ""
        acc_text = f"val acc {acc:.2%}{of}, " if isinstance(acc, float) else ""
        what = f"{acc_text}{r.objectives.get('params', 0):,.0f} params"
    else:
        what = f"{r.status}: {r.reason}"
    secs = f" in {r.seconds:.1f}s" if r.seconds else ""
    return f"member {r.individual_id}: {what}{secs}"


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
        from evo.rich_progress import RichReporter

        reporter = RichReporter(stream=stream)
        return reporter, reporter
    return LineReporter(stream), nullcontext()


def measured_text(data: dict[str, Any]) -> str:
    """One line for a driver-side measurement (latency, ONNX size) of a member."""
    if data.get("failure"):
        return f"member {data['member']}: measurement failed: {data['failure']}"
    values = ", ".join(f"{k} {v:.4g}{' ms' if k.startswith('latency') else ''}"
                       for k, v in data["objectives"].items())
    return f"member {data['member']}: {values}"


class LineReporter:
    """Listener for :class:`evo.search.Search` events that prints one line per event."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.done_in_batch = 0
        self.batch_size = 0

    def _print(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.stream.write(f"[{elapsed:7.1f}s] {text}\n")
        self.stream.flush()

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "start":
            cfg = data["config"]
            self._print(f"run {data['run_dir']}: grammar {cfg.grammar}, dataset {cfg.dataset}, "
                        f"population {cfg.population}, generations {cfg.generations}, "
                        f"objectives {','.join(cfg.objectives)}, workers {data['workers']}")
        elif kind == "batch":
            self.batch_size, self.done_in_batch = data["size"], 0
            label = "initial population" if data["generation"] == 0 else \
                f"generation {data['generation']}"
            self._print(f"{label}: {data['size']} individuals")
        elif kind == "result":
            self.done_in_batch += 1
            self._print(f"  {result_text(data['result'])}")
        elif kind == "generation":
            self._print(f"generation {data['generation']} done: front {data['front']}, "
                        f"hypervolume {data['hypervolume']:.4f}, trained {data['evaluations']}, "
                        f"cache hits {data['cache_hits']}, failed/invalid {data['failures']}")
        elif kind == "done":
            self._print(f"search finished: {data['reason']}")
        elif kind == "measured":
            self._print(f"  {measured_text(data)}")
        elif kind == "step":
            self._print(data["text"])
