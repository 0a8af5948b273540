"""Live progress of a search on a terminal: bars for the search, the generation and the
candidate in training, with the figures a person watches a search for.

Why it mirrors the plain reporter: every finished candidate and generation is still printed as
a line (above the bars), so what scrolls by is the same log the non-terminal view writes; the
bars add what a log cannot show well, the work in flight: the epoch, loss and validation
accuracy of the candidate being trained (serial runs), the share of the generation done, and an
estimate of the time left.

The ETA is deliberately simple and says what it assumes: the mean time per individual so far in
this invocation, times the individuals still planned. Cache hits make the real figure smaller.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, TextIO

from evo.progress import measured_text, result_text


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


class SearchStats:
    """Running totals behind the status line (plain data, no rendering)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.planned = 0  # individuals the stopping rule allows in all
        self.done = 0  # individuals whose generation or result is complete
        self.done_at_start = 0
        self.trained = 0
        self.cache_hits = 0
        self.failures = 0
        self.front: int | None = None
        self.hypervolume: float | None = None
        self.max_time_s: float | None = None
        self.max_evals: int | None = None

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left at this invocation's mean pace; None before the first result."""
        elapsed = (now or time.monotonic()) - self.started
        done_here = self.done - self.done_at_start
        if done_here <= 0:
            return None
        remaining = max(0, self.planned - self.done) * elapsed / done_here
        if self.max_time_s is not None:
            remaining = min(remaining, max(0.0, self.max_time_s - elapsed))
        return remaining

    def text(self, now: float | None = None) -> str:
        parts = []
        if self.front is not None:
            parts.append(f"front {self.front}")
        if self.hypervolume is not None:
            parts.append(f"hypervolume {self.hypervolume:.4f}")
        parts.append(f"trained {self.trained}"
                     + (f" of at most {self.max_evals}" if self.max_evals else ""))
        parts.append(f"cache hits {self.cache_hits}")
        parts.append(f"failed/invalid {self.failures}")
        eta = self.eta_seconds(now)
        parts.append("ETA -" if eta is None else f"ETA {_duration(eta)}")
        return " · ".join(parts)


