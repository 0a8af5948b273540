"""BNF grammars as PonyGE2 reads them, with errors a person can act on.

The text-to-symbols rules follow PonyGE2's grammar reader exactly (that is what makes genomes and
phenotypes portable between the two tools): literal text between symbols is kept, quoted text is
kept verbatim, runs of spaces around a line break inside an alternative collapse to the break, a
``#`` outside quotes starts a comment that runs to the end of the line and also ends the current
alternative, and ``GE_RANGE:n`` expands to ``0 | 1 | ... | n-1``. Where PonyGE2 silently accepts
a broken grammar (an empty alternative, an undefined symbol, a rule that cannot terminate) we stop
with a ``GrammarError`` that names ``file:line:col`` and the fix.

Depth conventions are PonyGE2's as well: ``min_steps`` of a rule whose choices are all terminals
is 1, and ``recursive`` marks a rule from which a cycle is reachable (not only rules on a cycle),
which is what sensible initialisation needs to grow "full" trees.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evo.errors import EvoError
from evo.ge.analysis import SpaceSize, analyse, space_size

_RULE_HEAD = re.compile(r"<([^<>\s]+)>\s*::=")
# One piece of an alternative: (spaces)newlines(spaces) | plain text | '..' | ".." | <nt> | '<'s.
_PART = re.compile(
    r" *([\r\n]+) *|([^'\"<\r\n]+)|'(.*?)'|\"(.*?)\"|(?P<nt><[^>|\s]+>)|(<+)"
)
_GE_RANGE = re.compile(r"GE_RANGE:(.*)")

# Limits on grammar text: far above any hand-written search space (the shipped ones are under
# 4 kB, with lines under 150 characters and under 200 symbols in all), far below what would make
# parsing, mapping or a search crawl or fill memory (the mapper compiles every symbol once per
# depth level: 10,000 symbols take about 1.4 s and 120 MB at the default depth limit of 90, and
# twice the time and three times the memory with no limit).
MAX_GRAMMAR_BYTES = 1_000_000
MAX_LINE_CHARS = 10_000
MAX_GE_RANGE = 10_000
MAX_SYMBOLS = 10_000  # terminals and non-terminals of all alternatives, GE_RANGE expanded


class GrammarError(EvoError):
    """A grammar that cannot be used; the message starts with ``file:line:col``."""


@dataclass(frozen=True, slots=True)
class Symbol:
    """A terminal (its exact text) or a non-terminal (its name without brackets)."""

    text: str
    is_nt: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """One non-terminal: its choices in file order and its place in the source."""

    name: str
    choices: tuple[tuple[Symbol, ...], ...]
    line: int
    col: int


@dataclass(frozen=True, eq=False)
class Grammar:
    """A parsed grammar plus the derived facts initialisation and mapping need.

    Compared and hashed by identity, so per-grammar caches (the mapper's compiled tables) can
    key on it.

    ``min_steps[name]`` is PonyGE2's minimum number of expansion levels to reach terminals;
    ``choice_steps[name][i]`` the same for one choice (0 for a terminal-only choice is never
    stored: terminal-only choices count 0 and the rule adds 1); ``recursive[name]`` and
    ``choice_recursive[name][i]`` mark recursion as PonyGE2 does.
    """

    source: str
    text: str
    start: str
    rules: dict[str, Rule]
    min_steps: dict[str, int]
    recursive: dict[str, bool]
    choice_steps: dict[str, tuple[int, ...]]
    choice_recursive: dict[str, tuple[bool, ...]]
    warnings: tuple[str, ...]

    @property
    def rule_names(self) -> list[str]:
        return list(self.rules)

    def n_choices(self, name: str) -> int:
        return len(self.rules[name].choices)

    def space_size(self) -> SpaceSize:
        """Number of distinct derivation trees (infinite when the start rule is recursive)."""
        return space_size(self.rules, self.start, self.recursive)

    def min_depth(self) -> int:
        """Smallest tree depth a derivation can have, counted as the mapper counts depth."""
        return self.min_steps[self.start] + 1


@lru_cache(maxsize=1)
def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of ``offset``; line starts are found once per text, so naming
    the place of every rule costs a binary search, not a scan from the start."""
    starts = _line_starts(text)
    line = bisect_right(starts, offset)
    return line, offset - starts[line - 1] + 1


def _check_size(text: str, where: str) -> None:
    """Refuse texts whose size alone would make parsing or searching crawl."""
    if len(text) > MAX_GRAMMAR_BYTES:
        raise GrammarError(
            f"{where}: grammar is {len(text):,} characters; the limit is {MAX_GRAMMAR_BYTES:,}",
            "a search space needs far less text: use GE_RANGE or fewer, shorter rules",
        )
    starts = _line_starts(text)
    ends = [*starts[1:], len(text) + 1]
    for number, (begin, end) in enumerate(zip(starts, ends, strict=True), start=1):
        if end - begin - 1 > MAX_LINE_CHARS:
            raise GrammarError(
                f"{where}:{number}:1: line is {end - begin - 1:,} characters; the limit is "
                f"{MAX_LINE_CHARS:,}",
                "continue the alternatives on the next lines: a line break may follow any '|'",
            )


def _unescape(part: str) -> str:
    """PonyGE2 runs every piece of literal text through Python's unicode-escape codec."""
    if "\\" not in part:
        return part
    return part.encode().decode("unicode-escape")


def _split_rules(text: str) -> list[tuple[str, int, int, int]]:
    """(name, head offset, body start, body end) for each rule; heads inside comments ignored."""
    heads: list[re.Match[str]] = []
    i, n = 0, len(text)
    in_comment = False
    while i < n:
        ch = text[i]
        if in_comment:
            if ch in "\r\n":
                in_comment = False
            i += 1
            continue
        if ch == "#":
            in_comment = True
            i += 1
            continue
        if ch == "<":
            m = _RULE_HEAD.match(text, i)
            if m:
                heads.append(m)
                i = m.end()
                continue
        i += 1
    out = []
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else n
        out.append((m.group(1), m.start(), m.end(), end))
    return out


def _split_alternatives(
    text: str, start: int, end: int, where: str
) -> list[tuple[int, str, str, str]]:
    """Pieces of one rule body as (offset, raw text, left delimiter, right delimiter).

    Delimiters are ``start``, ``end``, ``|`` or ``#``: as in PonyGE2, a comment ends the
    alternative it follows.
    """
    pieces: list[tuple[int, str, str, str]] = []
    i = start
    cur_start, left = start, "start"
    buf: list[str] = []
    while i < end:
        ch = text[i]
        if ch in "'\"":
            newline = text.find("\n", i + 1, end)  # search this line only: linear overall
            line_end = end if newline == -1 else newline
            ret = text.find("\r", i + 1, line_end)
            close = text.find(ch, i + 1, line_end if ret == -1 else ret)
            if close == -1:
                line, col = _position(text, i)
                raise GrammarError(
                    f"{where}:{line}:{col}: unterminated quote {ch}",
                    f"close the terminal with a matching {ch} on the same line",
                )
            buf.append(text[i : close + 1])
            i = close + 1
            continue
        if ch in "|#":
            pieces.append((cur_start, "".join(buf), left, ch))
            buf = []
            if ch == "#":
                while i < end and text[i] not in "\r\n":
                    i += 1
            else:
                i += 1
            cur_start, left = i, ch
            continue
        buf.append(ch)
        i += 1
    pieces.append((cur_start, "".join(buf), left, "end"))
    return pieces


def _parse_alternative(raw: str) -> tuple[Symbol, ...]:
    symbols: list[Symbol] = []
    terminal: str | None = None
    for m in _PART.finditer(raw.strip()):
        if m.group("nt"):
            if terminal is not None:
                symbols.append(Symbol(terminal, False))
                terminal = None
            symbols.append(Symbol(m.group("nt")[1:-1], True))
        else:
            if terminal is None:
                terminal = ""
            terminal += "".join(_unescape(p) for p in m.groups() if p)
    if terminal is not None:
        symbols.append(Symbol(terminal, False))
    return tuple(symbols)


def _read_rule_choices(
    text: str, name: str, body: tuple[int, int], where: str
) -> list[tuple[Symbol, ...]]:
    choices: list[tuple[Symbol, ...]] = []
    for off, raw, left, right in _split_alternatives(text, body[0], body[1], where):
        if not raw.strip():
            # Blank pieces next to comments are layout; a '|' with nothing on one side is
            # nearly always a typo that would silently shift what every codon means.
            if (left == "|" and right in ("|", "end")) or (left == "start" and right == "|"):
                bar = off - 1 if left == "|" else off + len(raw)
                line, col = _position(text, bar)
                raise GrammarError(
                    f"{where}:{line}:{col}: empty alternative in rule <{name}>",
                    "remove the extra '|' or quote an empty terminal as \"\"",
                )
            continue
        stripped = raw.lstrip()
        at = off + (len(raw) - len(stripped))
        m = _GE_RANGE.match(stripped)
        if m:
            arg = m.group(1).strip()
            if not re.fullmatch("[0-9]+", arg, re.ASCII) or not arg.lstrip("0"):
                line, col = _position(text, at)
                raise GrammarError(
                    f"{where}:{line}:{col}: GE_RANGE needs a positive integer, got {arg[:40]!r}",
                    "write e.g. GE_RANGE:8 for the choices 0 | 1 | ... | 7",
                )
            if len(arg.lstrip("0")) > 7 or int(arg) > MAX_GE_RANGE:
                line, col = _position(text, at)
                raise GrammarError(
                    f"{where}:{line}:{col}: GE_RANGE:{arg[:20]} is over the limit of "
                    f"{MAX_GE_RANGE:,} choices",
                    "use a smaller range and scale the number where the phenotype uses it",
                )
            choices.extend((Symbol(str(v), False),) for v in range(int(arg)))
            continue
        if stripped.startswith("GE_GENERATE:"):
            line, col = _position(text, at)
            raise GrammarError(
                f"{where}:{line}:{col}: GE_GENERATE is not supported",
                "list the choices explicitly: evo never evaluates code from a grammar",
            )
        choices.append(_parse_alternative(raw))
    return choices


def parse_grammar(text: str, source: str = "<string>") -> Grammar:
    """Parse BNF text; ``source`` names the file in error messages."""
    _check_size(text, source)
    specs = _split_rules(text)
    if not specs:
        raise GrammarError(
            f"{source}:1:1: no rules found",
            "a grammar needs at least one rule like <start> ::= a | b",
        )
    rules: dict[str, Rule] = {}
    n_symbols = 0
    for name, head, body_start, body_end in specs:
        line, col = _position(text, head)
        if name in rules:
            first = rules[name]
            raise GrammarError(
                f"{source}:{line}:{col}: rule <{name}> is defined twice "
                f"(first at line {first.line})",
                "merge the alternatives into one rule",
            )
        choices = _read_rule_choices(text, name, (body_start, body_end), source)
        if not choices:
            raise GrammarError(
                f"{source}:{line}:{col}: rule <{name}> has no alternatives",
                "give it at least one production after ::=",
            )
        n_symbols += sum(len(choice) for choice in choices)
        if n_symbols > MAX_SYMBOLS:
            raise GrammarError(
                f"{source}:{line}:{col}: rule <{name}> brings the grammar over the limit of "
                f"{MAX_SYMBOLS:,} symbols (terminals and non-terminals of all alternatives)",
                "a search space needs far fewer: use smaller GE_RANGEs, fewer or shorter rules",
            )
        rules[name] = Rule(name, tuple(choices), line, col)

    # Undefined non-terminals, reported at the first place they are used.
    for name, _head, body_start, body_end in specs:
        symbols = {s.text for ch in rules[name].choices for s in ch if s.is_nt}
        for m in re.finditer(r"<([^>|\s]+)>", text[body_start:body_end]):
            used = m.group(1)
            if used in rules or used not in symbols:
                continue
            line, col = _position(text, body_start + m.start())
            raise GrammarError(
                f"{source}:{line}:{col}: undefined non-terminal <{used}> in rule <{name}>",
                f"define it with <{used}> ::= ... or fix the spelling",
            )

    start = specs[0][0]
    facts = analyse(rules, start)
    for name, rule in rules.items():
        if name not in facts.min_steps:
            raise GrammarError(
                f"{source}:{rule.line}:{rule.col}: rule <{name}> can never terminate",
                "give it (or a rule it uses) a choice that ends in terminals",
            )
    warnings = tuple(
        f"{source}:{r.line}:{r.col}: rule <{r.name}> is unreachable from <{start}>"
        for r in rules.values()
        if r.name not in facts.reachable
    )
    return Grammar(source=source, text=text, start=start, rules=rules,
                   min_steps=facts.min_steps, recursive=facts.recursive,
                   choice_steps=facts.choice_steps, choice_recursive=facts.choice_recursive,
                   warnings=warnings)


def read_grammar_text(name_or_path: str | Path) -> tuple[str, str]:
    """(text, source label) for a shipped grammar name or a file path."""
    import grammars

    path = Path(name_or_path)
    if path.suffix == ".bnf" or path.exists() or "/" in str(name_or_path):
        if not path.is_file():
            shipped = ", ".join(grammars.names())
            raise GrammarError(
                f"{path}: grammar file not found",
                f"give a path to a .bnf file or a shipped name ({shipped})",
            )
        size = path.stat().st_size
        if size > MAX_GRAMMAR_BYTES:
            raise GrammarError(
                f"{path}: grammar file is {size:,} bytes; the limit is {MAX_GRAMMAR_BYTES:,}",
                "a search space needs far less text: use GE_RANGE or fewer, shorter rules",
            )
        data = path.read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GrammarError(
                f"{path}: not a text file (byte {exc.start} is not UTF-8)",
                "a grammar is a UTF-8 BNF text file",
            ) from None
        if "\x00" in text:
            raise GrammarError(
                f"{path}: not a text file (contains NUL bytes)",
                "a grammar is a UTF-8 BNF text file",
            )
        return text, str(path)
    try:
        return grammars.read(str(name_or_path)), f"{name_or_path}.bnf"
    except KeyError:
        shipped = ", ".join(grammars.names())
        raise GrammarError(
            f"unknown grammar {str(name_or_path)!r}",
            f"use a shipped name ({shipped}) or a path to a .bnf file",
        ) from None


def load_grammar(name_or_path: str | Path) -> Grammar:
    """Parse a shipped grammar (by name, e.g. ``cnn_full``) or a ``.bnf`` file."""
    text, source = read_grammar_text(name_or_path)
    return parse_grammar(text, source)
