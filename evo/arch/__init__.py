"""The architecture language: phenotype text -> typed, immutable network + training recipe.

A grammar's phenotypes are sentences of this language, so the language is the contract between
search spaces and model building. Two things shape it:

* PonyGE2 keeps the literal spaces of a grammar, so whitespace between tokens is free and a
  phenotype such as ``conv( 16 , k= 3 )  bn`` means the same as ``conv(16, k=3) bn``.
* The evaluation cache is keyed by the *resolved* network (the one that will actually be built
  for one input shape), so :func:`resolve` normalises everything that does not change the
  function: defaults are filled, a stride with no effect is written as the default, implicit
  flattening is made explicit, and downsampling that would shrink a map below 1x1 is dropped
  (and recorded) instead of rejecting the phenotype. Every phenotype that parses builds for
  every input size.

The full syntax and the resolution rules are documented in ``docs/architecture-language.md``.
Stdlib only: the GPU check imports this on machines that have nothing but PyTorch.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from evo.errors import EvoError

__all__ = [
    "ACTIVATIONS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Activation",
    "ArchParseError",
    "ArchSpec",
    "BatchNorm",
    "Conv",
    "DWSep",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAvgPool",
    "InvertedResidual",
    "Layer",
    "Pool",
    "Recipe",
    "ResolvedArch",
    "ResolvedLayer",
    "default_lr",
    "describe_recipe",
    "ir_hidden_channels",
    "layer_text",
    "parse_arch",
    "recipe_text",
    "resolve",
    "se_channels",
    "spec_to_text",
]


class ArchParseError(EvoError):
    """Phenotype text that is not a valid architecture; says which token, where, and why."""

    def __init__(self, message: str, hint: str = "", *, token: str = "", line: int = 0,
                 col: int = 0) -> None:
        super().__init__(message, hint)
        self.token = token
        self.line = line
        self.col = col


# --------------------------------------------------------------------------------------------
# Value kinds: one place that knows how a parameter is read from a token, checked and printed,
# shared by the parser (which adds the position) and the dataclasses' own validation.


class _BadValue(Exception):
    """A token or value outside what a parameter accepts; the text says what it accepts."""


_INT_TEXT = re.compile(r"[0-9]+")


def _fmt_float(value: float) -> str:
    """Shortest text that reads back as the same float; integral values without '.0'."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


@dataclass(frozen=True)
class _Int:
    lo: int
    hi: int
    odd: bool = False

    def describe(self) -> str:
        kind = "an odd integer" if self.odd else "an integer"
        return f"{kind} from {self.lo} to {self.hi}"

    def read(self, kind: str, text: str) -> int:
        if kind != "num" or not _INT_TEXT.fullmatch(text):
            raise _BadValue(self.describe())
        return self.check(int(text))

    def check(self, value: Any) -> int:
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not self.lo <= value <= self.hi
            or (self.odd and value % 2 == 0)
        ):
            raise _BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return str(value)


@dataclass(frozen=True)
class _Float:
    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        left = "(" if self.lo_open else "["
        right = ")" if self.hi_open else "]"
        return f"a number in {left}{_fmt_float(self.lo)}, {_fmt_float(self.hi)}{right}"

    def read(self, kind: str, text: str) -> float:
        if kind != "num":
            raise _BadValue(self.describe())
        return self.check(float(text))

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _BadValue(self.describe())
        value = float(value)
        ok = math.isfinite(value)
        ok = ok and (value > self.lo if self.lo_open else value >= self.lo)
        ok = ok and (value < self.hi if self.hi_open else value <= self.hi)
        if not ok:
            raise _BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return _fmt_float(float(value))


@dataclass(frozen=True)
class _Enum:
    names: Mapping[str, str]  # accepted spelling -> canonical value

    def describe(self) -> str:
        return "one of " + ", ".join(sorted(set(self.names.values())))

    def read(self, kind: str, text: str) -> str:
        if text.lower() not in self.names:
            raise _BadValue(self.describe())
        return self.names[text.lower()]

    def check(self, value: Any) -> str:
        if value not in set(self.names.values()):
            raise _BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return str(value)


_TRUE = ("on", "true", "yes", "1")
_FALSE = ("off", "false", "no", "0")


@dataclass(frozen=True)
class _Bool:
    def describe(self) -> str:
        return "on or off"

    def read(self, kind: str, text: str) -> bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _BadValue(self.describe())

    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return "on" if value else "off"


@dataclass(frozen=True)
class _Padding:
    """'same' (kernel // 2), 'valid' (0) or an explicit integer."""

    hi: int = 15

    def describe(self) -> str:
        return f"same, valid or an integer from 0 to {self.hi}"

    def read(self, kind: str, text: str) -> int | str:
        if kind == "name" and text.lower() in ("same", "valid"):
            return text.lower()
        if kind == "num" and _INT_TEXT.fullmatch(text):
            return self.check(int(text))
        raise _BadValue(self.describe())

    def check(self, value: Any) -> int | str:
        if value in ("same", "valid"):
            return value
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= self.hi:
            raise _BadValue(self.describe())
        return value

    def show(self, value: Any) -> str:
        return str(value)


