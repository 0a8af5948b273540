"""What a person sees while a search runs: one line per event, or nothing with --quiet.

Plain lines suit CI logs and ``nohup``; they are also what the terminal shows, so a copied log
reads the same as the screen.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


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
            r = data["result"]
            self.done_in_batch += 1
            if r.status == "ok":
                acc = r.metrics.get("val_accuracy")
                acc_text = f"val acc {acc:.2%}, " if isinstance(acc, float) else ""
                what = f"{acc_text}{r.objectives.get('params', 0):,.0f} params"
            else:
                what = f"{r.status}: {r.reason}"
            secs = f" in {r.seconds:.1f}s" if r.seconds else ""
            self._print(f"  member {r.individual_id}: {what}{secs}")
        elif kind == "generation":
            self._print(f"generation {data['generation']} done: front {data['front']}, "
                        f"hypervolume {data['hypervolume']:.4f}, trained {data['evaluations']}, "
                        f"cache hits {data['cache_hits']}, failed/invalid {data['failures']}")
        elif kind == "done":
            self._print(f"search finished: {data['reason']}")
        elif kind == "step":
            self._print(data["text"])
