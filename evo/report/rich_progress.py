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
from collections.abc import Callable
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
from evo.search.contract import (
    BatchStarted,
    CandidateStarted,
    Counted,
    EpochDone,
    Event,
    GenerationDone,
    MemberMeasured,
    Notice,
    ResultArrived,
    SearchDone,
    SearchStarted,
    TrainingProgress,
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
        self.handlers: dict[type[Event], Callable[[Any], None]] = {
            SearchStarted: self._on_start, BatchStarted: self._on_batch,
            CandidateStarted: self._on_candidate, TrainingProgress: self._on_training,
            EpochDone: self._on_epoch, ResultArrived: self._on_result,
            GenerationDone: self._on_generation, SearchDone: self._on_done,
            MemberMeasured: self._on_measured, Notice: self._on_notice,
        }

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _line(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def _update_counts(self, event: Event | None = None) -> None:
        """Take the counts an event carries; move the search and generation bars."""
        if isinstance(event, Counted):
            self.stats.update(event.counts)
        done = self.stats.counts.total
        if self.search_task is not None:
            self.progress.update(self.search_task, total=max(self.stats.planned, 1),
                                 completed=min(done, self.stats.planned))
        if self.generation_task is not None:
            self.progress.update(self.generation_task, completed=done - self.batch_base)

    # -- events ----------------------------------------------------------------------------
    def __call__(self, event: Event) -> None:
        handler = self.handlers.get(type(event))
        if handler is None:
            return
        try:
            handler(event)
        except Exception as exc:  # a display bug must never fail a candidate or the search
            self._line(f"(progress display error: {exc!r})")

    def _on_start(self, event: SearchStarted) -> None:
        self.stats.start(event)
        self._line(start_text(event))
        self.search_task = self.progress.add_task("search", total=max(self.stats.planned, 1),
                                                  info="")
        batch = event.batch
        if batch is not None:  # a resumed run continues an unfinished batch
            self._new_generation(batch.generation, batch.size,
                                 self.stats.counts.total - batch.settled)
        self._update_counts(event)

    def _new_generation(self, generation: int, size: int, base: int) -> None:
        if self.generation_task is not None:
            self.progress.remove_task(self.generation_task)
        self.batch_base = base
        self.generation_task = self.progress.add_task(batch_label(generation),
                                                      total=max(size, 1), info="")

    def _on_batch(self, event: BatchStarted) -> None:
        self._line(f"{batch_label(event.generation)}: {event.size} individuals")
        settled_before = self.stats.counts.total
        self._new_generation(event.generation, event.size, settled_before)
        self._update_counts(event)

    def _on_candidate(self, event: CandidateStarted) -> None:
        self.candidate_tasks[event.member] = self.progress.add_task(
            f"  member {event.member}, epoch", total=max(event.epochs, 1), info="training")

    def _on_training(self, event: TrainingProgress) -> None:
        task = self.candidate_tasks.get(event.member)
        if task is not None:
            done = event.epoch - 1 + event.batch / max(event.batches, 1)
            self.progress.update(task, completed=done, total=event.epochs,
                                 info=training_text(event))

    def _on_epoch(self, event: EpochDone) -> None:
        task = self.candidate_tasks.get(event.member)
        if task is not None:
            self.progress.update(task, completed=event.epoch, total=event.epochs,
                                 info=epoch_text(event))

    def _on_result(self, event: ResultArrived) -> None:
        result = event.result
        task = self.candidate_tasks.pop(int(result.individual_id), None)
        if task is not None:
            self.progress.remove_task(task)
        self._line(f"  {result_text(result)}")
        self.stats.add_result(result)
        self._update_counts(event)

    def _on_generation(self, event: GenerationDone) -> None:
        self.stats.front = event.front
        self.stats.hypervolume = event.hypervolume
        if self.generation_task is not None:
            self.progress.remove_task(self.generation_task)
            self.generation_task = None
        self._line(generation_text(event, self.stats.compute))
        self._update_counts(event)

    def _on_done(self, event: SearchDone) -> None:
        self._update_counts(event)
        self.stats.finish()
        self._update_counts()
        self._line(f"search finished: {event.reason}")

    def _on_measured(self, event: MemberMeasured) -> None:
        self._line(f"  {measured_text(event)}")
        self._update_counts(event)

    def _on_notice(self, event: Notice) -> None:
        self._line(event.text)
