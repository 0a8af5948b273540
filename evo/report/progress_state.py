"""What both progress views show: the words for each search event and the running figures of
the status line (counts, front, hypervolume, a smoothed ETA).

Both views (plain lines in :mod:`evo.report.progress`, live bars in
:mod:`evo.report.rich_progress`) import
this module and nothing of each other. Every figure comes from the events the search sends
(typed, :mod:`evo.search.contract`): the counts travel with the events, so a view never reads
``run.db`` and cannot disagree with ``evo runs`` (both use :mod:`evo.run.counts`).
"""

from __future__ import annotations

import math
import time

from evo.run.compute import segment_compute
from evo.run.counts import Counts
from evo.search.contract import (
    EpochDone,
    GenerationDone,
    MemberMeasured,
    Result,
    SearchStarted,
    Status,
    TrainingProgress,
)

# Weight of the newest evaluation in the smoothed time per evaluation: small, so one long
# candidate moves the ETA by a tenth of its excess instead of doubling it.
ETA_SMOOTHING = 0.1
# The shown ETA follows a new estimate over about this many seconds (while counting down), so
# news that changes the estimate (a burst of cache hits, a slow result) never makes it jump.
ETA_SETTLE_S = 15.0


def duration(seconds: float) -> str:
    """``1h 05m``, ``7m 39s`` or ``12s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def result_text(r: Result) -> str:
    """One evaluation result as a person reads it."""
    if r.status == Status.OK:
        acc = r.metrics.get("val_accuracy")
        images = r.metrics.get("val_total")
        of = f" of {images}" if images else ""
        acc_text = f"val acc {acc:.2%}{of}, " if isinstance(acc, float) else ""
        what = f"{acc_text}{r.objectives.get('params', 0):,.0f} params"
    else:
        what = f"{r.status}: {r.reason}"
    secs = f" in {r.seconds:.1f}s" if r.seconds else ""
    return f"member {r.individual_id}: {what}{secs}"


def measured_text(event: MemberMeasured) -> str:
    """One line for a driver-side measurement (latency, ONNX size) of a member."""
    if event.failure:
        return f"member {event.member}: measurement failed: {event.failure}"
    values = ", ".join(f"{k} {v:.4g}{' ms' if k.startswith('latency') else ''}"
                       for k, v in event.objectives.items())
    return f"member {event.member}: {values}"


def start_text(event: SearchStarted) -> str:
    cfg = event.config
    return (f"run {event.run_dir}: grammar {cfg.grammar}, dataset {cfg.dataset}, "
            f"population {cfg.population}, generations {cfg.generations}, "
            f"objectives {','.join(cfg.objectives)}, workers {event.workers}")


def batch_label(generation: int) -> str:
    return "initial population" if generation == 0 else f"generation {generation}"


def generation_text(event: GenerationDone, compute: dict[str, int] | None = None) -> str:
    """``generation 2 done: front 4, hypervolume 0.7777, trained 14, cached 0, ...`` and the
    run's compute when it trained anything (``images seen 35,196, epochs trained 28``)."""
    text = (f"generation {event.generation} done: front {event.front}, hypervolume "
            f"{event.hypervolume:.4f}, {event.counts.text()}")
    return f"{text}, {compute_text(compute)}" if compute and any(compute.values()) else text


def compute_text(compute: dict[str, int], sep: str = ", ") -> str:
    """The run's training compute so far: ``images seen 35,196, epochs trained 28``."""
    return (f"images seen {compute['images_seen']:,}{sep}"
            f"epochs trained {compute['epochs_trained']:,}")


def training_text(event: TrainingProgress) -> str:
    """Progress inside one candidate's epoch."""
    return (f"epoch {event.epoch}/{event.epochs} · batch {event.batch}/{event.batches}"
            f" · loss {event.loss:.4f} · {event.images_per_second:,.0f} img/s")


def epoch_text(event: EpochDone) -> str:
    """A finished epoch of one candidate."""
    parts = [f"epoch {event.epoch}/{event.epochs}", f"loss {event.loss:.4f}"]
    if event.val_accuracy is not None:
        parts.append(f"val acc {event.val_accuracy:.2%}")
    return " · ".join(parts)


