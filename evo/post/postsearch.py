"""The steps that follow a search (final retrain, export, benchmark), kept in one place so
``evo search`` runs them in a fixed order. Each records its results in run.db; the columns
``evo front`` shows for them are :mod:`evo.report.front_columns`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from evo.config import SearchConfig
from evo.post.retrain_events import Listener, RetrainDone, RetrainEvent, RetrainSeedDone
from evo.run.store import RunStore

Say = Callable[[str], None]
Step = Callable[[Path, SearchConfig, Say], None]


def run_all(run_dir: Path, quiet: bool) -> None:
    """Run the configured post-search steps; each records its results in run.db."""
    store = RunStore.open(run_dir, write=False)
    config = SearchConfig.from_dict(store.meta("config"))
    store.close(checkpoint=False)
    say = _silent if quiet else _print
    for step in steps():
        step(run_dir, config, say)


def steps() -> list[Step]:
    """Post-search steps in the order they run; a step does nothing unless configured."""
    return [
        # 1. Final retrain of the front on train+validation (--final-epochs): its retrained
        #    checkpoints are what the export step uses.
        final_retrain_step,
        # 2. Export of the front (--export): ONNX/IR artifacts of each member's best weights.
        export_step,
        # 3. Benchmark of the exported front (--bench): quick-protocol latency per target.
        bench_step,
    ]


def _silent(_text: str) -> None:
    pass


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- 1. final retrain


def final_retrain_step(run_dir: Path, config: SearchConfig, say: Say) -> None:
    """Retrain the front for ``final-epochs`` (one seed), skipping members already retrained
    with that budget (so a resumed run does not repeat finished retrains)."""
    if not config.final_epochs:
        return
    from evo.post.retrain import retrain

    say(f"final retrain: front members on train+validation, {config.final_epochs} epochs, "
        "scored on the test split")
    retrain(run_dir, None, epochs=config.final_epochs, seeds=1, skip_done=True,
            listener=retrain_printer(say))


def retrain_printer(say: Say) -> Listener:
    """A retrain listener that prints one line per seed and per member."""

    def listener(event: RetrainEvent) -> None:
        if isinstance(event, RetrainSeedDone):
            say(f"  member {event.member} seed {event.seed_index + 1}/{event.seeds}: "
                f"test acc {event.test_accuracy:.2%} ({event.test_correct} of "
                f"{event.test_total} test images) in {event.seconds:.1f} s")
        elif isinstance(event, RetrainDone):
            outcome = event.outcome
            if outcome.status == "failed":
                say(f"  member {outcome.member}: retrain failed: {outcome.reason}")
            elif outcome.status == "skipped":
                say(f"  member {outcome.member}: {outcome.reason}")

    return listener


# ---------------------------------------------------------------- 2. export


def export_step(run_dir: Path, config: SearchConfig, say: Say) -> None:
    """Export the front to ``config.export`` (retrained weights where they exist) under
    ``RUN_DIR/export/<member>/``; every artifact is recorded in run.db."""
    if not config.export:
        return
    from evo.post.exporting import export_members
    from evo.run.front import front_of
    from evo.run.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        empty = not front_of(store)
    finally:
        store.close(checkpoint=False)
    if empty:  # e.g. a budget no candidate met (all skipped): the search itself went fine
        say("export: no feasible member on the front (every candidate missed a constraint or "
            "failed); nothing to export")
        return
    say(f"export: front members to {', '.join(config.export)} (test split accuracy, parity "
        "against torch)")
    export_members(run_dir, None, config.export, say=say)


# ---------------------------------------------------------------- 3. bench


def bench_step(run_dir: Path, config: SearchConfig, say: Say) -> None:
    """Measure the exported front on ``config.bench`` (quick protocol); see evo.post.benchrun."""
    from evo.post.benchrun import bench_step as measure_front

    measure_front(run_dir, config, say)
