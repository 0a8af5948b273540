"""The TFLite graph a resolved network becomes, predicted without converting it.

A microcontroller's RAM and flash budgets are set by the int8 model that ``litert_torch`` plus
ai-edge-quantizer's ``static_wi8_ai8`` recipe produce (``export.litert``), so the estimate in
:mod:`evo.arch.mcu` first predicts that graph operator by operator. The rules below were read
off converted models of every layer kind of the shipped grammars and are held to them by
``tests/test_mcu_estimate.py``:

* the input stays NCHW: one ``RESHAPE`` (a single channel) or ``TRANSPOSE`` to NHWC first;
* batch norm after a convolution or dense layer is folded into it, and a following ``relu`` or
  ``relu6`` is fused into the same operator; ``hardswish`` and ``leakyrelu`` are their own
  int8 operators (``export.litert_fold`` makes the quantiser's float ``LEAKY_RELU`` int8);
* a convolution over one input channel is a ``DEPTHWISE_CONV_2D`` with a channel multiplier;
* torch's symmetric padding becomes an explicit ``PAD`` wherever TFLite's ``SAME`` padding
  would place the windows differently (stride 2 on even sizes, explicit paddings);
* ``flatten`` of a map larger than 1x1 transposes back to channels-first, then reshapes;
  global average pooling is a reduction (whose int8 kernel asks for scratch memory: an int32
  sum per output value); dropout vanishes;
* an inverted-residual block is [1x1 ``CONV_2D``] -> [``PAD``] ``DEPTHWISE_CONV_2D`` ->
  [squeeze-excite: ``MEAN`` (none on a 1x1 map), two 1x1 ``CONV_2D``, ``MUL`` by the hard
  sigmoid's 1/6, ``MUL`` into the map] -> 1x1 ``CONV_2D`` -> [``ADD`` of the shortcut].

Pure arithmetic on shapes: no torch, no numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from evo.arch.layers import (
    Activation,
    BatchNorm,
    Conv,
    Dense,
    Dropout,
    DWSep,
    Flatten,
    GlobalAvgPool,
    InvertedResidual,
    Pool,
)
from evo.arch.resolve import ResolvedArch, ir_hidden_channels, se_channels
from evo.errors import EvoError

__all__ = ["FLOAT_BYTES", "IO_TYPES", "LoweredGraph", "Op", "lower", "needs_pad"]

IO_TYPES = ("int8", "uint8", "float")

FLOAT_BYTES = 4  # a float input or output (``io_type="float"``)
_FUSED = ("relu", "relu6")  # activations TFLite fuses into the operator before them
_SHAPE_CONST = 16  # bytes of a small int32 shape/permutation constant (4 values)
_AXES_CONST = 8  # bytes of a reduction's two axes
_PAD_CONST = 32  # bytes of a PAD operator's 4x2 paddings


@dataclass(frozen=True)
class Op:
    """One operator: the activation tensors it reads and the one it writes, and its constants.

    ``weights`` are int8 values, ``bias`` int32 values, ``channels`` the entries of per-channel
    quantisation (a scale and a zero point each); ``consts`` the small constant tensors
    (shapes, axes, paddings, scalars) as (key, bytes): operators with the same key share one
    tensor, as the converter shares identical constants.
    """

    kind: str
    inputs: tuple[int, ...]
    output: int
    weights: int = 0
    bias: int = 0
    channels: int = 0
    consts: tuple[tuple[str, int], ...] = ()
    in_block: bool = False  # inside an inverted-residual or separable block (longer names)
    scratch: tuple[int, ...] = ()  # bytes of the scratch buffers its kernel asks for
    modules: int = 1  # torch modules folded into it (conv, batch norm, relu): names join theirs

    @property
    def parameter_tensors(self) -> int:
        """Its weight and bias tensors (0, 1 or 2)."""
        return (self.weights > 0) + (self.bias > 0)


@dataclass(frozen=True)
class LoweredGraph:
    """Activation tensors (bytes each; 0 is the input, the last one the output) and operators
    in execution order."""

    tensors: tuple[int, ...]
    ops: tuple[Op, ...]

    def lifetimes(self) -> list[tuple[int, int, int]]:
        """(bytes, first operator, last operator) of every activation tensor, as TFLite Micro
        derives them: created by its producer (the input: before the first operator), alive
        until its last reader (the output: until the end); then the operators' scratch
        buffers."""
        last_op = max(len(self.ops) - 1, 0)
        first = {0: 0}
        last = {0: 0}
        for index, op in enumerate(self.ops):
            for tensor in op.inputs:
                last[tensor] = index
            first.setdefault(op.output, index)
            last.setdefault(op.output, index)
        last[len(self.tensors) - 1] = last_op
        planned = [(self.tensors[t], first[t], last[t]) for t in sorted(first)]
        # Scratch buffers come after the tensors, alive during their operator only.
        return planned + [(size, index, index) for index, op in enumerate(self.ops)
                          for size in op.scratch]

    @property
    def weights(self) -> int:
        return sum(op.weights for op in self.ops)

    @property
    def bias(self) -> int:
        return sum(op.bias for op in self.ops)

    @property
    def channels(self) -> int:
        return sum(op.channels for op in self.ops)

    @property
    def small_constants(self) -> dict[str, int]:
        """Bytes of each distinct small constant tensor, by key."""
        return {key: size for op in self.ops for key, size in op.consts}

    @property
    def constant_tensors(self) -> int:
        return sum(op.parameter_tensors for op in self.ops) + len(self.small_constants)

    @property
    def tensor_count(self) -> int:
        """Every tensor of the model: activations and constants."""
        return len(self.tensors) + self.constant_tensors


def _tf_same(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TFLite's SAME padding: (output size, padding before)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


def _mean_scratch(outputs: int) -> tuple[int, ...]:
    """What TFLite Micro's int8 MEAN asks for: an int32 sum per output value, an index over
    the input's four dimensions and the resolved axes."""
    return (4 * outputs, 16, 8)


