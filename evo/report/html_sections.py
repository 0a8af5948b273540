"""The sections of the ``evo report`` page as HTML text: summary, exports, members, next
commands, configuration and host (the figures' sections are written by
:mod:`evo.report.html_report`).

Why apart: each section turns a part of :class:`evo.report.report_data.ReportData` into
escaped HTML and nothing else, so the page module only orders them. Every value from the run
goes through :func:`html.escape`: a phenotype or a path is text, never markup.
"""

from __future__ import annotations

import base64
import html
import json
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from evo.report.front_text import format_ms, front_text
from evo.report.report_data import ReportData
from evo.run.counts import OUTCOMES

_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.IGNORECASE)


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def figure_html(path: Path, alt: str, caption: str) -> str:
    """A figure file as an ``<img>`` with the SVG inside a ``data:`` URI, with its caption
    (``caption`` is HTML: escape what comes from the run)."""
    svg = _DOCTYPE.sub("", path.read_text(encoding="utf-8"), count=1)
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{data}">'
            f"<figcaption>{caption} <em>(file: {html.escape(path.name)})</em></figcaption>"
            "</figure>")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] = (),
          css: str = "") -> str:
    """A table of escaped cells; ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            text = cell if isinstance(cell, _Html) else esc(cell)
            right = index < len(numeric) and numeric[index]
            cells.append(f'<td class="num">{text}</td>' if right else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    klass = f' class="{css}"' if css else ""
    return (f'<div class="wide"><table{klass}><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table></div>")


class _Html(str):
    """A cell that is already HTML (escaped where it holds run text)."""


def _when(stamp: float | None) -> str:
    return "-" if not stamp else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _kb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1000:,.1f} kB"


def _status(status: str, reason: str | None = None) -> _Html:
    css = "status-ok" if status == "ok" else "status-bad"
    text = f'<span class="{css}">{esc(status)}</span>'
    return _Html(text + (f": {esc(reason)}" if reason and status != "ok" else ""))


# ---------------------------------------------------------------- summary


def summary_section(data: ReportData) -> str:
    config, dataset, plot = data.config, data.dataset, data.plot
    sizes = dataset.get("sizes") or {}
    shape = "x".join(map(str, dataset.get("input_shape") or [])) or "?"
    last = data.fronts[-1] if data.fronts else None
    facts = [
        ("run folder", esc(data.run_dir)),
        ("status", esc(data.status)),
        ("grammar", esc(config.get("grammar"))),
        ("dataset", esc(f"{dataset['name']}: "
                        + ", ".join(f"{k} {v}" for k, v in sizes.items())
                        + f" images, input {shape}, {dataset.get('num_classes', '?')} classes"
                        if dataset.get("name") else f"none ({data.problem or 'no dataset'})")),
        ("objectives (searched)", esc(", ".join(plot.objectives))),
        ("constraints", esc(", ".join(plot.constraints) or "none")),
        ("generations", esc(f"{last.generation if last else '-'} of "
                            f"{config.get('generations', '?')} after the initial population "
                            f"(population {config.get('population', '?')})")),
        ("individuals", esc(", ".join(f"{n} {getattr(plot.counts, n)}" for n in OUTCOMES))),
        ("front", esc(f"{len(data.members)} members")),
        ("hypervolume", esc("-" if last is None or last.hypervolume is None
                            else f"{last.hypervolume:.4f} (last generation)")),
        ("started / last update", esc(f"{_when(data.created)} / {_when(data.updated)}")),
    ]
    rows = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in facts)
    return (f'<h2 id="summary">Summary</h2>\n<table class="facts"><tbody>{rows}</tbody></table>'
            '<p class="note">Individuals: trained (by this run), cached (result reused), '
            "skipped (ruled out by a constraint before training), invalid (no network), "
            "failed, stopped (training stopped before the full budget).</p>")


# ---------------------------------------------------------------- exports


def exports_section(data: ReportData, figure: Path | None) -> str:
    text = '<h2 id="exports">Exported members: size on disk and latency</h2>\n'
    run = html.escape(str(data.run_dir))
    if not data.exports and not data.latencies:
        return text + ('<p class="note">No member exported yet: '
                       f"<code>evo export {run} --front --format all</code>, then "
                       f"<code>evo bench {run}</code>.</p>")
    if figure is not None:
        text += figure_html(figure, "size on disk and latency of exported members",
                            "Left: size on disk of each exported format (all its files). Right: "
                            "latency per image measured after export (evo bench), median with "
                            "a bar from p10 to p90 of the timed runs; (quick) marks the quick "
                            "protocol, whose figures are rougher.")
    text += "<h3>Exports (newest per member and format)</h3>" + table(
        ("member", "format", "status", "size on disk", "test accuracy", "images"),
        ((e.member, e.format, _status(e.status, e.reason), _kb(e.bytes),
          "-" if e.accuracy is None else f"{e.accuracy:.2%}", e.samples)
         for e in data.exports), numeric=(True, False, False, True, True, True))
    if data.latencies:
        text += "<h3>Latency measured after export</h3>" + table(
            ("member", "target", "format", "protocol", "median (ms)", "p10–p90 (ms)",
             "timed runs"),
            ((lat.member, lat.target, lat.format, lat.protocol, format_ms(lat.median_ms),
              "-" if lat.p10_ms is None or lat.p90_ms is None
              else f"{format_ms(lat.p10_ms)}–{format_ms(lat.p90_ms)}", lat.runs)
             for lat in data.latencies),
            numeric=(True, False, False, False, True, True, True))
    else:
        text += (f'<p class="note">No latency measured yet: <code>evo bench {run}</code>.</p>')
    return text


# ---------------------------------------------------------------- members


def _exports_cell(row: dict[str, Any]) -> _Html:
    formats = row.get("exports") or {}
    if not formats:
        return _Html("-")
    parts = []
    for name, item in sorted(formats.items()):
        size = f" {_kb(item.get('bytes'))}" if item.get("status") == "ok" else ""
        parts.append(f"{esc(name)} {_status(str(item.get('status')), item.get('reason'))}"
                     f"{esc(size)}")
    return _Html("<br>".join(parts))


def members_section(data: ReportData) -> str:
    text = '<h2 id="members">Members of the front</h2>\n'
    rows = list(data.members)
    if not rows:
        return text + '<p class="note">No front yet (no generation finished).</p>'
    view = front_text(rows, data.plot.objectives)
    headers = [name for name, _justify in view.columns]
    keep = [i for i, name in enumerate(headers) if name != "export"]
    numeric = [view.columns[i][1] == "right" for i in keep] + [False]
    head = [headers[i] for i in keep] + ["exports (status, size)"]
    body = []
    for row, cells in zip(rows, view.cells, strict=True):
        line = [cells[i] for i in keep] + [_exports_cell(row)]
        body.append("<tr>" + "".join(
            f'<td class="num">{esc(c)}</td>' if numeric[i] and not isinstance(c, _Html)
            else f"<td>{c if isinstance(c, _Html) else esc(c)}</td>"
            for i, c in enumerate(line)) + "</tr>")
        # The phenotype gets a line of its own: it is long, and squeezed into a column it
        # would make every row a tower.
        body.append(f'<tr class="phenotype"><td colspan="{len(head)}">phenotype: '
                    f"<code>{esc(row.get('phenotype'))}</code></td></tr>")
    text += ('<div class="wide"><table class="members"><thead><tr>'
             + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
             + "".join(body) + "</tbody></table></div>")
    notes = list(view.notes)
    notes.append("Val acc: accuracy on the validation split, with the number of images behind "
                 "it. Test acc: after retraining on train+validation (evo retrain), mean over "
                 "seeds with the sample spread, on the test split. Phenotypes in the "
                 "architecture language's canonical form (evo arch show reads them).")
    return text + "".join(f'<p class="note">{esc(note)}</p>' for note in notes)


# ---------------------------------------------------------------- next commands


def commands_section(data: ReportData) -> str:
    lines = []
    for command, why in data.commands:
        lines.append(f"# {why}\n{command}")
    return ('<h2 id="next">Next commands</h2>\n<pre>' + esc("\n\n".join(lines)) + "</pre>")


# ---------------------------------------------------------------- configuration and host


def _value(value: Any) -> str:
    """A setting as config.toml spells it (true, [\"error\", \"params\"]); unset is ``-``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, sort_keys=True) if value else "-"
    return "-" if value is None else str(value)


def config_section(data: ReportData) -> str:
    rows = [(key, _Html(f"<code>{esc(_value(value))}</code>"))
            for key, value in sorted(data.config.items())]
    half = (len(rows) + 1) // 2
    dataset = {k: v for k, v in data.dataset.items()
               if k in ("name", "source", "sizes", "input_shape", "num_classes", "split_seed",
                        "official_test", "fingerprint")}
    return ('<h2 id="configuration">Configuration</h2>\n<p class="note">As the run stored '
            "it (config.toml in the run folder is a readable copy; run.db is the truth).</p>"
            + '<div class="columns">' + table(("setting", "value"), rows[:half], css="facts")
            + table(("setting", "value"), rows[half:], css="facts") + "</div>"
            + "<h3>Dataset</h3>"
            + table(("fact", "value"), ((k, _Html(f"<code>{esc(_value(v))}</code>"))
                                        for k, v in dataset.items()), css="facts"))


def host_section(data: ReportData) -> str:
    host = data.search_host
    versions = host.get("versions") or {}
    rows = [("device", host.get("device")), ("threads per training", host.get("threads")),
            ("workers", data.config.get("workers"))]
    rows += [(f"{name} version", version) for name, version in sorted(versions.items())]
    text = ('<h2 id="host">Host</h2>\n<h3>Where the search ran</h3>'
            + table(("fact", "value"), rows, css="facts"))
    if data.measurement_hosts:
        text += "<h3>Where latencies were measured</h3>" + table(
            ("host", "CPU", "logical CPUs", "memory", "OS", "runtimes"),
            ((h.get("hostname"), h.get("cpu_name"), h.get("logical_cpus"),
              "-" if not h.get("memory_bytes") else f"{h['memory_bytes'] / 2**30:.1f} GiB",
              h.get("os"), ", ".join(f"{k} {v}" for k, v in sorted((h.get("runtimes")
                                                                     or {}).items())))
             for h in data.measurement_hosts), numeric=(False, False, True, True))
    return text
