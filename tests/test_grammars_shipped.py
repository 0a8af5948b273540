"""The shipped search spaces: headers, validity at the search's default GE settings, the sizes
of the networks they span, and a MobileNetV2 derived from mobile.bnf."""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import grammars
from evo.arch import InvertedResidual, parse_arch, resolve, spec_to_text
from evo.cli.app import main
from evo.ge.grammar import Grammar, Symbol, load_grammar
from evo.ge.mapper import map_genome
from evo.net.model import build_model, count_macs, count_params, layer_table

torch.set_num_threads(1)

SHIPPED = ("cnn_topology", "cnn_full", "mobile")
SHAPES = ((1, 8, 8), (1, 28, 28), (3, 32, 32))
# The search's default GE settings, stated in every grammar's header.
GENOME_LENGTH, CODON_SIZE, MAX_WRAPS, MAX_TREE_DEPTH = 100, 100_000, 0, 90


def _random_genomes(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, CODON_SIZE + 1, size=(n, GENOME_LENGTH)).tolist()


def _max_codons(grammar: Grammar) -> int:
    """Most codons any derivation reads (each non-terminal expansion reads one, as in
    PonyGE2); the shipped grammars are not recursive, so this is finite."""

    @cache
    def most(rule: str) -> int:
        return 1 + max(
            sum(most(s.text) for s in choice if s.is_nt) for choice in grammar.rules[rule].choices
        )

    return most(grammar.start)


def test_the_three_grammars_are_shipped():
    assert set(SHIPPED) <= set(grammars.names())


@pytest.mark.parametrize("name", SHIPPED)
def test_header_says_what_the_space_spans_and_where_its_ranges_come_from(name):
    text = grammars.read(name)
    header = text[: text.index("\n<")]
    assert text.startswith(f"# {name}: ")
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines())
    flat = " ".join(line.lstrip("# ") for line in header.splitlines())
    assert "ours" in flat  # the paper's abstract is all that is public
    assert "max_wraps 0 (PonyGE2's default)" in flat
    assert "genome length 100" in flat and "max_tree_depth 90" in flat
    assert "codons uniform in [0, 100000]" in flat
    stated = int(re.search(r"reads at most (\d+) codons", flat).group(1))
    assert stated == _max_codons(load_grammar(name)) <= GENOME_LENGTH


@pytest.mark.parametrize("name", SHIPPED)
def test_random_genomes_map_parse_and_span_mobile_sizes(name):
    grammar = load_grammar(name)
    genomes = _random_genomes(400, seed=sum(map(ord, name)))
    params = {shape: [] for shape in SHAPES}
    ok = 0
    for genome in genomes:
        derivation = map_genome(grammar, genome, MAX_WRAPS, MAX_TREE_DEPTH)
        if not derivation.valid:
            continue
        spec = parse_arch(derivation.phenotype)
        ok += 1
        for shape in SHAPES:
            params[shape].append(resolve(spec, shape, 10).params())
    assert ok / len(genomes) >= 0.95
    assert ok == len(genomes)  # every derivation fits in 100 codons
    floor = 0.85 if name == "mobile" else 0.9
    for shape, counts in params.items():
        counts = np.array(counts)
        in_range = np.mean((counts >= 1e3) & (counts <= 1e6))
        assert in_range >= floor, (shape, in_range)
        assert 1e4 <= np.median(counts) <= 3e5, shape


@pytest.mark.parametrize("name", SHIPPED)
def test_sampled_networks_build_and_run_at_every_input_size(name):
    grammar = load_grammar(name)
    for genome in _random_genomes(2, seed=7):
        spec = parse_arch(map_genome(grammar, genome).phenotype)
        for shape in SHAPES:
            resolved = resolve(spec, shape, 10)
            model = build_model(resolved).eval()
            rows = layer_table(resolved, model)  # checks every built shape against resolve()
            assert sum(r.params for r in rows) == count_params(model) == resolved.params()
            with torch.no_grad():
                assert model(torch.randn(2, *shape)).shape == (2, 10)


