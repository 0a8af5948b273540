"""How the language is spelled: the layer names, their aliases, and the canonical text.

One table (:data:`SYNTAX`) says which name builds which layer class with which parameters and
what it does to the shape (needs a feature map, makes a vector). The parser reads text through
it and :func:`layer_text` writes text back through it, so reading and writing cannot drift
apart. :class:`ArchSpec` lives here because its text is this module's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from evo.arch.kinds import REQUIRED, Param
from evo.arch.layers import (
    CONV_PARAMS,
    DENSE_PARAMS,
    DROPOUT_PARAMS,
    DWSEP_PARAMS,
    IR_PARAMS,
    LEAKY_PARAMS,
    POOL_PARAMS,
    Activation,
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
from evo.arch.recipe import RECIPE_PARAMS, Recipe, recipe_text

__all__ = [
    "LAYER_ALIASES",
    "SYNTAX",
    "SYNTAX_BY_NAME",
    "ArchSpec",
    "LayerSyntax",
    "find_param",
    "known_layers_hint",
    "layer_text",
    "recipe_hint",
    "signature_hint",
    "spec_to_text",
]


@dataclass(frozen=True)
class LayerSyntax:
    """How one layer name reads: the class it builds, fixed fields, parameters, shape role."""

    name: str
    cls: type
    params: tuple[Param, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    needs_map: bool = False  # only valid on a feature map (before gap/flatten/dense)
    makes_vector: bool = False


SYNTAX = (
    LayerSyntax("conv", Conv, CONV_PARAMS, needs_map=True),
    LayerSyntax("dwsep", DWSep, DWSEP_PARAMS, needs_map=True),
    LayerSyntax("ir", InvertedResidual, IR_PARAMS, needs_map=True),
    LayerSyntax("bn", BatchNorm),
    LayerSyntax("relu", Activation, fixed=(("kind", "relu"),)),
    LayerSyntax("relu6", Activation, fixed=(("kind", "relu6"),)),
    LayerSyntax("hardswish", Activation, fixed=(("kind", "hardswish"),)),
    LayerSyntax("leakyrelu", Activation, LEAKY_PARAMS, fixed=(("kind", "leakyrelu"),)),
    LayerSyntax("maxpool", Pool, POOL_PARAMS, fixed=(("kind", "max"),), needs_map=True),
    LayerSyntax("avgpool", Pool, POOL_PARAMS, fixed=(("kind", "avg"),), needs_map=True),
    LayerSyntax("gap", GlobalAvgPool, needs_map=True, makes_vector=True),
    LayerSyntax("flatten", Flatten, needs_map=True, makes_vector=True),
    LayerSyntax("dropout", Dropout, DROPOUT_PARAMS),
    LayerSyntax("dense", Dense, DENSE_PARAMS, makes_vector=True),
)
SYNTAX_BY_NAME = {s.name: s for s in SYNTAX}
LAYER_ALIASES = {
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


def _syntax_of(layer: Layer) -> LayerSyntax:
    for syntax in SYNTAX:
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
# Spellings and usage lines, for the parser's error messages.


def find_param(params: tuple[Param, ...], spelling: str) -> Param | None:
    """The parameter ``spelling`` names (its key, field or an alias), or None."""
    for param in params:
        if spelling in param.spellings():
            return param
    return None


def known_layers_hint() -> str:
    return "layers: " + ", ".join(s.name for s in SYNTAX) + " (separate layers with spaces)"


def signature_hint(syntax: LayerSyntax) -> str:
    parts = []
    for param in syntax.params:
        if param.default is REQUIRED:
            parts.append(param.key)
        elif callable(param.default):
            parts.append(f"{param.key}={param.default_text}")
        else:
            parts.append(f"{param.key}={param.kind.show(param.default)}")
    return f"usage: {syntax.name}({', '.join(parts)})"


def recipe_hint() -> str:
    return "recipe settings: " + ", ".join(p.key for p in RECIPE_PARAMS)
