"""``evo search`` and ``evo front``.

The options of ``evo search`` are generated from :class:`evo.config.SearchConfig`'s fields, so
every configuration key is an option with the same name and help text, and nothing can drift.
Precedence: built-in defaults < ``--config FILE.toml`` < command line.
"""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

import typer

from evo.config import SearchConfig, load_toml

_LIST_FIELDS = {"objectives", "export", "bench"}  # comma-separated on the command line
_REPEATED_FIELDS = {"constraint"}  # one option per value


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
            default = typer.Option(None, flag, help=help_text + " Repeat for several.")
        elif "bool" in str(hints[f.name]):
            annotation = bool
            default = typer.Option(False, flag, help=help_text)
        else:
            annotation = _option_type(hints[f.name])
            default = typer.Option(None, flag, help=help_text + (
                " Comma-separated." if f.name in _LIST_FIELDS else ""),
                show_default=False)
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
    return SearchConfig.from_dict(data)


def search(config_file: Path | None, resume: Path | None, no_export: bool, no_bench: bool,
           **values: Any) -> None:
    """Evolve CNNs: NSGA-II over a grammar, every result kept in the run folder."""
    from evo.progress import make_reporter
    from evo.runner import run_search

    if no_export:
        values["export"] = ()
    if no_bench:
        values["bench"] = ()
    if resume is not None:
        given = {k: v for k, v in values.items() if v not in (None, False, [])}
        config = None
        if given or config_file:
            from evo.store import RunStore

            store = RunStore.open(resume, write=False)
            stored = store.meta("config")
            store.close(checkpoint=False)
            base = {k: v for k, v in stored.items()}
            if config_file:
                base.update({k.replace("-", "_"): v for k, v in load_toml(config_file).items()})
            base.update(given)
            config = SearchConfig.from_dict(base)
    else:
        from evo.runner import default_run_dir

        config = _build_config(config_file, values)
        if config.run_dir is None:
            config = config.replace(run_dir=str(default_run_dir(config)))
    quiet = bool(values.get("quiet"))
    reporter, display = make_reporter(quiet)
    listeners = () if reporter is None else (reporter,)
    live = reporter if display is reporter else None  # per-epoch events for the live view
    try:
        with display:
            run_dir = run_search(config, resume=resume, listeners=listeners,
                                 problem_factory=_problem_factory(live))
    except KeyboardInterrupt:
        where = resume or (config.run_dir if config else None) or "RUN_DIR"
        typer.echo(f"evo: interrupted; finished evaluations are saved. Continue with: "
                   f"evo search --resume {where}", err=True)
        raise typer.Exit(130) from None
    _post_search(run_dir, quiet)
    print_front(run_dir, as_json=False)


def _problem_factory(progress: Any) -> Any:
    """The training problem; a live display also gets per-epoch events (serial runs only)."""

    def for_run_dir(run_dir: Path) -> Any:
        def make(config: SearchConfig) -> Any:
            from evo.problem import TrainingProblem

            return TrainingProblem(config, run_dir, progress=progress)

        return make

    return for_run_dir


def _post_search(run_dir: Path, quiet: bool) -> None:
    """Steps after the search proper (retrain, export, bench) registered by later modules."""
    from evo import postsearch

    postsearch.run_all(run_dir, quiet)


def _search_command() -> Any:
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


def _front_rows(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from evo.search import front_of
    from evo.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        config = store.meta("config")
        problem = store.meta("problem") or {}
        rows = []
        for ind, ev in front_of(store):
            row = {
                "member": ind.id,
                "generation": ind.generation,
                "objectives": ev.objectives,
                "params": ev.objectives.get("params"),
                "macs": ev.objectives.get("macs"),
                "val_accuracy": ev.metrics.get("val_accuracy"),
                "val_images": ev.metrics.get("val_total"),
                "phenotype": " ".join((ind.phenotype or "").split()),
                "weights": ev.weights,
            }
            rows.append(row)
        info = {"run_dir": str(run_dir), "objectives": config["objectives"],
                "status": store.meta("status"), "generations": store.last_generation(),
                "dataset": (problem.get("dataset") or {}).get("name")}
        for extra in _front_extras():
            extra(store, rows)
        return rows, info
    finally:
        store.close(checkpoint=False)


def _front_extras() -> list[Any]:
    """Columns added by later steps (retrain, export, bench), looked up lazily."""
    from evo import postsearch

    return postsearch.front_columns()


def print_front(run_dir: Path, as_json: bool) -> None:
    rows, info = _front_rows(run_dir)
    if as_json:
        typer.echo(json.dumps({**info, "front": rows}, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Pareto front of {run_dir} ({len(rows)} members, "
                        f"objectives {','.join(info['objectives'])})")
    from evo.front_table import format_test_accuracy

    tested = any(r.get("test_accuracy") is not None for r in rows)
    columns = [("member", "right"), ("params", "right"), ("MACs", "right"), ("val acc", "right")]
    columns += [("test acc (retrained)", "right")] if tested else []
    for col, justify in columns:
        table.add_column(col, justify=justify)
    extra_cols = sorted({k for r in rows for k in r.get("extra", {})})
    for col in extra_cols:
        table.add_column(col, justify="right")
    for r in rows:
        acc = r["val_accuracy"]
        acc_text = "-" if acc is None else f"{acc:.2%}"
        if r.get("val_images"):
            acc_text += f" of {r['val_images']}"
        test = [format_test_accuracy(r)] if tested else []
        table.add_row(str(r["member"]), _count(r["params"]), _count(r["macs"]), acc_text,
                      *test, *[str(r.get("extra", {}).get(c, "-")) for c in extra_cols])
    console = Console(width=max(120, Console().width))
    console.print(table)
    # Architectures below the table, one per line, so the table stays readable.
    for r in rows:
        console.print(f"  [bold]{r['member']:>5}[/bold]  {_readable(r['phenotype'])}",
                      highlight=False, soft_wrap=True)


def _readable(phenotype: str) -> str:
    """The canonical architecture text when the phenotype is one (PonyGE2-style grammars keep
    odd spacing), else the phenotype with its whitespace collapsed."""
    from evo.arch import ArchParseError, parse_arch, spec_to_text

    try:
        return spec_to_text(parse_arch(phenotype))
    except ArchParseError:
        return " ".join(phenotype.split())


def _count(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def front(
    run_dir: Path = typer.Argument(..., help="Run folder written by evo search."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    csv_file: Optional[Path] = typer.Option(  # noqa: UP045 (typer reads typing.Optional)
        None, "--csv", help="Also write the front to this CSV file (accuracies as fractions)."),
    plot_file: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--plot", help="Also draw every evaluated candidate and the front (error vs "
        "parameters, log scale) to this .png or .svg file."),
) -> None:
    """The Pareto members of a run: id, params, MACs, validation accuracy, phenotype.

    Test accuracy too for retrained members; --csv and --plot write the front to files.
    """
    if plot_file is not None:
        from evo.front_plot import check_plot_path

        check_plot_path(plot_file)
    print_front(run_dir, as_json)
    written = []
    if csv_file is not None:
        from evo.front_table import write_csv

        rows, info = _front_rows(run_dir)
        written.append(write_csv(rows, csv_file, info["objectives"]))
    if plot_file is not None:
        from evo.front_plot import plot_front

        plot_front(run_dir, plot_file)
        written.append(plot_file)
    for path in written:  # on stderr with --json, so stdout stays one JSON document
        typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes)", err=as_json)


def register(app: typer.Typer) -> None:
    app.command("search", help=search.__doc__)(_search_command())
    app.command("front")(front)

