"""``--warm-start RUN``: reuse an earlier run's evaluations, checked before a run folder exists.

An evaluation can be reused only when its key would be the same here: the key hashes the
network with the dataset (its files and the splits, which ``seed`` cuts), the training budget
(``epochs``, ``candidate-timeout``), the device type, the threads and, with latency objectives
or constraints, the measuring machine and targets. So the earlier run's stored description of
its problem must equal this one's; a refusal names the options that differ, in the words the
user typed them, and happens before this run writes anything.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.run import layout
from evo.run.store import Evaluation, Individual, RunStore

# Fields of the problem description (TrainingProblem.describe), by the option that sets them.
_NAMES: dict[tuple[str, ...], str] = {
    ("dataset", "split_seed"): "seed",
    ("dataset", "official_test"): "test-set",
    ("budget", "epochs"): "epochs",
    ("budget", "max_seconds"): "candidate-timeout",
    ("device_type",): "device type",
    ("threads",): "threads",
    ("measurement",): "latency set-up",
}
# Why a name matters, said once after the list.
_NOTES = {
    "seed": "the seed sets the train/validation/test splits",
    "latency set-up": "latencies belong to the machine, targets and runtimes that measured them",
}
# Any other difference inside the dataset's description means other images or labels.
_DATASET = "dataset (its files, images or labels)"
# Dataset facts computed from the splits: they follow a change of seed or test set.
_DERIVED = {"fingerprint", "mean", "std", "sizes"}

MUST_MATCH = "dataset, seed, epochs, candidate-timeout, device type and threads"


def _differences(theirs: Any, ours: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the leaves that differ between two JSON-like descriptions."""
    if isinstance(theirs, dict) and isinstance(ours, dict) and path not in _NAMES:
        out: list[tuple[str, ...]] = []
        for key in sorted(set(theirs) | set(ours)):
            out += _differences(theirs.get(key), ours.get(key), (*path, key))
        return out
    return [] if theirs == ours else [path]


def _name(path: tuple[str, ...]) -> str:
    for length in range(len(path), 0, -1):
        if path[:length] in _NAMES:
            return _NAMES[path[:length]]
    if path[:1] == ("dataset",):
        return _DATASET
    return ".".join(path)  # a field a later version added: its own name


def _values(path: tuple[str, ...], theirs: dict, ours: dict) -> str:
    """`` (5 there, 7 here)`` for short scalar values, else nothing."""
    a, b = theirs, ours
    for key in path:
        a = a.get(key) if isinstance(a, dict) else None
        b = b.get(key) if isinstance(b, dict) else None
    if all(v is None or (isinstance(v, int | float | str | bool) and len(str(v)) <= 24)
           for v in (a, b)):
        return f" ({_show(a)} there, {_show(b)} here)"
    return ""


def _show(value: Any) -> str:
    return "not set" if value is None else str(value)


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def mismatch(run_dir: Path, theirs: dict, ours: dict) -> str | None:
    """The refusal message when two problem descriptions cannot share keys, else None."""
    paths = _differences(theirs, ours)
    if any(p[:2] in _NAMES for p in paths if p[:1] == ("dataset",)):
        paths = [p for p in paths if not (p[:1] == ("dataset",) and p[1:2] and
                                          p[1] in _DERIVED)]
    if not paths:
        return None
    named: dict[str, tuple[str, ...]] = {}
    for path in paths:
        named.setdefault(_name(path), path)
    parts = [name + (_values(path, theirs, ours) if name != _DATASET else "")
             for name, path in named.items()]
    verb = "differs" if len(parts) == 1 else "differ"
    notes = [_NOTES[name] for name in named if name in _NOTES]
    return (f"--warm-start {run_dir}: cannot reuse its evaluations: its {_join(parts)} {verb} "
            "from this run's" + "".join(f"; {note}" for note in notes))


def open_warm_start(run_dir: Path, description: dict[str, Any]) -> RunStore:
    """The earlier run, opened read-only, when its evaluations can be reused here."""
    warm = RunStore.open(run_dir, write=False)
    try:
        message = mismatch(run_dir, warm.meta("problem") or {}, description)
    except BaseException:
        warm.close(checkpoint=False)
        raise
    if message:
        warm.close(checkpoint=False)
        raise EvoError(message, f"a warm start needs the same {MUST_MATCH}, and with latency "
                                "objectives the same machine and targets; see "
                                "docs/running-a-search.md")
    return warm


def check_warm_start(run_dir: Path, description: dict[str, Any]) -> None:
    """Refuse an unusable ``--warm-start`` before the new run's folder is made."""
    open_warm_start(run_dir, description).close(checkpoint=False)


def copy_evaluation(warm: RunStore, store: RunStore, ind: Individual) -> Evaluation | None:
    """Store the warm-start run's evaluation of ``ind``'s key as a cache hit of this run, its
    weights copied into this run's models folder; ``None`` when the earlier run has none."""
    if ind.eval_key is None:
        return None
    ev = warm.evaluation(ind.eval_key)
    if ev is None:
        return None
    weights = None
    if ev.weights:
        source = layout.resolve_stored(warm.run_dir, ev.weights)
        if source.is_file():
            target = layout.models_dir(store.run_dir) / source.name
            tmp = layout.temporary_path(target)
            shutil.copyfile(source, tmp)
            tmp.replace(target)
            weights = layout.relative_name(store.run_dir, target)
    copied = dataclasses.replace(ev, individual_id=ind.id, weights=weights, source="warm-start")
    with store.transaction() as conn:
        store.add_evaluation(conn, copied)
    return copied