def needs_pad(size: int, kernel: int, stride: int, pad: int) -> bool:
    """Whether torch's symmetric ``pad`` places windows where TFLite's SAME would not."""
    if pad == 0:
        return False  # VALID
    out, before = _tf_same(size, kernel, stride)
    return out != (size + 2 * pad - kernel) // stride + 1 or before != pad


@dataclass
class _Builder:
    """Appends operators while tracking the current tensor and the map or vector it holds."""

    tensors: list[int]  # bytes of each activation tensor
    shapes: list[tuple[int, ...]]  # its (C, H, W) or (N,)
    ops: list[Op] = field(default_factory=list)
    current: int = 0
    fusable: bool = False  # the last operator can absorb a batch norm or relu
    in_block: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        return self.shapes[self.current]

    def emit(self, kind: str, shape: tuple[int, ...], inputs: tuple[int, ...] | None = None,
             itemsize: int = 1, fusable: bool = False, **params: int | tuple[int, ...]) -> int:
        self.tensors.append(math.prod(shape) * itemsize)
        self.shapes.append(shape)
        index = len(self.tensors) - 1
        reads = inputs if inputs is not None else (self.current,)
        self.ops.append(Op(kind, reads, index, in_block=self.in_block,
                           **params))  # type: ignore[arg-type]
        self.current, self.fusable = index, fusable
        return index

    def fold(self) -> None:
        """One more torch module folded into the last operator."""
        last = self.ops[-1]
        self.ops[-1] = replace(last, modules=last.modules + 1)

    def conv(self, filters: int, kernel: int, stride: int, pad: int, groups: int = 1) -> None:
        """Convolution (``groups`` = input channels: depthwise), with its PAD when needed."""
        cin, h, w = self.shape
        if needs_pad(h, kernel, stride, pad) or needs_pad(w, kernel, stride, pad):
            self.emit("PAD", (cin, h + 2 * pad, w + 2 * pad), consts=((f"pad{pad}", _PAD_CONST),))
            h, w, pad = h + 2 * pad, w + 2 * pad, 0
        out = (filters, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1)
        depthwise = groups > 1 or cin == 1
        kind = "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D"
        weights = filters * kernel * kernel * (1 if depthwise else cin)
        self.emit(kind, out, fusable=True, weights=weights, bias=filters, channels=filters)

    def activation(self, kind: str) -> None:
        if kind in _FUSED and self.fusable:
            self.fold()
            self.fusable = False
            return
        names = {"relu": "RELU", "relu6": "RELU6", "hardswish": "HARD_SWISH",
                 "leakyrelu": "LEAKY_RELU"}
        self.emit(names[kind], self.shape)

    def batch_norm(self) -> None:
        if self.fusable:
            self.fold()  # into the convolution or dense layer before it
            return
        channels = self.shape[0]
        self.emit("MUL", self.shape, consts=((f"scale{len(self.ops)}", channels),))
        self.emit("ADD", self.shape, consts=((f"shift{len(self.ops)}", channels),))

    def squeeze_excite(self, channels: int) -> None:
        gated = self.current
        squeeze = se_channels(channels)
        if self.shape[1:] != (1, 1):  # the mean of a 1x1 map is the map: no operator
            self.emit("MEAN", (channels, 1, 1), consts=(("axes", _AXES_CONST),),
                      scratch=_mean_scratch(channels))
        self.emit("CONV_2D", (squeeze, 1, 1), weights=channels * squeeze, bias=squeeze,
                  channels=squeeze, modules=2)  # relu fused
        self.emit("CONV_2D", (channels, 1, 1), weights=squeeze * channels, bias=channels,
                  channels=channels, modules=2)  # the hard sigmoid's +3 and clamp fused
        self.emit("MUL", (channels, 1, 1), consts=(("sixth", 1),))  # times 1/6
        self.emit("MUL", self.shapes[gated], inputs=(gated, self.current))


