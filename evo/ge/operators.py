"""GE variation and initialisation operators (PonyGE2's defaults, our own code).

Every operator takes a ``numpy.random.Generator`` and plain lists of ints, returns new lists,
and never raises for any genome (empty, negative or huge codons included), because the search
feeds them whatever evolution produced.

Initialisation builds derivation trees and writes each choice as a codon that selects it
(``choice + k * n_choices``) in leftmost-derivation order, so mapping the genome reproduces the
tree exactly, and then appends a random tail of half the used length, as PonyGE2 does; the tail
gives crossover and mutation material that does not disturb the parent's phenotype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evo.ge.grammar import Grammar

CODON_SIZE = 100_000  # PonyGE2's default: codons are drawn from [0, CODON_SIZE].
GENOME_LENGTH = 100  # uniform random genomes
MAX_INIT_DEPTH = 10  # PonyGE2's MAX_INIT_TREE_DEPTH
CROSSOVER_PROBABILITY = 0.75


@dataclass(frozen=True)
class GEConfig:
    """The GE settings every operator reads; passed explicitly, never global."""

    codon_size: int = CODON_SIZE
    genome_length: int = GENOME_LENGTH
    max_wraps: int = 0
    max_tree_depth: int = 90
    min_init_depth: int | None = None  # None: the grammar's minimum depth
    max_init_depth: int = MAX_INIT_DEPTH
    crossover_probability: float = CROSSOVER_PROBABILITY
    mutation_rate: float | None = None  # None: 1 / used codons


def random_genome(rng: np.random.Generator, length: int = GENOME_LENGTH,
                  codon_size: int = CODON_SIZE) -> list[int]:
    """A uniform random genome, codons in [0, codon_size]."""
    return rng.integers(0, codon_size + 1, size=max(0, length)).tolist()


def _choice_depth(grammar: Grammar, rule: str, index: int) -> int:
    """Depth (as the mapper counts it) of the shallowest tree rooted at ``rule`` using choice
    ``index``: terminal leaves count, so a terminal-only choice needs 2."""
    return grammar.choice_steps[rule][index] + 2


def ramp_depths(grammar: Grammar, config: GEConfig) -> list[int]:
    """The depths sensible initialisation ramps over (mapper depth convention)."""
    low = max(grammar.min_depth(), config.min_init_depth or grammar.min_depth())
    return list(range(low, max(low, config.max_init_depth) + 1))


def _grow_tree(grammar: Grammar, rng: np.random.Generator, max_depth: int, full: bool,
               codon_size: int) -> tuple[list[int], int]:
    """One derivation tree as codons (leftmost order) and its depth; "full" prefers recursive
    choices so the tree reaches ``max_depth`` when the grammar allows it."""
    codons: list[int] = []
    deepest = 1
    # Explicit stack of (rule, depth of this node); leftmost order = pop the first child first.
    stack: list[tuple[str, int]] = [(grammar.start, 1)]
    while stack:
        rule, depth = stack.pop()
        remaining = max_depth - depth + 1
        n = grammar.n_choices(rule)
        fits = [i for i in range(n) if _choice_depth(grammar, rule, i) <= remaining]
        pool = fits
        if full:
            recursive = [i for i in fits if grammar.choice_recursive[rule][i]]
            pool = recursive or fits
        if not pool:
            best = min(_choice_depth(grammar, rule, i) for i in range(n))
            pool = [i for i in range(n) if _choice_depth(grammar, rule, i) == best]
        index = int(pool[rng.integers(len(pool))])
        codons.append(_codon_for(rng, index, n, codon_size))
        choice = grammar.rules[rule].choices[index]
        if any(not s.is_nt for s in choice) or not choice:
            deepest = max(deepest, depth + 1)
        for sym in reversed(choice):
            if sym.is_nt:
                stack.append((sym.text, depth + 1))
                deepest = max(deepest, depth + 1)
    return codons, deepest


def _codon_for(rng: np.random.Generator, index: int, n_choices: int, codon_size: int) -> int:
    """A uniformly drawn codon in [0, codon_size] that selects ``index`` (codon % n == index)."""
    top = max(0, (codon_size - index) // n_choices)
    return index + n_choices * int(rng.integers(0, top + 1))


def sensible_initialisation(grammar: Grammar, rng: np.random.Generator, size: int,
                            config: GEConfig = GEConfig()) -> list[list[int]]:
    """Ramped half-and-half over derivation trees: for each ramp depth, half "grow", half
    "full"; leftover slots take depths in shuffled order."""
    depths = ramp_depths(grammar, config)
    genomes: list[list[int]] = []
    plan: list[tuple[int, bool]] = []
    per_depth = size // (2 * len(depths)) if depths else 0
    for depth in depths:
        for _ in range(per_depth):
            plan += [(depth, False), (depth, True)]
    leftover = list(depths)
    rng.shuffle(leftover)
    k = 0
    while len(plan) < size:
        depth = leftover[k % len(leftover)]
        plan.append((depth, len(plan) % 2 == 1))
        k += 1
    for depth, full in plan[:size]:
        codons, _ = _grow_tree(grammar, rng, depth, full, config.codon_size)
        genomes.append(codons + random_genome(rng, len(codons) // 2, config.codon_size))
    return genomes


def pi_grow_initialisation(grammar: Grammar, rng: np.random.Generator, size: int,
                           config: GEConfig = GEConfig()) -> list[list[int]]:
    """Position-independent grow: open non-terminals are expanded in random order, and until
    some branch reaches the ramp depth the expansions prefer recursive choices, so depth is not
    tied to the leftmost branch. Codons are written in leftmost order so the linear mapper
    reproduces the tree."""
    depths = ramp_depths(grammar, config)
    genomes = []
    for i in range(size):
        codons = _pi_grow_tree(grammar, rng, depths[i % len(depths)], config.codon_size)
        genomes.append(codons + random_genome(rng, len(codons) // 2, config.codon_size))
    return genomes


def _pi_grow_tree(grammar: Grammar, rng: np.random.Generator, max_depth: int,
                  codon_size: int) -> list[int]:
    # Nodes: [rule, depth, chosen index or None, children node ids].
    nodes: list[list] = [[grammar.start, 1, None, []]]
    open_ids = [0]
    deepest = 1
    while open_ids:
        pick = int(rng.integers(len(open_ids)))
        node_id = open_ids.pop(pick)
        rule, depth = nodes[node_id][0], nodes[node_id][1]
        remaining = max_depth - depth + 1
        n = grammar.n_choices(rule)
        fits = [i for i in range(n) if _choice_depth(grammar, rule, i) <= remaining]
        pool = fits
        if deepest < max_depth:
            pool = [i for i in fits if grammar.choice_recursive[rule][i]] or fits
        if not pool:
            best = min(_choice_depth(grammar, rule, i) for i in range(n))
            pool = [i for i in range(n) if _choice_depth(grammar, rule, i) == best]
        index = int(pool[rng.integers(len(pool))])
        nodes[node_id][2] = index
        for sym in grammar.rules[rule].choices[index]:
            deepest = max(deepest, depth + 1)
            if sym.is_nt:
                nodes.append([sym.text, depth + 1, None, []])
                nodes[node_id][3].append(len(nodes) - 1)
                open_ids.append(len(nodes) - 1)
    codons: list[int] = []
    stack = [0]
    while stack:
        node = nodes[stack.pop()]
        codons.append(_codon_for(rng, node[2], grammar.n_choices(node[0]), codon_size))
        stack.extend(reversed(node[3]))
    return codons


def effective_length(genome: Sequence[int], used_codons: int, valid: bool) -> int:
    """Codons that matter: the used ones of a valid genome (capped by its length; wrapping can
    read more than the length), the whole genome of an invalid one."""
    if not valid:
        return len(genome)
    return max(0, min(len(genome), used_codons))


def int_flip_mutation(genome: Sequence[int], used_codons: int, valid: bool,
                      rng: np.random.Generator, rate: float | None = None,
                      codon_size: int = CODON_SIZE) -> list[int]:
    """Per-codon int-flip within the used codons; the default rate is 1 / used codons."""
    out = list(genome)
    eff = effective_length(out, used_codons, valid)
    if eff == 0:
        return out
    p = (1.0 / eff) if rate is None else rate
    flips = np.flatnonzero(rng.random(eff) < p)
    if flips.size:
        values = rng.integers(0, codon_size + 1, size=flips.size)
        for i, v in zip(flips.tolist(), values.tolist(), strict=True):
            out[i] = v
    return out


def one_point_crossover(a: Sequence[int], a_used: int, a_valid: bool, b: Sequence[int],
                        b_used: int, b_valid: bool, rng: np.random.Generator,
                        probability: float = CROSSOVER_PROBABILITY) -> tuple[list[int], list[int]]:
    """Variable one-point crossover with each cut inside that parent's used codons (an invalid
    parent's whole genome counts as used). Without crossover the children are copies."""
    if rng.random() >= probability:
        return list(a), list(b)
    cut_a = _cut_point(effective_length(a, a_used, a_valid), rng)
    cut_b = _cut_point(effective_length(b, b_used, b_valid), rng)
    return list(a[:cut_a]) + list(b[cut_b:]), list(b[:cut_b]) + list(a[cut_a:])


def _cut_point(length: int, rng: np.random.Generator) -> int:
    """A cut in [1, length] (PonyGE2 keeps at least one codon of the head); 0 for empty."""
    return int(rng.integers(1, length + 1)) if length >= 1 else 0