_Kind = _Int | _Float | _Enum | _Bool | _Padding

ACTIVATIONS = ("relu", "relu6", "hardswish", "leakyrelu")
_ACT_NAMES = {
    "relu": "relu",
    "relu6": "relu6",
    "hardswish": "hardswish",
    "hswish": "hardswish",
    "leakyrelu": "leakyrelu",
    "lrelu": "leakyrelu",
    "leaky_relu": "leakyrelu",
}
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "cosine", "step")

# Learning rates that trained small CNNs (with and without batch norm) on 8x8 digits to 90-99 %
# test accuracy in 5 epochs at batch 32 with a cosine schedule; a recipe that names an
# optimizer but no learning rate gets that optimizer's entry.
_DEFAULT_LR = {
    "sgd": 0.2,
    "momentum": 0.1,
    "nesterov": 0.1,
    "adam": 0.01,
    "adamw": 0.01,
    "rmsprop": 0.003,
}


def default_lr(optimizer: str) -> float:
    """The learning rate a recipe gets when it names ``optimizer`` but no rate."""
    return _DEFAULT_LR[optimizer]


_REQUIRED = object()


@dataclass(frozen=True)
class _Param:
    """One parameter of a layer or of the recipe: its field, spellings, kind and default."""

    field: str
    key: str  # canonical keyword in text
    kind: _Kind
    default: Any = _REQUIRED  # a value, _REQUIRED, or a callable of the values read so far
    aliases: tuple[str, ...] = ()
    hide_default: bool = False  # omit from canonical text when equal to the default
    default_text: str = ""  # how a computed default reads in usage hints

    def spellings(self) -> tuple[str, ...]:
        return (self.key, self.field, *self.aliases)


# --------------------------------------------------------------------------------------------
# Layers. Plain frozen dataclasses; each validates itself so a spec built in Python is as
# trustworthy as one parsed from text.


def _check_fields(obj: Any, params: tuple[_Param, ...]) -> None:
    for param in params:
        try:
            param.kind.check(getattr(obj, param.field))
        except _BadValue as exc:
            raise EvoError(
                f"{type(obj).__name__}.{param.field} must be {exc}, "
                f"got {getattr(obj, param.field)!r}"
            ) from None


@dataclass(frozen=True)
class Conv:
    """Plain convolution. No BN or activation inside: write them as separate layers."""

    filters: int
    kernel: int = 3
    stride: int = 1
    padding: int | str = "same"

    def __post_init__(self) -> None:
        _check_fields(self, _CONV_PARAMS)


@dataclass(frozen=True)
class DWSep:
    """MobileNetV1 block: depthwise kxk -> BN -> act -> pointwise 1x1 -> BN -> act.

    ``repeat`` stacks that many identical blocks, the first with ``stride`` and the others with
    stride 1 (the ``n`` of the MobileNet tables); resolution expands it.
    """

    filters: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu"
    repeat: int = 1

    def __post_init__(self) -> None:
        _check_fields(self, _DWSEP_PARAMS)


