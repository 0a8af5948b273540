"""The latency protocol: how one model is timed on one target, and the record it produces.

Batch 1, static shapes, one fixed thread count. Load/compile and the first inference are
reported apart (both are one-off costs a deployment pays, and the first inference is often far
slower). Warm-up runs until both a run count and a time are reached, then the timed loop does
the same; timing comes from inside the runtime where it offers it (OpenVINO), and the
Python-side cost of a call is reported separately. See docs/latency.md.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hardware.errors import HardwareError
from hardware.host import HostInfo, describe_host
from hardware.memory import PeakMemory
from hardware.models import ModelInfo, inspect_model
from hardware.sessions import open_model
from hardware.targets import Target, TargetInfo, resolve_target

TOOL_VERSION = "hardware-latency/1"


@dataclass(frozen=True)
class Protocol:
    """Stopping rules: each phase ends once it has both ``*_runs`` runs and ``*_s`` seconds."""

    name: str
    warmup_runs: int
    warmup_s: float
    runs: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "warmup_runs": self.warmup_runs,
            "warmup_s": self.warmup_s,
            "runs": self.runs,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        return cls(
            name=str(data["name"]),
            warmup_runs=int(data["warmup_runs"]),
            warmup_s=float(data["warmup_s"]),
            runs=int(data["runs"]),
            seconds=float(data["seconds"]),
        )


FULL = Protocol("full", warmup_runs=10, warmup_s=1.0, runs=100, seconds=5.0)
# For use inside a search, where hundreds of candidates are measured: ranks models, is not a
# number to publish (labelled "quick" everywhere it is shown).
QUICK = Protocol("quick", warmup_runs=3, warmup_s=0.0, runs=30, seconds=0.3)
PROTOCOLS = {p.name: p for p in (FULL, QUICK)}


def get_protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol.strip().lower()]
    except KeyError:
        raise HardwareError(
            f"unknown latency protocol {protocol!r}", f"use one of: {', '.join(PROTOCOLS)}"
        ) from None


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-inference times in milliseconds."""

    n: int
    median_ms: float
    p90_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    # The spread's lower end (with p90): None in records written before it was kept.
    p10_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "median_ms": self.median_ms,
            "p10_ms": self.p10_ms,
            "p90_ms": self.p90_ms,
            "mean_ms": self.mean_ms,
            "std_ms": self.std_ms,
            "min_ms": self.min_ms,
            "max_ms": self.max_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyStats:
        return cls(
            n=int(data["n"]),
            median_ms=float(data["median_ms"]),
            p90_ms=float(data["p90_ms"]),
            mean_ms=float(data["mean_ms"]),
            std_ms=float(data["std_ms"]),
            min_ms=float(data["min_ms"]),
            max_ms=float(data["max_ms"]),
            p10_ms=None if data.get("p10_ms") is None else float(data["p10_ms"]),
        )


