"""``evo arch show``: what a phenotype builds for one input, layer by layer, or as PyTorch source.

Thin: parsing, resolution, counting and source generation live in evo.arch, evo.net.model and
evo.net.torch_source; torch is imported only inside the command body.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import typer

from evo.errors import EvoError

arch_app = typer.Typer(
    help="Inspect architectures written in evo's architecture language.", no_args_is_help=True
)

_LOOKS_LIKE_FILE = re.compile(r"[\w.-]*[/\\].*|[\w-]+\.[A-Za-z]\w*")


def read_phenotype(phenotype_or_file: str) -> str:
    """The architecture text: a file's contents, stdin for ``-``, else the argument itself."""
    if phenotype_or_file == "-":
        return sys.stdin.read()
    path = Path(phenotype_or_file)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # too long or not a valid path: it is the text itself
        is_file = False
    if is_file:
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise EvoError(f"{path}: not a UTF-8 text file",
                           "give a file holding one architecture in text") from None
    if "(" not in phenotype_or_file and _LOOKS_LIKE_FILE.fullmatch(phenotype_or_file):
        raise EvoError(f"{phenotype_or_file}: no such file",
                       "give an existing file, '-' for stdin, or the architecture text itself")
    return phenotype_or_file


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``1x28x28`` (C x H x W) -> (1, 28, 28)."""
    parts = [p.strip() for p in re.split(r"[x×,]", text.strip().lower())]
    # ASCII digits only, at most 5 of them: str.isdigit() accepts "²", and int() of thousands
    # of digits raises instead of refusing.
    if len(parts) != 3 or not all(re.fullmatch(r"[0-9]{1,5}", p) and int(p) > 0 for p in parts):
        raise EvoError(f"--input {text!r} is not CxHxW",
                       "write channels x height x width, e.g. 1x8x8, 1x28x28 or 3x32x32")
    c, h, w = (int(p) for p in parts)
    return c, h, w


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


@arch_app.command("show")
def show(
    phenotype_or_file: str = typer.Argument(
        ..., help="Architecture text (quote it), a file holding it, or '-' for stdin."
    ),
    input_shape: str = typer.Option("1x8x8", "--input", metavar="CxHxW",
                                     help="Input C x H x W, e.g. 3x32x32."),
    classes: int = typer.Option(10, "--classes", min=1, help="Number of classes (outputs)."),
    torch_src: bool = typer.Option(False, "--torch",
                                   help="Print standalone PyTorch source instead of the table."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    max_memory: str = typer.Option("auto", "--max-memory", help="Refuse a network whose "
                                   "estimated memory is above this, e.g. 8GB (auto: three "
                                   "quarters of this machine's)."),
) -> None:
    """Per-layer output shape, parameters and MACs (batch 1) of the network for one input,
    what was dropped for that input, the canonical text and its cache key."""
    from evo.arch import describe_recipe, parse_arch, resolve

    if torch_src and as_json:
        raise EvoError("--torch and --json cannot be combined", "choose one output")
    shape = parse_input_shape(input_shape)
    resolved = resolve(parse_arch(read_phenotype(phenotype_or_file)), shape, classes)
    from evo.arch.memory import check_memory, estimate_inspection, memory_limit

    check_memory(estimate_inspection(resolved), memory_limit(max_memory))

    if torch_src:
        from evo.net.torch_source import torch_source

        typer.echo(torch_source(resolved), nl=False)
        return

    import torch

    from evo.net.model import build_model, layer_table

    torch.set_num_threads(1)
    model = build_model(resolved, torch.Generator().manual_seed(0))
    rows = layer_table(resolved, model)
    total_params = sum(r.params for r in rows)
    total_macs = sum(r.macs for r in rows)
    if as_json:
        typer.echo(json.dumps({
            "input_shape": list(shape),
            "classes": classes,
            "network": resolved.network_text(),
            "canonical": resolved.canonical_text(),
            "key": resolved.key(),
            "recipe": describe_recipe(resolved.recipe),
            "layers": [
                {"layer": r.name, "output_shape": list(r.output_shape), "params": r.params,
                 "macs": r.macs}
                for r in rows
            ],
            "params": total_params,
            "macs": total_macs,
            "dropped": list(resolved.dropped),
            "notes": list(resolved.notes),
        }, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"network for input {_shape(shape)} (C x H x W), {classes} classes")
    table.add_column("#", justify="right")
    table.add_column("layer")
    table.add_column("output (C x H x W)", justify="right")
    table.add_column("parameters", justify="right")
    table.add_column("MACs", justify="right")
    table.add_row("", "input", _shape(shape), "", "")
    for i, row in enumerate(rows):
        table.add_row(str(i), row.name, _shape(row.output_shape), f"{row.params:,}",
                      f"{row.macs:,}")
    table.add_section()
    table.add_row("", "total", "", f"{total_params:,}", f"{total_macs:,}")
    console = Console()
    console.print(table)
    console.print("MACs: batch 1, from torch's FlopCounterMode (convolutions and linear layers "
                  "only; batch norm, activations, pooling and additions are not counted).",
                  highlight=False)
    for note in resolved.dropped:
        console.print(f"dropped for {_shape(shape)}: {note}", highlight=False)
    for note in resolved.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"canonical: {resolved.canonical_text()}", highlight=False, soft_wrap=True)
    console.print(f"cache key (sha256 of the canonical text): {resolved.key()}",
                  highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(arch_app, name="arch")
