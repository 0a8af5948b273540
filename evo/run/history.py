"""What a run's search cost: the epochs and training time of the evaluations it trained itself.

Why here: ``evo runs`` (and anything comparing runs) weighs a front against the compute that
bought it; the figures are read from what each evaluation stored in its metrics, counted the
same way everywhere: only evaluations this run trained (not cache hits, not warm-start copies).
"""

from __future__ import annotations

from dataclasses import dataclass

from evo.run.store import RunStore


@dataclass(frozen=True)
class Compute:
    """Training compute of a run; ``None`` where no evaluation recorded the figure."""

    trained: int
    epochs_trained: int | None
    train_seconds: float | None


def compute_of(store: RunStore) -> Compute:
    """Epochs run and training-loop wall time summed over the run's own trainings."""
    trained, epochs, seconds = 0, [], []
    for ev in store.evaluations().values():
        if ev.source != "trained":
            continue
        ran = ev.metrics.get("epochs_run")
        spent = ev.metrics.get("train_seconds")
        if isinstance(ran, int | float):
            epochs.append(int(ran))
        if isinstance(spent, int | float):
            seconds.append(float(spent))
        if ran is not None or spent is not None:
            trained += 1
    return Compute(trained, sum(epochs) if epochs else None,
                   sum(seconds) if seconds else None)
