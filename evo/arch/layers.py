"""The layers of the language: plain frozen dataclasses and the parameters each one takes.

Each layer validates itself (through :func:`evo.arch.kinds.check_fields`), so a spec built in
Python is as trustworthy as one parsed from text. The parameter tuples here are what the parser
binds arguments to and what the canonical text prints, so a layer's limits, defaults and
spellings are written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from evo.arch.kinds import BoolKind, EnumKind, FloatKind, IntKind, PaddingKind, Param, check_fields
from evo.errors import EvoError

__all__ = [
    "ACTIVATIONS",
    "CONV_PARAMS",
    "DENSE_PARAMS",
    "DROPOUT_PARAMS",
    "DWSEP_PARAMS",
    "IR_PARAMS",
    "LEAKY_PARAMS",
    "POOL_PARAMS",
    "Activation",
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
]

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


@dataclass(frozen=True)
class Conv:
    """Plain convolution. No BN or activation inside: write them as separate layers."""

    filters: int
    kernel: int = 3
    stride: int = 1
    padding: int | str = "same"

    def __post_init__(self) -> None:
        check_fields(self, CONV_PARAMS)


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
        check_fields(self, DWSEP_PARAMS)


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
        check_fields(self, IR_PARAMS)
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
        check_fields(self, LEAKY_PARAMS)
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
        check_fields(self, POOL_PARAMS)


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
        check_fields(self, DROPOUT_PARAMS)
        object.__setattr__(self, "p", float(self.p))


@dataclass(frozen=True)
class Dense:
    """Fully connected layer; the last one of a resolved network is the classifier."""

    units: int

    def __post_init__(self) -> None:
        check_fields(self, DENSE_PARAMS)


Layer = (
    Conv | DWSep | InvertedResidual | BatchNorm | Activation | Pool | GlobalAvgPool | Flatten
    | Dropout | Dense
)

_FILTERS = Param("filters", "filters", IntKind(1, 4096), aliases=("c", "out", "channels"))
_KERNEL = Param("kernel", "k", IntKind(1, 15), 3)
_ODD_KERNEL = Param("kernel", "k", IntKind(1, 15, odd=True), 3)
_STRIDE = Param("stride", "s", IntKind(1, 4), 1)
_REPEAT = Param("repeat", "n", IntKind(1, 16), 1, aliases=("repeats",), hide_default=True)
_BLOCK_ACT = EnumKind(_ACT_NAMES)

CONV_PARAMS = (
    _FILTERS,
    _KERNEL,
    _STRIDE,
    Param("padding", "p", PaddingKind(), "same", aliases=("pad",)),
)
DWSEP_PARAMS = (
    _FILTERS,
    _ODD_KERNEL,
    _STRIDE,
    Param("act", "act", _BLOCK_ACT, "relu", aliases=("activation",)),
    _REPEAT,
)
IR_PARAMS = (
    _FILTERS,
    Param("expansion", "e", FloatKind(1, 10), 6.0, aliases=("t", "expand")),
    _ODD_KERNEL,
    _STRIDE,
    Param("se", "se", BoolKind(), False),
    Param("act", "act", _BLOCK_ACT, "relu6", aliases=("activation",)),
    _REPEAT,
)
LEAKY_PARAMS = (Param("slope", "slope", FloatKind(0, 1), 0.01, aliases=("alpha",)),)
POOL_PARAMS = (
    Param("kernel", "k", IntKind(2, 8), 2, aliases=("size",)),
    Param("stride", "s", IntKind(1, 8), lambda values: values["kernel"], default_text="k"),
)
DROPOUT_PARAMS = (Param("p", "p", FloatKind(0, 1, hi_open=True), aliases=("rate",)),)
DENSE_PARAMS = (Param("units", "units", IntKind(1, 65536), aliases=("n", "features")),)
