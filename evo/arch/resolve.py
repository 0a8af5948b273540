"""Resolution: an :class:`ArchSpec` and one input shape -> the network that will be built.

The evaluation cache is keyed by the *resolved* network, so resolution normalises everything
that does not change the function: defaults are filled, a stride with no effect is written as
the default, implicit flattening is made explicit, and downsampling that would shrink a map
below 1x1 is dropped (and recorded) instead of rejecting the phenotype. Parameter counts come
from the shapes, without torch; the canonical text and its sha256 are the cache key.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace

from evo.arch.layers import (
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    DWSep,
    Flatten,
    GlobalAvgPool,
    InvertedResidual,
    Layer,
    Pool,
)
from evo.arch.recipe import Recipe, recipe_text
from evo.arch.syntax import ArchSpec, layer_text
from evo.errors import EvoError

__all__ = [
    "ResolvedArch",
    "ResolvedLayer",
    "Shape",
    "ir_hidden_channels",
    "resolve",
    "se_channels",
]


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
