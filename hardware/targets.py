"""Targets: a runtime plus a device (``ort:cpu``, ``ov:NPU``, ``litert:cpu``, ...), and their
detection.

A latency belongs to a (runtime, device) pair, not to a device alone: onnxruntime, OpenVINO and
LiteRT on the same CPU differ. Detection asks the runtimes themselves (onnxruntime's providers,
OpenVINO's ``Core().available_devices``, whether ``ai_edge_litert``'s interpreter loads) and
reports a missing runtime as absent targets, never as a crash, because an edge box usually has
only one of them. ``not_applicable`` says which model formats a runtime cannot read at all.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hardware.errors import HardwareError, one_line
from hardware.host import describe_host

RUNTIME_PACKAGES = {"ort": "onnxruntime", "ov": "openvino", "litert": "ai-edge-litert"}
_RUNTIME_ALIASES = {
    "ort": "ort", "onnxruntime": "ort", "ov": "ov", "openvino": "ov", "litert": "litert",
    "tflite": "litert",
}  # fmt: skip
# The model formats (hardware.models) each runtime reads; any other pair is not applicable.
RUNTIME_FORMATS = {"ort": ("onnx",), "ov": ("onnx", "ir"), "litert": ("tflite",)}
_NOT_APPLICABLE = {
    "ort": "onnxruntime reads ONNX only",
    "ov": "OpenVINO targets read ONNX and IR, not .tflite",
    "litert": "LiteRT (litert:*) targets read .tflite only",
}
# The one LiteRT device: the interpreter on the CPU, with its default XNNPACK delegate.
LITERT_DEVICES = ("cpu",)

# onnxruntime device -> execution provider we pass explicitly.
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}

# Devices listed by `evo targets` even when absent, so a user sees what could be there.
_STANDARD_TARGETS = (
    "ort:cpu", "ort:cuda", "ov:CPU", "ov:GPU", "ov:NPU", "ov:AUTO", "litert:cpu",
)  # fmt: skip

# Targets our own test suite exercises on real hardware; everything else is "untested".
TESTED_ON_HARDWARE = frozenset({"ort:cpu", "ov:CPU", "litert:cpu"})

# OPTIMIZATION_CAPABILITIES mixes precisions with features (EXPORT_IMPORT, BATCHED_BLOB, ...).
_PRECISION = re.compile(r"^(FP\d+|BF16|U?INT\d+|BIN)$")
_RETIRED_OV_DEVICES = frozenset({"MYRIAD", "HDDL", "VPU", "VPUX"})
_OV_DEVICE = re.compile(r"^[A-Z][A-Z_]*(\.\d+)?$")
_SEE_TARGETS = "list the targets with `python -m hardware targets` or `evo targets`"


@dataclass(frozen=True, order=True)
class Target:
    """A runtime (``ort``, ``ov`` or ``litert``) and one of its devices, in canonical spelling."""

    runtime: str
    device: str

    @property
    def name(self) -> str:
        return f"{self.runtime}:{self.device}"

    @property
    def package(self) -> str:
        return RUNTIME_PACKAGES[self.runtime]

    def __str__(self) -> str:
        return self.name


def parse_target(text: str) -> Target:
    """``"OV:gpu.1"`` -> ``Target("ov", "GPU.1")``; names are case-insensitive."""
    raw = text.strip()
    runtime_text, sep, device_text = raw.partition(":")
    runtime = _RUNTIME_ALIASES.get(runtime_text.strip().lower())
    device_text = device_text.strip()
    if not sep or runtime is None or not device_text:
        raise HardwareError(
            f"target {raw!r} is not RUNTIME:DEVICE with runtime ort, ov or litert",
            "write e.g. ort:cpu, ort:cuda, ov:CPU, ov:GPU, ov:GPU.1, ov:NPU, ov:AUTO or litert:cpu",
        )
    if runtime == "litert":
        if device_text.lower() not in LITERT_DEVICES:
            raise HardwareError(
                f"target {raw!r}: the LiteRT device is litert:cpu",
                "LiteRT's GPU and NPU delegates are not supported targets",
            )
        return Target("litert", device_text.lower())
    if runtime == "ort":
        device = device_text.lower()
        if device not in ORT_PROVIDERS:
            raise HardwareError(
                f"target {raw!r}: onnxruntime device must be one of "
                + ", ".join(f"ort:{d}" for d in ORT_PROVIDERS),
                "other onnxruntime execution providers are not supported targets",
            )
        return Target("ort", device)
    device = device_text.upper()
    if device.split(".")[0] in _RETIRED_OV_DEVICES:
        raise HardwareError(
            f"target {raw!r}: the Myriad VPU plugin (MYRIAD/HDDL) left OpenVINO in 2023.0",
            "its successor is the NPU plugin: use ov:NPU on Intel Core Ultra and later",
        )
    if not _OV_DEVICE.match(device):
        raise HardwareError(
            f"target {raw!r}: {device_text!r} is not an OpenVINO device name",
            "write e.g. ov:CPU, ov:GPU, ov:GPU.1, ov:NPU or ov:AUTO",
        )
    return Target("ov", device)


def parse_targets(text: str | Iterable[str]) -> tuple[Target, ...]:
    """Comma-separated (or already split) target names, duplicates removed, order kept."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    targets: list[Target] = []
    for part in parts:
        if part.strip():
            target = parse_target(part)
            if target not in targets:
                targets.append(target)
    if not targets:
        raise HardwareError("no target given", "write e.g. --target ort:cpu,ov:CPU")
    return tuple(targets)


