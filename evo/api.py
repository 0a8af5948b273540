"""evo from Python: open a run, read its evaluations and front, run a search.

This is a facade beside :mod:`evo.cli`, not a second implementation: every function here calls
what the commands call (``evo front`` builds its rows with
:func:`evo.report.front_table.front_rows` and writes CSV with
:func:`evo.report.front_table.write_csv`; ``evo search`` runs
:func:`evo.search.loop.run_search` with :func:`evo.nas.problem.problem_factory`), so a script
and the terminal see the same numbers. Runs are read through :mod:`evo.run` and
:mod:`evo.report` only. Bad input raises :class:`evo.errors.EvoError` (the message plus its
fix), the same error the CLI prints as one line. docs/python-api.md shows it in use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.errors import EvoError

__all__ = ["EvoError", "Run", "SearchConfig", "open_run", "search"]


def open_run(path: str | Path) -> Run:
    """The run in folder ``path`` (read-only; nothing is locked or written). Raises
    ``EvoError`` when the folder holds no readable run."""
    from evo.run.store import RunStore

    run_dir = Path(path)
    store = RunStore.open(run_dir, write=False)  # refuses a missing or damaged run.db
    try:
        stored = store.meta("config") or {}
    finally:
        store.close(checkpoint=False)
    return Run(run_dir, SearchConfig.from_dict(stored))


@dataclass(frozen=True)
class Run:
    """One run folder written by ``evo search`` (or :func:`search`) and its configuration."""

    path: Path
    config: SearchConfig

    def evaluations(self) -> Iterator[dict[str, Any]]:
        """One flat dict per individual the search saw, in member order: ``member``,
        ``generation``, ``origin``, ``outcome`` (trained, cached, skipped, invalid, failed,
        stopped, as ``evo runs`` counts them; None while still in training), ``status``,
        ``reason``, ``phenotype`` (canonical) and ``phenotype_raw``, ``params``, ``macs``,
        ``val_accuracy`` (a fraction) and ``val_images``, ``seconds``, ``weights``, and
        ``objective:NAME`` for every objective stored. Scalars only, so
        ``pandas.DataFrame(run.evaluations())`` or ``csv.DictWriter`` take them as they are."""
        from evo.report.readable import canonical_phenotype, integral_counts
        from evo.run.counts import outcome
        from evo.run.store import RunStore

        store = RunStore.open(self.path, write=False)
        try:
            evaluations = store.evaluations()
            individuals = store.individuals()
        finally:
            store.close(checkpoint=False)
        for ind in individuals:
            ev = evaluations.get(ind.eval_key) if ind.eval_key else None
            objectives = integral_counts(dict(ev.objectives)) if ev else {}
            metrics = ev.metrics if ev else {}
            row = {
                "member": ind.id, "generation": ind.generation, "origin": ind.origin,
                "outcome": outcome(ind, ev), "status": ev.status if ev else None,
                "reason": (ev.reason if ev else None) or ind.reason,
                "phenotype": canonical_phenotype(ind.phenotype),
                "phenotype_raw": ind.phenotype, "eval_key": ind.eval_key,
                "params": objectives.get("params"), "macs": objectives.get("macs"),
                "val_accuracy": metrics.get("val_accuracy"),
                "val_images": metrics.get("val_total"),
                "seconds": ev.seconds if ev else None, "weights": ev.weights if ev else None,
            }
            row.update({f"objective:{name}": value for name, value in objectives.items()})
            yield integral_counts(row)

    def front(self) -> list[dict[str, Any]]:
        """The Pareto front, one dict per member: exactly the ``front`` list ``evo front
        --json`` prints (nested ``objectives`` and ``objective_spread``, plus the retrain,
        export and measured-latency columns the run has)."""
        from evo.report.front_table import front_rows

        return front_rows(self.path)[0]

    def info(self) -> dict[str, Any]:
        """Facts ``evo front --json`` prints beside the front: run_dir, objectives, status,
        generations, dataset and the run's compute (images_seen, epochs_trained)."""
        from evo.report.front_table import front_rows

        return front_rows(self.path)[1]

    def to_rows(self) -> list[dict[str, Any]]:
        """The front as flat dicts, one a member, with the columns and values of ``evo front
        --csv`` in its order (None for an empty cell; nested values as JSON text)."""
        from evo.report.front_table import csv_table, front_rows

        rows, info = front_rows(self.path)
        columns, table = csv_table(rows, info["objectives"])
        return [dict(zip(columns, values, strict=True)) for values in table]

    def to_csv(self, path: str | Path) -> Path:
        """Write the front to ``path`` as ``evo front --csv`` does (the same writer)."""
        from evo.report.front_table import front_rows, write_csv

        rows, info = front_rows(self.path)
        return write_csv(rows, Path(path), info["objectives"])

    def to_pandas(self) -> Any:
        """The front as a ``pandas.DataFrame`` of :meth:`to_rows` (columns in CSV order).
        pandas is optional: without it this raises ``EvoError`` saying how to install it."""
        try:
            import pandas
        except ImportError:
            raise EvoError("to_pandas() needs pandas, which is not installed",
                           "pip install pandas, or use to_rows() / to_csv(), which need "
                           "nothing more") from None
        from evo.report.front_table import csv_table, front_rows

        rows, info = front_rows(self.path)
        columns, table = csv_table(rows, info["objectives"])
        return pandas.DataFrame(table, columns=columns)


def search(config: SearchConfig, *, progress: bool = False, post_search: bool = True) -> Run:
    """Run a new search as ``evo search`` does and return its run: the configuration is
    checked (``EvoError`` on a bad value), the run goes to ``config.run_dir`` (default
    ``runs/GRAMMAR-DATASET-sSEED-STAMP``), and with ``post_search`` the configured steps after it
    (final retrain, export, bench) run too. ``progress`` prints the progress lines the CLI
    prints; by default it is silent. Continue an interrupted run with ``evo search --resume``."""
    from evo.nas.problem import problem_factory
    from evo.post import postsearch
    from evo.report.progress import make_reporter
    from evo.search.loop import run_search

    config = config.check()
    reporter, display = make_reporter(not progress)
    listeners = () if reporter is None else (reporter,)
    live = reporter if display is reporter else None
    with display:
        run_dir = run_search(config, listeners=listeners, problem_factory=problem_factory(live))
    if post_search:
        postsearch.run_all(run_dir, not progress)
    return open_run(run_dir)
