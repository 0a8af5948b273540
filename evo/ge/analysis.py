"""Facts derived from a parsed grammar: minimum depths, recursion, reachability, space size.

Every analysis here is linear in the size of the grammar and iterative: a grammar is user input,
so chains of thousands of rules must neither hit Python's recursion limit nor take exponential
time (a rule used twice by each of 400 chained rules is reached 2^400 times along paths, but
is one node of the graph). The results equal PonyGE2's definitions, which its reader computes
by walking every path.

The size of a finite space can exceed any integer worth printing (a chain of squaring rules
doubles its number of digits per rule), so it is kept exactly only while small and otherwise as
its base-10 logarithm, and printed in scientific notation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from evo.ge.grammar import Rule

# Counts below this are kept as exact integers (10^1000 has 1001 digits, far under Python's
# 4300-digit limit for int <-> str conversion); larger ones only as log10.
_EXACT_DIGITS = 1000
_EXACT_LIMIT = 10**_EXACT_DIGITS
# Sizes up to this print in full with thousands separators; larger ones in scientific notation.
_PRINT_IN_FULL = 10**15


def _nt_children(rule: Rule) -> list[str]:
    """Distinct non-terminals a rule uses, in first-use order."""
    return list(dict.fromkeys(s.text for ch in rule.choices for s in ch if s.is_nt))


def min_steps(rules: Mapping[str, Rule]) -> dict[str, int]:
    """PonyGE2's minimum expansion levels: a rule finishes at level k once some choice uses
    only terminals and rules finished before level k (so a terminal-only choice gives 1).

    Computed level by level with a counter of unfinished symbols per choice, so each symbol is
    looked at once; rules that can never finish are absent from the result.
    """
    waiting: dict[str, list[tuple[str, int]]] = {name: [] for name in rules}
    missing: dict[tuple[str, int], int] = {}
    done: dict[str, int] = {}
    frontier: list[str] = []
    for name, rule in rules.items():
        for i, choice in enumerate(rule.choices):
            used = {s.text for s in choice if s.is_nt}
            missing[(name, i)] = len(used)
            for child in used:
                waiting[child].append((name, i))
            if not used and name not in done:
                done[name] = 1
                frontier.append(name)
    level = 1
    while frontier:
        following: list[str] = []
        for child in frontier:
            for parent, i in waiting.get(child, ()):
                missing[(parent, i)] -= 1
                if missing[(parent, i)] == 0 and parent not in done:
                    done[parent] = level + 1
                    following.append(parent)
        frontier = following
        level += 1
    return {name: done[name] for name in rules if name in done}


def reachable_from(rules: Mapping[str, Rule], start: str) -> set[str]:
    """Rules a derivation from ``start`` can use (``start`` included)."""
    seen = {start}
    stack = [start]
    while stack:
        for child in _nt_children(rules[stack.pop()]):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _components(rules: Mapping[str, Rule]) -> list[list[str]]:
    """Strongly connected components (Tarjan, with an explicit stack), sinks first."""
    children = {name: _nt_children(rule) for name, rule in rules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in rules:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            kids = children[node]
            if pos < len(kids):
                work.append((node, pos + 1))
                child = kids[pos]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(component)
            if work:  # hand the finished child's low link to its parent
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


def recursive_flags(rules: Mapping[str, Rule]) -> dict[str, bool]:
    """PonyGE2's ``recursive`` flag: True when a cycle is reachable from the rule (the rule
    need not lie on it). Unreachable rules get flags too, for ``evo grammar check``."""
    flags: dict[str, bool] = {}
    for component in _components(rules):  # every successor component is already flagged
        members = set(component)
        cyclic = len(component) > 1 or component[0] in _nt_children(rules[component[0]])
        flag = cyclic or any(
            flags[child]
            for name in component
            for child in _nt_children(rules[name])
            if child not in members
        )
        for name in component:
            flags[name] = flag
    return flags


@dataclass(frozen=True)
class Analysis:
    """What :func:`analyse` derives; see :class:`evo.ge.grammar.Grammar` for the meanings.

    ``min_steps`` lacks the rules that can never terminate (the parser names them).
    """

    min_steps: dict[str, int]
    recursive: dict[str, bool]
    reachable: set[str]
    choice_steps: dict[str, tuple[int, ...]]
    choice_recursive: dict[str, tuple[bool, ...]]


def analyse(rules: Mapping[str, Rule], start: str) -> Analysis:
    """Every per-rule and per-choice fact initialisation and mapping need, in linear time."""
    steps = min_steps(rules)
    recursive = recursive_flags(rules)
    choice_steps = {
        name: tuple(max((steps.get(s.text, 0) for s in ch if s.is_nt), default=0)
                    for ch in r.choices)
        for name, r in rules.items()
    }
    choice_recursive = {
        name: tuple(any(s.is_nt and recursive[s.text] for s in ch) for ch in r.choices)
        for name, r in rules.items()
    }
    return Analysis(steps, recursive, reachable_from(rules, start), choice_steps,
                    choice_recursive)


@dataclass(frozen=True)
class SpaceSize:
    """Number of distinct derivation trees from the start rule.

    ``infinite`` when the start rule is recursive. Otherwise ``log10`` is its base-10
    logarithm (``inf`` only past what a float holds, about 10^(1.8e308)) and ``exact`` the
    count itself while it is below 10^1000 (``None`` above).
    """

    infinite: bool
    exact: int | None = None
    log10: float = 0.0

    def __str__(self) -> str:
        """``infinite``, ``1,234``, ``1.2e+4301`` or, when even the exponent is astronomic,
        ``10^(1.3e+120)``; never a decimal string of a giant integer."""
        if self.infinite:
            return "infinite"
        if self.exact is not None and self.exact < _PRINT_IN_FULL:
            return f"{self.exact:,}"
        if math.isinf(self.log10):
            return "more than 10^(1.8e+308)"
        if self.log10 >= 1e15:  # the mantissa is lost in a float of this size
            return f"10^({self.log10:.1e})"
        exponent = math.floor(self.log10)
        mantissa = 10 ** (self.log10 - exponent)
        if mantissa >= 9.95:  # 9.96e+12 would print as 10.0e+12
            mantissa, exponent = 1.0, exponent + 1
        return f"{mantissa:.1f}e+{exponent}"

    def to_json(self) -> int | str | None:
        """The exact count when it is known, else the text of :meth:`__str__`; None when
        infinite."""
        if self.infinite:
            return None
        return self.exact if self.exact is not None else str(self)


def _log10_sum(values: list[float]) -> float:
    top = max(values)
    if math.isinf(top):
        return top
    return top + math.log10(sum(10 ** (v - top) for v in values))


def space_size(rules: Mapping[str, Rule], start: str, recursive: Mapping[str, bool]) -> SpaceSize:
    """Derivation trees from ``start``: each rule's count is the sum over its choices of the
    product of its non-terminals' counts, taken in dependency order (children first)."""
    if recursive[start]:
        return SpaceSize(infinite=True)
    exact: dict[str, int | None] = {}
    logs: dict[str, float] = {}
    work: list[tuple[str, bool]] = [(start, False)]
    while work:
        name, children_done = work.pop()
        if name in logs:
            continue
        if not children_done:
            work.append((name, True))
            work.extend((child, False) for child in _nt_children(rules[name])
                        if child not in logs)
            continue
        total: int | None = 0
        choice_logs = []
        for choice in rules[name].choices:
            used = [s.text for s in choice if s.is_nt]
            choice_logs.append(sum(logs[child] for child in used))
            small = choice_logs[-1] < _EXACT_DIGITS  # never multiply out a giant product
            if small and total is not None and all(exact[child] is not None for child in used):
                total += math.prod(exact[child] for child in used)  # type: ignore[misc]
                if total >= _EXACT_LIMIT:
                    total = None
            else:
                total = None
        exact[name] = total
        logs[name] = math.log10(total) if total is not None else _log10_sum(choice_logs)
    return SpaceSize(infinite=False, exact=exact[start], log10=logs[start])
