"""Grammars as hostile input: analysis in linear time, no recursion limit, bounded sizes.

Each case here used to hang, exhaust memory or end in a traceback (issue 19, item 6).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import numpy as np
import pytest

from evo.ge.analysis import SpaceSize
from evo.ge.grammar import (
    MAX_GE_RANGE,
    MAX_GRAMMAR_BYTES,
    MAX_LINE_CHARS,
    MAX_SYMBOLS,
    GrammarError,
    load_grammar,
    parse_grammar,
)
from evo.ge.mapper import map_genome


def doubling_chain(levels: int) -> str:
    """<a_i> ::= <a_i+1> <a_i+1> | "relu ": 2^levels paths, the space squares per level."""
    lines = [f'<a{i}> ::= <a{i + 1}> <a{i + 1}> | "relu "' for i in range(levels)]
    return "\n".join([*lines, f'<a{levels}> ::= "relu "']) + "\n"


def unit_chain(levels: int) -> str:
    lines = [f"<u{i}> ::= <u{i + 1}>" for i in range(levels)]
    return "\n".join([*lines, f'<u{levels}> ::= "relu "']) + "\n"


def digits_grammar(digits: int, extra: str = "") -> str:
    """A start rule of ``digits`` <d> symbols (10 choices each), 100 to a line."""
    rows = [" ".join(["<d>"] * min(100, digits - i)) for i in range(0, digits, 100)]
    return "<s> ::= " + "\n  ".join(rows) + extra + "\n<d> ::= 0|1|2|3|4|5|6|7|8|9\n"


def test_400_chained_doubling_rules_check_in_well_under_a_second():
    started = time.perf_counter()
    g = parse_grammar(doubling_chain(400))
    size = g.space_size()
    assert time.perf_counter() - started < 1.0  # was over 60 s: every path was walked
    assert not g.recursive["a0"] and g.min_steps["a0"] == 1
    assert not size.infinite and size.exact is None
    assert 1.2e119 < size.log10 < 1e121  # the count squares per level: log10 doubles
    assert str(size).startswith("10^(") and str(size).endswith("e+119)")


def test_2000_chained_unit_rules_parse_and_map_without_recursion_error():
    g = parse_grammar(unit_chain(2000))
    assert g.min_steps["u0"] == 2001 and g.min_depth() == 2002
    assert not any(g.recursive.values())
    assert g.space_size().exact == 1
    d = map_genome(g, [0] * 2001, max_wraps=0, max_tree_depth=0)
    assert d.valid and d.phenotype == "relu " and d.depth == 2002


def test_deep_recursive_cycle_is_flagged_without_recursion_error():
    text = "\n".join(f"<r{i}> ::= <r{i + 1}> | x" for i in range(3000)) + "\n<r3000> ::= <r0>\n"
    g = parse_grammar(text)
    assert all(g.recursive.values()) and g.space_size().infinite


@pytest.mark.parametrize("arg", ["999999999999", "1" + "0" * 5000, str(MAX_GE_RANGE + 1)])
def test_huge_ge_range_is_refused_at_once(arg):
    started = time.perf_counter()
    with pytest.raises(GrammarError, match=r"g\.bnf:2:9: GE_RANGE:\d+ is over the limit of "
                       r"10,000 choices") as err:
        parse_grammar(f"<s> ::= <f>\n<f> ::= GE_RANGE:{arg}\n", "g.bnf")
    assert time.perf_counter() - started < 0.5  # was ~140 MB/s of growing memory
    assert len(str(err.value)) < 200


def test_ge_range_at_the_limit_and_odd_spellings():
    assert parse_grammar(f"<f> ::= GE_RANGE:{MAX_GE_RANGE}\n").n_choices("f") == MAX_GE_RANGE
    assert parse_grammar("<f> ::= GE_RANGE:0003\n").n_choices("f") == 3
    for bad in ("\u00b2", "0000", "-4", "1e3"):  # '²'.isdigit() is True, int('²') fails
        with pytest.raises(GrammarError, match="GE_RANGE needs a positive integer"):
            parse_grammar(f"<f> ::= GE_RANGE:{bad}\n")


def test_space_over_4300_digits_prints_in_scientific_notation():
    g = parse_grammar(digits_grammar(4300, " <t>") + "<t> ::= " + "|".join("abcdefghijkl") + "\n")
    size = g.space_size()  # 12 * 10^4300: int -> str of it raised ValueError
    assert str(size) == "1.2e+4301" and size.to_json() == "1.2e+4301"
    assert math.isclose(size.log10, 4301 + math.log10(1.2))


def test_space_size_exact_when_small_and_rounding_of_the_mantissa():
    assert str(parse_grammar(digits_grammar(3)).space_size()) == "1,000"
    assert parse_grammar(digits_grammar(300)).space_size().to_json() == 10**300
    assert str(SpaceSize(False, None, math.log10(9.97e40))) == "1.0e+41"
    assert str(SpaceSize(False, 10**15, 15.0)) == "1.0e+15"
    assert str(SpaceSize(False, None, math.inf)) == "more than 10^(1.8e+308)"


def test_grammar_check_cli_prints_giant_sizes(tmp_path):
    path = tmp_path / "big.bnf"
    path.write_text(digits_grammar(4400))
    text = subprocess.run([sys.executable, "-m", "evo", "grammar", "check", str(path)],
                          capture_output=True, text=True, timeout=120)
    # Digits are no architecture: the size is printed, then the sample refuses the grammar.
    assert text.returncode == 2 and "sampled derivations is an architecture" in text.stderr
    assert "space: 1.0e+4400 derivation trees" in text.stdout
    out = subprocess.run([sys.executable, "-m", "evo", "grammar", "check", str(path), "--json"],
                         capture_output=True, text=True, timeout=120)
    data = json.loads(out.stdout)
    assert data["space_size"] == "1.0e+4400" and data["space_size_log10"] == pytest.approx(4400)


def test_long_line_and_large_file_are_refused_with_their_size(tmp_path):
    line = "<s> ::= " + " | ".join(f'"x{i}"' for i in range(2000))
    assert len(line) > MAX_LINE_CHARS
    with pytest.raises(GrammarError, match=r"g\.bnf:2:1: line is [\d,]+ characters; the limit "
                       r"is 10,000"):
        parse_grammar("# ok\n" + line + "\n", "g.bnf")
    big = tmp_path / "big.bnf"
    big.write_bytes(b"<s> ::= x\n" + b"# padding\n" * (MAX_GRAMMAR_BYTES // 10))
    with pytest.raises(GrammarError, match=r"grammar file is 1,000,010 bytes; the limit is "
                       r"1,000,000"):
        load_grammar(big)


def test_too_many_symbols_is_refused_naming_the_rule():
    # <s>: 10,000 <d> and the 9,999 spaces between them (literal text is a terminal symbol)
    text = digits_grammar(MAX_SYMBOLS // 2)
    assert len(parse_grammar(text.replace("<d> ::= 0|1|2|3|4|5|6|7|8|9", "<d> ::= 0"))
               .rules["s"].choices[0]) == MAX_SYMBOLS - 1
    with pytest.raises(GrammarError, match=r"rule <d> brings the grammar over the limit of "
                       r"10,000 symbols"):
        parse_grammar(text, "g.bnf")


def test_a_search_space_at_the_limits_maps_quickly():
    text = "<s> ::= <f> <f>\n<f> ::= GE_RANGE:9000\n"
    started = time.perf_counter()
    g = parse_grammar(text)
    assert map_genome(g, [1, 2, 3], 0, 90).phenotype == "2 3"
    assert time.perf_counter() - started < 10  # mapper compiles each symbol per depth level


# ------------------------------------------------------------ same answers as PonyGE2's walk


def _ponyge2_min_steps(rules):
    done, pending, level = {}, set(rules), 1
    while pending:
        ready = {n for n in pending if any(all(not s.is_nt or s.text in done for s in ch)
                                           for ch in rules[n].choices)}
        if not ready:
            break
        done.update(dict.fromkeys(ready, level))
        pending -= ready
        level += 1
    return done


def _ponyge2_recursive(rules):
    flags = {}

    def visit(name, path):
        if name in path:
            return True
        path.append(name)
        rec = False
        for choice in rules[name].choices:
            for s in choice:
                if s.is_nt and visit(s.text, path):
                    rec = True
        path.pop()
        flags[name] = rec
        return rec

    for name in rules:
        visit(name, [])
    return flags


def _count(rules, name):
    return sum(math.prod(_count(rules, s.text) for s in ch if s.is_nt)
               for ch in rules[name].choices)


def _random_grammar(rng: np.random.Generator) -> str:
    n = int(rng.integers(2, 8))
    lines = []
    for i in range(n):
        choices = []
        for _ in range(int(rng.integers(1, 4))):
            parts = [f"<r{int(rng.integers(0, n))}>" if rng.random() < 0.45 else "t"
                     for _ in range(int(rng.integers(1, 4)))]
            choices.append(" ".join(parts))
        lines.append(f"<r{i}> ::= " + " | ".join(choices))
    return "\n".join(lines) + "\n"


def test_linear_analysis_equals_ponyge2_path_walk_on_random_grammars():
    rng = np.random.default_rng(19)
    checked = 0
    for _ in range(400):
        try:
            g = parse_grammar(_random_grammar(rng))
        except GrammarError:
            continue  # undefined or non-terminating rules: nothing to compare
        checked += 1
        assert g.min_steps == _ponyge2_min_steps(g.rules)
        assert g.recursive == _ponyge2_recursive(g.rules)
        size = g.space_size()
        assert size.infinite == g.recursive[g.start]
        if not size.infinite:
            assert size.exact == _count(g.rules, g.start)
    assert checked > 100
