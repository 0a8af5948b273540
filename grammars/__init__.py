"""Shipped BNF search spaces, found through importlib.resources so they work from a wheel."""

from __future__ import annotations

from importlib import resources


def names() -> list[str]:
    """Names (file stems) of every grammar shipped with evo."""
    return sorted(
        p.name.removesuffix(".bnf")
        for p in resources.files(__name__).iterdir()
        if p.name.endswith(".bnf")
    )


def read(name: str) -> str:
    """Text of a shipped grammar; ``KeyError`` lists the known names when absent."""
    path = resources.files(__name__).joinpath(f"{name.removesuffix('.bnf')}.bnf")
    if not path.is_file():
        raise KeyError(f"no shipped grammar {name!r}; shipped: {', '.join(names())}")
    return path.read_text(encoding="utf-8")
