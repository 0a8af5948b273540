"""The ``evo front`` table as text: searched objectives first, then context, then what later
steps measured, with notes that say what each kind of column is.

Pure (rows in, cells and notes out), so the rich view in the CLI only lays them out. The
searched columns show the values the front was selected on; a latency objective shows its
in-search median with the p10–p90 spread of the timed runs, and a note names front members
whose spreads overlap: their order in that objective is within the timing noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from evo.report.front_table import LATENCY_PREFIX, format_test_accuracy


@dataclass(frozen=True)
class FrontText:
    """Columns (header, justify), one tuple of cells per member, and notes for under it."""

    columns: tuple[tuple[str, str], ...]
    cells: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]


def format_ms(value: float, digits: int = 3) -> str:
    """``value`` in ms with ``digits`` significant digits (0.0605, 1.23, 12.3, 123)."""
    return f"{value:.{_decimals(value, digits)}f}"


def _decimals(value: float, digits: int) -> int:
    if value == 0 or not math.isfinite(value):
        return digits - 1
    return max(0, digits - 1 - math.floor(math.log10(abs(value))))


def objective_header(name: str) -> str:
    """The column of a searched objective (its unit in the header or in the cells)."""
    if name == "error":
        return "val acc"
    if name.startswith(LATENCY_PREFIX):
        return f"latency {name[len(LATENCY_PREFIX):]} (searched)"
    return {"params": "params", "macs": "MACs", "onnx_bytes": "ONNX size (bytes)"}.get(name, name)


def objective_cell(name: str, row: dict[str, Any]) -> str:
    """A searched value as the search recorded it: ``96.30% of 269``, ``71,002``,
    ``1.23 ms (1.10–1.41)``."""
    if name == "error":
        acc = row.get("val_accuracy")
        if acc is None:
            error = (row.get("objectives") or {}).get("error")
            acc = None if error is None else 1.0 - error
        text = "-" if acc is None else f"{acc:.2%}"
        return text + (f" of {row['val_images']}" if acc is not None and row.get("val_images")
                       else "")
    value = (row.get("objectives") or {}).get(name)
    if value is None:
        return "-"
    if name.startswith(LATENCY_PREFIX):
        spread = (row.get("objective_spread") or {}).get(name) or {}
        decimals = _decimals(value, 3)
        text = f"{value:.{decimals}f} ms"
        low, high = spread.get("p10_ms"), spread.get("p90_ms")
        if low is not None and high is not None:
            return f"{text} ({low:.{decimals}f}–{high:.{decimals}f})"
        return f"{text} (p90 {high:.{decimals}f})" if high is not None else text
    return f"{value:,.0f}" if isinstance(value, int) or float(value).is_integer() \
        else f"{value:.6g}"


def overlapping(spans: Sequence[tuple[int, float, float]]) -> list[list[int]]:
    """Groups of members whose (low, high) ranges overlap, directly or through a chain of
    overlapping neighbours; members alone in their range are left out."""
    groups: list[list[int]] = []
    current: list[int] = []
    reach = -math.inf
    for member, low, high in sorted(spans, key=lambda s: (s[1], s[2], s[0])):
        if current and low <= reach:
            current.append(member)
            reach = max(reach, high)
            continue
        if len(current) > 1:
            groups.append(current)
        current, reach = [member], high
    if len(current) > 1:
        groups.append(current)
    return groups


def spread_notes(rows: Sequence[dict[str, Any]], objectives: Sequence[str]) -> list[str]:
    """One line per latency objective in which front members differ by less than their
    spread (their p10–p90 ranges overlap)."""
    notes = []
    for name in objectives:
        if not name.startswith(LATENCY_PREFIX):
            continue
        spans = []
        for row in rows:
            spread = (row.get("objective_spread") or {}).get(name) or {}
            if spread.get("p10_ms") is not None and spread.get("p90_ms") is not None:
                spans.append((int(row["member"]), float(spread["p10_ms"]),
                              float(spread["p90_ms"])))
        groups = overlapping(spans)
        if groups:
            listed = "; ".join(_members(g) for g in groups)
            notes.append(f"{name}: {listed} differ by less than their spread (their p10–p90 "
                         "ranges overlap): their order in this objective is within timing "
                         "noise.")
    return notes


def _members(group: list[int]) -> str:
    ids = [str(m) for m in sorted(group)]
    return "members " + (", ".join(ids[:-1]) + " and " + ids[-1])


def front_text(rows: Sequence[dict[str, Any]], objectives: Sequence[str]) -> FrontText:
    """The table of ``evo front``: member, the searched objectives (in search order), params,
    MACs and val acc where not searched, test accuracy after a retrain, later steps' columns
    (exports, latencies measured after export)."""
    searched = list(objectives)
    context = [name for name in ("params", "macs", "error") if name not in searched]
    tested = any(r.get("test_accuracy") is not None for r in rows)
    extras = sorted({k for r in rows for k in r.get("extra", {})})
    columns = [("member", "right")]
    columns += [(objective_header(n), "right") for n in searched + context]
    columns += [("test acc (retrained)", "right")] if tested else []
    columns += [(e, "right") for e in extras]
    cells = []
    for r in rows:
        line = [str(r["member"])] + [objective_cell(n, r) for n in searched + context]
        line += [format_test_accuracy(r)] if tested else []
        line += [str(r.get("extra", {}).get(e, "-")) for e in extras]
        cells.append(tuple(line))
    return FrontText(tuple(columns), tuple(cells),
                     tuple(_column_notes(rows, searched, extras) + spread_notes(rows, searched)))


def _column_notes(rows: Sequence[dict[str, Any]], searched: list[str],
                  extras: list[str]) -> list[str]:
    described = []
    for name in searched:
        if name == "error":
            described.append("error (shown as val acc = 1 - error)")
        elif name.startswith(LATENCY_PREFIX):
            described.append(f"{name} ({_how_timed(rows, name)})")
        else:
            described.append(name)
    notes = ["Searched objectives, the values the front was selected on: "
             + ", ".join(described) + "."]
    if any(e.endswith("measured after export (ms)") for e in extras):
        notes.append("Columns 'measured after export' are later benchmarks of the exported "
                     "files (evo bench): median ms (format, protocol); they did not select "
                     "the front.")
    return notes


def _how_timed(rows: Sequence[dict[str, Any]], name: str) -> str:
    spreads = [(r.get("objective_spread") or {}).get(name) or {} for r in rows]
    protocols = sorted({str(s["protocol"]) for s in spreads if s.get("protocol")})
    threads = sorted({int(s["threads"]) for s in spreads if s.get("threads")})
    how = "median ms of the in-search timing"
    if protocols:
        how += f", {'/'.join(protocols)} protocol"
    if threads:
        how += f", {'/'.join(map(str, threads))} thread{'s' * (threads != [1])}"
    return how + "; p10–p90 of the timed runs in brackets"
