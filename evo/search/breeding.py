"""Breeding: the genomes of a new batch (initial population, offspring, random samples), mapped
and described, with duplicates of an evaluation key replaced while a fresh draw can do it.

Why duplicates are redrawn: an individual whose network was already evaluated is a free cache
hit, so a batch of repeats would spend a generation learning nothing (ramped half-and-half
repeats small trees; crossover of two parents with one key gives that key back). Every draw
comes from the ``rng`` passed in, in a fixed order, so the same stored generator state gives
the same batch on every machine and after every resume.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evo.config import SearchConfig
from evo.ge.grammar import Grammar
from evo.ge.mapper import map_genome
from evo.ge.operators import (
    GEConfig,
    int_flip_mutation,
    one_point_crossover,
    pi_grow_initialisation,
    random_genome,
    sensible_initialisation,
)
from evo.moo import nsga2
from evo.run.store import Individual
from evo.search.contract import Problem

MAX_DUPLICATE_RETRIES = 20  # fresh offspring drawn per slot before a duplicate is accepted

Draw = Callable[[], list[tuple[list[int], tuple[int, ...]]]]  # genomes with their parents


@dataclass(frozen=True)
class Child:
    """A new individual before it is stored: its genome, what it maps to, and the evaluation
    key the problem gives it (``None``: invalid, with the ``reason``)."""

    genome: list[int]
    phenotype: str | None
    valid: bool
    used_codons: int
    depth: int
    nodes: int
    eval_key: str | None
    reason: str | None
    parents: tuple[int, ...] = ()
    origin: str = "init"


def ge_config(config: SearchConfig) -> GEConfig:
    """The GE operators' settings from a search configuration."""
    return GEConfig(
        codon_size=config.codon_size, genome_length=config.genome_length,
        max_wraps=config.max_wraps, max_tree_depth=config.max_tree_depth,
        min_init_depth=config.min_init_depth, max_init_depth=config.max_init_depth,
        crossover_probability=config.crossover, mutation_rate=config.mutation,
    )


class Breeder:
    """Creates the children of one batch for a grammar, a problem and a configuration."""

    def __init__(self, grammar: Grammar, problem: Problem, config: SearchConfig) -> None:
        self.grammar = grammar
        self.problem = problem
        self.config = config
        self.ge = ge_config(config)

    def describe(self, genome: list[int], parents: tuple[int, ...] = (),
                 origin: str = "init") -> Child:
        """Map a genome and ask the problem for its evaluation key."""
        d = map_genome(self.grammar, genome, self.ge.max_wraps, self.ge.max_tree_depth)
        key, reason = None, d.reason
        if d.valid:
            described = self.problem.candidate(d.phenotype or "")
            if isinstance(described, str):
                reason = described
            else:
                key = described[0]
        return Child(genome, d.phenotype, d.valid, d.used_codons, d.depth, d.nodes, key, reason,
                     parents, origin)

    # -- the three kinds of batch ------------------------------------------------------------
    def initial(self, rng: np.random.Generator, n: int, seeded: list[list[int]]) -> list[Child]:
        """Generation 0: random genomes, or ramped half-and-half / PI grow trees after the
        ``seeded`` genomes (a warm start's front)."""
        if self.config.strategy == "random" or self.config.init == "random":
            def draw() -> list[tuple[list[int], tuple[int, ...]]]:
                return [(random_genome(rng, self.ge.genome_length, self.ge.codon_size), ())]
            return self._unique(draw, n, set(), origin="init")
        init = pi_grow_initialisation if self.config.init == "pi-grow" else \
            sensible_initialisation
        seeded = seeded[:n]
        genomes = seeded + init(self.grammar, rng, n - len(seeded), self.ge)
        children, keys = [], set()
        for genome in genomes:
            child = self.describe(genome)
            if child.eval_key is not None and child.eval_key in keys:
                # Ramped half-and-half repeats small trees; replace duplicates with fresh ones.
                child = self._retry_unique(lambda: init(self.grammar, rng, 1, self.ge)[0], keys,
                                           child)
            if child.eval_key is not None:
                keys.add(child.eval_key)
            children.append(child)
        return children

    def random(self, rng: np.random.Generator, n: int) -> list[Child]:
        """A later batch of the random-search baseline: fresh random genomes."""
        return self._unique(lambda: [(random_genome(rng, self.ge.genome_length,
                                                    self.ge.codon_size), ())], n, set())

    def offspring(self, rng: np.random.Generator, n: int, population: list[Individual],
                  ranks: np.ndarray, crowding: np.ndarray) -> list[Child]:
        """Children of the surviving ``population``: crowded tournament, one-point crossover,
        int-flip mutation; keys the population already holds count as duplicates."""
        keys = {ind.eval_key for ind in population if ind.eval_key is not None}

        def draw() -> list[tuple[list[int], tuple[int, ...]]]:
            a, b = (population[i] for i in nsga2.crowded_tournament(ranks, crowding, 2, rng))
            c, d = one_point_crossover(a.genome, a.used_codons, a.valid, b.genome,
                                       b.used_codons, b.valid, rng,
                                       self.ge.crossover_probability)
            out = []
            for child in (c, d):
                m = map_genome(self.grammar, child, self.ge.max_wraps, self.ge.max_tree_depth)
                out.append((int_flip_mutation(child, m.used_codons, m.valid, rng,
                                              self.ge.mutation_rate, self.ge.codon_size),
                            (a.id, b.id)))
            return out

        return self._unique(draw, n, keys, origin="offspring")

    # -- duplicates ----------------------------------------------------------------------------
    def _retry_unique(self, draw: Callable[[], list[int]], keys: set[str],
                      fallback: Child) -> Child:
        for _ in range(MAX_DUPLICATE_RETRIES):
            child = self.describe(draw())
            if child.eval_key is None or child.eval_key not in keys:
                return child
        return fallback

    def _unique(self, draw: Draw, n: int, keys: set[str], origin: str = "random"
                ) -> list[Child]:
        children: list[Child] = []
        while len(children) < n:
            for _attempt in range(MAX_DUPLICATE_RETRIES + 1):
                candidates = [self.describe(g, p, origin) for g, p in draw()]
                if all(c.eval_key is None or c.eval_key not in keys for c in candidates):
                    break
            for child in candidates:
                if len(children) < n:
                    if child.eval_key is not None:
                        keys.add(child.eval_key)
                    children.append(child)
        return children
