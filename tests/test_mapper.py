"""Mapping: bit-exact with PonyGE2 on its own 300 cases, and pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evo.grammar import parse_grammar
from evo.mapper import map_genome
from tests.test_grammar import BLOCKS

CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "ponyge2"
GRAMMAR = parse_grammar(BLOCKS)
genomes = st.lists(st.integers(min_value=-10, max_value=10**6), max_size=60)


def _cases():
    path = CONFORMANCE / "blocks.json"
    if not path.is_file():
        return []
    return [
        pytest.param(block, case, id=f"w{block['max_wraps']}-d{block['max_tree_depth']}-{i}")
        for block in json.loads(path.read_text())
        for i, case in enumerate(block["cases"])
    ]


@pytest.mark.skipif(not (CONFORMANCE / "blocks.json").is_file(),
                    reason="../shared/conformance/ponyge2/blocks.json not present")
def test_conformance_has_300_cases():
    assert len(_cases()) == 300


@pytest.mark.parametrize(("block", "case"), _cases())
def test_matches_ponyge2_exactly(block, case):
    d = map_genome(GRAMMAR, case["genome"], block["max_wraps"], block["max_tree_depth"])
    assert d.valid == (not case["invalid"])
    if case["invalid"]:
        assert d.phenotype is None and d.reason
    else:
        assert (d.phenotype, d.used_codons, d.nodes, d.depth) == (
            case["phenotype"], case["used_codons"], case["nodes"], case["depth"]
        )


@given(genomes, st.integers(0, 3), st.integers(0, 30))
def test_mapping_is_pure_and_never_raises(genome, wraps, depth):
    first = map_genome(GRAMMAR, genome, wraps, depth)
    assert first == map_genome(GRAMMAR, list(genome), wraps, depth)
    assert first.valid == (first.phenotype is not None)


@given(genomes)
def test_valid_phenotype_rederives_from_its_used_codons(genome):
    d = map_genome(GRAMMAR, genome, 0, 90)
    if d.valid and d.used_codons <= len(genome):
        again = map_genome(GRAMMAR, genome[: d.used_codons], 0, 90)
        assert again.phenotype == d.phenotype


def test_max_wraps_zero_reads_one_codon_past_the_end():
    # <model>, <layers> -> <layer>, <layer> -> <layer> "bn ": the genome (length 3) ends with
    # <layer> on top, and PonyGE2 still reads one more codon before giving up.
    d = map_genome(GRAMMAR, [0, 0, 2], 0, 90)
    assert not d.valid and d.used_codons == 4


def test_strict_semantics_wraps_textbook_style():
    genome = [0, 0, 0, 0, 0, 0, 0]  # conv( 8 , 3 ) | lr=0.1 bs=0 needs 8 codons
    assert not map_genome(GRAMMAR, genome, 0, 90, "strict").valid
    d = map_genome(GRAMMAR, genome, 1, 90, "strict")
    assert d.valid and d.phenotype == "conv( 8 , 3 )  |  lr=0.1 bs=0" and d.used_codons == 8
    assert not map_genome(GRAMMAR, genome, 1, 4, "strict").valid


def test_empty_genome_is_invalid_not_an_error():
    assert map_genome(GRAMMAR, []).reason == "empty genome"
