"""How long a candidate trains, relative to the others, estimated before it runs.

Executors hand out a generation's longest candidates first (the longest-processing-time rule:
a long one started last leaves the other workers idle at the generation's end;
:func:`evo.search.evaluate.longest_first`). The estimate needs no torch: the resolved shapes
give each layer's multiply-accumulates (its weights applied at every output position) and its
elementwise work (one pass over its output), per image, times the epochs. Of ten
Fashion-MNIST candidates that trained for 0.6 to 23 s on this project's 2-core machine, it put
all but one in the order of their measured times.
"""

from __future__ import annotations

import math

from evo.arch import ResolvedArch


def training_cost(resolved: ResolvedArch, epochs: int) -> float:
    """Work of ``epochs`` epochs, per training image, in multiply-accumulates."""
    per_image = 0
    for layer in resolved.layers:
        positions = math.prod(layer.out_shape[1:]) if len(layer.out_shape) == 3 else 1
        per_image += layer.params * positions + math.prod(layer.out_shape)
    return float(per_image * epochs)