class Eta:
    """Time left: the smoothed seconds per evaluation times the evaluations still expected.

    Why smoothed, and per evaluation: candidates differ widely in training time, and cache
    hits and invalid genomes settle in bursts at a batch's start costing nothing. A mean over
    the run jumps with both (7m39s -> 18m25s -> 6m14s). Here only evaluations (trained, skipped,
    failed) carry time, each moving the estimate by ``ETA_SMOOTHING`` of its difference; the
    share of individuals that need an evaluation comes from the counts so far. Between results
    the estimate counts down, and while one runs longer than usual it rises gradually, so the
    value is continuous when that result arrives.
    """

    def __init__(self, now: float, smoothing: float = ETA_SMOOTHING) -> None:
        self.smoothing = smoothing
        self.per_evaluation: float | None = None
        self.last = now  # when the last evaluation finished (or the view started)
        self.evaluated: int | None = None

    def observe(self, counts: Counts, now: float) -> None:
        """Take the counts of an event; only new evaluations update the pace."""
        if self.evaluated is None:
            self.evaluated, self.last = counts.evaluated, now
            return
        new = counts.evaluated - self.evaluated
        if new <= 0:
            return
        sample = (now - self.last) / new
        weight = 1 - (1 - self.smoothing) ** new
        self.per_evaluation = sample if self.per_evaluation is None else \
            self.per_evaluation + weight * (sample - self.per_evaluation)
        self.evaluated, self.last = counts.evaluated, now

    def seconds(self, evaluations_left: float, now: float) -> float | None:
        """Seconds until ``evaluations_left`` more evaluations finish; None before the first."""
        if self.per_evaluation is None:
            return None
        since = max(0.0, now - self.last)
        pace = self.per_evaluation
        if since > pace:  # the evaluation in flight already took longer than usual
            pace += self.smoothing * (since - pace)
        return max(0.0, evaluations_left * pace - min(since, pace))


class SearchStats:
    """Running figures behind the status line (plain data, no rendering), fed by events."""

    def __init__(self, now: float | None = None) -> None:
        self.started = time.monotonic() if now is None else now
        self.planned = 0  # individuals the stopping rule allows in all
        self.counts = Counts()
        self.front: int | None = None
        self.hypervolume: float | None = None
        self.max_time_s: float | None = None
        self.max_evals: int | None = None
        self.max_images: int | None = None
        # The run's training compute (evo.run.compute): its totals at the start, plus what
        # each arriving result trained.
        self.compute = {"images_seen": 0, "epochs_trained": 0}
        self.eta = Eta(self.started)
        self._shown: tuple[float, float] | None = None  # (ETA shown, when)

    def start(self, event: SearchStarted, now: float | None = None) -> None:
        """Take the start of a search: the plan, and the totals of a resumed run."""
        cfg = event.config
        self.started = time.monotonic() if now is None else now
        self.planned = cfg.population * (cfg.generations + 1)
        self.max_evals = cfg.max_evals
        self.max_images = cfg.max_images
        stored = event.compute or {}
        self.compute = {name: int(stored.get(name) or 0) for name in self.compute}
        self.max_time_s = cfg.max_time * 60 if cfg.max_time is not None else None
        self.front, self.hypervolume = event.front, event.hypervolume
        self.update(event.counts, now)

    def update(self, counts: Counts, now: float | None = None) -> None:
        self.counts = counts
        self.eta.observe(counts, time.monotonic() if now is None else now)

    def add_result(self, result: Result) -> None:
        """Count what one stored result trained (images, epochs) into the compute."""
        for name, value in segment_compute(result.metrics).items():
            self.compute[name] += value

    def finish(self) -> None:
        """The run ended (a stopping limit may end it before the plan)."""
        self.planned = self.counts.total

    def eta_seconds(self, now: float | None = None) -> float | None:
        """Seconds left (None before the first evaluation): the :class:`Eta` estimate,
        followed smoothly by the shown value (``ETA_SETTLE_S``), capped by ``--max-time``."""
        now = time.monotonic() if now is None else now
        if not self.planned:
            return None  # no start event yet
        counts = self.counts
        left = max(0, self.planned - counts.total)
        share = counts.evaluated / counts.total if counts.total else 1.0
        evaluations = left * share
        if self.max_evals is not None:
            evaluations = min(evaluations, max(0, self.max_evals - counts.evaluated))
        remaining = 0.0 if left == 0 else self.eta.seconds(evaluations, now)
        if remaining is None:
            return None
        if left and self._shown is not None and now >= self._shown[1]:
            shown, when = self._shown
            counted_down = max(0.0, shown - (now - when))
            remaining += (counted_down - remaining) * math.exp(-(now - when) / ETA_SETTLE_S)
        self._shown = (remaining, now)
        if self.max_time_s is not None:
            remaining = min(remaining, max(0.0, self.max_time_s - (now - self.started)))
        return remaining

    def text(self, now: float | None = None) -> str:
        """``front 3 · hypervolume 0.7758 · trained 10 · cached 0 · ... · images seen 12,570 ·
        epochs trained 10 · ETA 1m 02s``."""
        parts = []
        if self.front is not None:
            parts.append(f"front {self.front}")
        if self.hypervolume is not None:
            parts.append(f"hypervolume {self.hypervolume:.4f}")
        parts.append(self.counts.text(" · "))
        if self.max_evals:
            parts.append(f"--max-evals {self.counts.evaluated}/{self.max_evals}")
        if any(self.compute.values()) or self.max_images:  # a problem that trains
            parts.append(compute_text(self.compute, " · "))
        if self.max_images:
            parts.append(f"--max-images {self.compute['images_seen']:,}/{self.max_images:,}")
        eta = self.eta_seconds(now)
        parts.append("ETA -" if eta is None else f"ETA {duration(eta)}")
        return " · ".join(parts)
