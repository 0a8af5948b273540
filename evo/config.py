"""The one configuration object of a search, its TOML form, and its reference documentation.

Each field carries its help text and whether it may change on ``--resume``, so the CLI options,
the TOML keys (the long option names: ``max-evals``), the resume check and the configuration
reference in ``docs/`` all come from this one place and cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evo.errors import EvoError

if TYPE_CHECKING:
    from evo.moo.objectives import Constraint

SEED_LIMIT = 2**63  # seeds are stored as SQLite integers and fed to numpy and torch


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
    fidelity: str = _opt("full", "full (every candidate trained for --epochs) or halving "
                         "(successive halving per generation: rungs at min-epochs x eta^k, the "
                         "best 1/eta of each rung continue).")
    min_epochs: int = _opt(1, "Epochs of the first rung with --fidelity halving.")
    eta: int = _opt(3, "Halving rate: 1/eta of a rung's candidates continue (--fidelity "
                    "halving).")
    early_abort: str | None = _opt(None, "on or off: stop a candidate no better than chance "
                                   "after its first rung or epoch (default: on with --fidelity "
                                   "halving, else off).")
    train_subset: int | None = _opt(None, "Train candidates on a stratified, seeded subset of "
                                    "this many training images (the final retrain uses all).")
    val_subset: int | None = _opt(None, "Score candidates on a stratified, seeded subset of "
                                  "this many validation images.")
    max_images: int | None = _opt(None, "Stop the search once candidates have processed this "
                                  "many training images (checked between generations).",
                                  resume_safe=True)
    objectives: tuple[str, ...] = _opt(("error", "params"), "Objectives to minimise: error, "
                                       "params, macs, onnx_bytes, arena_bytes, flash_bytes "
                                       "(microcontroller RAM and flash, estimated), "
                                       "latency:<target>.")
    constraint: tuple[str, ...] = _opt((), "Hard limits NAME(<=|<|>=|>)NUMBER[UNIT], e.g. "
                                       "params<=2e5, macs<=50M, arena_bytes<=64kB, "
                                       "latency:ov:CPU<=2ms.")
    strategy: str = _opt("nsga2", "nsga2 (the method) or random (the baseline: same grammar, "
                         "same evaluation budget).")
    seed: int = _opt(0, "Seed of everything: genomes, variation, splits, training.")
    device: str = _opt("auto", "Training device: auto (cuda if present), cpu, cuda, cuda:N.")
    workers: int = _opt(1, "Evaluations in flight: worker processes (local) or tasks (ray).",
                        resume_safe=True)
    threads: int = _opt(1, "Torch threads per evaluation (changes results: part of the "
                        "evaluation key).")
    executor: str | None = _opt(None, "Where evaluations run: serial (this process), local "
                                "(worker processes on this machine) or ray (a Ray cluster); "
                                "default: local when --workers is above 1 or --gpus or "
                                "--jobs-per-gpu is given, else serial.",
                                resume_safe=True)
    gpus: str | None = _opt(None, "GPUs the local executor uses with --device cuda, e.g. 0,1 "
                            "(default: every visible GPU); one worker process pinned to each.",
                            resume_safe=True)
    jobs_per_gpu: int = _opt(1, "Candidates trained at once on each GPU (workers = GPUs x this).",
                             resume_safe=True)
    ray_address: str | None = _opt(None, "Ray cluster to run on (default: $RAY_ADDRESS, else a "
                                   "local cluster evo starts on 127.0.0.1 and stops).",
                                   resume_safe=True)
    ray_cpus: float = _opt(1.0, "CPUs Ray reserves for each evaluation task.", resume_safe=True)
    ray_gpus: float = _opt(0.0, "GPUs (a fraction allowed, e.g. 0.25) Ray reserves for each "
                           "evaluation task.", resume_safe=True)
    task_retries: int = _opt(1, "Times an evaluation lost with its worker or node is run "
                             "again before it is recorded failed.", resume_safe=True)
    max_evals: int | None = _opt(None, "Stop after this many candidates started: trained, "
                                 "skipped, failed or stopped; cached and invalid individuals "
                                 "are free (checked between generations).", resume_safe=True)
    max_time: float | None = _opt(None, "Stop after this many minutes of this invocation "
                                  "(checked between generations).", resume_safe=True)
    candidate_timeout: float | None = _opt(None, "Wall-clock limit per candidate in seconds; "
                                           "makes results machine-dependent.")
    max_memory: str | None = _opt(None, "Memory one evaluation may use, e.g. 4GB or 512MiB "
                                  "(default: three quarters of this machine's memory, shared "
                                  "by the --workers); a candidate whose estimated need is larger "
                                  "is recorded infeasible without being built.",
                                  resume_safe=True)
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
    warm_start: str | None = _opt(None, "Reuse the evaluations of this earlier run; it must "
                                  "have the same dataset, seed, epochs, candidate-timeout, "
                                  "device type and threads.")
    warm_start_front: bool = _opt(False, "Also seed the initial population with the warm-start "
                                  "run's front.")
    oversubscribe: bool = _opt(False, "Allow more --workers than this machine's cores and "
                               "memory support (refused otherwise).", resume_safe=True)

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
            if isinstance(cls.__dataclass_fields__[name].default, tuple) and \
                    isinstance(value, str | list | tuple):
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

    @cached_property
    def objective_specs(self) -> tuple[str, ...]:
        """The objectives parsed once, in their one spelling (``latency:OV:cpu`` becomes
        ``latency:ov:CPU``): the names evaluations are stored and ranked under. Every part of
        the search uses these instead of parsing ``objectives`` again; bad names raise
        ``EvoError``."""
        from evo.moo.objectives import parse_objectives

        return parse_objectives(self.objectives)

    @cached_property
    def constraint_specs(self) -> tuple[Constraint, ...]:
        """The ``constraint`` strings parsed once into limits in base units, in the order
        given; a malformed one raises ``EvoError``."""
        from evo.moo.objectives import parse_constraint

        return tuple(parse_constraint(text) for text in self.constraint)

    def check(self) -> SearchConfig:
        """Refuse a configuration a user gave (command line, TOML file or Python) that cannot
        run: wrong types, values out of range, unknown objectives, constraints no network can
        meet, unknown export formats or targets, more workers than the machine holds. The one
        place these rules live, so every way of configuring a search gets the same checks.
        Stored configurations are read without it, so an older run always opens."""
        from evo.config_checks import check_config_values

        check_config_values(self)
        return self


def load_toml(path: Path) -> dict[str, Any]:
    """Read a configuration file; keys are the long option names (``max-evals``)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvoError(f"{path}: configuration file not found", "pass an existing .toml file"
                       ) from None
    except IsADirectoryError:
        raise EvoError(f"{path}: is a folder, not a configuration file",
                       f"pass a .toml file, e.g. {path / 'config.toml'}") from None
    except OSError as exc:
        raise EvoError(f"{path}: cannot read the configuration file ({exc.strerror})",
                       "pass a readable .toml file") from None
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


