"""A plain, slow transcription of PonyGE2's linear mapping loop, for property tests.

Written from PonyGE2's documented semantics (not its source): a deque of (symbol, depth) starting
at the start rule at depth 1; at the top of every iteration the depth limit is tested first, then
the wrap counter (starting at -1) is bumped when the codons read are a positive multiple of the
genome length and a non-terminal remains; then one symbol is popped from the left and either
emitted or expanded with codon ``genome[used % n] % choices``. The fast mapper in
``evo.ge.mapper`` must agree with this on every input.
"""

from __future__ import annotations

from collections import deque

from evo.ge.grammar import Grammar


def ponyge2_map(
    grammar: Grammar, genome: list[int], max_wraps: int, max_tree_depth: int
) -> tuple[str | None, int, int, int]:
    """(phenotype or None when invalid, used codons, nodes, max depth)."""
    n = len(genome)
    limit = max_tree_depth if max_tree_depth else float("inf")
    used, max_depth, nodes, wraps = 0, 0, 1, -1
    out: list[str] = []
    pending: deque[tuple[str, bool, int]] = deque([(grammar.start, True, 1)])
    while wraps < max_wraps and pending:
        if max_depth > limit:
            break
        if used % n == 0 and used > 0 and any(is_nt for _, is_nt, _ in pending):
            wraps += 1
        text, is_nt, depth = pending.popleft()
        max_depth = max(max_depth, depth)
        if not is_nt:
            out.append(text)
            continue
        choices = grammar.rules[text].choices
        choice = choices[genome[used % n] % len(choices)]
        used += 1
        nt_kids = sum(1 for s in choice if s.is_nt)
        nodes += nt_kids or 1
        pending.extendleft(reversed([(s.text, s.is_nt, depth + 1) for s in choice]))
    if pending:
        return None, used, nodes, max_depth
    return "".join(out), used, nodes, max_depth
