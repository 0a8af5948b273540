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

import math
import re
from dataclasses import dataclass
from pathlib import Path

from evo.errors import EvoError

_RULE_HEAD = re.compile(r"<([^<>\s]+)>\s*::=")
# One piece of an alternative: (spaces)newlines(spaces) | plain text | '..' | ".." | <nt> | '<'s.
_PART = re.compile(
    r" *([\r\n]+) *|([^'\"<\r\n]+)|'(.*?)'|\"(.*?)\"|(?P<nt><[^>|\s]+>)|(<+)"
)
_GE_RANGE = re.compile(r"GE_RANGE:(.*)")


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

    def space_size(self) -> int | None:
        """Number of distinct derivation trees, or ``None`` when the start rule is recursive."""
        if self.recursive[self.start]:
            return None
        memo: dict[str, int] = {}

        def count(name: str) -> int:
            if name not in memo:
                total = 0
                for choice in self.rules[name].choices:
                    total += math.prod(count(s.text) for s in choice if s.is_nt)
                memo[name] = total
            return memo[name]

        return count(self.start)

    def min_depth(self) -> int:
        """Smallest tree depth a derivation can have, counted as the mapper counts depth."""
        return self.min_steps[self.start] + 1


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


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
            close = text.find(ch, i + 1, end)
            breaks = [p for p in (text.find("\n", i + 1, end), text.find("\r", i + 1, end))
                      if p != -1]
            if close == -1 or (breaks and min(breaks) < close):
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
            if not arg.isdigit() or int(arg) <= 0:
                line, col = _position(text, at)
                raise GrammarError(
                    f"{where}:{line}:{col}: GE_RANGE needs a positive integer, got {arg!r}",
                    "write e.g. GE_RANGE:8 for the choices 0 | 1 | ... | 7",
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


def _min_steps(rules: dict[str, Rule]) -> dict[str, int]:
    """PonyGE2's fixed-point: a rule is finished at level k once some choice uses only
    terminals and rules finished before level k."""
    done: dict[str, int] = {}
    pending = set(rules)
    level = 1
    while pending:
        ready = {
            name
            for name in pending
            if any(all(not s.is_nt or s.text in done for s in ch) for ch in rules[name].choices)
        }
        if not ready:
            break
        for name in ready:
            done[name] = level
        pending -= ready
        level += 1
    return done


def _reachable_from(rules: dict[str, Rule], start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for choice in rules[stack.pop()].choices:
            for s in choice:
                if s.is_nt and s.text not in seen:
                    seen.add(s.text)
                    stack.append(s.text)
    return seen


def _recursive_flags(rules: dict[str, Rule], start: str) -> dict[str, bool]:
    """PonyGE2's flag: True when a cycle is reachable from the rule along the current path."""
    flags = {name: False for name in rules}

    def visit(name: str, path: list[str]) -> bool:
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

    visit(start, [])
    reachable = _reachable_from(rules, start)
    for name in rules:  # unreachable rules get flags too, for `evo grammar check`
        if name not in reachable:
            visit(name, [])
    return flags


def parse_grammar(text: str, source: str = "<string>") -> Grammar:
    """Parse BNF text; ``source`` names the file in error messages."""
    specs = _split_rules(text)
    if not specs:
        raise GrammarError(
            f"{source}:1:1: no rules found",
            "a grammar needs at least one rule like <start> ::= a | b",
        )
    rules: dict[str, Rule] = {}
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
        rules[name] = Rule(name, tuple(choices), line, col)

    # Undefined non-terminals, reported at the first place they are used.
    for name, _head, body_start, body_end in specs:
        for m in re.finditer(r"<([^>|\s]+)>", text[body_start:body_end]):
            used = m.group(1)
            if used in rules or not any(
                s.is_nt and s.text == used for ch in rules[name].choices for s in ch
            ):
                continue
            line, col = _position(text, body_start + m.start())
            raise GrammarError(
                f"{source}:{line}:{col}: undefined non-terminal <{used}> in rule <{name}>",
                f"define it with <{used}> ::= ... or fix the spelling",
            )

    start = specs[0][0]
    steps = _min_steps(rules)
    for name, rule in rules.items():
        if name not in steps:
            raise GrammarError(
                f"{source}:{rule.line}:{rule.col}: rule <{name}> can never terminate",
                "give it (or a rule it uses) a choice that ends in terminals",
            )
    recursive = _recursive_flags(rules, start)
    reachable = _reachable_from(rules, start)
    warnings = tuple(
        f"{source}:{r.line}:{r.col}: rule <{r.name}> is unreachable from <{start}>"
        for r in rules.values()
        if r.name not in reachable
    )
    choice_steps = {
        name: tuple(max((steps[s.text] for s in ch if s.is_nt), default=0) for ch in r.choices)
        for name, r in rules.items()
    }
    choice_recursive = {
        name: tuple(any(s.is_nt and recursive[s.text] for s in ch) for ch in r.choices)
        for name, r in rules.items()
    }
    return Grammar(
        source=source,
        text=text,
        start=start,
        rules=rules,
        min_steps=steps,
        recursive=recursive,
        choice_steps=choice_steps,
        choice_recursive=choice_recursive,
        warnings=warnings,
    )


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
