"""The search's contract: what crosses the line between the search and the things around it.

Everything above the search (the NAS problem, worker processes, progress views, reports, the
CLI) imports these types from here and nothing of the driver, so code that runs inside a worker
never loads the ask/tell machinery, and a change to the driver cannot break a problem:

- :class:`Job` goes to an evaluator, :class:`Result` comes back (failures are results, never
  exceptions), :class:`Measured` is what a problem measures from the driver;
- :class:`Problem` is what the search needs of the thing it optimises; the optional methods are
  Protocols of their own (:class:`MeasuringProblem`, and for evaluators
  :class:`PerWorkerEvaluator`, :class:`ReportsProgress`, :class:`Prepares`), checked with
  ``isinstance``;
- :func:`derive_seed` is the one training seed of an evaluation;
- :class:`Status` is every status word (stored ones included);
- the events a search and its evaluations send to listeners are small frozen dataclasses
  (:class:`Event` and its subclasses), so a listener matches on types, not on strings and keys.

Never imports torch (nor anything that does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from evo.config import SearchConfig
from evo.run.counts import Counts
from evo.run.status import Status
from evo.run.store import Evaluation

__all__ = [
    "BatchStarted", "CandidateStarted", "Counted", "EpochDone", "Evaluator", "Event",
    "GenerationDone", "Job", "Listener", "Measured", "MeasuringProblem", "MemberMeasured",
    "Notice", "PendingBatch", "PerWorkerEvaluator", "Prepares", "Problem", "ProblemFactory",
    "ReportsProgress", "Result", "ResultArrived", "RungDone", "SearchDone", "SearchStarted",
    "Status", "TrainingProgress", "derive_seed",
]


# ---------------------------------------------------------------- jobs and results


@dataclass(frozen=True)
class Job:
    """One evaluation to run: the key, the text the problem needs, and the derived seed.

    With successive halving a job is one rung of a candidate's one continuous training:
    ``epochs`` is the rung's epochs in units of ``--epochs`` (the evaluator scales it to the
    candidate's own budget with :func:`evo.search.rungs.scaled_epochs`; ``None``: the full
    budget, the last rung), and ``resume`` the bytes of the training state the previous rung
    stored (``None``: a fresh start). Full fidelity leaves both ``None``.
    """

    individual_id: int
    key: str
    text: str
    seed: int
    epochs: int | None = None
    resume: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Result:
    """What an evaluator returns for a job; failures are results, never exceptions.

    ``status`` is ``ok``, ``failed``, ``skipped`` (a hard limit known before training) or
    ``stopped`` (no better than chance after the first epoch, ``--early-abort``), or
    ``retry``/``lost``: not the candidate's result (the machine or its worker failed), never
    stored (:mod:`evo.search.failures`). A plain string is taken and turned into the
    :class:`Status` of that word.
    """

    key: str
    individual_id: int
    status: Status
    reason: str | None = None
    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    device: str | None = None
    threads: int | None = None
    seconds: float | None = None
    weights: str | None = None
    # Files the result brings (run-folder-relative name -> content: weights, ONNX). The driver
    # writes them before it stores the result; a worker never writes the run folder, which a
    # cluster node may not even see (evo.run.files).
    files: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))


@dataclass(frozen=True)
class Measured:
    """Objectives a problem measured on an evaluated candidate from the driver (latency).

    ``measurements`` are rows for run.db's ``measurements`` table (keys ``format``, ``target``,
    ``protocol``, ``host``, ``median_ms``, ``bytes``, ``details``); ``failure`` makes the
    evaluation a failed one (a model its target cannot run is not a deployable candidate).
    """

    objectives: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    measurements: tuple[dict[str, Any], ...] = ()
    failure: str | None = None


def derive_seed(run_seed: int, key: str) -> int:
    """Training seed from the run seed and the evaluation key (stable across machines).

    Derived rather than drawn, so it depends neither on evaluation order nor on which worker
    runs the job. Every stored run was trained with these exact seeds: changing the arithmetic
    changes every run's results.
    """
    digest = hashlib.sha256(f"{run_seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# ---------------------------------------------------------------- the problem and its evaluator

Evaluator = Callable[[Job], Result]


class Problem(Protocol):
    """What the search needs from the thing being optimised."""

    def describe(self) -> dict[str, Any]:
        """Facts stored with the run (dataset fingerprint, budget, ...)."""
        ...

    def candidate(self, phenotype: str) -> tuple[str, str] | str:
        """(evaluation key, text for the evaluator), or the reason the phenotype is invalid."""
        ...

    def evaluator(self) -> Evaluator:
        """A picklable callable that evaluates one job (runs in worker processes)."""
        ...


@runtime_checkable
class MeasuringProblem(Protocol):
    """A problem with objectives that must be measured with the machine otherwise idle
    (latency): once a batch is complete, before survival, the driver calls ``measure`` for
    each ok evaluation lacking an objective or constrained value; stored values are never
    measured again (resume, cache hits, warm starts)."""

    def measure(self, evaluation: Evaluation) -> Measured:
        ...


# Makes the problem of the run in a folder from its configuration (the stored one on --resume).
ProblemFactory = Callable[[SearchConfig, Path], Problem]


@runtime_checkable
class PerWorkerEvaluator(Protocol):
    """An evaluator that specialises itself for the worker running it (e.g. one GPU each)."""

    def for_worker(self, index: int) -> Evaluator:
        ...


@runtime_checkable
class ReportsProgress(Protocol):
    """An evaluator that can send progress events (:class:`CandidateStarted`,
    :class:`EpochDone`, :class:`TrainingProgress`) while it evaluates; the copy it returns
    sends them to ``report``."""

    def with_progress(self, report: Listener) -> Evaluator:
        ...


@runtime_checkable
class Prepares(Protocol):
    """An evaluator with set-up to do before a job's clock starts (loading its dataset once
    per process), so a worker's first job is not charged for it."""

    def prepare(self) -> None:
        ...