def lower(resolved: ResolvedArch, io_type: str = "int8") -> LoweredGraph:
    """The int8 TFLite graph ``resolved`` converts to (see the module's rules), with an
    ``io_type`` input and output (``int8``; ``uint8`` or ``float`` add a QUANTIZE or
    DEQUANTIZE at each end, as ``export.litert_io`` writes them)."""
    if io_type not in IO_TYPES:
        raise EvoError(f"unknown LiteRT I/O type {io_type!r}", f"one of {', '.join(IO_TYPES)}")
    c, h, w = resolved.input_shape
    itemsize = FLOAT_BYTES if io_type == "float" else 1
    b = _Builder([c * h * w * itemsize], [(c, h, w)])
    if io_type != "int8":
        b.emit("QUANTIZE", (c, h, w))
    b.emit("RESHAPE" if c == 1 else "TRANSPOSE", (c, h, w), consts=(("nhwc", _SHAPE_CONST),))
    for item in resolved.layers:
        layer = item.layer
        b.in_block = isinstance(layer, DWSep | InvertedResidual)
        if isinstance(layer, Conv):
            assert isinstance(layer.padding, int), "resolve() makes padding an integer"
            b.conv(layer.filters, layer.kernel, layer.stride, layer.padding)
        elif isinstance(layer, DWSep):
            cin = b.shape[0]
            b.conv(cin, layer.kernel, layer.stride, layer.kernel // 2, groups=cin)
            b.activation(layer.act)
            b.conv(layer.filters, 1, 1, 0)
            b.activation(layer.act)
        elif isinstance(layer, InvertedResidual):
            block_in, cin = b.current, b.shape[0]
            hidden = ir_hidden_channels(cin, layer.expansion)
            if layer.expansion != 1:
                b.conv(hidden, 1, 1, 0)
                b.activation(layer.act)
            b.conv(hidden, layer.kernel, layer.stride, layer.kernel // 2, groups=hidden)
            b.activation(layer.act)
            if layer.se:
                b.squeeze_excite(hidden)
            b.conv(layer.filters, 1, 1, 0)
            b.fusable = not item.residual
            if item.residual:
                b.emit("ADD", b.shape, inputs=(block_in, b.current))
        elif isinstance(layer, BatchNorm):
            b.batch_norm()
        elif isinstance(layer, Activation):
            b.activation(layer.kind)
        elif isinstance(layer, Pool):
            kind = "MAX_POOL_2D" if layer.kind == "max" else "AVERAGE_POOL_2D"
            b.emit(kind, item.out_shape)
        elif isinstance(layer, GlobalAvgPool):
            b.emit("MEAN", item.out_shape, consts=(("axes", _AXES_CONST),),
                   scratch=_mean_scratch(item.out_shape[0]))
        elif isinstance(layer, Flatten):
            b.emit("TRANSPOSE", b.shape, consts=(("nchw", _SHAPE_CONST),))
            b.emit("RESHAPE", item.out_shape, consts=(("flat", _AXES_CONST),))
        elif isinstance(layer, Dense):
            units, cin = layer.units, item.in_shape[0]
            b.emit("FULLY_CONNECTED", (units,), fusable=True, weights=units * cin, bias=units,
                   channels=units)
        elif isinstance(layer, Dropout):
            continue
    b.in_block = False
    if io_type != "int8":
        b.emit("DEQUANTIZE" if io_type == "float" else "QUANTIZE", b.shape, itemsize=itemsize)
    return LoweredGraph(tuple(b.tensors), tuple(b.ops))
