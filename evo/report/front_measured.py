"""The ``evo front`` column of latencies measured after export (``evo bench``, the bench step,
``evo bench --import``), kept apart from the latencies the search measured.

Why apart: a latency objective is timed inside the search on the search's own ONNX file (quick
protocol, one thread); the front was selected on those numbers. A later bench times other
files (the exported ONNX, the IR), perhaps with another protocol or on another machine, and
routinely differs from the searched figure by tens of percent. Shown in the searched column it
would make members look dominated; so it is its own column, labelled "measured after export",
and the search's own rows in ``measurements`` never appear in it.

When several measurements exist for one member and target, the one shown is chosen by: FP32
format first (``onnx`` on onnxruntime, ``ir-fp32`` on OpenVINO), then the full protocol over the
quick one (a quick figure imported later never replaces a full one), then the newest.
"""

from __future__ import annotations

from typing import Any

from evo.run.layout import same_file_name
from evo.run.store import RunStore

# Which format a front column shows for a target when several were measured: FP32 first.
PREFERRED_FORMATS = {"ort": ("onnx",), "ov": ("ir-fp32", "onnx")}
# The more careful protocol wins whatever the order the figures arrived in.
PROTOCOL_RANK = {"full": 0, "quick": 1}


def latency_label(target: str, host: dict[str, Any], local_fingerprint: str) -> str:
    """A front column per target; measurements from another machine get its host name."""
    if host.get("fingerprint") == local_fingerprint:
        return target
    return f"{target}@{host.get('hostname', '?')}"


def column_name(label: str) -> str:
    """The table and CSV column of one target's latency measured after export."""
    return f"latency {label} measured after export (ms)"


def in_search(measurement: dict[str, Any], search_onnx: str | None) -> bool:
    """Whether a ``measurements`` row is the search's own timing of a candidate (recorded for
    a latency objective on the ONNX file the search wrote, ``models/<key>.onnx``)."""
    if not search_onnx or measurement["source"] != "local":
        return False
    path = ((measurement.get("details") or {}).get("model") or {}).get("path")
    return path is not None and same_file_name(path, search_onnx)


def preferred(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The measurement to show among one member's rows for one target (see the module text);
    ``items`` are in insertion order."""
    runtime = str(items[0]["target"]).split(":", 1)[0]
    candidates = items
    for name in PREFERRED_FORMATS.get(runtime, ()):
        matching = [m for m in items if m["format"] == name]
        if matching:
            candidates = matching
            break
    best = min(PROTOCOL_RANK.get(str(m["protocol"]), len(PROTOCOL_RANK)) for m in candidates)
    return [m for m in candidates
            if PROTOCOL_RANK.get(str(m["protocol"]), len(PROTOCOL_RANK)) == best][-1]


def add_latency_column(store: RunStore, rows: list[dict[str, Any]]) -> None:
    """Front columns: each member's latency per target measured after export (median ms),
    chosen by :func:`preferred`; ``row["latency"]`` holds the details per target."""
    measurements = store.measurements()
    if not measurements:
        return
    from hardware.host import describe_host

    local = describe_host().fingerprint
    by_key: dict[str, list[dict[str, Any]]] = {}
    for m in measurements:
        if m["eval_key"] is not None and m["median_ms"] is not None:
            by_key.setdefault(m["eval_key"], []).append(m)
    for row in rows:
        ind = store.individual(int(row["member"]))
        if ind is None or not ind.eval_key:
            continue
        ev = store.evaluation(ind.eval_key)
        search_onnx = ev.metrics.get("onnx") if ev is not None else None
        found = [m for m in by_key.get(ind.eval_key, []) if not in_search(m, search_onnx)]
        if not found:
            continue
        groups: dict[str, list[dict[str, Any]]] = {}
        for m in found:
            groups.setdefault(latency_label(m["target"], m["host"], local), []).append(m)
        latency = {}
        for label, items in groups.items():
            best = preferred(items)
            stats = best["details"].get("latency") or {}
            latency[label] = {
                "median_ms": best["median_ms"],
                "p10_ms": stats.get("p10_ms"),
                "p90_ms": stats.get("p90_ms"),
                "format": best["format"], "protocol": best["protocol"],
                "source": best["source"], "host": best["host"].get("hostname"),
                "measured_utc": best["details"].get("measured_utc"),
            }
            row.setdefault("extra", {})[column_name(label)] = (
                f"{best['median_ms']:.4f} ({best['format']}, {best['protocol']})")
        row["latency"] = latency
