"""The data a search trains on: its dataset, loaded once per process, cut to the proxy-budget
subsets of ``--train-subset`` / ``--val-subset``, and the full data behind a stored run.

Kept apart from the problem itself because three kinds of caller need it: the search (the
candidates' data), the commands that reuse a run's weights (retrain and export go back to the
full data) and the benchmarks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.data.dataset import Dataset, load_dataset
from evo.data.subset import full_fingerprint, subset_dataset
from evo.errors import EvoError

Subsets = tuple[int | None, int | None]  # (--train-subset, --val-subset); None: all
_DATASETS: dict[tuple[str, str | None, int, str | None, Subsets], Dataset] = {}


def dataset_for(name: str, data_dir: str | None, seed: int,
                test_set: str | None = None, subsets: Subsets = (None, None)) -> Dataset:
    """Load once per process: workers keep the decoded, normalised arrays between jobs.
    ``subsets`` cuts the training and validation splits (evo.data.subset, seeded by ``seed``)."""
    key = (name, data_dir, seed, test_set, subsets)
    if key not in _DATASETS:
        if subsets != (None, None):
            full = dataset_for(name, data_dir, seed, test_set)
            _DATASETS[key] = subset_dataset(full, *subsets, seed=seed)
        else:
            _DATASETS[key] = load_dataset(name, Path(data_dir) if data_dir else None, seed,
                                          test_path=Path(test_set) if test_set else None)
    return _DATASETS[key]


def adopt_dataset(dataset: Dataset, name: str, data_dir: str | None, seed: int,
                  test_set: str | None = None, subsets: Subsets = (None, None)) -> None:
    """Take a dataset another process loaded (the driver's, handed to a worker through shared
    memory or Ray's object store) as this process's :func:`dataset_for` of the same arguments,
    so no worker decodes it again."""
    _DATASETS[(name, data_dir, seed, test_set, subsets)] = dataset


def subsets_of(config: SearchConfig) -> Subsets:
    """The proxy budget of a search's data: ``--train-subset`` and ``--val-subset``."""
    return config.train_subset, config.val_subset


def dataset_of(config: SearchConfig) -> Dataset:
    """The dataset a run's candidates train and validate on, exactly as its configuration says
    (a subset with ``--train-subset`` / ``--val-subset``)."""
    return dataset_for(config.dataset, config.data_dir, config.seed, config.test_set,
                       subsets_of(config))


def run_dataset(run_dir: Path, described: dict[str, Any] | None, config: SearchConfig,
                action: str) -> Dataset:
    """A stored run's full dataset, refused when it is not the data the run was searched on
    (commands that reuse a run's weights must see the same splits and normalisation). Full
    even when the search used subsets: a final retrain and an export use all the data, with
    the normalisation the subset shared."""
    if not described:
        raise EvoError(f"{run_dir}: this run has no dataset (a synthetic test problem)",
                       f"{action} members of a run that trained networks")
    dataset = dataset_for(config.dataset, config.data_dir, config.seed, config.test_set)
    if dataset.fingerprint != full_fingerprint(described):
        raise EvoError(f"{run_dir}: the dataset {config.dataset!r} differs from the one "
                       "the run was searched on (fingerprint changed)",
                       f"{action} on the machine and data the run used")
    return dataset
