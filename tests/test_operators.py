"""GE operators: properties that must hold for every genome evolution can produce."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from evo.ge.grammar import parse_grammar
from evo.ge.mapper import map_genome
from evo.ge.operators import (
    GEConfig,
    effective_length,
    int_flip_mutation,
    one_point_crossover,
    pi_grow_initialisation,
    ramp_depths,
    random_genome,
    sensible_initialisation,
)
from tests.test_grammar import BLOCKS

GRAMMAR = parse_grammar(BLOCKS)
genomes = st.lists(st.integers(min_value=-5, max_value=10**9), max_size=80)
seeds = st.integers(0, 2**32 - 1)


@given(genomes, seeds, st.one_of(st.none(), st.floats(0, 1)))
def test_mutation_changes_only_used_codons(genome, seed, rate):
    d = map_genome(GRAMMAR, genome)
    child = int_flip_mutation(genome, d.used_codons, d.valid, np.random.default_rng(seed), rate)
    eff = effective_length(genome, d.used_codons, d.valid)
    assert len(child) == len(genome)
    assert child[eff:] == list(genome[eff:])
    assert all(0 <= c <= 100_000 for c, g in zip(child, genome, strict=True) if c != g)


@given(genomes, genomes, seeds)
def test_crossover_cuts_lie_in_used_regions(a, b, seed):
    da, db = map_genome(GRAMMAR, a), map_genome(GRAMMAR, b)
    ea = effective_length(a, da.used_codons, da.valid)
    eb = effective_length(b, db.used_codons, db.valid)
    c, d = one_point_crossover(a, da.used_codons, da.valid, b, db.used_codons, db.valid,
                               np.random.default_rng(seed), probability=1.0)
    assert len(c) + len(d) == len(a) + len(b)
    # Recover the cuts: c = a[:i] + b[j:], d = b[:j] + a[i:].
    found = [
        (i, j)
        for i in range(0, ea + 1)
        for j in range(0, eb + 1)
        if c == list(a[:i]) + list(b[j:]) and d == list(b[:j]) + list(a[i:])
    ]
    assert found, (a, b, c, d)
    assert any((i >= 1 or ea == 0) and (j >= 1 or eb == 0) for i, j in found)


def test_crossover_probability_zero_copies():
    rng = np.random.default_rng(0)
    assert one_point_crossover([1, 2], 2, True, [3], 1, True, rng, 0.0) == ([1, 2], [3])


@given(seeds, st.integers(2, 40))
def test_sensible_initialisation_reaches_every_ramped_depth(seed, size):
    config = GEConfig(max_init_depth=8)
    depths = ramp_depths(GRAMMAR, config)
    population = sensible_initialisation(GRAMMAR, np.random.default_rng(seed), size, config)
    assert len(population) == size
    mapped = [map_genome(GRAMMAR, g) for g in population]
    assert all(d.valid for d in mapped)
    assert all(min(depths) <= d.depth <= max(depths) for d in mapped)
    if size >= 2 * len(depths):
        assert {d.depth for d in mapped} == set(depths)


@given(seeds)
def test_initialised_genomes_reproduce_their_tree_plus_a_half_tail(seed):
    rng = np.random.default_rng(seed)
    for genome in sensible_initialisation(GRAMMAR, rng, 6) + pi_grow_initialisation(
        GRAMMAR, rng, 6
    ):
        d = map_genome(GRAMMAR, genome)
        assert d.valid
        assert len(genome) == d.used_codons + d.used_codons // 2


def test_pi_grow_reaches_every_ramped_depth():
    config = GEConfig(max_init_depth=8)
    population = pi_grow_initialisation(GRAMMAR, np.random.default_rng(3), 40, config)
    assert {map_genome(GRAMMAR, g).depth for g in population} == set(ramp_depths(GRAMMAR, config))


@given(genomes, genomes, seeds)
def test_no_operator_ever_raises(a, b, seed):
    rng = np.random.default_rng(seed)
    for genome in (a, b, []):
        int_flip_mutation(genome, 10**6, True, rng)
        int_flip_mutation(genome, 0, False, rng)
    one_point_crossover(a, 10**6, True, b, -3, False, rng, 1.0)
    one_point_crossover([], 0, False, [], 0, True, rng, 1.0)
    assert len(random_genome(rng, 0)) == 0
