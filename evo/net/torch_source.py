"""Standalone PyTorch source for a resolved network, so a user can take it away.

The generated module needs nothing but PyTorch. Its ``build_model()`` creates exactly the
module tree of :func:`evo.net.model.build_model` (same classes' attribute names, same child order),
so a ``state_dict`` saved by evo loads into it with ``strict=True``; the tests check that and
that both give the same logits.
"""

from __future__ import annotations

from collections.abc import Sequence

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
    recipe_text,
    se_channels,
)

__all__ = ["torch_source"]

_ACT_HELPER = '''
def activation(kind: str, slope: float = 0.01) -> nn.Module:
    return {
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "hardswish": nn.Hardswish,
        "leakyrelu": lambda: nn.LeakyReLU(slope),
    }[kind]()
'''

_DWSEP_HELPER = '''
def dwsep(cin: int, cout: int, kernel: int, stride: int, act: str) -> nn.Sequential:
    """MobileNetV1 block: depthwise kxk -> BN -> act -> pointwise 1x1 -> BN -> act."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, kernel, stride, kernel // 2, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        activation(act),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        activation(act),
    )
'''

_SE_HELPER = '''
class SqueezeExcite(nn.Module):
    """Channel gate: global average -> 1x1 reduce -> ReLU -> 1x1 expand -> hard sigmoid."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
'''

_IR_HELPER = '''
class InvertedResidualBlock(nn.Module):
    """MobileNetV2 block body plus the shortcut when input and output shapes match."""

    def __init__(self, block: nn.Sequential, residual: bool) -> None:
        super().__init__()
        self.block = block
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


def inverted_residual(
    cin: int, cout: int, hidden: int, kernel: int, stride: int, expand: bool, se: int,
    act: str, residual: bool,
) -> InvertedResidualBlock:
    """[1x1 expand -> BN -> act] -> depthwise kxk -> BN -> act -> [SE] -> 1x1 project -> BN.

    ``hidden`` is the expanded width, ``expand`` whether the 1x1 expansion exists, ``se`` the
    squeeze width of the squeeze-and-excitation unit (0: none), ``residual`` whether the input
    is added to the output.
    """
    parts: list[nn.Module] = []
    if expand:
        parts += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), activation(act)]
    parts += [
        nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
        nn.BatchNorm2d(hidden),
        activation(act),
    ]
    if se:
        parts.append(SqueezeExcite(hidden, se))
    parts += [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
    return InvertedResidualBlock(nn.Sequential(*parts), residual)
'''

_INIT = '''
def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """evo's initialisation: convs He-normal (fan-out), linear layers He-uniform (torch's
    default rule), biases zero, batch norm identity."""
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
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.reset_parameters()
'''

_MAIN = '''
if __name__ == "__main__":
    torch.manual_seed(0)
    model = build_model()
    init_weights(model)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *INPUT_SHAPE))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params} parameters; logits for a batch of 2: {tuple(logits.shape)}")
'''

_PREPROCESS = '''

def preprocess(pixels: torch.Tensor) -> torch.Tensor:
    """NCHW pixels scaled to [0, 1] -> the normalised float32 input the network expects."""
    mean = torch.tensor(MEAN, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float32).view(1, -1, 1, 1)
    return (pixels.to(torch.float32) - mean) / std
'''

_ACT_CLASSES = {"relu": "nn.ReLU()", "relu6": "nn.ReLU6()", "hardswish": "nn.Hardswish()"}


def _expression(item: ResolvedLayer) -> str:
    layer = item.layer
    cin = item.in_shape[0]
    if isinstance(layer, Conv):
        bias = "" if item.bias else ", bias=False"
        return (
            f"nn.Conv2d({cin}, {layer.filters}, {layer.kernel}, stride={layer.stride}, "
            f"padding={layer.padding}{bias})"
        )
    if isinstance(layer, DWSep):
        return f'dwsep({cin}, {layer.filters}, {layer.kernel}, {layer.stride}, "{layer.act}")'
    if isinstance(layer, InvertedResidual):
        hidden = ir_hidden_channels(cin, layer.expansion)
        se = se_channels(hidden) if layer.se else 0
        return (
            f"inverted_residual({cin}, {layer.filters}, {hidden}, {layer.kernel}, {layer.stride}, "
            f'{layer.expansion != 1}, {se}, "{layer.act}", {item.residual})'
        )
    if isinstance(layer, BatchNorm):
        return f"nn.BatchNorm{2 if len(item.in_shape) == 3 else 1}d({cin})"
    if isinstance(layer, Activation):
        if layer.kind == "leakyrelu":
            return f"nn.LeakyReLU({layer.slope!r})"
        return _ACT_CLASSES[layer.kind]
    if isinstance(layer, Pool):
        cls = "MaxPool2d" if layer.kind == "max" else "AvgPool2d"
        return f"nn.{cls}({layer.kernel}, stride={layer.stride})"
    if isinstance(layer, GlobalAvgPool):
        return "nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))"
    if isinstance(layer, Flatten):
        return "nn.Flatten(1)"
    if isinstance(layer, Dropout):
        return f"nn.Dropout({layer.p!r})"
    if isinstance(layer, Dense):
        bias = "" if item.bias else ", bias=False"
        return f"nn.Linear({cin}, {layer.units}{bias})"
    raise TypeError(f"cannot write {layer!r}")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)


