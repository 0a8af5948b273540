"""``evo search`` and ``evo front``.

The options of ``evo search`` are generated from :class:`evo.config.SearchConfig`'s fields, so
every configuration key is an option with the same name and help text, and nothing can drift.
Precedence: built-in defaults < ``--config FILE.toml`` < command line.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import typing
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer

from evo.config import SearchConfig, load_toml
from evo.errors import EvoError

_LIST_FIELDS = {"objectives", "export", "bench"}  # comma-separated on the command line
_REPEATED_FIELDS = {"constraint"}  # one option per value
# What --help shows for the value (otherwise a word for the type: TEXT, INT, NUMBER).
_METAVARS = {"grammar": "NAME|PATH", "dataset": "NAME|PATH", "data_dir": "PATH",
             "test_set": "PATH", "run_dir": "PATH", "warm_start": "RUN_DIR",
             "objectives": "NAMES", "constraint": "LIMIT", "export": "FORMATS",
             "bench": "TARGETS", "device": "DEVICE"}


def _option_type(annotation: Any) -> Any:
    text = str(annotation)
    if "bool" in text:
        return Optional[bool]  # noqa: UP045 (typer reads typing.Optional)
    if "tuple" in text:
        return Optional[str]  # noqa: UP045
    if "float" in text:
        return Optional[float]  # noqa: UP045
    if "int" in text:
        return Optional[int]  # noqa: UP045
    return Optional[str]  # noqa: UP045


def _config_parameters() -> list[inspect.Parameter]:
    params = []
    hints = typing.get_type_hints(SearchConfig)
    for f in fields(SearchConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata["help"]
        if f.name in _REPEATED_FIELDS:
            annotation: Any = Optional[list[str]]  # noqa: UP045
            default = typer.Option(None, flag, help=help_text + " Repeat for several.",
                                   metavar=_METAVARS.get(f.name))
        elif "bool" in str(hints[f.name]):
            annotation = bool
            default = typer.Option(False, flag, help=help_text)
        else:
            annotation = _option_type(hints[f.name])
            default = typer.Option(None, flag, help=help_text + (
                " Comma-separated." if f.name in _LIST_FIELDS else ""),
                show_default=False, metavar=_METAVARS.get(f.name))
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=default, annotation=annotation))
    return params


def _build_config(config_file: Path | None, values: dict[str, Any]) -> SearchConfig:
    data: dict[str, Any] = load_toml(config_file) if config_file else {}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    for name, value in values.items():
        if value is None or value is False or value == []:
            continue
        data[name] = value
    return SearchConfig.from_dict(data).check()


def _resume_changes(config_file: Path | None, values: dict[str, Any]) -> dict[str, Any]:
    """What ``--resume`` is asked to change: the file's keys, then the options given on the
    command line (the search merges them into the stored configuration, refusing any that
    would change the run's results)."""
    changes: dict[str, Any] = load_toml(config_file) if config_file else {}
    changes.update({k: v for k, v in values.items() if v not in (None, False, [])})
    return changes


def search(config_file: Path | None, resume: Path | None, no_export: bool, no_bench: bool,
           **values: Any) -> None:
    """Evolve CNNs: NSGA-II over a grammar, every result kept in the run folder."""
    from evo.nas.problem import problem_factory
    from evo.report.progress import make_reporter
    from evo.run.layout import default_run_dir
    from evo.search.loop import run_search

    if no_export:
        values["export"] = ()
    if no_bench:
        values["bench"] = ()
    config, changes = None, None
    if resume is not None:
        changes = _resume_changes(config_file, values)
    else:
        config = _build_config(config_file, values)
        if config.run_dir is None:
            config = config.replace(run_dir=str(default_run_dir(config.grammar, config.dataset,
                                                                config.seed)))
    quiet = bool(values.get("quiet"))
    reporter, display = make_reporter(quiet)
    listeners = () if reporter is None else (reporter,)
    live = reporter if display is reporter else None  # per-epoch events for the live view
    try:
        with display:
            run_dir = run_search(config, resume=resume, changes=changes, listeners=listeners,
                                 problem_factory=problem_factory(live))
    except KeyboardInterrupt:
        where = resume or (config.run_dir if config else None) or "RUN_DIR"
        typer.echo(f"evo: interrupted; finished evaluations are saved. Continue with: "
                   f"evo search --resume {where}", err=True)
        raise typer.Exit(130) from None
    _post_search(run_dir, quiet)
    print_front(run_dir, as_json=False)


def _post_search(run_dir: Path, quiet: bool) -> None:
    """Steps after the search proper (retrain, export, bench) registered by later modules."""
    from evo.post import postsearch

    postsearch.run_all(run_dir, quiet)


def search_command() -> Any:
    """``evo search`` as a typer command: the fixed options, then one option per
    :class:`SearchConfig` field."""
    extra = [
        inspect.Parameter("config_file", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045
                          default=typer.Option(None, "--config", help="TOML file; keys are the "
                                               "long option names.", exists=False)),
        inspect.Parameter("resume", inspect.Parameter.KEYWORD_ONLY, annotation=Optional[Path],  # noqa: UP045
                          default=typer.Option(None, "--resume", help="Continue the run in "
                                               "this folder (after a crash, Ctrl-C or to extend "
                                               "it).")),
        inspect.Parameter("no_export", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, "--no-export",
                                               help="Do not export the final front.")),
        inspect.Parameter("no_bench", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
                          default=typer.Option(False, "--no-bench",
                                               help="Do not measure the exported front.")),
    ]

    def command(**kwargs: Any) -> None:
        search(kwargs.pop("config_file"), kwargs.pop("resume"), kwargs.pop("no_export"),
               kwargs.pop("no_bench"), **kwargs)

    command.__signature__ = inspect.Signature(extra + _config_parameters())  # type: ignore[attr-defined]
    command.__doc__ = search.__doc__
    command.__annotations__ = {}
    return command


