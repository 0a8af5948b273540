"""What happened to the individuals of a search, in one vocabulary used everywhere.

Every individual ends in exactly one of six outcomes, all counted cumulatively over the run:

- ``trained``: its network was trained by this run and came back ok;
- ``cached``: its evaluation key already had a result (an earlier individual with the same
  network, or a ``--warm-start`` run), so nothing ran;
- ``skipped``: a hard constraint (``params``/``macs``) ruled it out before training;
- ``invalid``: its genome gave no network (mapping failed or the phenotype did not parse);
- ``failed``: training, export or measurement failed;
- ``stopped``: its training was stopped before the full budget: not promoted at a rung of
  successive halving (``--fidelity halving``), or no better than chance after its first epoch
  (``--early-abort``).

The progress lines, the live status line, ``evo runs`` (table and ``--json``) and the front
plot's caption all show these six words. The search keeps a running :class:`Counts` and sends it
with its events (:func:`outcome` classifies one individual as its result arrives); a finished or
interrupted run is counted from ``run.db`` with :func:`counts_of`, which applies the same
:func:`outcome` to every individual, so the live figures and the stored ones cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace

from evo.run.status import Status
from evo.run.store import Evaluation, Individual, RunStore

OUTCOMES = ("trained", "cached", "skipped", "invalid", "failed", "stopped")


@dataclass(frozen=True)
class Counts:
    """Individuals per outcome, cumulative over the whole run (resumes included)."""

    trained: int = 0
    cached: int = 0
    skipped: int = 0
    invalid: int = 0
    failed: int = 0
    stopped: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[str]) -> Counts:
        tally = dict.fromkeys(OUTCOMES, 0)
        for name in outcomes:
            tally[name] += 1
        return cls(**tally)

    @property
    def total(self) -> int:
        """Individuals whose outcome is known (the ones still in training are not)."""
        return self.trained + self.cached + self.skipped + self.invalid + self.failed + \
            self.stopped

    @property
    def evaluated(self) -> int:
        """Candidates this run started itself (trained, skipped, failed or stopped): what
        ``--max-evals`` counts; cached and invalid individuals cost nothing."""
        return self.trained + self.skipped + self.failed + self.stopped

    def moved(self, old: str | None, new: str | None) -> Counts:
        """These counts with one individual moved from ``old`` to ``new`` (None: uncounted)."""
        changes: dict[str, int] = {}
        if old is not None:
            changes[old] = getattr(self, old) - 1
        if new is not None:
            changes[new] = changes.get(new, getattr(self, new)) + 1
        return replace(self, **changes)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    def text(self, sep: str = ", ") -> str:
        """``trained 11, cached 3, skipped 15, invalid 2, failed 0, stopped 0``: every word,
        always, so lines from different moments and commands read alike."""
        return sep.join(f"{name} {getattr(self, name)}" for name in OUTCOMES)


def outcome(ind: Individual, ev: Evaluation | None) -> str | None:
    """The outcome of one individual given its key's stored evaluation (None: not known yet).

    An evaluation belongs to the individual that ran it (``ev.individual_id``); every other
    individual with the same key, and a copy from a warm-start run, is a cache hit (also one
    that continues a candidate stopped in an earlier generation: the candidate was started
    once, and its owner's outcome follows it).
    """
    if ind.eval_key is None:
        return "invalid"
    if ev is None:
        return None
    if ev.source != "trained" or ev.individual_id != ind.id:
        return "cached"
    if ev.status == Status.OK:
        return "trained"
    if ev.status == Status.SKIPPED:
        return "skipped"
    if ev.status == Status.STOPPED:
        return "stopped"
    return "failed"


def outcomes_of(store: RunStore) -> dict[int, str]:
    """The known outcome of every individual of a stored run, by member id."""
    evaluations = store.evaluations()
    found = {}
    for ind in store.individuals():
        name = outcome(ind, evaluations.get(ind.eval_key) if ind.eval_key else None)
        if name is not None:
            found[ind.id] = name
    return found


def counts_of(store: RunStore) -> Counts:
    """The counts of a stored run, equal to what its search last reported live."""
    return Counts.of(outcomes_of(store).values())
