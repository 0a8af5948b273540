"""``evo grammar check|sample|map``: inspect a search space without torch.

These commands must start fast and run on a machine without the deep-learning stack, so this
module imports only the pure GE core.
"""

from __future__ import annotations

import json
import sys
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


@grammar_app.command("check")
def check(
    grammar: str = typer.Argument(..., help="Shipped grammar name (e.g. cnn_full) or .bnf path."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Validate a grammar: rules, recursion, minimum depths and the size of the space."""
    g = _load(grammar)
    size = g.space_size()
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
                               "min_depth": g.min_depth(), "warnings": list(g.warnings)},
                              indent=2))
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
