"""``evo grammar check|sample|map``: inspect a search space without torch.

These commands must start fast and run on a machine without the deep-learning stack, so this
module imports only the pure GE core.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer

from evo.errors import EvoError

grammar_app = typer.Typer(help="Check, sample and map BNF grammars.", no_args_is_help=True)


class InitMethod(StrEnum):
    sensible = "sensible"
    pi_grow = "pi-grow"
    random = "random"


class Semantics(StrEnum):
    ponyge2 = "ponyge2"
    strict = "strict"


def _config_field(name: str) -> Any:
    """A field of the search configuration: its help and default are these options' too, so
    ``evo grammar`` and ``evo search`` describe the same setting in the same words."""
    from evo.config import SearchConfig

    return SearchConfig.__dataclass_fields__[name]


def _wraps_option() -> Any:
    field = _config_field("max_wraps")
    return typer.Option(field.default, "--max-wraps", min=0, help=field.metadata["help"])


def _depth_option() -> Any:
    field = _config_field("max_tree_depth")
    return typer.Option(None, "--max-tree-depth", min=0, show_default=False,
                        help=f"{field.metadata['help']} Default: {field.default}.")


def _depth_alias() -> Any:
    return typer.Option(None, "--max-depth", min=0, hidden=True,
                        help="Older name of --max-tree-depth, still accepted.")


def _tree_depth(value: int | None, alias: int | None) -> int:
    """``--max-tree-depth`` (the name ``evo search`` uses), or its older name ``--max-depth``."""
    if value is not None and alias is not None and value != alias:
        raise EvoError(f"--max-tree-depth {value} and --max-depth {alias} disagree; they are one "
                       "option (--max-depth is its older name)", "give --max-tree-depth once")
    chosen = value if value is not None else alias
    return int(_config_field("max_tree_depth").default) if chosen is None else chosen


def _load(name_or_path: str):
    from evo.ge.grammar import load_grammar

    grammar = load_grammar(name_or_path)
    for warning in grammar.warnings:
        sys.stderr.write(f"evo: warning: {warning}\n")
    return grammar


SAMPLE_SIZE = 50  # derivations ``evo grammar check`` maps and parses, at most
SAMPLE_SEED = 0
SAMPLE_BATCH = 10
SAMPLE_CODONS = 50_000  # no further batch once this many codons were drawn: check stays fast


@dataclass(frozen=True)
class Sample:
    """What a sample of a grammar's derivations showed."""

    derivations: int  # drawn
    mapped: int  # valid derivations (within the depth and wrap limits)
    architectures: int  # phenotypes that parse as architectures
    first_error: str | None  # why the first one that is not an architecture is not

    def to_json(self) -> dict[str, Any]:
        return {"derivations": self.derivations, "mapped": self.mapped,
                "architectures": self.architectures, "first_error": self.first_error}


def sample_architectures(g: Any, max_wraps: int, max_tree_depth: int,
                         seed: int = SAMPLE_SEED) -> Sample:
    """Map genomes drawn the way a search draws its first generation (sensible initialisation
    with the search's defaults) and parse their phenotypes as architectures. A grammar can be
    well formed and still produce only text the architecture language refuses; a search over
    it would train nothing, so ``check`` says so before a search starts. Up to
    ``SAMPLE_SIZE`` genomes, in batches, fewer when their codons pass ``SAMPLE_CODONS``."""
    import numpy as np

    from evo.arch import ArchParseError, parse_arch
    from evo.config import SearchConfig
    from evo.ge.mapper import map_genome
    from evo.ge.operators import GEConfig, sensible_initialisation

    defaults = SearchConfig()
    cfg = GEConfig(codon_size=defaults.codon_size, max_wraps=max_wraps,
                   max_tree_depth=max_tree_depth, min_init_depth=defaults.min_init_depth,
                   max_init_depth=defaults.max_init_depth)
    rng = np.random.default_rng(seed)
    drawn = mapped = parsed = codons = 0
    first_error = None
    while drawn < SAMPLE_SIZE and codons < SAMPLE_CODONS:
        for genome in sensible_initialisation(g, rng, SAMPLE_BATCH, cfg):
            drawn += 1
            codons += len(genome)
            d = map_genome(g, genome, max_wraps, max_tree_depth)
            problem = d.reason or "invalid derivation"
            if d.valid:
                mapped += 1
                try:
                    parse_arch(d.phenotype or "")
                except ArchParseError as exc:
                    shown = " ".join((d.phenotype or "").split())
                    shown = shown if len(shown) <= 60 else shown[:57] + "..."
                    problem = f"{shown!r} does not parse: {exc}"
                else:
                    parsed += 1
                    continue
            first_error = first_error or problem
    return Sample(drawn, mapped, parsed, first_error)


