"""The training compute a run has spent: images processed and epochs trained, summed over every
training segment it stored.

Why a running total in ``state`` instead of a sum over the evaluations: with successive halving
one evaluation key is trained in several segments (one per rung, possibly across generations),
and a stopped candidate's later segments replace what its evaluation row shows, so only a total
kept as each segment is stored counts every image once. The engine adds a segment's figures in
the same transaction that stores its result (:func:`add_compute`), so the total can never count
a result that was not stored, nor miss one that was, whatever instant a run is killed at.
``--max-images`` compares against it, and ``evo runs``, ``evo front --json``, ``evo show`` and
the progress line show it (:func:`compute_spent`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from evo.run.store import RunStore

COMPUTE_STATE = "compute"  # the state key holding the totals
COMPUTE_KEYS = ("images_seen", "epochs_trained")


def segment_compute(metrics: Mapping[str, Any]) -> dict[str, int]:
    """What one stored training segment cost, from its metrics: ``images_seen`` (training
    images this call processed) and ``epochs_trained`` (epochs this call ran; results of evo
    before these metrics existed have only ``epochs_run``, all of which the call ran)."""
    epochs = metrics.get("epochs_trained", metrics.get("epochs_run", 0))
    return {"images_seen": int(metrics.get("images_seen") or 0),
            "epochs_trained": int(epochs or 0)}


def add_compute(store: RunStore, conn: sqlite3.Connection,
                metrics: Mapping[str, Any]) -> dict[str, int | None]:
    """Add one stored segment's cost to the run's totals, inside the caller's transaction
    ``conn`` (the one that stores the segment); returns the new totals. A run from before
    the totals starts from what its evaluations tell (:func:`compute_spent`), its images
    unknown for good."""
    row = conn.execute("SELECT value FROM state WHERE key=?", (COMPUTE_STATE,)).fetchone()
    totals = json.loads(row[0]) if row is not None else compute_spent(store)
    for name, value in segment_compute(metrics).items():
        if totals.get(name) is not None:
            totals[name] = int(totals[name]) + value
    store.set_state(conn, COMPUTE_STATE, totals)
    return totals


def compute_spent(store: RunStore) -> dict[str, int | None]:
    """The run's totals: ``{"images_seen": int, "epochs_trained": int}``.

    A run written before evo kept these totals has no ``compute`` state: its epochs are
    summed from the evaluations it trained (``epochs_run``), and ``images_seen`` is ``None``
    (unknown) when any of them lacks the metric, rather than a number that undercounts; it
    stays ``None`` when such a run is resumed."""
    stored = store.state(COMPUTE_STATE)
    if stored is not None:
        return {name: None if stored.get(name) is None else int(stored[name])
                for name in COMPUTE_KEYS}
    trained = [ev for ev in store.evaluations().values() if ev.source == "trained"]
    images: int | None = 0
    for ev in trained:
        if "images_seen" not in ev.metrics:
            images = None
            break
        assert images is not None
        images += int(ev.metrics["images_seen"] or 0)
    epochs = sum(segment_compute(ev.metrics)["epochs_trained"] for ev in trained)
    return {"images_seen": images, "epochs_trained": epochs}