def _is_path(name: str, value: str | None) -> bool:
    """A value that names a file or folder (not a shipped grammar or dataset name)."""
    if not value:
        return False
    if name in ("grammar", "dataset") and "/" not in value and not Path(value).suffix:
        return False
    return Path(value).exists()


def run_config_toml(config: SearchConfig, run_dir: Path) -> str:
    """``RUN_DIR/config.toml``: the run's configuration and the two commands that reuse it.

    ``run-dir`` is left unset, so ``--config`` of this file starts a new run in a new folder
    instead of colliding with this one (or nesting inside it); file paths are made absolute,
    so the commands work from any folder.
    """
    where = Path(run_dir).resolve()
    paths = {f.name: str(Path(v).resolve()) for f in fields(config)
             if isinstance(v := getattr(config, f.name), str) and f.name != "run_dir"
             and f.name in ("grammar", "dataset", "data_dir", "test_set", "warm_start")
             and _is_path(f.name, v)}
    header = (
        "Written from run.db for people to read; editing it changes nothing in this run.\n"
        f"Continue this run (or extend it with --generations N):\n"
        f"  evo search --resume {where}\n"
        "Start a new run from this configuration, in a new folder under ./runs/:\n"
        f"  evo search --config {where / 'config.toml'}\n"
        "  (options given on the command line win over the file: --run-dir DIR, --seed N)")
    return to_toml(config.replace(run_dir=None, **paths), header)


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
