"""Proxy budgets for big data on small machines: train and score candidates on subsets.

``--train-subset N`` / ``--val-subset N`` make the search's training and validation splits a
stratified, seeded sample of N images each (class proportions kept, so a subset of a balanced
dataset stays balanced and chance stays what it was). The test split, the normalisation
statistics (those of the full training split) and so every checkpoint's preprocessing stay the
full dataset's: a member's final retrain (``--final-epochs``, ``evo retrain``) and its export
run on the full data with the very same input scaling.

A subset gets its own fingerprint (the full one plus the sizes and the seed), so evaluation keys
change with N and a subset result is never taken for a full-data one. The full fingerprint is
kept in ``describe()["subset"]`` for the commands that go back to the full data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from evo.data.dataset import Dataset, Split

_SUBSET_VERSION = 1
_STREAMS = {"train": 1, "val": 2}  # independent draws: changing one size keeps the other subset


def stratified_sample(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``size`` labels of ``y`` with the class proportions of ``y``.

    Each class gets its share rounded down, and the images left over go to the classes with
    the largest remainders (ties to the lower class), so the counts are as close to
    proportional as integers allow and add up to ``size`` exactly. Which images of a class are
    taken is a seeded permutation.
    """
    classes, counts = np.unique(y, return_counts=True)
    share = counts * size / y.shape[0]
    quota = np.floor(share).astype(np.int64)
    left = size - int(quota.sum())
    order = np.lexsort((classes, -(share - quota)))  # largest remainder first, then class
    quota[order[:left]] += 1
    chosen = [rng.permutation(np.flatnonzero(y == cls))[:take]
              for cls, take in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(chosen))


def _sample(split: Split, size: int | None, seed: int, stream: str) -> Split | None:
    """The subset of one split, or None when ``size`` asks for all of it (or more)."""
    if size is None or size >= len(split):
        return None
    index = stratified_sample(split.y, size, np.random.default_rng([seed, _STREAMS[stream]]))
    return Split(split.x[index], split.y[index])


def subset_dataset(dataset: Dataset, train: int | None = None, val: int | None = None,
                   seed: int = 0) -> Dataset:
    """``dataset`` with its training and validation splits cut to ``train`` / ``val`` images
    (None, or a size at least the split's: all of it; then the dataset comes back as it was,
    with its own fingerprint, since nothing changed)."""
    train_split = _sample(dataset.train, train, seed, "train")
    val_split = _sample(dataset.val, val, seed, "val")
    if train_split is None and val_split is None:
        return dataset
    sizes = {"train": len(train_split) if train_split is not None else None,
             "val": len(val_split) if val_split is not None else None}
    text = json.dumps({"version": _SUBSET_VERSION, "full": dataset.fingerprint,
                       "seed": int(seed), **sizes}, sort_keys=True, separators=(",", ":"))
    subset = {**sizes, "seed": int(seed), "full_fingerprint": dataset.fingerprint,
              "full_sizes": {"train": len(dataset.train), "val": len(dataset.val)}}
    return dataclasses.replace(
        dataset, train=train_split or dataset.train, val=val_split or dataset.val,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(), subset=subset)


def full_fingerprint(described: dict[str, object]) -> object:
    """The fingerprint of the full data behind a stored dataset description (its own when the
    run used no subset)."""
    subset = described.get("subset")
    if isinstance(subset, dict):
        return subset.get("full_fingerprint")
    return described.get("fingerprint")