# ---------------------------------------------------------------- events


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something a search or one of its evaluations reports while it runs."""


Listener = Callable[[Event], None]


@dataclass(frozen=True, kw_only=True)
class Counted(Event):
    """An event that carries the run's cumulative counts (a view never reads run.db)."""

    counts: Counts


@dataclass(frozen=True)
class PendingBatch:
    """The unfinished batch a resumed run continues: ``settled`` individuals are known."""

    generation: int
    size: int
    settled: int


@dataclass(frozen=True, kw_only=True)
class SearchStarted(Counted):
    """A fresh or resumed run begins: its plan, and what a view needs to show it from here
    (the last generation's front size and hypervolume, the unfinished batch)."""

    run_dir: str
    config: SearchConfig
    workers: int
    generation: int
    front: int | None = None
    hypervolume: float | None = None
    batch: PendingBatch | None = None
    # The run's training compute so far (evo.run.compute: images_seen, epochs_trained); a
    # view adds each arriving result's own figures to it.
    compute: dict[str, int | None] | None = None


@dataclass(frozen=True, kw_only=True)
class BatchStarted(Counted):
    """A batch of ``size`` individuals was created (generation 0: the initial population)."""

    generation: int
    size: int


@dataclass(frozen=True, kw_only=True)
class ResultArrived(Counted):
    """One evaluation's result was stored."""

    result: Result


@dataclass(frozen=True, kw_only=True)
class MemberMeasured(Counted):
    """The driver measured a member (``failure``: it could not be measured)."""

    member: int
    objectives: dict[str, float]
    failure: str | None = None


@dataclass(frozen=True, kw_only=True)
class GenerationDone(Counted):
    """Survival ran: the generation is committed."""

    generation: int
    hypervolume: float
    front: int


@dataclass(frozen=True, kw_only=True)
class RungDone(Counted):
    """Successive halving passed a rung's barrier (every result of the rung is in):
    ``promoted`` of the ``entered`` candidates continue to the next rung; the others are
    stopped (none continue after the last rung). ``rung`` counts from 0 of ``rungs``;
    ``epochs`` is the rung's epochs in units of ``--epochs``."""

    generation: int
    rung: int
    rungs: int
    epochs: int
    entered: int
    promoted: int


@dataclass(frozen=True, kw_only=True)
class SearchDone(Counted):
    """The search reached a stopping rule."""

    reason: str | None


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    """A line for the person watching (a candidate the machine failed to evaluate)."""

    text: str


@dataclass(frozen=True, kw_only=True)
class CandidateStarted(Event):
    """A candidate's training began (in this process or a worker)."""

    member: int
    epochs: int


@dataclass(frozen=True, kw_only=True)
class EpochDone(Event):
    """A candidate finished an epoch, scored on the validation split."""

    member: int
    epoch: int
    epochs: int
    loss: float
    seconds: float
    val_accuracy: float | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingProgress(Event):
    """Progress within a candidate's epoch (at most about once a second)."""

    member: int
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    images_per_second: float
    seconds: float