@dataclass(frozen=True)
class TargetInfo:
    """What detection found out about one target on this machine."""

    target: Target
    available: bool
    device_name: str
    precisions: tuple[str, ...]  # OpenVINO OPTIMIZATION_CAPABILITIES; () where not queryable
    runtime_version: str | None
    status: str

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def precisions_text(self) -> str:
        """Precisions for a table: onnxruntime runs what the file stores, AUTO what it picks."""
        if self.precisions:
            return ", ".join(self.precisions)
        if not self.available:
            return "-"
        if self.target.runtime in ("ort", "litert"):
            return "as stored in the model"
        return "those of the device chosen"

    @property
    def tested_on_hardware(self) -> bool:
        return self.target.name in TESTED_ON_HARDWARE

    @property
    def fingerprint(self) -> str:
        """Key of target + device + runtime version + host, so cached latencies never travel."""
        key = "|".join(
            [self.name, self.device_name, self.runtime_version or "", describe_host().fingerprint]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "available": self.available,
            "device_name": self.device_name,
            "precisions": list(self.precisions),
            "runtime_version": self.runtime_version,
            "status": self.status,
            "tested_on_hardware": self.tested_on_hardware,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetInfo:
        return cls(
            target=parse_target(str(data["target"])),
            available=bool(data["available"]),
            device_name=str(data["device_name"]),
            precisions=tuple(str(p) for p in data.get("precisions", ())),
            runtime_version=data.get("runtime_version"),
            status=str(data["status"]),
        )


@functools.cache
def detect_targets() -> tuple[TargetInfo, ...]:
    """Every standard target (present or not) plus any extra device the runtimes report.

    Cached: OpenVINO loads each device plugin to name it, which takes a moment, and the set of
    devices does not change while a process lives.
    """
    found = {info.name: info for info in (*_detect_ort(), *_detect_ov(), *_detect_litert())}
    ordered = [found.pop(name) for name in _STANDARD_TARGETS if name in found]
    return (*ordered, *sorted(found.values(), key=lambda info: info.name))


def resolve_target(target: str | Target) -> TargetInfo:
    """The detected info of a target that must be present; otherwise a one-line error."""
    wanted = parse_target(target) if isinstance(target, str) else target
    infos = detect_targets()
    present = [info.name for info in infos if info.available]
    for info in infos:
        if info.target == wanted:
            if info.available:
                return info
            reason = info.status
            break
    else:
        reason = "not reported by the runtime"
    raise HardwareError(
        f"target {wanted.name} is not present on this machine ({reason}); "
        f"present: {', '.join(present) or 'none'}",
        _SEE_TARGETS,
    )


def not_applicable(target: Target, model_format: str) -> str | None:
    """Why ``target``'s runtime cannot read a model of ``model_format`` at all, else None."""
    if model_format in RUNTIME_FORMATS[target.runtime]:
        return None
    if target.runtime == "ort" and model_format == "ir":
        return "OpenVINO IR runs on OpenVINO (ov:*) targets only"
    return _NOT_APPLICABLE[target.runtime]


def _absent(name: str, status: str, version: str | None = None) -> TargetInfo:
    return TargetInfo(parse_target(name), False, "", (), version, status)


def _detect_ort() -> list[TargetInfo]:
    try:
        import onnxruntime
    except ImportError:
        return [_absent(f"ort:{d}", "onnxruntime not installed") for d in ORT_PROVIDERS]
    version = onnxruntime.__version__
    providers = set(onnxruntime.get_available_providers())
    infos = []
    for device, provider in ORT_PROVIDERS.items():
        if provider not in providers:
            infos.append(_absent(f"ort:{device}", f"{provider} not in this build", version))
            continue
        name = describe_host().cpu_name if device == "cpu" else "CUDA device 0"
        infos.append(TargetInfo(Target("ort", device), True, name, (), version, "available"))
    return infos


def _detect_ov() -> list[TargetInfo]:
    standard = [name for name in _STANDARD_TARGETS if name.startswith("ov:")]
    try:
        import openvino
    except ImportError:
        return [_absent(name, "openvino not installed") for name in standard]
    version = openvino.get_version()
    try:
        core = ov_core()
        devices = list(core.available_devices)
    except Exception as exc:  # a broken install must still let ort:* work
        return [_absent(name, f"openvino failed: {one_line(exc)}", version) for name in standard]

    infos: dict[str, TargetInfo] = {}
    for device in devices:
        full_name, precisions = _ov_device_properties(core, device)
        infos[f"ov:{device}"] = TargetInfo(
            Target("ov", device), True, full_name, precisions, version, "available"
        )
    # With several GPUs OpenVINO lists GPU.0, GPU.1 ...; plain "GPU" still means GPU.0.
    for base in ("GPU", "NPU"):
        first = infos.get(f"ov:{base}.0")
        if first is not None and f"ov:{base}" not in infos:
            infos[f"ov:{base}"] = TargetInfo(
                Target("ov", base),
                True,
                first.device_name,
                first.precisions,
                version,
                "available",
            )
    if devices:
        infos["ov:AUTO"] = TargetInfo(
            Target("ov", "AUTO"),
            True,
            f"AUTO (picks among {', '.join(devices)})",
            (),
            version,
            "available",
        )
    for name in standard:
        if name not in infos:
            infos[name] = _absent(name, "not in openvino available_devices", version)
    return list(infos.values())


def _detect_litert() -> list[TargetInfo]:
    """``litert:cpu`` when ``ai_edge_litert``'s interpreter loads (its native library included)."""
    from importlib import metadata

    try:
        version: str | None = metadata.version("ai-edge-litert")
    except metadata.PackageNotFoundError:
        version = None
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as exc:
        status = "ai-edge-litert not installed" if version is None else one_line(exc)
        return [_absent("litert:cpu", status, version)]
    name = f"{describe_host().cpu_name} (XNNPACK)"
    return [TargetInfo(Target("litert", "cpu"), True, name, (), version, "available")]


@functools.cache
def ov_core() -> Any:
    """One OpenVINO Core per process: plugins load once, so compile times exclude plugin start."""
    import openvino

    return openvino.Core()


def _ov_device_properties(core: Any, device: str) -> tuple[str, tuple[str, ...]]:
    try:
        full_name = str(core.get_property(device, "FULL_DEVICE_NAME"))
    except Exception:
        full_name = device
    try:
        capabilities = core.get_property(device, "OPTIMIZATION_CAPABILITIES")
        precisions = tuple(str(p) for p in capabilities if _PRECISION.match(str(p)))
    except Exception:
        precisions = ()
    return full_name, precisions
