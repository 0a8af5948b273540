"""The one configuration object of a search, its TOML form, and its reference documentation.

Each field carries its help text and whether it may change on ``--resume``, so the CLI options,
the TOML keys (the long option names: ``max-evals``), the resume check and the configuration
reference in ``docs/`` all come from this one place and cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evo.errors import EvoError


def _opt(default: Any, help: str, resume_safe: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "resume_safe": resume_safe})


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search. Frozen: a run's configuration never changes."""

    grammar: str = _opt("cnn_full", "Shipped grammar name (cnn_topology, cnn_full, mobile) or a "
                        ".bnf path.")
    dataset: str = _opt("digits", "Dataset name (digits, fashion-mnist, mnist, cifar10) or a path "
                        "(ImageFolder dir or .zip, .npz).")
    data_dir: str | None = _opt(None, "Folder holding the dataset files (IDX .gz, CIFAR batches).")
    test_set: str | None = _opt(None, "An .npz (x, y) that replaces the dataset's test split, e.g. "
                                "the lossless official CIFAR-10 test set beside the JPEG zip.")
    population: int = _opt(10, "Population size (individuals per generation).")
    generations: int = _opt(4, "Generations after the initial population.", resume_safe=True)
    epochs: int = _opt(4, "Training epochs per candidate (times the recipe's epochs "
                       "multiplier).")
    objectives: tuple[str, ...] = _opt(("error", "params"), "Objectives to minimise: error, "
                                       "params, macs, onnx_bytes, latency:<target>.")
    constraint: tuple[str, ...] = _opt((), "Hard limits NAME(<=|<|>=|>)NUMBER[UNIT], e.g. "
                                       "params<=2e5, macs<=50M, latency:ov:CPU<=2ms.")
    strategy: str = _opt("nsga2", "nsga2 (the method) or random (the baseline: same grammar, "
                         "same evaluation budget).")
    seed: int = _opt(0, "Seed of everything: genomes, variation, splits, training.")
    device: str = _opt("auto", "Training device: auto (cuda if present), cpu, cuda, cuda:N.")
    workers: int = _opt(1, "Evaluations run in this many worker processes.", resume_safe=True)
    threads: int = _opt(1, "Torch threads per evaluation (changes results: part of the "
                        "evaluation key).")
    max_evals: int | None = _opt(None, "Stop after this many trained evaluations (checked "
                                 "between generations).", resume_safe=True)
    max_time: float | None = _opt(None, "Stop after this many minutes of this invocation "
                                  "(checked between generations).", resume_safe=True)
    candidate_timeout: float | None = _opt(None, "Wall-clock limit per candidate in seconds; "
                                           "makes results machine-dependent.")
    run_dir: str | None = _opt(None, "Run folder (default runs/<grammar>-<dataset>-s<seed>-<time>)"
                               ".")
    quiet: bool = _opt(False, "Print only the final front.", resume_safe=True)
    init: str = _opt("sensible", "Initialisation: sensible (ramped half-and-half), pi-grow, "
                     "random.")
    genome_length: int = _opt(100, "Length of uniform random genomes (random init and "
                              "strategy).")
    codon_size: int = _opt(100_000, "Codons are drawn from [0, codon-size].")
    max_wraps: int = _opt(0, "Genome wraps allowed while mapping (PonyGE2 default 0).")
    max_tree_depth: int = _opt(90, "Derivations deeper than this are invalid (0: no limit).")
    max_init_depth: int = _opt(10, "Largest tree depth ramped by sensible initialisation.")
    min_init_depth: int | None = _opt(None, "Smallest ramped depth (default: the grammar's "
                                      "minimum).")
    crossover: float = _opt(0.75, "One-point crossover probability.")
    mutation: float | None = _opt(None, "Int-flip probability per used codon (default "
                                  "1/used codons).")
    export: tuple[str, ...] = _opt(("onnx", "ir-fp32"), "Formats the final front is exported to "
                                   "(empty: no export).")
    bench: tuple[str, ...] = _opt(("ort:cpu", "ov:CPU"), "Targets the exported front is "
                                  "measured on with the quick protocol (empty: none).")
    final_epochs: int | None = _opt(None, "Retrain the final front on train+validation for this "
                                    "many epochs and record test accuracy.")
    warm_start: str | None = _opt(None, "Reuse evaluations of an earlier run with the same "
                                  "dataset, budget and evaluation key.")
    warm_start_front: bool = _opt(False, "Also seed the initial population with the warm-start "
                                  "run's front.")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name: f for f in fields(cls)}
        values = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in known:
                raise EvoError(f"unknown configuration key {key!r}",
                               "see docs/configuration.md for every key")
            if isinstance(cls.__dataclass_fields__[name].default, tuple) and value is not None:
                value = tuple(value.split(",")) if isinstance(value, str) else tuple(value)
                value = tuple(v for v in value if v != "")
            values[name] = value
        return cls(**values)

    def resume_differences(self, stored: SearchConfig) -> list[str]:
        """Options that differ from the stored run and would change its results."""
        return [
            "--" + f.name.replace("_", "-")
            for f in fields(self)
            if not f.metadata["resume_safe"] and f.name not in ("run_dir",)
            and getattr(self, f.name) != getattr(stored, f.name)
        ]

    def replace(self, **changes: Any) -> SearchConfig:
        return dataclasses.replace(self, **changes)


def load_toml(path: Path) -> dict[str, Any]:
    """Read a configuration file; keys are the long option names (``max-evals``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvoError(f"{path}: configuration file not found", "pass an existing .toml file"
                       ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EvoError(f"{path}: not valid TOML ({exc})", "fix the file; see docs/configuration.md"
                       ) from None
    data = data.get("search", data)
    SearchConfig.from_dict(data)  # validates keys
    return data


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def to_toml(config: SearchConfig, header: str = "") -> str:
    """TOML for people to read (``config.toml``); ``None`` values are written as comments."""
    lines = [f"# {line}" for line in header.splitlines()] + ["[search]"]
    for f in fields(config):
        value = getattr(config, f.name)
        key = f.name.replace("_", "-")
        lines.append(f"# {key} = (not set)" if value is None else f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """The configuration reference, generated from the fields (docs/configuration.md)."""
    rows = ["| option / TOML key | default | may change on --resume | meaning |",
            "|---|---|---|---|"]
    for f in fields(SearchConfig):
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        shown = "(none)" if shown is None or shown == "" else f"`{shown}`"
        rows.append(f"| `--{f.name.replace('_', '-')}` | {shown} | "
                    f"{'yes' if f.metadata['resume_safe'] else 'no'} | "
                    f"{f.metadata['help'].replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"