@pytest.mark.parametrize("name", SHIPPED)
def test_arch_show_prints_a_table_for_samples_at_every_input_size(name, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    phenotype = map_genome(load_grammar(name), _random_genomes(1, seed=3)[0]).phenotype
    for shape in SHAPES:
        with pytest.raises(SystemExit) as info:
            main(["arch", "show", phenotype, "--input", "x".join(map(str, shape))])
        out = capsys.readouterr().out
        assert info.value.code == 0
        assert "total" in out and "cache key" in out


@given(st.sampled_from(SHIPPED), st.lists(st.integers(0, CODON_SIZE), min_size=100,
                                          max_size=100))
def test_phenotypes_round_trip_and_resolve_to_fixed_points(name, genome):
    derivation = map_genome(load_grammar(name), genome, MAX_WRAPS, MAX_TREE_DEPTH)
    assert derivation.valid
    spec = parse_arch(derivation.phenotype)
    assert parse_arch(spec_to_text(spec)) == spec
    for shape in SHAPES:
        resolved = resolve(spec, shape, 10)
        again = resolve(parse_arch(resolved.canonical_text()), shape, 10)
        assert again.key() == resolved.key()


# --------------------------------------------------------------------------------------------
# A MobileNetV2 derived from mobile.bnf


def encode(grammar: Grammar, target: str) -> list[int]:
    """A genome whose derivation yields ``target`` (whitespace ignored): the choice index at
    each leftmost expansion, found by backtracking; each codon is its choice's index."""
    goal = re.sub(r"\s+", "", target)

    def derive(symbols: tuple, pos: int) -> list[int] | None:
        if not symbols:
            return [] if pos == len(goal) else None
        head, rest = symbols[0], symbols[1:]
        if not head.is_nt:
            text = re.sub(r"\s+", "", head.text)
            return derive(rest, pos + len(text)) if goal.startswith(text, pos) else None
        for index, choice in enumerate(grammar.rules[head.text].choices):
            tail = derive(tuple(choice) + rest, pos)
            if tail is not None:
                return [index, *tail]
        return None

    choices = derive((Symbol(grammar.start, True),), 0)
    if choices is None:
        raise ValueError(f"{target!r} is not a sentence of the grammar")
    return choices


# MobileNetV2 (Sandler et al. 2018, table 2) as mobile.bnf writes it: stem, seven (t, c, n, s)
# stages, 1x1 convolution to 1280, global pooling, dropout 0.2.
MOBILENETV2_PHENOTYPE = (
    "conv(32, k=3, s=2) bn relu6 "
    "ir(16, e=1, k=3, s=1, se=off, act=relu6, n=1) "
    "ir(24, e=6, k=3, s=2, se=off, act=relu6, n=2) "
    "ir(32, e=6, k=3, s=2, se=off, act=relu6, n=3) "
    "ir(64, e=6, k=3, s=2, se=off, act=relu6, n=4) "
    "ir(96, e=6, k=3, s=1, se=off, act=relu6, n=3) "
    "ir(160, e=6, k=3, s=2, se=off, act=relu6, n=3) "
    "ir(320, e=6, k=3, s=1, se=off, act=relu6, n=1) "
    "conv(1280, k=1) bn relu6 gap dropout(0.2)"
)
MOBILENETV2_BY_HAND = (
    "conv(32, k=3, s=2) bn relu6 ir(16, e=1) ir(24, s=2, n=2) ir(32, s=2, n=3) "
    "ir(64, s=2, n=4) ir(96, n=3) ir(160, s=2, n=3) ir(320) conv(1280, k=1) bn relu6 gap "
    "dropout(0.2)"
)


def test_a_mobilenetv2_is_derived_from_mobile_bnf():
    grammar = load_grammar("mobile")
    genome = encode(grammar, MOBILENETV2_PHENOTYPE)
    assert len(genome) <= GENOME_LENGTH
    # Padded with random codons to the default genome length, it still maps to MobileNetV2.
    padded = genome + _random_genomes(1, seed=0)[0][len(genome):]
    derivation = map_genome(grammar, padded, MAX_WRAPS, MAX_TREE_DEPTH)
    assert derivation.valid and derivation.used_codons == len(genome)
    assert re.sub(r"\s+", "", derivation.phenotype) == re.sub(r"\s+", "",
                                                              MOBILENETV2_PHENOTYPE)

    imagenet = resolve(parse_arch(derivation.phenotype), (3, 224, 224), 1000)
    assert imagenet.network_text() == resolve(parse_arch(MOBILENETV2_BY_HAND), (3, 224, 224),
                                              1000).network_text()
    blocks = [i for i in imagenet.layers if isinstance(i.layer, InvertedResidual)]
    assert len(blocks) == 17 and sum(b.residual for b in blocks) == 10
    assert blocks[-1].out_shape == (320, 7, 7)
    # torchvision's mobilenet_v2(): 3,504,872 parameters and 300.8 M multiply-adds.
    assert imagenet.params() == 3_504_872
    model = build_model(imagenet)
    assert count_params(model) == 3_504_872
    assert count_macs(model, (3, 224, 224)) == 300_774_272

    digits = resolve(parse_arch(derivation.phenotype), (1, 8, 8), 10)
    assert len(digits.dropped) == 2  # two stride-2 stages meet a 1x1 map
    assert digits.params() == count_params(build_model(digits))