def summarize(samples_ms: list[float] | np.ndarray) -> LatencyStats:
    """Median, p10 and p90 (linear interpolation), mean, sample std, min and max of
    ``samples_ms``."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("latency samples must be a non-empty list of finite numbers")
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return LatencyStats(
        n=int(values.size),
        median_ms=float(median),
        p90_ms=float(p90),
        mean_ms=float(values.mean()),
        std_ms=float(values.std(ddof=1)) if values.size > 1 else 0.0,
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        p10_ms=float(p10),
    )


@dataclass(frozen=True)
class Measurement:
    """One model on one target under one protocol: everything needed to trust the number."""

    model: ModelInfo
    target: str
    device_name: str
    target_fingerprint: str
    runtime: str  # package and version, e.g. "openvino 2026.4.1"
    protocol: Protocol
    threads: int
    executed_precision: str
    config: tuple[tuple[str, str], ...]  # settings as the runtime reports them applied
    inputs: tuple[tuple[str, tuple[int, ...], str], ...]  # (name, shape, dtype)
    load_ms: float  # read + compile
    first_inference_ms: float  # wall clock of the first call
    latency: LatencyStats  # the headline: runtime-internal timing where offered
    latency_source: str
    wall: LatencyStats  # Python-side wall clock per call (same runs)
    call_overhead_ms: float | None  # median Python-side cost per call
    throughput_ips: float  # timed runs / wall seconds of the timed loop (batch 1)
    peak_memory_bytes: int | None
    memory_source: str
    host: HostInfo
    measured_utc: str
    tool: str = TOOL_VERSION

    @property
    def median_ms(self) -> float:
        return self.latency.median_ms

    @property
    def host_fingerprint(self) -> str:
        return self.host.fingerprint

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "target": self.target,
            "device_name": self.device_name,
            "target_fingerprint": self.target_fingerprint,
            "runtime": self.runtime,
            "protocol": self.protocol.to_dict(),
            "threads": self.threads,
            "executed_precision": self.executed_precision,
            "config": dict(self.config),
            "inputs": [
                {"name": name, "shape": list(shape), "dtype": dtype}
                for name, shape, dtype in self.inputs
            ],
            "load_ms": self.load_ms,
            "first_inference_ms": self.first_inference_ms,
            "latency": self.latency.to_dict(),
            "latency_source": self.latency_source,
            "wall": self.wall.to_dict(),
            "call_overhead_ms": self.call_overhead_ms,
            "throughput_ips": self.throughput_ips,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory_source": self.memory_source,
            "host": self.host.to_dict(),
            "measured_utc": self.measured_utc,
            "tool": self.tool,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        overhead = data.get("call_overhead_ms")
        memory = data.get("peak_memory_bytes")
        return cls(
            model=ModelInfo.from_dict(data["model"]),
            target=str(data["target"]),
            device_name=str(data["device_name"]),
            target_fingerprint=str(data["target_fingerprint"]),
            runtime=str(data["runtime"]),
            protocol=Protocol.from_dict(data["protocol"]),
            threads=int(data["threads"]),
            executed_precision=str(data["executed_precision"]),
            config=tuple((str(k), str(v)) for k, v in dict(data["config"]).items()),
            inputs=tuple(
                (str(i["name"]), tuple(int(d) for d in i["shape"]), str(i["dtype"]))
                for i in data["inputs"]
            ),
            load_ms=float(data["load_ms"]),
            first_inference_ms=float(data["first_inference_ms"]),
            latency=LatencyStats.from_dict(data["latency"]),
            latency_source=str(data["latency_source"]),
            wall=LatencyStats.from_dict(data["wall"]),
            call_overhead_ms=None if overhead is None else float(overhead),
            throughput_ips=float(data["throughput_ips"]),
            peak_memory_bytes=None if memory is None else int(memory),
            memory_source=str(data["memory_source"]),
            host=HostInfo.from_dict(data["host"]),
            measured_utc=str(data["measured_utc"]),
            tool=str(data.get("tool", TOOL_VERSION)),
        )

    def row(self) -> dict[str, Any]:
        """Flat scalar columns (units in the names) for CSV files and tables."""
        return {
            "model": self.model.path,
            "format": self.model.format,
            "size_bytes": self.model.size_bytes,
            "stored_precision": self.model.stored_precision,
            "executed_precision": self.executed_precision,
            "target": self.target,
            "device_name": self.device_name,
            "protocol": self.protocol.name,
            "threads": self.threads,
            "load_ms": self.load_ms,
            "first_inference_ms": self.first_inference_ms,
            "median_ms": self.latency.median_ms,
            "p90_ms": self.latency.p90_ms,
            "mean_ms": self.latency.mean_ms,
            "std_ms": self.latency.std_ms,
            "min_ms": self.latency.min_ms,
            "max_ms": self.latency.max_ms,
            "n": self.latency.n,
            "throughput_ips": self.throughput_ips,
            "wall_median_ms": self.wall.median_ms,
            "call_overhead_ms": self.call_overhead_ms,
            "peak_memory_bytes": self.peak_memory_bytes,
            "latency_source": self.latency_source,
            "runtime": self.runtime,
            "hostname": self.host.hostname,
            "host_fingerprint": self.host.fingerprint,
            "target_fingerprint": self.target_fingerprint,
            "measured_utc": self.measured_utc,
        }


def measure(
    model_path: str | Path,
    target: str | Target | TargetInfo = "ov:CPU",
    protocol: str | Protocol = "full",
    threads: int = 1,
) -> Measurement:
    """Time one model on one target; HardwareError for a bad file, target or setting."""
    if threads < 1:
        raise HardwareError(f"threads must be >= 1, got {threads}", "pass --threads 1 or more")
    chosen = get_protocol(protocol)
    info = target if isinstance(target, TargetInfo) else resolve_target(target)
    model = inspect_model(model_path)
    host = describe_host()

    memory = PeakMemory()
    memory.start()
    opened = open_model(model, info, threads)
    memory.sample()
    start = time.perf_counter_ns()
    opened.infer()
    first_ms = (time.perf_counter_ns() - start) / 1e6
    memory.sample()

    was_enabled = gc.isenabled()
    gc.disable()  # a collection inside a timed call is Python's cost, not the model's
    try:
        _run_phase(opened.infer, chosen.warmup_runs, chosen.warmup_s)
        walls, internal, elapsed_s = _run_phase(opened.infer, chosen.runs, chosen.seconds)
    finally:
        if was_enabled:
            gc.enable()
    memory.sample()
    peak_bytes, memory_source = memory.stop()

    wall = summarize(walls)
    if all(value is not None for value in internal):
        runtime_ms = [float(v) for v in internal]  # type: ignore[arg-type]
        latency = summarize(runtime_ms)
        overhead: float | None = float(np.median(np.subtract(walls, runtime_ms)))
    else:
        latency = wall
        overhead = opened.probe_call_overhead()

    package = info.target.package
    return Measurement(
        model=model,
        target=info.name,
        device_name=info.device_name,
        target_fingerprint=info.fingerprint,
        runtime=f"{package} {info.runtime_version or host.runtime_version(package) or '?'}",
        protocol=chosen,
        threads=threads,
        executed_precision=opened.executed_precision,
        config=tuple(sorted(opened.config.items())),
        inputs=opened.inputs,
        load_ms=opened.load_ms,
        first_inference_ms=first_ms,
        latency=latency,
        latency_source=opened.latency_source,
        wall=wall,
        call_overhead_ms=overhead,
        throughput_ips=len(walls) / max(elapsed_s, 1e-9),
        peak_memory_bytes=peak_bytes,
        memory_source=memory_source,
        host=host,
        measured_utc=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _run_phase(
    infer: Any, min_runs: int, min_seconds: float
) -> tuple[list[float], list[float | None], float]:
    """Call ``infer`` until both ``min_runs`` calls and ``min_seconds`` have passed."""
    walls: list[float] = []
    internal: list[float | None] = []
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(min_seconds * 1e9)
    while True:
        before = clock()
        runtime_ms = infer()
        after = clock()
        walls.append((after - before) / 1e6)
        internal.append(runtime_ms)
        if len(walls) >= min_runs and after >= deadline:
            return walls, internal, (after - start) / 1e9