def _refuse_unparseable(source: str, sample: Sample, max_wraps: int, max_tree_depth: int
                        ) -> None:
    """No sampled derivation is an architecture: a search would stop at its first generation."""
    if sample.architectures:
        return
    if not sample.mapped:
        hint = (f"no derivation fits --max-tree-depth {max_tree_depth} and --max-wraps "
                f"{max_wraps}: make the grammar shallower or give larger limits (here and to "
                "evo search)")
    else:
        hint = ("phenotypes must be text of the architecture language "
                "(docs/architecture-language.md), e.g. conv(16, k=3) relu gap")
    raise EvoError(f"{source}: none of {sample.derivations} sampled derivations is an "
                   f"architecture; the first: {sample.first_error}", hint)


@grammar_app.command("check")
def check(
    grammar: str = typer.Argument(..., help="Shipped grammar name (e.g. cnn_full) or .bnf path."),
    max_wraps: int = _wraps_option(),
    max_tree_depth: int | None = _depth_option(),
    max_depth: int | None = _depth_alias(),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Validate a grammar: rules, recursion, minimum depths, the size of the space, and a
    sample of derivations parsed as architectures (exit 2 when none is one)."""
    depth = _tree_depth(max_tree_depth, max_depth)
    g = _load(grammar)
    size = g.space_size()
    sample = sample_architectures(g, max_wraps, depth)
    rules = [
        {
            "rule": name,
            "choices": g.n_choices(name),
            "recursive": g.recursive[name],
            "min_steps": g.min_steps[name],
        }
        for name in g.rules
    ]
    if as_json:
        log10 = None if size.infinite or size.log10 == float("inf") else size.log10
        typer.echo(json.dumps({"source": g.source, "start": g.start, "rules": rules,
                               "space_size": size.to_json(), "space_size_log10": log10,
                               "min_depth": g.min_depth(), "warnings": list(g.warnings),
                               "sample": sample.to_json()},
                              indent=2))
        _refuse_unparseable(g.source, sample, max_wraps, depth)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{g.source}: {len(rules)} rules, start <{g.start}>")
    for col in ("rule", "choices", "recursive", "min steps"):
        table.add_column(col, justify="right" if col != "rule" else "left")
    for r in rules:
        table.add_row(f"<{r['rule']}>", str(r["choices"]), "yes" if r["recursive"] else "no",
                      str(r["min_steps"]))
    console = Console()
    console.print(table)
    trees = "derivation tree" if size.exact == 1 else "derivation trees"
    space = "infinite (recursive)" if size.infinite else f"{size} {trees}"
    console.print(f"space: {space}; minimum tree depth {g.min_depth()}")
    console.print(f"sample: {sample.architectures} of {sample.derivations} derivations parse as "
                  f"architectures (sensible initialisation, seed {SAMPLE_SEED})",
                  highlight=False, soft_wrap=True)
    if sample.first_error and sample.architectures:
        console.print(f"first that does not: {sample.first_error}", highlight=False,
                      markup=False, soft_wrap=True)
    _refuse_unparseable(g.source, sample, max_wraps, depth)


@grammar_app.command("sample")
def sample(
    grammar: str = typer.Argument(..., help="Shipped grammar name or .bnf path."),
    n: int = typer.Option(5, "-n", min=1, help="Number of samples."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    init: InitMethod = typer.Option(InitMethod.sensible, "--init", help="Initialisation."),
    genome_length: int = typer.Option(100, "--genome-length", min=1,
                                      help="Length of random genomes (--init random)."),
    max_init_depth: int = typer.Option(10, "--max-init-depth", min=1,
                                       help="Largest ramped tree depth (sensible, pi-grow)."),
    max_wraps: int = _wraps_option(),
    max_tree_depth: int | None = _depth_option(),
    max_depth: int | None = _depth_alias(),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per sample."),
) -> None:
    """Draw genomes with an initialisation method and print their phenotypes."""
    import numpy as np

    from evo.ge.mapper import map_genome
    from evo.ge.operators import (
        GEConfig,
        pi_grow_initialisation,
        random_genome,
        sensible_initialisation,
    )

    max_depth = _tree_depth(max_tree_depth, max_depth)
    g = _load(grammar)
    rng = np.random.default_rng(seed)
    cfg = GEConfig(max_init_depth=max_init_depth, max_wraps=max_wraps, max_tree_depth=max_depth)
    if init is InitMethod.sensible:
        genomes = sensible_initialisation(g, rng, n, cfg)
    elif init is InitMethod.pi_grow:
        genomes = pi_grow_initialisation(g, rng, n, cfg)
    else:
        genomes = [random_genome(rng, genome_length) for _ in range(n)]
    for genome in genomes:
        d = map_genome(g, genome, max_wraps, max_depth)
        if as_json:
            typer.echo(json.dumps({"genome": genome, **d.to_dict()}))
        else:
            typer.echo(d.phenotype if d.valid else f"<invalid: {d.reason}>")


def _parse_genome(text: str, where: str) -> list[int]:
    text = text.strip()
    try:
        values = json.loads(text) if text.startswith("[") else [
            int(v) for v in text.replace(" ", "").split(",") if v != ""
        ]
    except ValueError:
        raise EvoError(f"{where}: not a genome: {text[:40]!r}",
                       "write integers as 3,14,15 or as a JSON list [3, 14, 15]") from None
    if not isinstance(values, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise EvoError(f"{where}: a genome is a list of integers",
                       "write integers as 3,14,15 or as a JSON list [3, 14, 15]")
    return values


@grammar_app.command("map")
def map_cmd(
    grammar: str = typer.Argument(..., help="Shipped grammar name or .bnf path."),
    genome: str | None = typer.Option(None, "--genome", help="Comma-separated codons."),
    genomes: Path | None = typer.Option(None, "--genomes",
                                        help="File: one genome per line (JSON list or CSV)."),
    max_wraps: int = _wraps_option(),
    max_tree_depth: int | None = _depth_option(),
    max_depth: int | None = _depth_alias(),
    semantics: Semantics = typer.Option(Semantics.ponyge2, "--semantics",
                                        help="ponyge2 (default, bit-exact) or strict wrapping."),
) -> None:
    """Map genomes to phenotypes: one JSON object per genome on stdout."""
    from evo.ge.mapper import map_genome

    max_depth = _tree_depth(max_tree_depth, max_depth)
    if (genome is None) == (genomes is None):
        raise EvoError("give exactly one of --genome and --genomes",
                       "e.g. --genome 3,14,15 or --genomes genomes.txt")
    if genome is not None:
        items = [_parse_genome(genome, "--genome")]
    else:
        assert genomes is not None
        if not genomes.is_file():
            raise EvoError(f"{genomes}: file not found", "pass a file with one genome per line")
        lines = genomes.read_text(encoding="utf-8", errors="replace").splitlines()
        items = [_parse_genome(line, f"{genomes}:{i}") for i, line in enumerate(lines, 1)
                 if line.strip()]
    g = _load(grammar)
    for codons in items:
        d = map_genome(g, codons, max_wraps, max_depth, semantics.value)
        typer.echo(json.dumps({"phenotype": d.phenotype, "valid": d.valid,
                               "used_codons": d.used_codons, "depth": d.depth, "nodes": d.nodes,
                               "reason": d.reason}))


def register(app: typer.Typer) -> None:
    app.add_typer(grammar_app, name="grammar")
