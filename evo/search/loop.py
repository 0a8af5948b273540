"""Drive a search to its end: the tiny loop of DESIGN.md plus start, resume and clean stops.

This is the Python API behind ``evo search``: ``run_search(config)`` starts a run,
``run_search(config, resume=RUN_DIR)`` continues one. Ctrl-C stops cleanly: finished results
are already committed, workers are stopped, the run is marked interrupted and ``KeyboardInterrupt``
propagates (the CLI turns it into exit code 130).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.search.engine import Problem, Search, check_config
from evo.search.executors import make_executor

Listener = Callable[[str, dict[str, Any]], None]


def default_run_dir(config: SearchConfig) -> Path:
    grammar = Path(config.grammar).stem
    dataset = Path(config.dataset).stem
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{grammar}-{dataset}-s{config.seed}-{stamp}"


def training_problem(run_dir: Path) -> Callable[[SearchConfig], Problem]:
    def make(config: SearchConfig) -> Problem:
        from evo.nas.problem import TrainingProblem

        return TrainingProblem(config, run_dir)

    return make


def run_search(config: SearchConfig | None, *, resume: Path | None = None,
               listeners: tuple[Listener, ...] = (),
               problem_factory: Callable[[Path], Callable[[SearchConfig], Problem]] | None = None,
               ) -> Path:
    """Run (or resume) a search to completion; returns the run folder (status recorded)."""
    factory = problem_factory or training_problem
    if resume is not None:
        search = Search.open(resume, config, factory(resume))
    else:
        assert config is not None
        run_dir = Path(config.run_dir) if config.run_dir else default_run_dir(config)
        if (run_dir / "run.db").exists():
            raise EvoError(f"{run_dir}: already holds a run",
                           f"continue it with --resume {run_dir}, or choose another --run-dir")
        config = config.replace(run_dir=str(run_dir))
        check_config(config)
        _check_writable(run_dir)
        problem = factory(run_dir)(config)
        search = Search.create(run_dir, config, problem)
    search.listeners.extend(listeners)
    # Progress from inside evaluations (epochs, batches), from workers too, goes to the same
    # listeners as the search's own events; nothing is reported when nobody listens.
    progress = (lambda kind, data: search.emit(kind, **data)) if search.listeners else None
    status = "interrupted"
    try:
        with make_executor(search.problem.evaluator(), search.config.workers, progress,
                           search.config.candidate_timeout) as executor:
            search.emit("start", run_dir=str(search.store.run_dir), config=search.config,
                        workers=search.config.workers, **search.progress_state())
            while not search.done:
                for result in executor.run(search.ask()):
                    search.tell(result)
        status = "finished"
        search.emit("done", reason=search.stop_reason(), counts=search.counts)
    finally:
        search.close(status)
    return search.store.run_dir


def _check_writable(run_dir: Path) -> None:
    parent = run_dir if run_dir.exists() else next(
        (p for p in run_dir.parents if p.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise EvoError(f"{run_dir}: cannot write the run folder (no permission on {parent})",
                       "choose a writable --run-dir")
