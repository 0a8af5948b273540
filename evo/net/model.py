"""Resolved architecture -> ``torch.nn.Module``, with parameter and MAC counts.

The network is a flat ``nn.Sequential`` with one child per resolved layer, so a layer table,
an exported ONNX graph and the standalone source from :mod:`evo.net.torch_source` all line up with
the canonical text one to one. Modules are created on the ``meta`` device and then initialised
explicitly, so construction draws no random numbers of its own: the weights depend only on the
generator passed in (or torch's global RNG when none is), never on how modules happen to
initialise themselves in a given torch release.

MACs come from torch's own ``FlopCounterMode`` on one forward pass at batch 1. It counts
convolutions (depthwise ones included), linear layers and matrix products at 2 FLOPs per
multiply-accumulate and nothing else; we report ``MACs = FLOPs // 2``. Not counted: biases,
batch norm, activations, pooling (max, average and global), the squeeze-and-excitation gate's
multiplication, residual additions and dropout.

Imports only stdlib, torch and evo.arch (the GPU check runs where nothing else is installed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from evo.arch import (
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
    ResolvedArch,
    ResolvedLayer,
    ir_hidden_channels,
    se_channels,
)

__all__ = [
    "InvertedResidualBlock",
    "LayerRow",
    "SqueezeExcite",
    "build_model",
    "count_macs",
    "count_params",
    "init_weights",
    "layer_table",
]


class SqueezeExcite(nn.Module):
    """Channel gate of MobileNetV3: global average -> 1x1 reduce -> ReLU -> 1x1 expand ->
    hard sigmoid, multiplied into the input."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidualBlock(nn.Module):
    """MobileNetV2 block body plus the shortcut when input and output shapes match."""

    def __init__(self, block: nn.Sequential, residual: bool) -> None:
        super().__init__()
        self.block = block
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def _activation(kind: str, slope: float = 0.01) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "relu6":
        return nn.ReLU6()
    if kind == "hardswish":
        return nn.Hardswish()
    if kind == "leakyrelu":
        return nn.LeakyReLU(slope)
    raise ValueError(f"unknown activation {kind!r}")


def _dwsep(cin: int, layer: DWSep) -> nn.Module:
    k = layer.kernel
    return nn.Sequential(
        nn.Conv2d(cin, cin, k, layer.stride, k // 2, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        _activation(layer.act),
        nn.Conv2d(cin, layer.filters, 1, bias=False),
        nn.BatchNorm2d(layer.filters),
        _activation(layer.act),
    )


def _inverted_residual(cin: int, layer: InvertedResidual, residual: bool) -> nn.Module:
    hidden = ir_hidden_channels(cin, layer.expansion)
    k = layer.kernel
    parts: list[nn.Module] = []
    if layer.expansion != 1:
        parts += [
            nn.Conv2d(cin, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            _activation(layer.act),
        ]
    parts += [
        nn.Conv2d(hidden, hidden, k, layer.stride, k // 2, groups=hidden, bias=False),
        nn.BatchNorm2d(hidden),
        _activation(layer.act),
    ]
    if layer.se:
        parts.append(SqueezeExcite(hidden, se_channels(hidden)))
    parts += [nn.Conv2d(hidden, layer.filters, 1, bias=False), nn.BatchNorm2d(layer.filters)]
    return InvertedResidualBlock(nn.Sequential(*parts), residual)


def _module(item: ResolvedLayer) -> nn.Module:
    layer = item.layer
    on_map = len(item.in_shape) == 3
    cin = item.in_shape[0]
    if isinstance(layer, Conv):
        assert isinstance(layer.padding, int), "resolve() makes padding an integer"
        return nn.Conv2d(
            cin, layer.filters, layer.kernel, layer.stride, layer.padding, bias=item.bias
        )
    if isinstance(layer, DWSep):
        return _dwsep(cin, layer)
    if isinstance(layer, InvertedResidual):
        return _inverted_residual(cin, layer, item.residual)
    if isinstance(layer, BatchNorm):
        return nn.BatchNorm2d(cin) if on_map else nn.BatchNorm1d(cin)
    if isinstance(layer, Activation):
        return _activation(layer.kind, layer.slope)
    if isinstance(layer, Pool):
        pool = nn.MaxPool2d if layer.kind == "max" else nn.AvgPool2d
        return pool(layer.kernel, layer.stride)
    if isinstance(layer, GlobalAvgPool):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
    if isinstance(layer, Flatten):
        return nn.Flatten(1)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, Dense):
        return nn.Linear(cin, layer.units, bias=item.bias)
    raise TypeError(f"cannot build {layer!r}")


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Initialise every parameter and buffer: convs He-normal (fan-out, as in MobileNetV2),
    linear layers He-uniform (torch's default rule), biases zero, batch norm identity."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu",
                                    generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.reset_parameters()


def build_model(
    resolved: ResolvedArch, generator: torch.Generator | None = None
) -> nn.Sequential:
    """The network for ``resolved``: NCHW float32 input, logits out, on the CPU.

    Weights are drawn from ``generator`` (torch's global RNG when None), so the same seed
    gives the same network; move it with ``.to(device)`` afterwards.
    """
    with torch.device("meta"):
        model = nn.Sequential(*(_module(item) for item in resolved.layers))
    model = model.to_empty(device="cpu")
    init_weights(model, generator)
    return model


def count_params(model: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def _flops(module: nn.Module, x: torch.Tensor) -> tuple[int, torch.Tensor]:
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            y = module(x)
    return counter.get_total_flops(), y


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (FlopCounterMode FLOPs // 2).

    Runs in eval mode (batch norm on one sample of a 1x1 map cannot run in train mode) and
    restores the model's mode afterwards.
    """
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    was_training = model.training
    model.eval()
    try:
        flops, _ = _flops(model, torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return flops // 2


@dataclass(frozen=True)
class LayerRow:
    """One row of ``evo arch show``: the layer's text, output shape, parameters and MACs."""

    name: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def layer_table(resolved: ResolvedArch, model: nn.Sequential | None = None) -> list[LayerRow]:
    """Per-layer output shape, parameter count and MACs (batch 1), in network order.

    Builds the model when none is given (with its own generator: the global RNG is untouched).
    """
    if model is None:
        model = build_model(resolved, torch.Generator().manual_seed(0))
    if len(model) != len(resolved.layers):
        raise ValueError("model does not match the resolved architecture")
    was_training = model.training
    model.eval()
    rows = []
    try:
        x = torch.zeros((1, *resolved.input_shape))
        for item, module in zip(resolved.layers, model, strict=True):
            flops, x = _flops(module, x)
            shape = tuple(x.shape[1:])
            if shape != item.out_shape:
                raise RuntimeError(
                    f"{item.text}: built output {shape} differs from resolved {item.out_shape}"
                )
            params = sum(p.numel() for p in module.parameters())
            rows.append(LayerRow(item.text, shape, params, flops // 2))
    finally:
        model.train(was_training)
    return rows
