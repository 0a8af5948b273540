"""Root of the ``evo`` CLI.

Each command group lives in its own module exposing ``register(app)``; those modules import
torch, onnx or openvino only inside command bodies, so ``evo --help`` and ``evo grammar ...``
start fast and work on a machine without the heavy runtimes.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Any

import typer
from typer.core import TyperArgument

from evo import __version__

# Command modules, registered in this order (each defines ``register(app: typer.Typer)``).
_COMMAND_MODULES = [
    "evo.cli.grammar",
    "evo.cli.arch",
    "evo.cli.search",
    "evo.cli.runs",
    "evo.cli.bench",
    "evo.cli.export",
    "evo.cli.report",
    "evo.cli.pick",
    "evo.cli.compare",
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


# Plain words for the value an option takes (typer 0.29 shows Python types: <list[Path]>).
_WORDS = {"int": "INT", "float": "NUMBER", "str": "TEXT", "Path": "PATH", "bool": ""}


def _type_word(param: Any) -> str | None:
    """TEXT, INT, NUMBER, PATH for a parameter's values; None keeps typer's own display
    (the choices of an enum, ``<sensible|pi-grow|random>``)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(descriptor, "is_choice", False):
        return None
    label = param.bare_type()
    inner = label[len("list["):-1] if label.startswith("list[") else label
    return _WORDS.get(inner, inner.upper())


class _Argument(TyperArgument):
    """An argument shown as ``RUN_DIR`` in usage lines (typer 0.29 writes ``{run_dir}``) and
    with a plain word for its type."""

    def _usage_display_name(self) -> str:
        name = self.display_name_raw + ("..." if self.nargs != 1 else "")
        return name if self.required else f"[{name}]"

    def display_type_rich(self, ctx: Any) -> str | None:
        return _type_word(self)


def _tidy_help(command: Any) -> None:
    """Help without noise, for every command: no type after a flag (typer 0.29 prints
    ``<bool>``), words instead of Python types, argument names in capitals."""
    help_option = command.get_help_option(command.context_class(command))
    for param in [*command.params, *([help_option] if help_option else [])]:
        if isinstance(param, TyperArgument):
            param.__class__ = _Argument
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
        elif getattr(param, "is_flag", False) or getattr(param, "count", False):
            param.metavar = ""
        elif param.metavar is None:
            param.metavar = _type_word(param)
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


def command() -> Any:
    """The ``evo`` command (a click group built from ``app``) with tidied help."""
    group = typer.main.get_command(app)
    _tidy_help(group)
    return group


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one stderr line and exit code 2."""
    try:
        command()(args=argv, prog_name="evo")
    except _user_errors() as exc:
        sys.stderr.write(f"evo: error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("evo: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
