"""Drive a search to its end: the three-line ask/tell loop of docs/design.md plus start, resume
and clean stops.

This is the Python API behind ``evo search``: ``run_search(config, problem_factory=...)`` starts
a run, ``run_search(None, resume=RUN_DIR, changes={"generations": 8}, problem_factory=...)``
continues one. The factory makes the problem from the run's configuration
(:func:`evo.nas.problem.problem_factory` for real training), so the search never imports what
it optimises. Ctrl-C stops cleanly: finished results are already committed, workers are stopped,
the run is marked interrupted and ``KeyboardInterrupt`` propagates (the CLI turns it into exit
code 130).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.run import layout
from evo.search.contract import Event, Listener, ProblemFactory, SearchDone
from evo.search.engine import Search
from evo.search.executors import Executor, make_executor
from evo.search.start import check_config


def run_search(config: SearchConfig | None, *, problem_factory: ProblemFactory,
               resume: Path | None = None, changes: Mapping[str, Any] | None = None,
               listeners: tuple[Listener, ...] = ()) -> Path:
    """Run (or resume) a search to completion; returns the run folder (status recorded).

    A new run's folder is ``config.run_dir``, else :func:`evo.run.layout.default_run_dir`. On
    ``resume``, ``changes`` are the options to change (only resume-safe ones may), or ``config``
    is a whole configuration that may differ from the stored one only in those."""
    # Progress from inside evaluations (epochs, batches), from workers too, goes to the same
    # listeners as the search's own events; nothing is reported when nobody listens.
    relay = _Relay() if listeners else None
    executor: Executor | None = None
    try:
        if resume is not None:
            if changes is None and config is not None:
                changes = config.to_dict()
            search = Search.open(resume, changes, problem_factory)
        else:
            assert config is not None
            run_dir = Path(config.run_dir) if config.run_dir else \
                layout.default_run_dir(config.grammar, config.dataset, config.seed)
            if layout.holds_run(run_dir):
                raise EvoError(f"{run_dir}: already holds a run",
                               f"continue it with --resume {run_dir}, or choose another "
                               "--run-dir")
            config = config.replace(run_dir=str(run_dir))
            check_config(config)
            _check_writable(run_dir)
            problem = problem_factory(config, run_dir)
            # Before the run folder exists: workers start while the search is set up, and a
            # cluster that refuses evo leaves nothing behind.
            executor = make_executor(problem.evaluator(), config, relay)
            search = Search.create(run_dir, config, problem)
    except BaseException:
        if executor is not None:
            executor.__exit__(*sys.exc_info())
        raise
    search.listeners.extend(listeners)
    if relay is not None:
        relay.target = search.emit
    status = "interrupted"
    try:
        if executor is None:
            executor = make_executor(search.problem.evaluator(), search.config, relay)
        with executor:
            # The evaluations in flight: --workers, or GPUs x --jobs-per-gpu.
            search.emit(dataclasses.replace(search.started_event(), workers=executor.workers))
            while not search.done:
                _refuse_a_hopeless_start(search)  # a resumed run that stopped there before
                for result in executor.run(search.ask()):
                    search.tell(result)
                _refuse_a_hopeless_start(search)
        status = "finished"
        search.emit(SearchDone(reason=search.stop_reason(), counts=search.counts))
    finally:
        search.close(status)
    return search.store.run_dir


class _Relay:
    """Passes progress events on to the search's listeners once the search exists (a new
    run's executor starts before it)."""

    def __init__(self) -> None:
        self.target: Listener | None = None

    def __call__(self, event: Event) -> None:
        if self.target is not None:
            self.target(event)


def _refuse_a_hopeless_start(search: Search) -> None:
    """Stop when every member of the initial population is invalid (no derivation maps, or
    none parses as an architecture): variation of invalid genomes rarely finds a valid one,
    so the search would end with an empty front and nothing said. Checked only while the
    initial population is the last generation."""
    if search.generation != 0:
        return
    members = search.store.individuals_of_generation(0)
    if not members or any(ind.eval_key is not None for ind in members):
        return
    first = members[0]
    shown = " ".join((first.phenotype or "").split())
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    why = f"{shown!r} {first.reason}" if shown else first.reason
    raise EvoError(f"{search.store.run_dir}: all {len(members)} members of the first generation "
                   f"are invalid, so there is nothing to evolve; the first: {why}",
                   "check the grammar with evo grammar check: its phenotypes must be "
                   "architectures (docs/architecture-language.md)")


def _check_writable(run_dir: Path) -> None:
    parent = run_dir if run_dir.exists() else next(
        (p for p in run_dir.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise EvoError(f"{run_dir}: cannot write the run folder (no permission on {parent})",
                       "choose a writable --run-dir")
