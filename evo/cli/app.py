"""Root of the ``evo`` CLI.

Each command group lives in its own module exposing ``register(app)``; those modules import
torch, onnx or openvino only inside command bodies, so ``evo --help`` and ``evo grammar ...``
start fast and work on a machine without the heavy runtimes.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

import typer

from evo import __version__

# Command modules, registered in this order (each defines ``register(app: typer.Typer)``).
_COMMAND_MODULES = [
    "evo.cli.grammar",
    "evo.cli.arch",
    "evo.cli.search",
    "evo.cli.runs",
    "evo.cli.bench",
    "evo.cli.export",
]

app = typer.Typer(
    name="evo",
    help="Evolve mobile-size CNNs (grammatical evolution + NSGA-II), export and benchmark them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Evolve mobile-size CNNs, export them for edge devices, and benchmark them."""


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean "bad input": one line on stderr, exit 2, no traceback."""
    from evo.errors import EvoError

    kinds: list[type[BaseException]] = [EvoError]
    for module, name in (("export.errors", "ExportError"), ("hardware.errors", "HardwareError")):
        with contextlib.suppress(ImportError, AttributeError):
            kinds.append(getattr(importlib.import_module(module), name))
    return tuple(kinds)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one stderr line and exit code 2."""
    try:
        app(args=argv, prog_name="evo")
    except _user_errors() as exc:
        sys.stderr.write(f"evo: error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("evo: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
