"""Live progress of a search on a terminal: bars for the search, the generation and each
candidate in training, with the figures a person watches a search for.

Why it mirrors the plain reporter: every finished candidate and generation is still printed as
a line (above the bars), so what scrolls by is the same log the non-terminal view writes; the
bars add what a log cannot show well, the work in flight: for each candidate in training (in
this process or in a worker) its epoch, batches done, running loss and images per second, then
each epoch's validation accuracy; the share of the generation done; and the time left
(:class:`evo.report.progress_state.Eta` says how it is smoothed).

Every figure comes from the search's events (the counts travel with them); the view never
opens the run's database.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from evo.report.progress_state import (
    SearchStats,
    batch_label,
    epoch_text,
    generation_text,
    measured_text,
    result_text,
    start_text,
    training_text,
)


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
        self.batch_base = 0  # individuals settled before the current batch
        self.candidate_tasks: dict[int, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _line(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def _update_counts(self, data: dict[str, Any]) -> None:
        """Take the counts an event carries; move the search and generation bars."""
        counts = data.get("counts")
        if counts is not None:
            self.stats.update(counts)
        done = self.stats.counts.total
        if self.search_task is not None:
            self.progress.update(self.search_task, total=max(self.stats.planned, 1),
                                 completed=min(done, self.stats.planned))
        if self.generation_task is not None:
            self.progress.update(self.generation_task, completed=done - self.batch_base)

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
        self.stats.start(data)
        self._line(start_text(data))
        self.search_task = self.progress.add_task("search", total=max(self.stats.planned, 1),
                                                  info="")
        batch = data.get("batch")
        if batch is not None:  # a resumed run continues an unfinished batch
            self._new_generation(batch["generation"], batch["size"],
                                 self.stats.counts.total - batch["settled"])
        self._update_counts(data)

    def _new_generation(self, generation: int, size: int, base: int) -> None:
        if self.generation_task is not None:
            self.progress.remove_task(self.generation_task)
        self.batch_base = base
        self.generation_task = self.progress.add_task(batch_label(generation),
                                                      total=max(size, 1), info="")

    def _on_batch(self, data: dict[str, Any]) -> None:
        self._line(f"{batch_label(data['generation'])}: {data['size']} individuals")
        settled_before = self.stats.counts.total
        self._new_generation(data["generation"], data["size"], settled_before)
        self._update_counts(data)

    def _on_candidate(self, data: dict[str, Any]) -> None:
        member = int(data["member"])
        self.candidate_tasks[member] = self.progress.add_task(
            f"  member {member}, epoch", total=max(int(data.get("epochs") or 1), 1),
            info="training")

    def _on_training(self, data: dict[str, Any]) -> None:
        task = self.candidate_tasks.get(int(data["member"]))
        if task is not None:
            done = data["epoch"] - 1 + data["batch"] / max(data["batches"], 1)
            self.progress.update(task, completed=done, total=data["epochs"],
                                 info=training_text(data))

    def _on_epoch(self, data: dict[str, Any]) -> None:
        task = self.candidate_tasks.get(int(data["member"]))
        if task is not None:
            self.progress.update(task, completed=data["epoch"], total=data["epochs"],
                                 info=epoch_text(data))

    def _on_result(self, data: dict[str, Any]) -> None:
        result = data["result"]
        task = self.candidate_tasks.pop(int(result.individual_id), None)
        if task is not None:
            self.progress.remove_task(task)
        self._line(f"  {result_text(result)}")
        self._update_counts(data)

    def _on_generation(self, data: dict[str, Any]) -> None:
        self.stats.front = data["front"]
        self.stats.hypervolume = data["hypervolume"]
        if self.generation_task is not None:
            self.progress.remove_task(self.generation_task)
            self.generation_task = None
        self._line(generation_text(data))
        self._update_counts(data)

    def _on_done(self, data: dict[str, Any]) -> None:
        self._update_counts(data)
        self.stats.finish()
        self._update_counts({})
        self._line(f"search finished: {data['reason']}")

    def _on_measured(self, data: dict[str, Any]) -> None:
        self._line(f"  {measured_text(data)}")
        self._update_counts(data)

    def _on_step(self, data: dict[str, Any]) -> None:
        self._line(data["text"])
