"""Every run under a folder, with what a person wants to know at a glance (``evo runs``).

Status comes from two facts, because either alone can lie: the status recorded in run.db, and
whether a live process holds the run's ``flock``. A run whose database says "running" but whose
lock nobody holds was killed (or lost its machine): it is *interrupted* and can be resumed. A run
is only *running* while the kernel says its driver is alive.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.report.readable import integral_counts
from evo.run.check import RunDamaged
from evo.run.counts import Counts, counts_of
from evo.run.layout import DB_NAME, db_path
from evo.run.lock import RunLock
from evo.run.status import Status
from evo.run.store import RunStore


@dataclass(frozen=True)
class RunSummary:
    """One line of ``evo runs``; ``None`` where the run has not produced the fact yet."""

    path: str
    status: str  # running | finished | interrupted | busy | unreadable
    grammar: str | None
    dataset: str | None
    generations_done: int | None  # generations after the initial population (0: only it)
    generations_planned: int | None
    counts: Counts | None  # individuals per outcome (evo.run.counts.OUTCOMES)
    members: int
    best_accuracy: float | None  # best validation accuracy on the current front
    best_accuracy_images: int | None
    smallest_params: float | None  # fewest parameters on the current front
    last_update: float | None  # seconds since the epoch
    note: str | None = None
    hypervolume: float | None = None  # the last generation's, as the search stored it
    train_seconds: float | None = None  # training loops' wall time of the run's own trainings
    # The run's compute (evo.run.compute): epochs trained and training images processed, over
    # every training segment; images_seen is None for a run of an evo that did not count it.
    epochs_trained: int | None = None
    images_seen: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = integral_counts(asdict(self))  # 21698 parameters, not 21698.0
        out["counts"] = None if self.counts is None else self.counts.to_dict()
        out["last_update_iso"] = (time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(
            self.last_update)) if self.last_update else None)
        return out


def find_runs(root: Path) -> list[Path]:
    """Folders under ``root`` (``root`` itself included) holding a run.db, sorted by path; a
    run folder's own subfolders (models/, export/) are not searched."""
    root = Path(root)
    if not root.is_dir():
        raise EvoError(f"{root}: no such folder", "pass the folder your runs are in "
                       "(default ./runs)")
    found = []
    for current, dirs, files in os.walk(root):
        if DB_NAME in files:
            found.append(Path(current))
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def run_status(run_dir: Path, recorded: str | None) -> str:
    """running / finished / interrupted / busy from the recorded status and the run lock."""
    held = RunLock.is_held(run_dir)
    if held:
        return "busy" if recorded == "finished" else "running"
    return "finished" if recorded == "finished" else "interrupted"


def _last_update(store: RunStore) -> float | None:
    times = [store.meta("updated"), store.meta("created"), store.last_row_time()]
    known = [float(t) for t in times if t is not None]
    return max(known) if known else None


def summarize(run_dir: Path) -> RunSummary:
    """The summary of one run; an unreadable database is a row saying so, not an error."""
    from evo.run.compute import compute_spent
    from evo.run.front import front_of
    from evo.run.history import compute_of

    run_dir = Path(run_dir)
    try:
        store = RunStore.open(run_dir, write=False)
    except EvoError as exc:
        return RunSummary(str(run_dir), "unreadable", None, None, None, None, None, 0, None,
                          None, None, None,
                          note=f"not a readable run database: {exc.problem}"
                          if isinstance(exc, RunDamaged) else
                          exc.message)
    try:
        config = store.meta("config") or {}
        problem = store.meta("problem") or {}
        dataset = (problem.get("dataset") or {}).get("name") or problem.get("problem") or \
            config.get("dataset")
        last = store.last_generation()
        front = front_of(store) if last is not None else []
        if front:
            evs = [ev for _ind, ev in front]
        else:
            evs = [ev for ev in store.evaluations().values() if ev.status == Status.OK]
        accuracies = [(ev.metrics.get("val_accuracy"), ev.metrics.get("val_total")) for ev in evs
                      if isinstance(ev.metrics.get("val_accuracy"), int | float)]
        best = max(accuracies, key=lambda a: a[0]) if accuracies else (None, None)
        params = [ev.objectives["params"] for ev in evs if "params" in ev.objectives]
        compute, spent = compute_of(store), compute_spent(store)
        return RunSummary(
            path=str(run_dir),
            status=run_status(run_dir, store.meta("status")),
            grammar=config.get("grammar"),
            dataset=dataset,
            generations_done=last,
            generations_planned=config.get("generations"),
            counts=counts_of(store),
            members=store.count_individuals(),
            best_accuracy=best[0],
            best_accuracy_images=best[1],
            smallest_params=min(params) if params else None,
            last_update=_last_update(store),
            hypervolume=(store.generation(last) or {}).get("hypervolume")
            if last is not None else None,
            train_seconds=compute.train_seconds,
            epochs_trained=spent["epochs_trained"],
            images_seen=spent["images_seen"],
        )
    except Exception as exc:  # one bad run is a row saying so, never the end of the listing
        return RunSummary(str(run_dir), "unreadable", None, None, None, None, None, 0, None,
                          None, None, None, note=f"{db_path(run_dir)}: {exc}")
    finally:
        store.close(checkpoint=False)


def list_runs(root: Path) -> list[RunSummary]:
    """Summaries of every run under ``root``, newest update first."""
    summaries = [summarize(path) for path in find_runs(root)]
    return sorted(summaries, key=lambda s: (s.last_update or 0.0, s.path), reverse=True)
