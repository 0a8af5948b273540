"""Objective names and hard limits, defined once for every command.

An objective is a name the evaluation reports a number for: ``error`` (1 - validation accuracy),
``params``, ``macs``, ``onnx_bytes``, the microcontroller budgets ``arena_bytes`` (TensorFlow
Lite Micro's tensor arena) and ``flash_bytes`` (the int8 ``.tflite``), both estimated during a
search (``evo.arch.mcu``), and ``latency:<target>`` (ms). A constraint is written
``NAME(<=|<|>=|>)NUMBER[UNIT]``: ``k``/``M`` for counts, ``kB``/``MB`` (10^3, 10^6) or
``KiB``/``MiB`` (2^10, 2^20) for bytes, ``us``/``ms``/``s`` for latency, ``%`` for error;
values are stored in base units (counts, bytes, ms, fraction).

Violation is relative (``value / limit - 1``), so a network 10 % over its parameter budget and
one 10 % over its latency budget are equally infeasible, whatever their units.

A search parses its strings once, through ``SearchConfig.objective_specs`` and
``constraint_specs``; everything after that passes the typed values on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evo.errors import EvoError

_BYTES = ("onnx_bytes", "arena_bytes", "flash_bytes")
_FIXED = ("error", "params", "macs", *_BYTES)
_UNITS = {
    "count": {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9},
    "bytes": {"": 1.0, "B": 1.0, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9,
              "KiB": 2.0**10, "kiB": 2.0**10, "MiB": 2.0**20},
    "ms": {"": 1.0, "us": 1e-3, "ms": 1.0, "s": 1e3},
    "fraction": {"": 1.0, "%": 1e-2},
}
_CONSTRAINT = re.compile(
    r"^\s*(?P<name>[A-Za-z_][\w.:]*?)\s*(?P<op><=|>=|<|>)\s*"
    r"(?P<num>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z%]*)\s*$"
)


def objective_kind(name: str) -> str:
    """The unit family of an objective; raises ``EvoError`` for unknown names."""
    if name == "error":
        return "fraction"
    if name in ("params", "macs"):
        return "count"
    if name in _BYTES:
        return "bytes"
    if name.startswith("latency:") and len(name) > len("latency:"):
        return "ms"
    raise EvoError(
        f"unknown objective {name!r}",
        f"use one of {', '.join(_FIXED)} or latency:<target> (e.g. latency:ov:CPU)",
    )


def parse_objectives(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"error,params"`` -> ``("error", "params")``, validated, at least two, no repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(_normalise_name(n.strip()) for n in items if n.strip())
    for name in names:
        objective_kind(name)
    if len(names) < 2 or len(set(names)) != len(names):
        raise EvoError(
            f"objectives {','.join(names) or '(none)'}: need two or more distinct names",
            "e.g. --objectives error,params",
        )
    return names


def _normalise_name(name: str) -> str:
    """``LATENCY:OV:cpu`` -> ``latency:ov:CPU``: one spelling per target, checked at once."""
    if name.lower().startswith("latency:") and len(name) > len("latency:"):
        from hardware.errors import HardwareError
        from hardware.targets import parse_target

        try:
            return "latency:" + parse_target(name.split(":", 1)[1]).name
        except HardwareError as exc:
            raise EvoError(f"objective {name!r}: {exc.message}", exc.hint) from None
    return name


@dataclass(frozen=True)
class Constraint:
    """A hard limit on one objective, in base units."""

    name: str
    op: str
    limit: float
    text: str

    def violation(self, value: float | None) -> float:
        """0 when satisfied, else the relative amount by which the limit is missed."""
        if value is None:
            return 1.0
        scale = abs(self.limit) if self.limit else 1.0
        if self.op in ("<=", "<"):
            over = value - self.limit
            if over < 0 or (over == 0 and self.op == "<="):
                return 0.0
        else:
            over = self.limit - value
            if over < 0 or (over == 0 and self.op == ">="):
                return 0.0
        return max(over, 1e-12) / scale

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "op": self.op, "limit": self.limit, "text": self.text}


def parse_constraint(text: str) -> Constraint:
    """``"params<=200k"`` -> Constraint('params', '<=', 200000.0)."""
    m = _CONSTRAINT.match(text)
    hint = "write NAME(<=|<|>=|>)NUMBER[UNIT], e.g. params<=2e5, macs<=50M, latency:ov:CPU<=2ms"
    if not m:
        raise EvoError(f"constraint {text!r} is not NAME<=NUMBER[UNIT]", hint)
    name = _normalise_name(m.group("name"))
    kind = objective_kind(name)
    unit = m.group("unit")
    factors = _UNITS[kind]
    if unit not in factors:
        allowed = ", ".join(u for u in factors if u) or "none"
        raise EvoError(f"constraint {text!r}: unit {unit!r} does not fit {name}",
                       f"units for {name}: {allowed}")
    return Constraint(name, m.group("op"), float(m.group("num")) * factors[unit], text.strip())


def total_violation(constraints: tuple[Constraint, ...], values: dict[str, float]) -> float:
    return sum(c.violation(values.get(c.name)) for c in constraints)