def print_front(run_dir: Path, as_json: bool) -> None:
    """The front as one JSON document, or as a table with the phenotypes and notes below."""
    from evo.report.front_table import front_rows

    rows, info = front_rows(run_dir)
    if as_json:
        typer.echo(json.dumps({**info, "front": rows}, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    from evo.report.front_text import front_text

    text = front_text(rows, info["objectives"])
    table = Table(title=f"Pareto front of {run_dir} ({len(rows)} members, "
                        f"objectives {','.join(info['objectives'])})")
    for header, justify in text.columns:
        table.add_column(header, justify=justify)
    for cells in text.cells:
        table.add_row(*cells)
    console = Console(width=max(120, Console().width))
    console.print(table)
    for note in text.notes:
        console.print(note, highlight=False, soft_wrap=True, markup=False)
    # Architectures below the table, one per line, so the table stays readable.
    from rich.markup import escape

    for r in rows:
        console.print(f"  [bold]{r['member']:>5}[/bold]  {escape(r['phenotype'] or '')}",
                      highlight=False, soft_wrap=True)


def front(
    run_dir: Path = typer.Argument(..., help="Run folder written by evo search."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    csv_file: Optional[Path] = typer.Option(  # noqa: UP045 (typer reads typing.Optional)
        None, "--csv", help="Also write the front to this CSV file (accuracies as fractions)."),
    plot_file: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--plot", help="Also draw every evaluated candidate and the front in the "
        "searched objectives (pairwise panels for three or more) to this .png or .svg file."),
) -> None:
    """The Pareto members of a run, in the objectives it searched, with their phenotypes.

    Latency objectives show their in-search median and p10-p90 spread.

    Test accuracy after a retrain and latencies measured after export are their own columns.

    --csv and --plot write the front to files.
    """
    if plot_file is not None:
        from evo.report.front_plot import check_plot_path

        check_plot_path(plot_file)
        check_output_file(plot_file, "--plot")
    if csv_file is not None:
        check_output_file(csv_file, "--csv")
    print_front(run_dir, as_json)
    written = []
    if csv_file is not None:
        from evo.report.front_table import front_rows, write_csv

        rows, info = front_rows(run_dir)
        with _writing(csv_file, "--csv"):
            written.append(write_csv(rows, csv_file, info["objectives"]))
    if plot_file is not None:
        from evo.report.front_plot import plot_front

        with _writing(plot_file, "--plot"):
            plot_front(run_dir, plot_file)
        written.append(plot_file)
    for path in written:  # on stderr with --json, so stdout stays one JSON document
        typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes)", err=as_json)


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written before any work is done: a folder, a
    path through a file, or a place without write permission (probed by writing, since
    permission bits say nothing to root or on read-only mounts)."""
    if path.is_dir():
        raise EvoError(f"{option} {path}: is a folder, not a file",
                       f"name a file, e.g. {path / ('front' + (path.suffix or '.csv'))}")
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), Path("."))
    if not folder.is_dir():
        raise EvoError(f"{option} {path}: {folder} is a file, not a folder",
                       "choose a path inside a folder")
    probe = folder / f".{path.name}.evo-probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise EvoError(f"{option} {path}: cannot write in {folder} ({exc.strerror})",
                       "choose a writable place, e.g. the run folder") from None


@contextlib.contextmanager
def _writing(path: Path, option: str) -> Iterator[None]:
    """A write that fails anyway (disk full, a file turned read-only) is one line, not a
    traceback."""
    try:
        yield
    except OSError as exc:
        raise EvoError(f"{option} {path}: could not write it ({exc.strerror or exc})",
                       "free some space or choose another place") from None


def register(app: typer.Typer) -> None:
    app.command("search", help=search.__doc__)(search_command())
    app.command("front")(front)

