"""Describe the machine and the runtimes a measurement was taken on.

A latency means nothing without the machine behind it, and a results file written on an edge box
is imported elsewhere, so every measurement carries this description. ``fingerprint`` keys cached
measurements: it includes the host name on purpose, so a warm start on another machine (even one
reporting the same CPU model string, as cloud VMs often do) never reuses a latency.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

# Runtime packages whose version changes what a latency means (looked up without importing them).
RUNTIME_PACKAGES = (
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-openvino",
    "openvino",
)

# CPU instruction-set features that decide which kernels (and precisions) a runtime can use.
_CPU_FEATURES = frozenset(
    {
        # x86
        "sse4_2",
        "avx",
        "avx2",
        "fma",
        "avx_vnni",
        "avx512f",
        "avx512bw",
        "avx512_vnni",
        "avx512_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_bf16",
        "amx_int8",
        # Arm
        "asimd",
        "asimdhp",
        "asimddp",
        "fphp",
        "i8mm",
        "bf16",
        "sve",
        "sve2",
    }
)


@dataclass(frozen=True)
class HostInfo:
    """The machine and software stack behind a measurement."""

    hostname: str
    os: str
    machine: str
    cpu_name: str
    logical_cpus: int
    physical_cpus: int | None
    memory_bytes: int | None
    cpu_features: tuple[str, ...]
    python: str
    runtimes: tuple[tuple[str, str], ...]  # (package, version), installed ones only

    @property
    def fingerprint(self) -> str:
        """Stable key of the hardware + runtime versions + host name (16 hex digits)."""
        key = json.dumps(
            [
                self.hostname,
                self.machine,
                self.cpu_name,
                self.logical_cpus,
                list(self.cpu_features),
                [list(pair) for pair in self.runtimes],
            ]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def runtime_version(self, package: str) -> str | None:
        return dict(self.runtimes).get(package)

    def summary(self) -> str:
        """One line a person reads under a results table."""
        memory = f", {self.memory_bytes / 1e9:.1f} GB RAM" if self.memory_bytes else ""
        runtimes = ", ".join(f"{name} {version}" for name, version in self.runtimes)
        return (
            f"{self.hostname}: {self.cpu_name} ({self.logical_cpus} logical CPUs{memory}), "
            f"{self.os}; {runtimes}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "os": self.os,
            "machine": self.machine,
            "cpu_name": self.cpu_name,
            "logical_cpus": self.logical_cpus,
            "physical_cpus": self.physical_cpus,
            "memory_bytes": self.memory_bytes,
            "cpu_features": list(self.cpu_features),
            "python": self.python,
            "runtimes": dict(self.runtimes),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HostInfo:
        return cls(
            hostname=str(data["hostname"]),
            os=str(data["os"]),
            machine=str(data["machine"]),
            cpu_name=str(data["cpu_name"]),
            logical_cpus=int(data["logical_cpus"]),
            physical_cpus=_optional_int(data.get("physical_cpus")),
            memory_bytes=_optional_int(data.get("memory_bytes")),
            cpu_features=tuple(str(f) for f in data.get("cpu_features", ())),
            python=str(data["python"]),
            runtimes=tuple((str(k), str(v)) for k, v in dict(data.get("runtimes", {})).items()),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@functools.cache
def describe_host() -> HostInfo:
    """Describe this machine; cached because it cannot change while the process lives."""
    cpuinfo = _read_cpuinfo()
    return HostInfo(
        hostname=socket.gethostname(),
        os=platform.platform(),
        machine=platform.machine(),
        cpu_name=_cpu_name(cpuinfo),
        logical_cpus=os.cpu_count() or 1,
        physical_cpus=_physical_cpus(cpuinfo),
        memory_bytes=_memory_bytes(),
        cpu_features=_cpu_features(cpuinfo),
        python=platform.python_version(),
        runtimes=installed_runtimes(),
    )


def installed_runtimes() -> tuple[tuple[str, str], ...]:
    """Versions of the runtime packages present, read from package metadata (no import)."""
    found = []
    for package in RUNTIME_PACKAGES:
        try:
            found.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(found)


def _read_cpuinfo() -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per logical CPU (empty where there is no such file)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    blocks = []
    for block in text.split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep:
                entry[key.strip()] = value.strip()
        if entry:
            blocks.append(entry)
    return blocks


def _cpu_name(cpuinfo: list[dict[str, str]]) -> str:
    for entry in cpuinfo:
        for key in ("model name", "Model", "Hardware", "cpu model"):
            if entry.get(key):
                return entry[key]
    return platform.processor() or platform.machine() or "unknown CPU"


def _physical_cpus(cpuinfo: list[dict[str, str]]) -> int | None:
    try:
        import psutil  # optional: the edge box may not have it

        return psutil.cpu_count(logical=False)
    except ImportError:
        pass
    cores = {
        (entry.get("physical id"), entry.get("core id")) for entry in cpuinfo if "core id" in entry
    }
    return len(cores) or None


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        return None


def _cpu_features(cpuinfo: list[dict[str, str]]) -> tuple[str, ...]:
    flags: set[str] = set()
    for entry in cpuinfo[:1]:
        flags.update(entry.get("flags", "").split())
        flags.update(entry.get("Features", "").split())
    return tuple(sorted(flags & _CPU_FEATURES))
