"""Value kinds: one place that knows how a parameter is read from a token, checked and printed.

The parser reads a token with a kind (and adds the position to any complaint); the layer and
recipe dataclasses check their own fields with the same kind, so a spec built in Python is held
to the same limits as one parsed from text, and the canonical text prints each value back the
one way that reads as the same value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from evo.errors import EvoError

__all__ = [
    "REQUIRED",
    "BadValue",
    "BoolKind",
    "EnumKind",
    "FloatKind",
    "IntKind",
    "Kind",
    "PaddingKind",
    "Param",
    "check_fields",
    "fmt_float",
]


class BadValue(Exception):
    """A token or value outside what a parameter accepts; the text says what it accepts."""


_INT_TEXT = re.compile(r"[0-9]+")


def fmt_float(value: float) -> str:
    """Shortest text that reads back as the same float; integral values without '.0'."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class IntKind:
    lo: int
    hi: int
    odd: bool = False

    def describe(self) -> str:
        kind = "an odd integer" if self.odd else "an integer"
        return f"{kind} from {self.lo} to {self.hi}"

    def read(self, kind: str, text: str) -> int:
        if kind != "num" or not _INT_TEXT.fullmatch(text):
            raise BadValue(self.describe())
        return self.check(int(text))

    def check(self, value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not self.lo <= value <= self.hi
            or (self.odd and value % 2 == 0)
        ):
            raise BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return str(value)


@dataclass(frozen=True)
class FloatKind:
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"a number in {left}{fmt_float(self.lo)}, {fmt_float(self.hi)}{right}"

    def read(self, kind: str, text: str) -> float:
        if kind != "num":
            raise BadValue(self.describe())
        return self.check(float(text))

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadValue(self.describe())
        value = float(value)
        ok = math.isfinite(value)
        ok = ok and (value > self.lo if self.lo_open else value >= self.lo)
        ok = ok and (value < self.hi if self.hi_open else value <= self.hi)
        if not ok:
            raise BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return fmt_float(float(value))


@dataclass(frozen=True)
class EnumKind:
    names: Mapping[str, str]  # accepted spelling -> canonical value

    def describe(self) -> str:
        return "one of " + ", ".join(sorted(set(self.names.values())))

    def read(self, kind: str, text: str) -> str:
        if text.lower() not in self.names:
            raise BadValue(self.describe())
        return self.names[text.lower()]

    def check(self, value: Any) -> str:
        if value not in set(self.names.values()):
            raise BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return str(value)


_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


@dataclass(frozen=True)
class BoolKind:
    def describe(self) -> str:
        return "on or off"

    def read(self, kind: str, text: str) -> bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise BadValue(self.describe())

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return "on" if value else "off"


@dataclass(frozen=True)
class PaddingKind:
    """'same' (kernel // 2), 'valid' (0) or an explicit integer."""

    hi: int = 15

    def describe(self) -> str:
        return f"same, valid or an integer from 0 to {self.hi}"

    def read(self, kind: str, text: str) -> int | str:
        if kind == "name" and text.lower() in ("same", "valid"):
            return text.lower()
        if kind == "num" and _INT_TEXT.fullmatch(text):
            return self.check(int(text))
        raise BadValue(self.describe())

    def check(self, value: Any) -> int | str:
        if value in ("same", "valid"):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= self.hi:
            raise BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return str(value)


Kind = IntKind | FloatKind | EnumKind | BoolKind | PaddingKind

REQUIRED = object()


@dataclass(frozen=True)
class Param:
    """One parameter of a layer or of the recipe: its field, spellings, kind and default."""

    field: str
    key: str  # canonical keyword in text
    kind: Kind
    default: Any = REQUIRED  # a value, REQUIRED, or a callable of the values read so far
    aliases: tuple[str, ...] = ()
    hide_default: bool = False  # omit from canonical text when equal to the default
    default_text: str = ""  # how a computed default reads in usage hints

    def spellings(self) -> tuple[str, ...]:
        return (self.key, self.field, *self.aliases)


def check_fields(obj: Any, params: tuple[Param, ...]) -> None:
    """Validate a dataclass's fields against their kinds; one line naming field and limits."""
    for param in params:
        try:
            param.kind.check(getattr(obj, param.field))
        except BadValue as exc:
            raise EvoError(
                f"{type(obj).__name__}.{param.field} must be {exc}, "
                f"got {getattr(obj, param.field)!r}"
            ) from None