def _wrapped(words: list[str], indent: str = "    ", width: int = 96) -> str:
    """Join layer texts into lines no longer than ``width``, breaking only between layers."""
    lines: list[str] = []
    line = ""
    for word in words:
        if line and len(indent) + len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(indent + text for text in lines)


def _normalisation(mean: Sequence[float], std: Sequence[float], channels: int) -> str:
    """``MEAN``/``STD`` and ``preprocess()``: the input normalisation the weights were trained
    with, which a user must apply to get the accuracy evo reported."""
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean/std need one value per channel ({channels}), got "
                         f"{len(mean)} and {len(std)}")
    means = ", ".join(repr(float(v)) for v in mean)
    stds = ", ".join(repr(float(v)) for v in std)
    return (
        "# Per-channel statistics of the training images (pixels scaled to [0, 1]); the\n"
        "# network saw (pixels - MEAN) / STD.\n"
        f"MEAN = ({means},)\nSTD = ({stds},)\n"
        + _PREPROCESS
    )


def torch_source(resolved: ResolvedArch, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> str:
    """A runnable Python module defining ``build_model()`` and ``init_weights()`` for the
    network; running it builds the network and prints its parameter count. With the training
    data's per-channel ``mean`` and ``std`` it also defines ``MEAN``, ``STD`` and
    ``preprocess()``, without which a user feeding raw pixels gets the wrong answers."""
    from evo.net.model import build_model, count_params  # torch only when source is asked for

    n_params = count_params(build_model(resolved))
    kinds = {type(item.layer) for item in resolved.layers}
    uses_ir = InvertedResidual in kinds
    uses_se = any(isinstance(i.layer, InvertedResidual) and i.layer.se for i in resolved.layers)
    helpers = []
    if DWSep in kinds or uses_ir:
        helpers.append(_ACT_HELPER)
    if DWSep in kinds:
        helpers.append(_DWSEP_HELPER)
    if uses_se:
        helpers.append(_SE_HELPER)
    if uses_ir:
        helpers.append(_IR_HELPER)

    body = []
    for index, item in enumerate(resolved.layers):
        body.append(f"        # {index}: {item.text} -> {_shape(item.out_shape)}")
        body.append(f"        {_expression(item)},")
    c, h, w = resolved.input_shape
    network = _wrapped([item.text for item in resolved.layers])
    recipe = _wrapped(recipe_text(resolved.recipe).split())
    if mean is not None and std is not None:
        inputs = ("Inputs: float32 NCHW pixels scaled to [0, 1], normalised with preprocess()\n"
                  "(MEAN and STD below).\n")
    else:
        inputs = ("Inputs: float32 NCHW pixels scaled to [0, 1], normalised per channel with\n"
                  "the training images' mean and std (stored in evo checkpoints as 'mean' and\n"
                  "'std'; `evo show RUN MEMBER --torch` writes them into this file).\n")
    doc = (
        f'"""A network found by evo, as plain PyTorch.\n\n'
        f"Architecture (evo's canonical text):\n{network}\n"
        f"Training recipe it was evaluated with:\n{recipe}\n"
        f"Input {c}x{h}x{w} (C x H x W), {resolved.num_classes} classes, "
        f"{n_params} parameters.\n{inputs}\n"
        f"Generated by evo; needs only PyTorch. An evo checkpoint (.pt) keeps the weights under\n"
        f"'state_dict':\n"
        f"    model = build_model()\n"
        f"    model.load_state_dict(torch.load(path, weights_only=True)[\"state_dict\"])\n"
        f'"""\n'
    )
    parts = [
        doc,
        "from __future__ import annotations\n\nimport math\n\nimport torch\nfrom torch import nn\n",
        f"INPUT_SHAPE = ({c}, {h}, {w})  # C, H, W\nNUM_CLASSES = {resolved.num_classes}\n",
        *([_normalisation(mean, std, c)] if mean is not None and std is not None else []),
        *helpers,
        "\ndef build_model() -> nn.Sequential:\n"
        '    """NCHW float32 images in, NUM_CLASSES logits out (no softmax)."""\n'
        "    return nn.Sequential(\n" + "\n".join(body) + "\n    )\n",
        _INIT,
        _MAIN,
    ]
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)