@dataclass(frozen=True)
class InvertedResidual:
    """MobileNetV2 block: [1x1 expand -> BN -> act] -> depthwise kxk -> BN -> act -> [SE] ->
    1x1 project -> BN, plus the input when input and output shapes match.

    The expansion stage is absent when ``expansion`` is 1, as in MobileNetV2's first block.
    """

    filters: int
    expansion: float = 6.0
    kernel: int = 3
    stride: int = 1
    se: bool = False
    act: str = "relu6"
    repeat: int = 1

    def __post_init__(self) -> None:
        _check_fields(self, _IR_PARAMS)
        object.__setattr__(self, "expansion", float(self.expansion))


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation over channels (2-D on feature maps, 1-D on vectors)."""


@dataclass(frozen=True)
class Activation:
    """relu, relu6, hardswish or leakyrelu (``slope`` is used by leakyrelu only)."""

    kind: str
    slope: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in ACTIVATIONS:
            raise EvoError(f"Activation.kind must be one of {', '.join(ACTIVATIONS)}, "
                           f"got {self.kind!r}")
        if self.kind != "leakyrelu":
            object.__setattr__(self, "slope", 0.01)  # unused: one value keeps equality simple
        _check_fields(self, _LEAKY_PARAMS)
        object.__setattr__(self, "slope", float(self.slope))


@dataclass(frozen=True)
class Pool:
    """Max or average pooling without padding; the stride defaults to the window size."""

    kind: str
    kernel: int = 2
    stride: int | None = None  # None: the window size

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel)
        if self.kind not in ("max", "avg"):
            raise EvoError(f"Pool.kind must be max or avg, got {self.kind!r}")
        _check_fields(self, _POOL_PARAMS)


@dataclass(frozen=True)
class GlobalAvgPool:
    """Average over the whole feature map: C x H x W -> a vector of C features."""


@dataclass(frozen=True)
class Flatten:
    """C x H x W -> a vector of C*H*W features."""


@dataclass(frozen=True)
class Dropout:
    """Element-wise dropout with probability ``p`` (train mode only)."""

    p: float

    def __post_init__(self) -> None:
        _check_fields(self, _DROPOUT_PARAMS)
        object.__setattr__(self, "p", float(self.p))


@dataclass(frozen=True)
class Dense:
    """Fully connected layer; the last one of a resolved network is the classifier."""

    units: int

    def __post_init__(self) -> None:
        _check_fields(self, _DENSE_PARAMS)


Layer = (
    Conv | DWSep | InvertedResidual | BatchNorm | Activation | Pool | GlobalAvgPool | Flatten
    | Dropout | Dense
)

_FILTERS = _Param("filters", "filters", _Int(1, 4096), aliases=("c", "out", "channels"))
_KERNEL = _Param("kernel", "k", _Int(1, 15), 3)
_ODD_KERNEL = _Param("kernel", "k", _Int(1, 15, odd=True), 3)
_STRIDE = _Param("stride", "s", _Int(1, 4), 1)
_REPEAT = _Param("repeat", "n", _Int(1, 16), 1, aliases=("repeats",), hide_default=True)
_BLOCK_ACT = _Enum(_ACT_NAMES)

_CONV_PARAMS = (
    _FILTERS,
    _KERNEL,
    _STRIDE,
    _Param("padding", "p", _Padding(), "same", aliases=("pad",)),
)
_DWSEP_PARAMS = (
    _FILTERS,
    _ODD_KERNEL,
    _STRIDE,
    _Param("act", "act", _BLOCK_ACT, "relu", aliases=("activation",)),
    _REPEAT,
)
_IR_PARAMS = (
    _FILTERS,
    _Param("expansion", "e", _Float(1, 10), 6.0, aliases=("t", "expand")),
    _ODD_KERNEL,
    _STRIDE,
    _Param("se", "se", _Bool(), False),
    _Param("act", "act", _BLOCK_ACT, "relu6", aliases=("activation",)),
    _REPEAT,
)
_LEAKY_PARAMS = (_Param("slope", "slope", _Float(0, 1), 0.01, aliases=("alpha",)),)
_POOL_PARAMS = (
    _Param("kernel", "k", _Int(2, 8), 2, aliases=("size",)),
    _Param("stride", "s", _Int(1, 8), lambda values: values["kernel"], default_text="k"),
)
_DROPOUT_PARAMS = (_Param("p", "p", _Float(0, 1, hi_open=True), aliases=("rate",)),)
_DENSE_PARAMS = (_Param("units", "units", _Int(1, 65536), aliases=("n", "features")),)


@dataclass(frozen=True)
class _LayerSyntax:
    """How one layer name reads: the class it builds, fixed fields, parameters, shape role."""

    name: str
    cls: type
    params: tuple[_Param, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    needs_map: bool = False  # only valid on a feature map (before gap/flatten/dense)
    makes_vector: bool = False


_SYNTAX = (
    _LayerSyntax("conv", Conv, _CONV_PARAMS, needs_map=True),
    _LayerSyntax("dwsep", DWSep, _DWSEP_PARAMS, needs_map=True),
    _LayerSyntax("ir", InvertedResidual, _IR_PARAMS, needs_map=True),
    _LayerSyntax("bn", BatchNorm),
    _LayerSyntax("relu", Activation, fixed=(("kind", "relu"),)),
    _LayerSyntax("relu6", Activation, fixed=(("kind", "relu6"),)),
    _LayerSyntax("hardswish", Activation, fixed=(("kind", "hardswish"),)),
    _LayerSyntax("leakyrelu", Activation, _LEAKY_PARAMS, fixed=(("kind", "leakyrelu"),)),
    _LayerSyntax("maxpool", Pool, _POOL_PARAMS, fixed=(("kind", "max"),), needs_map=True),
    _LayerSyntax("avgpool", Pool, _POOL_PARAMS, fixed=(("kind", "avg"),), needs_map=True),
    _LayerSyntax("gap", GlobalAvgPool, needs_map=True, makes_vector=True),
    _LayerSyntax("flatten", Flatten, needs_map=True, makes_vector=True),
    _LayerSyntax("dropout", Dropout, _DROPOUT_PARAMS),
    _LayerSyntax("dense", Dense, _DENSE_PARAMS, makes_vector=True),
)
_SYNTAX_BY_NAME = {s.name: s for s in _SYNTAX}
_LAYER_ALIASES = {
    "conv2d": "conv",
    "sepconv": "dwsep",
    "mbconv": "ir",
    "batchnorm": "bn",
    "hswish": "hardswish",
    "lrelu": "leakyrelu",
    "leaky_relu": "leakyrelu",
    "globalavgpool": "gap",
    "fc": "dense",
    "linear": "dense",
}


def _syntax_of(layer: Layer) -> _LayerSyntax:
    for syntax in _SYNTAX:
        if type(layer) is syntax.cls and all(getattr(layer, k) == v for k, v in syntax.fixed):
            return syntax
    raise TypeError(f"not a layer: {layer!r}")


def layer_text(layer: Layer) -> str:
    """Canonical text of one layer: first parameter positional, the others as ``key=value``."""
    syntax = _syntax_of(layer)
    if not syntax.params:
        return syntax.name
    parts = []
    for i, param in enumerate(syntax.params):
        value = getattr(layer, param.field)
        if param.hide_default and value == param.default:
            continue
        shown = param.kind.show(value)
        parts.append(shown if i == 0 else f"{param.key}={shown}")
    return f"{syntax.name}({', '.join(parts)})"


# --------------------------------------------------------------------------------------------
# The training recipe.

_RECIPE_PARAMS = (
    _Param("optimizer", "optimizer", _Enum({n: n for n in OPTIMIZERS}), "adam",
           aliases=("opt",)),
    _Param("lr", "lr", _Float(0, 1, lo_open=True), lambda values: _DEFAULT_LR[values["optimizer"]],
           aliases=("learning_rate",), default_text="<per optimizer>"),
    _Param("batch_size", "batch_size", _Int(1, 4096), 32, aliases=("batch", "bs")),
    _Param("weight_decay", "weight_decay", _Float(0, 0.1), 0.0, aliases=("wd",)),
    _Param("epochs_mult", "epochs_mult", _Float(0, 10, lo_open=True), 1.0, aliases=("epochs",)),
    _Param("schedule", "schedule", _Enum({n: n for n in SCHEDULES}), "cosine",
           aliases=("sched",)),
    _Param("label_smoothing", "label_smoothing", _Float(0, 0.5), 0.0,
           aliases=("smoothing", "ls")),
    _Param("augment", "augment", _Bool(), False, aliases=("aug",)),
)


@dataclass(frozen=True)
class Recipe:
    """How a candidate is trained. The defaults train a small CNN on 8x8 digits in a few epochs.

    ``lr=None`` picks the optimizer's default rate (see :func:`default_lr`), so a recipe that
    only switches the optimizer stays sensible; after construction ``lr`` is always a float.
    ``momentum`` and ``nesterov`` are SGD with momentum 0.9 (plain and Nesterov);
    ``epochs_mult`` scales the trainer's epoch budget; ``schedule`` is the learning-rate
    schedule; ``augment`` switches the dataset's light augmentation on.
    """

    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int = 32
    weight_decay: float = 0.0
    epochs_mult: float = 1.0
    schedule: str = "cosine"
    label_smoothing: float = 0.0
    augment: bool = False

    def __post_init__(self) -> None:
        _check_fields(self, _RECIPE_PARAMS[:1])
        if self.lr is None:
            object.__setattr__(self, "lr", _DEFAULT_LR[self.optimizer])
        _check_fields(self, _RECIPE_PARAMS[1:])
        for name in ("lr", "weight_decay", "epochs_mult", "label_smoothing"):
            object.__setattr__(self, name, float(getattr(self, name)))


def recipe_text(recipe: Recipe) -> str:
    """Every recipe field as ``key=value`` in a fixed order (defaults included)."""
    return " ".join(
        f"{p.key}={p.kind.show(getattr(recipe, p.field))}" for p in _RECIPE_PARAMS
    )


# --------------------------------------------------------------------------------------------
# The unresolved spec and its text.


@dataclass(frozen=True)
class ArchSpec:
    """A parsed phenotype: layers as written (defaults filled) and the training recipe."""

    layers: tuple[Layer, ...]
    recipe: Recipe = field(default_factory=Recipe)

    def text(self) -> str:
        return spec_to_text(self)


def spec_to_text(spec: ArchSpec) -> str:
    """Canonical text of a spec as written (not yet resolved for an input); parseable."""
    network = " ".join(layer_text(layer) for layer in spec.layers)
    return f"{network} | {recipe_text(spec.recipe)}"


# --------------------------------------------------------------------------------------------
# Tokens and the parser.

_TOKEN = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<comment>#[^\n]*)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<punct>[(),=|])",
    re.ASCII,
)


# Every number and name in the language fits in a few characters; longer tokens are refused
# before any conversion (int() of a 5,000-digit text raises ValueError), and so are texts far
# longer than any phenotype (a grammar's phenotypes are a few hundred characters).
MAX_TOKEN_CHARS = 32
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True)
class _Token:
    kind: str  # num, name, punct, end
    text: str
    pos: int


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.i = 0

    # -- errors ------------------------------------------------------------------------------

    def _where(self, pos: int) -> tuple[int, int, str]:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        where = f"line {line}, column {col}" if "\n" in self.text.strip() else f"column {col}"
        return line, col, where

    def error(self, token: _Token, problem: str, hint: str = "") -> ArchParseError:
        line, col, where = self._where(token.pos)
        text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
        shown = "end of text" if token.kind == "end" else repr(text)
        return ArchParseError(
            f"{problem} at {where}: {shown}", hint, token=token.text, line=line, col=col
        )

    # -- tokens ------------------------------------------------------------------------------

    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        pos = 0
        if len(text) > MAX_TEXT_CHARS:
            raise ArchParseError(
                f"architecture text is {len(text):,} characters; the limit is "
                f"{MAX_TEXT_CHARS:,}", "a network is a few hundred characters of layers")
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                bad = _Token("bad", text[pos], pos)
                raise self.error(
                    bad,
                    "unexpected character",
                    "the language uses names, numbers, ( ) , = | and whitespace only",
                )
            kind = m.lastgroup or ""
            if kind in ("num", "name") and m.end() - pos > MAX_TOKEN_CHARS:
                raise self.error(
                    _Token(kind, m.group(), pos),
                    f"{'number' if kind == 'num' else 'name'} of {m.end() - pos:,} characters "
                    f"(the limit is {MAX_TOKEN_CHARS})",
                    "numbers in the language are small: filters up to 4096, dense units up to "
                    "65536, rates like 0.001 or 1e-3" if kind == "num" else
                    "names are short words such as conv, dense or optimizer",
                )
            if kind not in ("ws", "comment"):
                tokens.append(_Token(kind, m.group(), pos))
            pos = m.end()
        tokens.append(_Token("end", "", len(text)))
        return tokens

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token.kind != "end":
            self.i += 1
        return token

    def expect(self, text: str, context: str) -> _Token:
        token = self.take()
        if token.text != text or token.kind != "punct":
            raise self.error(token, f"expected '{text}' {context}")
        return token

    # -- grammar -----------------------------------------------------------------------------

    def parse(self) -> ArchSpec:
        layers: list[Layer] = []
        on_map = True
        vector_maker = ""
        while True:
            token = self.peek()
            if token.kind == "end" or (token.kind == "punct" and token.text == "|"):
                break
            layer, syntax = self.layer()
            if syntax.needs_map and not on_map:
                raise self.error(
                    token,
                    f"{syntax.name} needs a feature map but follows {vector_maker}",
                    "convolutions and pooling go before gap/flatten/dense",
                )
            if syntax.makes_vector and on_map:
                on_map, vector_maker = False, syntax.name
            layers.append(layer)
        if not layers:
            raise self.error(self.peek(), "expected a layer", "a network needs at least one layer")
        recipe = Recipe()
        if self.peek().kind == "punct" and self.peek().text == "|":
            self.take()
            recipe = self.recipe()  # reads to the end of the text
        return ArchSpec(tuple(layers), recipe)

    def layer(self) -> tuple[Layer, _LayerSyntax]:
        token = self.take()
        if token.kind != "name":
            raise self.error(token, "expected a layer name", _known_layers_hint())
        name = token.text.lower()
        syntax = _SYNTAX_BY_NAME.get(_LAYER_ALIASES.get(name, name))
        if syntax is None:
            raise self.error(token, "unknown layer", _known_layers_hint())
        args: list[tuple[_Token | None, _Token]] = []  # (keyword or None, value)
        nxt = self.peek()
        if nxt.kind == "punct" and nxt.text == "(":
            self.take()
            args = self.arguments(syntax)
        values = self.bind(syntax, token, args)
        layer = syntax.cls(**dict(syntax.fixed), **values)
        return layer, syntax

    def arguments(self, syntax: _LayerSyntax) -> list[tuple[_Token | None, _Token]]:
        args: list[tuple[_Token | None, _Token]] = []
        if self.peek().kind == "punct" and self.peek().text == ")":
            self.take()
            return args
        while True:
            first = self.take()
            if first.kind not in ("num", "name"):
                raise self.error(first, f"expected a value for {syntax.name}")
            nxt = self.peek()
            if first.kind == "name" and nxt.kind == "punct" and nxt.text == "=":
                self.take()
                value = self.take()
                if value.kind not in ("num", "name"):
                    raise self.error(value, f"expected a value after '{first.text}='")
                args.append((first, value))
            else:
                args.append((None, first))
            sep = self.take()
            if sep.kind == "punct" and sep.text == ")":
                return args
            if not (sep.kind == "punct" and sep.text == ","):
                raise self.error(sep, f"expected ',' or ')' in {syntax.name}(...)")

    def bind(
        self, syntax: _LayerSyntax, name_token: _Token, args: list[tuple[_Token | None, _Token]]
    ) -> dict[str, Any]:
        """Match positional and keyword arguments to parameters, Python-style."""
        given: dict[str, tuple[_Param, _Token]] = {}
        seen_keyword = False
        for position, (keyword, value) in enumerate(args):
            if keyword is None:
                if seen_keyword:
                    raise self.error(value, "positional argument after a keyword argument")
                if position >= len(syntax.params):
                    raise self.error(
                        value,
                        f"too many arguments for {syntax.name}",
                        _signature_hint(syntax),
                    )
                param = syntax.params[position]
                token = value
            else:
                seen_keyword = True
                param = _find_param(syntax.params, keyword.text.lower())
                if param is None:
                    raise self.error(
                        keyword, f"{syntax.name} has no parameter", _signature_hint(syntax)
                    )
                token = keyword
            if param.field in given:
                raise self.error(token, f"{syntax.name} got {param.key} twice")
            given[param.field] = (param, value)
        values: dict[str, Any] = {}
        for param in syntax.params:
            if param.field in given:
                value = given[param.field][1]
                try:
                    values[param.field] = param.kind.read(value.kind, value.text)
                except _BadValue as exc:
                    raise self.error(
                        value, f"{syntax.name} {param.key} must be {exc}"
                    ) from None
            elif param.default is _REQUIRED:
                raise self.error(
                    name_token,
                    f"{syntax.name} needs {param.key}",
                    _signature_hint(syntax),
                )
            elif callable(param.default):
                values[param.field] = param.default(values)
            else:
                values[param.field] = param.default
        return values

    def recipe(self) -> Recipe:
        given: dict[str, Any] = {}
        while self.peek().kind != "end":
            key = self.take()
            if key.kind != "name":
                raise self.error(key, "expected a recipe setting such as lr=0.01",
                                 _recipe_hint())
            param = _find_param(_RECIPE_PARAMS, key.text.lower())
            if param is None:
                raise self.error(key, "unknown recipe setting", _recipe_hint())
            if param.field in given:
                raise self.error(key, f"recipe sets {param.key} twice")
            self.expect("=", f"after {key.text}")
            value = self.take()
            if value.kind not in ("num", "name"):
                raise self.error(value, f"expected a value for {param.key}")
            try:
                given[param.field] = param.kind.read(value.kind, value.text)
            except _BadValue as exc:
                raise self.error(value, f"{param.key} must be {exc}") from None
            nxt = self.peek()
            if nxt.kind == "punct" and nxt.text == ",":
                self.take()
        if not given:
            raise self.error(self.peek(), "expected a recipe setting after '|'", _recipe_hint())
        return Recipe(**given)


def _find_param(params: tuple[_Param, ...], spelling: str) -> _Param | None:
    for param in params:
        if spelling in param.spellings():
            return param
    return None


def _known_layers_hint() -> str:
    return "layers: " + ", ".join(s.name for s in _SYNTAX) + " (separate layers with spaces)"


def _signature_hint(syntax: _LayerSyntax) -> str:
    parts = []
    for param in syntax.params:
        if param.default is _REQUIRED:
            parts.append(param.key)
        elif callable(param.default):
            parts.append(f"{param.key}={param.default_text}")
        else:
            parts.append(f"{param.key}={param.kind.show(param.default)}")
    return f"usage: {syntax.name}({', '.join(parts)})"


def _recipe_hint() -> str:
    return "recipe settings: " + ", ".join(p.key for p in _RECIPE_PARAMS)


def parse_arch(text: str) -> ArchSpec:
    """Parse phenotype text; raises :class:`ArchParseError` naming the token and its column."""
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Resolution for one input shape.

Shape = tuple[int, ...]  # (C, H, W) on a feature map, (N,) on a vector


def ir_hidden_channels(in_channels: int, expansion: float) -> int:
    """Width of an inverted-residual block's depthwise stage."""
    if expansion == 1:
        return in_channels
    return max(1, math.floor(in_channels * expansion + 0.5))


