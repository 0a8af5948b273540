"""Random networks as the search first draws them: valid phenotypes of uniform random genomes.

Shared by benchmarks/gpu_check.py (and gpu_workers.py through it) and
benchmarks/bench_mcu_estimate.py, so both sample the search's starting population the same
way: genome length 100, codons in [0, 100000], max_wraps 0, max_tree_depth 90 (the default GE
settings). Needs only numpy and evo.ge.
"""

from __future__ import annotations

import numpy as np

from evo.ge.grammar import load_grammar
from evo.ge.mapper import map_genome


def sample_phenotypes(grammar_name: str, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct valid phenotypes from uniform random genomes (default GE settings)."""
    grammar = load_grammar(grammar_name)
    found: list[str] = []
    for _ in range(count * 50):
        genome = rng.integers(0, 100_001, size=100).tolist()
        derivation = map_genome(grammar, genome, max_wraps=0, max_tree_depth=90)
        if derivation.valid and derivation.phenotype not in found:
            found.append(derivation.phenotype)  # type: ignore[arg-type]
            if len(found) == count:
                break
    return found
