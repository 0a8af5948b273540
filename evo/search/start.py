"""What a run is started or continued from: the checks before anything is written, what goes
into a new run's run.db, the one merge of resume settings, and the tidying of a resumed run.

Why apart from the ask/tell :class:`evo.search.engine.Search`: these steps run once per
invocation and decide whether a run may begin at all; the search proper only asks and tells.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from evo.config import SearchConfig, run_config_toml
from evo.errors import EvoError
from evo.ge.grammar import Grammar, parse_grammar, read_grammar_text
from evo.moo.indicators import default_scale
from evo.run import layout
from evo.run.store import RunStore
from evo.search.contract import Problem
from evo.search.warmstart import check_warm_start

RESUME_SAFE = tuple(f.name for f in fields(SearchConfig) if f.metadata["resume_safe"])


def check_config(config: SearchConfig) -> Grammar:
    """Validate everything that needs no dataset or torch, so bad input fails in milliseconds
    (every rule lives in :meth:`SearchConfig.check`, which the CLI and TOML files use too)."""
    config.check()
    text, source = read_grammar_text(config.grammar)
    return parse_grammar(text, source)


def new_run(config: SearchConfig, problem: Problem
            ) -> tuple[dict[str, Any], dict[str, Any], Grammar]:
    """The metadata, the initial state and the grammar of a new run: everything that defines
    it. An unusable ``--warm-start`` is refused here, before the run folder exists."""
    config.check()
    text, source = read_grammar_text(config.grammar)
    grammar = parse_grammar(text, source)
    scales = tuple(default_scale(name) for name in config.objective_specs)
    meta = {
        "config": config.to_dict(), "grammar_text": text, "grammar_source": source,
        "problem": problem.describe(), "objective_scales": [s.to_dict() for s in scales],
        "constraints": [c.to_dict() for c in config.constraint_specs],
        "versions": versions(), "created": time.time(), "status": "running",
    }
    state = {"rng": np.random.default_rng(config.seed).bit_generator.state}
    if config.warm_start:
        check_warm_start(Path(config.warm_start), meta["problem"])
    return meta, state, grammar


def resumed_config(run_dir: Path, stored: SearchConfig,
                   changes: Mapping[str, Any] | None) -> SearchConfig:
    """The stored configuration with the resume-safe ``changes`` applied (option names with
    ``-`` or ``_``, values as the command line, a TOML file or a whole configuration give them),
    checked like a new one (a run resumed on a smaller machine may need fewer --workers).
    A change of anything else would change the run's results and is refused by name."""
    if not changes:
        return stored
    given = {str(k).replace("-", "_"): v for k, v in changes.items()}
    merged = SearchConfig.from_dict({**stored.to_dict(), **given}).check()
    diff = merged.resume_differences(stored)
    if diff:
        raise EvoError(
            f"{run_dir}: {', '.join(diff)} differ from the stored run",
            "on --resume only " + _options(RESUME_SAFE) + " may change; drop the others")
    return stored.replace(**{name: getattr(merged, name) for name in RESUME_SAFE})


def _options(names: tuple[str, ...]) -> str:
    flags = ["--" + name.replace("_", "-") for name in names]
    return ", ".join(flags[:-1]) + " and " + flags[-1]


def check_same_problem(run_dir: Path, problem: Problem, stored: Any) -> None:
    """Refuse to continue a run whose dataset or training set-up is no longer the same."""
    if problem.describe() != stored:
        raise EvoError(f"{run_dir}: the dataset or training set-up changed since the run "
                       "started", "resume on the machine and data the run began with")


def write_config_toml(run_dir: Path, config: SearchConfig) -> None:
    """Human-readable copy of the configuration; run.db stays the truth."""
    path = layout.config_path(run_dir)
    tmp = layout.temporary_path(path)
    tmp.write_text(run_config_toml(config, run_dir))
    tmp.replace(path)


def sweep_orphans(store: RunStore) -> None:
    """Files an evaluation wrote before a kill stopped its row from being committed are
    deleted: unfinished temporaries, and per-key files (``<key[:24]>.pt``/``.onnx``) whose
    key has no evaluation nor rung result (successive halving writes a key's evaluation at
    its rung's barrier). Anything else in ``models/`` (retrained weights) is kept."""
    known = {key[:layout.KEY_CHARS] for key in store.evaluations()} | \
        {key[:layout.KEY_CHARS] for key, _rung in store.rung_results()}
    for path in layout.models_dir(store.run_dir).iterdir():
        if not path.is_file():
            continue
        prefix = layout.candidate_key_prefix(path)
        if layout.is_temporary(path) or (prefix is not None and prefix not in known):
            path.unlink(missing_ok=True)


def versions() -> dict[str, str]:
    """The versions of evo, Python and the libraries that shape a run's results."""
    import platform
    from importlib import metadata

    from evo import __version__

    out = {"evo": __version__, "python": platform.python_version()}
    for dist in ("numpy", "torch", "onnx", "onnxruntime", "openvino", "nncf", "moocore"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[dist] = metadata.version(dist)
    return out
