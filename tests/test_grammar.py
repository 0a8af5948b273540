"""Grammar parsing: PonyGE2's text rules, derived facts, and every error with its position."""

from __future__ import annotations

from pathlib import Path

import pytest

from evo.ge.grammar import GrammarError, load_grammar, parse_grammar

CONFORMANCE = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "ponyge2"
BLOCKS = """# sample
<model>  ::= <layers> "| " <train>
<layers> ::= <layer> | <layer> <layers>
<layer>  ::= "conv(" <f> "," <k> ") " | "pool(" <p> ") " | <layer> "bn "
<f>      ::= 8 | 16 | 32 | 64
<k>      ::= 3 | 5
<p>      ::= max | avg
<train>  ::= lr=<lr> bs=<bs>
<lr>     ::= 0.1 | 0.01 | 0.001
<bs>     ::= GE_RANGE:4
"""


def texts(grammar, rule):
    return [[(s.text, s.is_nt) for s in ch] for ch in grammar.rules[rule].choices]


def test_literal_text_kept_as_ponyge2_keeps_it():
    g = parse_grammar(BLOCKS)
    assert g.start == "model"
    assert texts(g, "model") == [[("layers", True), (" |  ", False), ("train", True)]]
    assert texts(g, "layer")[0] == [
        ("conv( ", False), ("f", True), (" , ", False), ("k", True), (" ) ", False)
    ]
    assert texts(g, "train") == [[("lr=", False), ("lr", True), (" bs=", False), ("bs", True)]]
    assert texts(g, "bs") == [[("0", False)], [("1", False)], [("2", False)], [("3", False)]]


def test_min_steps_and_recursion_follow_ponyge2():
    g = parse_grammar(BLOCKS)
    assert g.min_steps == {"f": 1, "k": 1, "p": 1, "lr": 1, "bs": 1, "layer": 2, "train": 2,
                           "layers": 3, "model": 4}
    assert g.recursive["layer"] and g.recursive["layers"] and g.recursive["model"]
    assert not g.recursive["train"]
    assert g.space_size().infinite and str(g.space_size()) == "infinite"
    assert g.min_depth() == 5


def test_quotes_may_hold_bars_angles_and_spaces_and_alternatives_span_lines():
    g = parse_grammar("<a> ::= 'x | y' | \"<b> c\"\n      | z  # a comment | not an alt\n")
    assert texts(g, "a") == [[("x | y", False)], [("<b> c", False)], [("z", False)]]


def test_comment_ends_an_alternative_like_ponyge2():
    g = parse_grammar("<a> ::= x # first\n  y | z\n")
    assert texts(g, "a") == [[("x", False)], [("y", False)], [("z", False)]]


def test_escapes_are_unescaped_and_finite_space_counted():
    g = parse_grammar("<a> ::= <b> <b>\n<b> ::= 'p\\tq' | r | s\n")
    assert texts(g, "b")[0] == [("p\tq", False)]
    assert g.space_size().exact == 9 and str(g.space_size()) == "9"


def test_unreachable_rule_warns():
    g = parse_grammar("<a> ::= x\n<b> ::= y\n", "g.bnf")
    assert g.warnings == ("g.bnf:2:1: rule <b> is unreachable from <a>",)


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("<a> ::= <b>\n", "g.bnf:1:9", "undefined non-terminal <b>"),
        ("<a> ::= x\n<a> ::= y\n", "g.bnf:2:1", "defined twice"),
        ("<a> ::= x | | y\n", "g.bnf:1:11", "empty alternative"),
        ("<a> ::= | y\n", "g.bnf:1:9", "empty alternative"),
        ("<a> ::= x |\n<b> ::= y\n", "g.bnf:1:11", "empty alternative"),
        ("<a> ::= <b>\n<b> ::= x <b>\n", "g.bnf:1:1", "can never terminate"),
        ("<a> ::= 'abc | d\n", "g.bnf:1:9", "unterminated quote"),
        ("<a> ::= GE_RANGE:zero\n", "g.bnf:1:9", "GE_RANGE needs a positive integer"),
        ("<a> ::= GE_RANGE:0\n", "g.bnf:1:9", "GE_RANGE needs a positive integer"),
        ("# nothing here\n", "g.bnf:1:1", "no rules"),
        ("<a> ::= GE_GENERATE:[1]\n", "g.bnf:1:9", "not supported"),
    ],
)
def test_errors_name_file_line_col_and_fix(text, where, words):
    with pytest.raises(GrammarError) as err:
        parse_grammar(text, "g.bnf")
    assert str(err.value).startswith(where + ":"), str(err.value)
    assert words in str(err.value)
    assert err.value.hint


def test_file_errors(tmp_path):
    binary = tmp_path / "bin.bnf"
    binary.write_bytes(b"\xff\xfe\x00<a> ::= x")
    with pytest.raises(GrammarError, match="not a text file"):
        load_grammar(binary)
    with pytest.raises(GrammarError, match="not found"):
        load_grammar(tmp_path / "missing.bnf")
    with pytest.raises(GrammarError, match="unknown grammar"):
        load_grammar("no_such_grammar")


@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="../shared/conformance not present")
def test_conformance_grammar_parses_from_file():
    g = load_grammar(CONFORMANCE / "blocks.bnf")
    assert list(g.rules) == ["model", "layers", "layer", "f", "k", "p", "train", "lr", "bs"]
