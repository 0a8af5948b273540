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

The package, each module importing only those above it in this list:

* :mod:`evo.arch.kinds`: value kinds (how a parameter is read, checked and printed);
* :mod:`evo.arch.layers`: the layer dataclasses and their parameters;
* :mod:`evo.arch.recipe`: the training recipe;
* :mod:`evo.arch.syntax`: layer names and aliases, canonical text, :class:`ArchSpec`;
* :mod:`evo.arch.parse`: text -> :class:`ArchSpec` (:func:`parse_arch`);
* :mod:`evo.arch.resolve`: spec + input shape -> :class:`ResolvedArch` (shapes, parameter
  counts, canonical text, cache key);
* :mod:`evo.arch.memory`: memory estimates from a resolved network.

Import the public names from here. The full syntax and the resolution rules are documented in
``docs/architecture-language.md``. Stdlib only: the GPU check imports this on machines that
have nothing but PyTorch.
"""

from __future__ import annotations

from evo.arch.layers import (
    ACTIVATIONS,
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
from evo.arch.parse import ArchParseError, parse_arch
from evo.arch.recipe import OPTIMIZERS, SCHEDULES, Recipe, default_lr, describe_recipe, recipe_text
from evo.arch.resolve import (
    ResolvedArch,
    ResolvedLayer,
    ir_hidden_channels,
    resolve,
    se_channels,
)
from evo.arch.syntax import ArchSpec, layer_text, spec_to_text

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