def se_channels(channels: int) -> int:
    """Squeeze width of a squeeze-and-excitation unit (a quarter, as in MobileNetV3)."""
    return max(1, channels // 4)


@dataclass(frozen=True)
class ResolvedLayer:
    """One layer as it will be built: concrete parameters and the shapes around it.

    ``source`` is the 1-based position of the phenotype layer it comes from (0: inserted by
    resolution). ``bias`` is False for a conv or dense layer followed directly by batch norm
    (the norm's shift replaces it); ``residual`` marks an inverted-residual block whose input
    is added to its output.
    """

    layer: Layer
    in_shape: Shape
    out_shape: Shape
    source: int = 0
    bias: bool = True
    residual: bool = False

    @property
    def text(self) -> str:
        return layer_text(self.layer)

    @property
    def params(self) -> int:
        """Parameters of the module this layer builds (BN statistics excluded), counted
        without torch; tests hold it equal to ``evo.net.model.count_params`` of the built module."""
        layer, cin = self.layer, self.in_shape[0]
        if isinstance(layer, Conv):
            return cin * layer.filters * layer.kernel**2 + (layer.filters if self.bias else 0)
        if isinstance(layer, DWSep):
            f = layer.filters
            return cin * layer.kernel**2 + 2 * cin + cin * f + 2 * f
        if isinstance(layer, InvertedResidual):
            hidden = ir_hidden_channels(cin, layer.expansion)
            total = hidden * layer.kernel**2 + 2 * hidden + hidden * layer.filters
            total += 2 * layer.filters
            if layer.expansion != 1:
                total += cin * hidden + 2 * hidden
            if layer.se:
                squeeze = se_channels(hidden)
                total += 2 * hidden * squeeze + squeeze + hidden
            return total
        if isinstance(layer, BatchNorm):
            return 2 * cin
        if isinstance(layer, Dense):
            return cin * layer.units + (layer.units if self.bias else 0)
        return 0


@dataclass(frozen=True)
class ResolvedArch:
    """The network as it will be built for one input shape and class count, plus its recipe."""

    layers: tuple[ResolvedLayer, ...]
    recipe: Recipe
    input_shape: tuple[int, int, int]
    num_classes: int
    dropped: tuple[str, ...] = ()  # downsampling dropped or made no-op for this input
    notes: tuple[str, ...] = ()  # other normalisations (classifier width, no-op layers)

    def network_text(self) -> str:
        return " ".join(r.text for r in self.layers)

    def params(self) -> int:
        """Parameter count of the built network, without building it (no torch needed)."""
        return sum(r.params for r in self.layers)

    def canonical_text(self) -> str:
        """Network plus full recipe; parses again and resolves to itself (same input)."""
        return f"{self.network_text()} | {recipe_text(self.recipe)}"

    def key(self) -> str:
        """Evaluation-cache key: sha256 of the canonical text (stable across processes).

        The text does not name the input shape: the key identifies a network for one dataset;
        a cache shared between datasets must add the dataset to it.
        """
        return hashlib.sha256(self.canonical_text().encode("utf-8")).hexdigest()


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def resolve(spec: ArchSpec, input_shape: tuple[int, int, int], num_classes: int) -> ResolvedArch:
    """The network ``spec`` builds for ``input_shape`` (C, H, W) and ``num_classes`` outputs."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise EvoError(
            f"input shape must be three positive sizes (C, H, W), got {tuple(input_shape)}",
            "e.g. (1, 8, 8) for digits or (3, 32, 32) for CIFAR-10",
        )
    if int(num_classes) < 1:
        raise EvoError(f"number of classes must be at least 1, got {num_classes}")
    return _Resolver(shape, int(num_classes)).run(spec)


class _Resolver:
    """Walks the layers once, tracking the shape; collects notes as it normalises."""

    def __init__(self, input_shape: Shape, num_classes: int) -> None:
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.shape: Shape = input_shape
        self.out: list[ResolvedLayer] = []
        self.dropped: list[str] = []
        self.notes: list[str] = []

    def _dims(self) -> str:
        return "x".join(str(v) for v in self.shape[1:])

    def emit(self, layer: Layer, out_shape: Shape, source: int, residual: bool = False) -> None:
        self.out.append(ResolvedLayer(layer, self.shape, out_shape, source, residual=residual))
        self.shape = out_shape

    def run(self, spec: ArchSpec) -> ResolvedArch:
        for source, layer in enumerate(spec.layers, start=1):
            self.layer(layer, source)
        self.classifier()
        layers = self.biases()
        return ResolvedArch(
            tuple(layers),
            spec.recipe,
            (self.input_shape[0], self.input_shape[1], self.input_shape[2]),
            self.num_classes,
            tuple(self.dropped),
            tuple(self.notes),
        )

    def layer(self, layer: Layer, source: int) -> None:
        on_map = len(self.shape) == 3
        if isinstance(layer, Conv):
            self.conv(layer, source)
        elif isinstance(layer, DWSep | InvertedResidual):
            for i in range(layer.repeat):
                block = replace(layer, stride=layer.stride if i == 0 else 1, repeat=1)
                self.block(block, source)
        elif isinstance(layer, Pool):
            self.pool(layer, source)
        elif isinstance(layer, GlobalAvgPool | Flatten):
            if not on_map:  # parse_arch prevents this; a spec built in Python might not
                raise EvoError(f"layer {source} ({layer_text(layer)}) needs a feature map")
            self.to_vector(layer, source)
        elif isinstance(layer, Dense):
            if on_map:
                self.to_vector(Flatten(), 0)
            self.emit(layer, (layer.units,), source)
        elif isinstance(layer, Dropout) and layer.p == 0:
            self.notes.append(f"layer {source} dropout(0) removed: it has no effect")
        else:  # batch norm, activations, dropout: shape-preserving
            self.emit(layer, self.shape, source)

    def _need_map(self, layer: Layer, source: int) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            raise EvoError(f"layer {source} ({layer_text(layer)}) needs a feature map")
        return self.shape  # type: ignore[return-value]

    def conv(self, layer: Conv, source: int) -> None:
        _, h, w = self._need_map(layer, source)
        k, s = layer.kernel, layer.stride
        pad = {"same": k // 2, "valid": 0}.get(layer.padding, layer.padding)  # type: ignore[arg-type]
        assert isinstance(pad, int)
        if min(_conv_out(h, k, s, pad), _conv_out(w, k, s, pad)) < 1:
            self.dropped.append(
                f"layer {source} {layer_text(layer)}: the {k}x{k} kernel does not fit the "
                f"{h}x{w} input with padding {pad}; padding raised to {k // 2}"
            )
            pad = k // 2
        s = self._no_op_stride(layer, source, h, w, k, s, pad, default=1)
        out = (layer.filters, _conv_out(h, k, s, pad), _conv_out(w, k, s, pad))
        self.emit(Conv(layer.filters, k, s, pad), out, source)

    def _no_op_stride(
        self, layer: Layer, source: int, h: int, w: int, k: int, s: int, pad: int, default: int
    ) -> int:
        """Every stride from ``need`` up samples only the first window, so all of them build
        the same network: write the default (or ``need`` when the default is smaller) so that
        equal networks get equal text."""
        need = max(h + 2 * pad - k, w + 2 * pad - k) + 1
        if s < need:
            return s
        canonical = max(default, need)
        if s != canonical and (h, w) == (1, 1):
            self.dropped.append(
                f"layer {source} {layer_text(layer)}: stride {s} has no effect on a "
                f"1x1 map; written as stride {canonical}"
            )
        return canonical

    def block(self, layer: DWSep | InvertedResidual, source: int) -> None:
        _, h, w = self._need_map(layer, source)
        k = layer.kernel
        s = self._no_op_stride(layer, source, h, w, k, layer.stride, k // 2, default=1)
        out = (layer.filters, _conv_out(h, k, s, k // 2), _conv_out(w, k, s, k // 2))
        residual = isinstance(layer, InvertedResidual) and out == self.shape
        self.emit(replace(layer, stride=s), out, source, residual=residual)

    def pool(self, layer: Pool, source: int) -> None:
        c, h, w = self._need_map(layer, source)
        k = layer.kernel
        if h < k or w < k:
            self.dropped.append(
                f"layer {source} {layer_text(layer)}: dropped, its {k}x{k} window is larger "
                f"than the {h}x{w} map"
            )
            return
        s = self._no_op_stride(layer, source, h, w, k, layer.stride, 0, default=k)
        out = (c, _conv_out(h, k, s, 0), _conv_out(w, k, s, 0))
        self.emit(replace(layer, stride=s), out, source)

    def to_vector(self, layer: GlobalAvgPool | Flatten, source: int) -> None:
        c, h, w = self.shape
        if (h, w) == (1, 1):
            layer = GlobalAvgPool()  # the same function on a 1x1 map: one spelling
        features = c if isinstance(layer, GlobalAvgPool) else c * h * w
        self.emit(layer, (features,), source)

    def classifier(self) -> None:
        """The last dense layer is the classifier; without one, one is appended."""
        last = self.out[-1] if self.out else None
        if last is not None and isinstance(last.layer, Dense):
            if last.layer.units != self.num_classes:
                self.notes.append(
                    f"layer {last.source} {last.text}: the final dense layer is the classifier; "
                    f"width set to {self.num_classes} classes"
                )
                self.out[-1] = replace(
                    last, layer=Dense(self.num_classes), out_shape=(self.num_classes,)
                )
            return
        if len(self.shape) == 3:
            self.to_vector(Flatten(), 0)
        self.emit(Dense(self.num_classes), (self.num_classes,), 0)

    def biases(self) -> list[ResolvedLayer]:
        layers = list(self.out)
        for i, item in enumerate(layers[:-1]):
            if isinstance(item.layer, Conv | Dense) and isinstance(layers[i + 1].layer, BatchNorm):
                layers[i] = replace(item, bias=False)
        return layers


def describe_recipe(recipe: Recipe) -> dict[str, Any]:
    """Recipe fields as plain data."""
    return {f.name: getattr(recipe, f.name) for f in fields(recipe)}
