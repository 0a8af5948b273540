"""The rules a search configuration must meet before it runs (:meth:`SearchConfig.check`).

Kept apart from :mod:`evo.config` so the configuration's fields stay readable on one screen;
each rule names the option and the value it refuses.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from evo.config import SEED_LIMIT
from evo.errors import EvoError

if TYPE_CHECKING:
    from evo.config import SearchConfig


def check_config_values(config: SearchConfig) -> None:
    """Types, ranges, names and the worker count of ``config``; the first problem raises
    :class:`EvoError`."""
    for f in fields(config):
        _check_type(f.name, str(f.type), getattr(config, f.name))
    for ok, message in _value_checks(config):
        if not ok:
            raise EvoError(message, "fix the option on the command line or its key in the "
                                    "TOML file; docs/configuration.md lists them")
    _check_names(config)
    _check_workers(config)


_KINDS = {"int": "a whole number", "float": "a number", "str": "text",
          "bool": "true or false", "tuple[str, ...]": "a list of text"}


def _check_type(name: str, annotation: str, value: Any) -> None:
    """``population = 2.5`` or ``"many"`` in a TOML file: one line, not a TypeError later."""
    kind = annotation.split("|")[0].strip()
    if value is None and "None" in annotation:
        return
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, str)
    elif kind == "bool":
        ok = isinstance(value, bool)
    else:  # tuple[str, ...]
        ok = isinstance(value, tuple | list) and all(isinstance(v, str) for v in value)
    if not ok:
        flag = "--" + name.replace("_", "-")
        raise EvoError(f"{flag} must be {_KINDS[kind]}, not {value!r}",
                       f"fix it on the command line or its key {flag[2:]} in the TOML file")


def _positive(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value > 0)


def _value_checks(c: SearchConfig) -> Iterator[tuple[bool, str]]:
    """(holds, message) for every range rule; messages name the option and the value."""
    yield c.population >= 2, f"--population must be at least 2, not {c.population}"
    yield c.generations >= 0, f"--generations must be 0 or more, not {c.generations}"
    yield c.epochs >= 1, f"--epochs must be at least 1, not {c.epochs}"
    yield 0 <= c.seed < SEED_LIMIT, f"--seed must be from 0 to 2**63 - 1, not {c.seed}"
    yield c.workers >= 1, f"--workers must be at least 1, not {c.workers}"
    yield c.threads >= 1, f"--threads must be at least 1, not {c.threads}"
    yield c.strategy in ("nsga2", "random"), f"--strategy is nsga2 or random, not {c.strategy!r}"
    yield c.init in ("sensible", "pi-grow", "random"), \
        f"--init is sensible, pi-grow or random, not {c.init!r}"
    yield c.max_evals is None or c.max_evals >= 1, \
        f"--max-evals must be at least 1, not {c.max_evals}"
    yield _positive(c.max_time), \
        f"--max-time must be a positive number of minutes, not {c.max_time}"
    yield _positive(c.candidate_timeout), \
        f"--candidate-timeout must be a positive number of seconds, not {c.candidate_timeout}"
    yield c.genome_length >= 1, f"--genome-length must be at least 1, not {c.genome_length}"
    yield c.codon_size >= 1, f"--codon-size must be at least 1, not {c.codon_size}"
    yield c.max_wraps >= 0, f"--max-wraps must be 0 or more, not {c.max_wraps}"
    yield c.max_tree_depth >= 0, \
        f"--max-tree-depth must be 0 (no limit) or more, not {c.max_tree_depth}"
    yield c.max_init_depth >= 1, f"--max-init-depth must be at least 1, not {c.max_init_depth}"
    yield c.min_init_depth is None or c.min_init_depth >= 1, \
        f"--min-init-depth must be at least 1, not {c.min_init_depth}"
    yield c.min_init_depth is None or c.min_init_depth <= c.max_init_depth, \
        (f"--min-init-depth {c.min_init_depth} is above --max-init-depth {c.max_init_depth}; "
         "the smallest ramped depth cannot exceed the largest")
    yield math.isfinite(c.crossover) and 0 <= c.crossover <= 1, \
        f"--crossover is a probability in [0, 1], not {c.crossover}"
    yield c.mutation is None or (math.isfinite(c.mutation) and 0 <= c.mutation <= 1), \
        f"--mutation is a probability in [0, 1], not {c.mutation}"
    yield c.final_epochs is None or c.final_epochs >= 1, \
        f"--final-epochs must be at least 1, not {c.final_epochs}"
    yield c.executor in (None, "serial", "local", "ray"), \
        f"--executor is serial, local or ray, not {c.executor!r}"
    yield c.jobs_per_gpu >= 1, f"--jobs-per-gpu must be at least 1, not {c.jobs_per_gpu}"
    yield math.isfinite(c.ray_cpus) and c.ray_cpus > 0, \
        f"--ray-cpus must be a positive number, not {c.ray_cpus}"
    yield math.isfinite(c.ray_gpus) and c.ray_gpus >= 0, \
        f"--ray-gpus must be 0 or more, not {c.ray_gpus}"
    yield c.task_retries >= 0, f"--task-retries must be 0 or more, not {c.task_retries}"
    yield c.fidelity in ("full", "halving"), \
        f"--fidelity is full or halving, not {c.fidelity!r}"
    yield c.min_epochs >= 1, f"--min-epochs must be at least 1, not {c.min_epochs}"
    yield c.eta >= 2, f"--eta must be at least 2, not {c.eta}"
    yield c.early_abort in (None, "on", "off"), \
        f"--early-abort is on or off, not {c.early_abort!r}"
    yield c.train_subset is None or c.train_subset >= 1, \
        f"--train-subset must be at least 1, not {c.train_subset}"
    yield c.val_subset is None or c.val_subset >= 1, \
        f"--val-subset must be at least 1, not {c.val_subset}"
    yield c.max_images is None or c.max_images >= 1, \
        f"--max-images must be at least 1, not {c.max_images}"


def _check_names(c: SearchConfig) -> None:
    """Objectives, constraints (and whether any network could meet them), export formats and
    bench targets, in the words of the option they came from."""
    from evo.moo.objectives import objective_kind

    _ = c.objective_specs  # parsing them is the check
    for text, limit in zip(c.constraint, c.constraint_specs, strict=True):
        kind = objective_kind(limit.name)
        if limit.limit < 0:
            raise EvoError(f"constraint {text!r}: {limit.name} cannot be negative",
                           f"give a limit of 0 or more, e.g. {limit.name}{limit.op}2e5"
                           if kind == "count" else "give a limit of 0 or more")
        if kind == "fraction" and limit.limit > 1:
            raise EvoError(f"constraint {text!r}: {limit.name} is a fraction from 0 to 1 "
                           "(0% to 100%)", f"e.g. {limit.name}{limit.op}5% or "
                                           f"{limit.name}{limit.op}0.05")
    if c.export:
        from export.errors import ExportError
        from export.names import parse_formats  # the names alone: no numpy, no torch

        try:
            parse_formats(",".join(c.export))
        except ExportError as exc:
            raise EvoError(f"--export: {exc.message}", exc.hint) from None
    if c.bench:
        from hardware.errors import HardwareError
        from hardware.targets import parse_targets

        try:
            parse_targets(c.bench)
        except HardwareError as exc:
            raise EvoError(f"--bench: {exc.message}", exc.hint) from None


def _check_workers(c: SearchConfig) -> None:
    from evo.capacity import plan_executor, worker_limit

    plan = plan_executor(c)  # refuses --gpus without a GPU, a Ray address that does not answer
    if plan.workers <= 1 or c.oversubscribe or plan.remote:
        return
    limit = worker_limit(c.threads)
    if plan.workers > limit.workers:
        raise EvoError(
            f"--workers {plan.workers}{plan.origin}: this machine runs at most {limit.workers} "
            f"({limit.reason})",
            f"use --workers {limit.workers} or fewer, or add --oversubscribe to start them anyway")