class RichReporter:
    """Search listener drawing live bars with rich; use it as a context manager around the
    search so the display is restored whatever happens (Ctrl-C included)."""

    def __init__(self, stream: TextIO | None = None, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        stats = SearchStats()

        class _Bars(Progress):
            """The bars, then one status line below them (not a column: it would widen
            every row)."""

            def get_renderables(self) -> Any:
                yield self.make_tasks_table(self.tasks)
                yield Text(stats.text(), style="dim")

        self.console = console or Console(file=stream or sys.stdout)
        self.progress = _Bars(
            SpinnerColumn(),
            TextColumn("{task.description}", style="bold"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.console,
            transient=True,
            refresh_per_second=4,
        )
        self.stats = stats
        self.search_task: Any = None
        self.generation_task: Any = None
        self.candidate_tasks: dict[int, Any] = {}
        self.population = 0

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _line(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def _refresh_search(self) -> None:
        if self.search_task is not None:
            self.progress.update(self.search_task, total=max(self.stats.planned, 1),
                                 completed=min(self.stats.done, self.stats.planned))

    # -- events ----------------------------------------------------------------------------
    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return
        try:
            handler(data)
        except Exception as exc:  # a display bug must never fail a candidate or the search
            self._line(f"(progress display error: {exc!r})")

    def _on_start(self, data: dict[str, Any]) -> None:
        cfg = data["config"]
        self.population = cfg.population
        self.stats.planned = cfg.population * (cfg.generations + 1)
        self.stats.max_evals = cfg.max_evals
        self.stats.max_time_s = cfg.max_time * 60 if cfg.max_time is not None else None
        self._line(f"run {data['run_dir']}: grammar {cfg.grammar}, dataset {cfg.dataset}, "
                   f"population {cfg.population}, generations {cfg.generations}, objectives "
                   f"{','.join(cfg.objectives)}, workers {data['workers']}")
        pending = self._resume_state(Path(data["run_dir"]))
        self.stats.done_at_start = self.stats.done
        self.search_task = self.progress.add_task("search", total=max(self.stats.planned, 1),
                                                  info="")
        if pending is not None:
            generation, size, finished = pending
            self._new_generation(generation, size, finished)
        self._refresh_search()

    def _resume_state(self, run_dir: Path) -> tuple[int, int, int] | None:
        """Totals of a resumed run, and its unfinished batch (generation, size, results)."""
        from evo.store import RunStore

        try:
            store = RunStore.open(run_dir, write=False)
        except Exception:  # the display must never stop a search
            return None
        try:
            last = store.last_generation()
            self.stats.trained = store.count_trained()
            for g in range(0, (last if last is not None else -1) + 1):
                gen = store.generation(g)
                if gen is not None:
                    self.stats.cache_hits += gen["cache_hits"]
                    self.stats.failures += gen["failures"]
                    self.stats.hypervolume = gen["hypervolume"]
                    self.stats.front = sum(1 for r, v in zip(gen["ranks"], gen["violation"],
                                                             strict=True) if r == 0 and v == 0)
            self.stats.done = self.population * ((last if last is not None else -1) + 1)
            pending = store.state("pending", [])
            if not pending:
                return None
            evaluated = store.evaluations()
            batch = store.individuals(pending)
            finished = sum(1 for ind in batch if ind.eval_key in evaluated)
            self.stats.done += finished
            return batch[0].generation, len(batch), finished
        finally:
            store.close(checkpoint=False)

    def _new_generation(self, generation: int, size: int, completed: int = 0) -> None:
        if self.generation_task is not None:
            self.progress.remove_task(self.generation_task)
        label = "initial population" if generation == 0 else f"generation {generation}"
        self.generation_task = self.progress.add_task(label, total=max(size, 1),
                                                      completed=completed, info="")

    def _on_batch(self, data: dict[str, Any]) -> None:
        label = "initial population" if data["generation"] == 0 else \
            f"generation {data['generation']}"
        self._line(f"{label}: {data['size']} individuals")
        self._new_generation(data["generation"], data["size"])

    def _on_candidate(self, data: dict[str, Any]) -> None:
        member = int(data["member"])
        self.candidate_tasks[member] = self.progress.add_task(
            f"  member {member}, epoch", total=max(int(data.get("epochs") or 1), 1),
            info="training")

    def _on_epoch(self, data: dict[str, Any]) -> None:
        task = self.candidate_tasks.get(int(data["member"]))
        if task is None:
            return
        parts = [f"loss {data['loss']:.4f}"]
        for split in ("val", "test"):
            acc = data.get(f"{split}_accuracy")
            if acc is not None:
                parts.append(f"{split} acc {acc:.2%}")
        self.progress.update(task, completed=data["epoch"], total=data["epochs"],
                             info=" · ".join(parts))

    def _on_result(self, data: dict[str, Any]) -> None:
        result = data["result"]
        task = self.candidate_tasks.pop(int(result.individual_id), None)
        if task is not None:
            self.progress.remove_task(task)
        self._line(f"  {result_text(result)}")
        self.stats.trained += 1
        self.stats.done += 1
        if self.generation_task is not None:
            self.progress.advance(self.generation_task)
        self._refresh_search()

    def _on_generation(self, data: dict[str, Any]) -> None:
        self.stats.front = data["front"]
        self.stats.hypervolume = data["hypervolume"]
        self.stats.cache_hits += data["cache_hits"]
        self.stats.failures += data["failures"]
        self.stats.trained = data["evaluations"]
        self.stats.done = max(self.stats.done, self.population * (data["generation"] + 1))
        if self.generation_task is not None:
            self.progress.remove_task(self.generation_task)
            self.generation_task = None
        self._line(f"generation {data['generation']} done: front {data['front']}, hypervolume "
                   f"{data['hypervolume']:.4f}, trained {data['evaluations']}, cache hits "
                   f"{data['cache_hits']}, failed/invalid {data['failures']}")
        self._refresh_search()

    def _on_done(self, data: dict[str, Any]) -> None:
        self.stats.planned = self.stats.done  # a stopping limit may end the run early
        self._refresh_search()
        self._line(f"search finished: {data['reason']}")

    def _on_measured(self, data: dict[str, Any]) -> None:
        self._line(f"  {measured_text(data)}")

    def _on_step(self, data: dict[str, Any]) -> None:
        self._line(data["text"])
