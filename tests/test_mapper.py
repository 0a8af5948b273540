"""Mapping: bit-exact with PonyGE2 on its own 300 cases, and pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evo.ge.grammar import load_grammar, parse_grammar
from evo.ge.mapper import map_genome
from tests._ponyge2_reference import ponyge2_map
from tests.test_grammar import BLOCKS

CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "ponyge2"
GRAMMAR = parse_grammar(BLOCKS)
EDGE = parse_grammar("""<e> ::= <t><e> | <t>
<t> ::= <d> | (<p>)
<p> ::= <d><d> | <d>
<d> ::= x | y | z
""")
genomes = st.lists(st.integers(min_value=-10, max_value=10**6), max_size=60)


VECTORS = {"blocks.json": 300, "depth_edge.json": 1000}


def _cases(name: str):
    path = CONFORMANCE / name
    if not path.is_file():
        return []
    grammars: dict[str, object] = {}
    params = []
    for block in json.loads(path.read_text()):
        if block["grammar"] not in grammars:
            grammars[block["grammar"]] = load_grammar(CONFORMANCE / block["grammar"])
        grammar = grammars[block["grammar"]]
        params += [
            pytest.param(grammar, block, case,
                         id=f"{name[:-5]}-w{block['max_wraps']}-d{block['max_tree_depth']}-{i}")
            for i, case in enumerate(block["cases"])
        ]
    return params


@pytest.mark.parametrize(("name", "count"), VECTORS.items())
def test_conformance_file_has_all_its_cases(name, count):
    if not (CONFORMANCE / name).is_file():
        pytest.skip(f"../shared/conformance/ponyge2/{name} not present (shared folder missing)")
    assert len(_cases(name)) == count


@pytest.mark.parametrize(("grammar", "block", "case"),
                         [p for name in VECTORS for p in _cases(name)])
def test_matches_ponyge2_exactly(grammar, block, case):
    d = map_genome(grammar, case["genome"], block["max_wraps"], block["max_tree_depth"])
    assert d.valid == (not case["invalid"])
    if case["invalid"]:
        assert d.phenotype is None and d.reason
    else:
        assert (d.phenotype, d.used_codons, d.nodes, d.depth) == (
            case["phenotype"], case["used_codons"], case["nodes"], case["depth"]
        )


def test_symbol_breaching_the_depth_limit_is_still_processed():
    # <e> -> <t> -> <d> -> "x" reaches depth 4: with a limit of 3 the terminal at depth 4 is
    # still emitted (PonyGE2 tests the limit at the top of the next iteration), so it is valid.
    d = map_genome(EDGE, [1, 0, 0], 0, 3)
    assert d.valid and d.phenotype == "x" and d.depth == 4
    # One level more with symbols left after the breach: invalid.
    assert not map_genome(EDGE, [0, 0, 0, 1, 0, 0], 0, 3).valid


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


# Small random grammars: rules r0..rK, each with 1-3 choices of 1-3 symbols drawn from terminals
# and rules with a higher index or (for recursion) any rule, so depth limits and wraps both bite.
@st.composite
def small_grammars(draw):
    n_rules = draw(st.integers(1, 4))
    lines = []
    for i in range(n_rules):
        choices = []
        for _ in range(draw(st.integers(1, 3))):
            symbols = draw(st.lists(
                st.one_of(st.sampled_from(["a", "b", "c"]),
                          st.integers(0, n_rules - 1).map(lambda k: f"<r{k}>")),
                min_size=1, max_size=3))
            choices.append("".join(symbols))
        # Guarantee a terminal-only way out so every rule can finish.
        choices.append("t")
        lines.append(f"<r{i}> ::= " + " | ".join(choices))
    return parse_grammar("\n".join(lines) + "\n")


@given(small_grammars(), st.lists(st.integers(0, 10**5), min_size=1, max_size=25),
       st.integers(0, 3), st.integers(0, 9))
def test_fast_loop_equals_a_plain_transcription_of_ponyge2(grammar, genome, wraps, depth):
    d = map_genome(grammar, genome, wraps, depth)
    phenotype, used, nodes, max_depth = ponyge2_map(grammar, genome, wraps, depth)
    assert d.phenotype == phenotype and d.valid == (phenotype is not None)
    assert d.used_codons == used
    if d.valid:
        assert (d.nodes, d.depth) == (nodes, max_depth)


@given(st.lists(st.integers(0, 10**5), min_size=1, max_size=40), st.integers(0, 2),
       st.integers(1, 12))
def test_fast_loop_equals_ponyge2_on_the_shipped_style_grammar(genome, wraps, depth):
    for grammar in (GRAMMAR, EDGE):
        d = map_genome(grammar, genome, wraps, depth)
        phenotype, used, nodes, max_depth = ponyge2_map(grammar, genome, wraps, depth)
        assert (d.phenotype, d.used_codons) == (phenotype, used)
        if d.valid:
            assert (d.nodes, d.depth) == (nodes, max_depth)
