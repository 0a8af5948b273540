"""The budget of ``evo pick``: latency, size on disk and accuracy limits in evo's units.

Why apart from the choosing: the same parse and the same arithmetic of a miss serve the table,
the "nothing fits" message and ``--json``, and the units are those of every other evo limit
(``--constraint``): ``kB``/``MB`` are 10^3/10^6 bytes, ``us``/``ms``/``s`` for time, accuracy a
fraction or a percentage. The values are parsed by :func:`evo.moo.objectives.parse_constraint`,
so ``2ms`` or ``50kB`` mean here what they mean in a search, and a miss is relative
(``value / limit - 1``) exactly as a constraint violation is, so a candidate 10 % over its
latency limit and one 10 % over its size limit are equally close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evo.errors import EvoError
from evo.moo.objectives import Constraint, parse_constraint

# What each option limits: the candidate field, the unit family, the constraint name whose
# units it takes (only the units are used), the operator, and how a bad value is described.
_OPTIONS = {
    "--max-latency": ("median_ms", "ms", "latency:ort:cpu", "<=", "a time",
                      "write e.g. 2ms, 500us or 0.002s"),
    "--max-bytes": ("size_bytes", "bytes", "onnx_bytes", "<=", "a size",
                    "write e.g. 50kB (kB = 10^3 bytes), 1.5MB or 50000"),
    "--min-accuracy": ("test_accuracy", "fraction", "error", ">=", "an accuracy",
                       "write a fraction or a percentage, e.g. 0.9 or 90%"),
}


def show_value(kind: str, value: float) -> str:
    """A value as the messages print it: ``2.31 ms``, ``58.43 kB``, ``89.20 %``."""
    if kind == "ms":
        return f"{value:.4g} ms"
    if kind == "bytes":
        if value >= 1e6:
            return f"{value / 1e6:.4g} MB"
        return f"{value / 1e3:.4g} kB" if value >= 1e3 else f"{value:.0f} bytes"
    return f"{value * 100:.2f} %"


def show_margin(kind: str, value: float) -> str:
    """A distance from a limit: ``0.31 ms``, ``8.432 kB``, ``1.90 points``."""
    return f"{value * 100:.2f} points" if kind == "fraction" else show_value(kind, value)


@dataclass(frozen=True)
class Miss:
    """How far one candidate is from one limit (over a maximum, under a minimum)."""

    option: str
    kind: str
    value: float
    limit: float
    relative: float  # value / limit - 1 (or its mirror for a minimum): comparable across units

    @property
    def margin(self) -> float:
        return abs(self.value - self.limit)

    def text(self) -> str:
        """``2.31 ms, 0.31 ms over --max-latency 2 ms``."""
        side = "under" if self.option.startswith("--min") else "over"
        return (f"{show_value(self.kind, self.value)}, {show_margin(self.kind, self.margin)} "
                f"{side} {self.option} {show_value(self.kind, self.limit)}")

    def to_dict(self) -> dict[str, Any]:
        return {"option": self.option, "value": self.value, "limit": self.limit,
                "margin": self.margin, "relative": self.relative, "text": self.text()}


@dataclass(frozen=True)
class Limit:
    """One limit of the budget, in base units (ms, bytes, fraction)."""

    option: str
    field: str  # the candidate value it limits: median_ms, size_bytes, test_accuracy
    kind: str  # ms, bytes, fraction
    constraint: Constraint

    @property
    def limit(self) -> float:
        return self.constraint.limit

    def text(self) -> str:
        return f"{self.option} {show_value(self.kind, self.limit)}"

    def miss(self, value: float) -> Miss | None:
        """None when ``value`` meets the limit (a value equal to it does)."""
        relative = self.constraint.violation(value)
        if relative == 0.0:
            return None
        return Miss(self.option, self.kind, value, self.limit, relative)


@dataclass(frozen=True)
class Budget:
    """The limits given (any of them may be absent) and the formats allowed (None: all)."""

    limits: tuple[Limit, ...] = ()
    formats: tuple[str, ...] | None = None

    def limit(self, field: str) -> Limit | None:
        return next((lim for lim in self.limits if lim.field == field), None)

    def text(self) -> str:
        """``--max-latency 2 ms, --max-bytes 50 kB`` (``no limits`` when none was given)."""
        parts = [lim.text() for lim in self.limits]
        if self.formats is not None:
            parts.append(f"--format {','.join(self.formats)}")
        return ", ".join(parts) or "no limits"

    def to_dict(self) -> dict[str, Any]:
        values = {lim.field: lim.limit for lim in self.limits}
        return {"max_latency_ms": values.get("median_ms"), "max_bytes": values.get("size_bytes"),
                "min_accuracy": values.get("test_accuracy"),
                "formats": None if self.formats is None else list(self.formats)}


def parse_limit(option: str, text: str) -> Limit:
    """``("--max-latency", "2ms")`` -> a Limit of 2.0 ms; bad or non-positive text is one
    ``EvoError`` naming the option."""
    field, kind, name, op, what, hint = _OPTIONS[option]
    shown = str(text).strip()
    if not shown or any(c in shown for c in "<>="):
        raise EvoError(f"{option} {shown!r} is not {what}", hint)
    try:
        constraint = parse_constraint(f"{name}{op}{shown}")
    except EvoError:
        raise EvoError(f"{option} {shown!r} is not {what}", hint) from None
    if constraint.limit <= 0:
        raise EvoError(f"{option} {shown!r}: must be more than 0", hint)
    if kind == "fraction" and constraint.limit > 1:
        raise EvoError(f"{option} {shown!r}: an accuracy is at most 1 (100%)", hint)
    return Limit(option, field, kind, constraint)


def parse_budget(max_latency: str | None = None, max_bytes: str | None = None,
                 min_accuracy: str | None = None, formats: str | None = None) -> Budget:
    """The budget of the command line, each value checked; ``formats`` is a comma-separated
    list of export format names (``ir-int8,onnx-int8``)."""
    limits = tuple(parse_limit(option, text) for option, text in (
        ("--max-latency", max_latency), ("--max-bytes", max_bytes),
        ("--min-accuracy", min_accuracy)) if text is not None)
    chosen = None
    if formats is not None:
        from export.errors import ExportError
        from export.names import parse_formats

        try:
            chosen = parse_formats(formats)
        except ExportError as exc:
            raise EvoError(f"--format: {exc.message}", exc.hint) from None
    return Budget(limits, chosen)
