"""How run outputs write two kinds of value, the same way in every command: phenotypes and counts.

``evo front``, ``evo show`` and ``evo runs`` (tables, JSON and CSV) share these rules so that a
spreadsheet or a script reading any of them sees one spelling:

- a phenotype is given as the architecture language's canonical text (grammars written for
  PonyGE2 leave spaces inside calls, ``conv( 8 , k= 3 )``); the raw text the grammar produced is
  kept beside it, under ``phenotype_raw``, for anyone matching it against ``evo grammar map``;
- counts (parameters, MACs, bytes) are integers: the search keeps every objective as a float,
  and ``21698.0`` parameters reads as a measurement with a fractional part.
"""

from __future__ import annotations

from typing import Any

# Keys whose values are counts wherever they appear in a run's outputs.
COUNT_KEYS = frozenset({"params", "macs", "bytes", "smallest_params", "val_total",
                        "val_correct", "test_total", "test_images", "val_images"})


def canonical_phenotype(raw: str | None) -> str | None:
    """The canonical architecture text of ``raw``; a phenotype that is not the architecture
    language (a synthetic test grammar, an invalid derivation) with its whitespace collapsed."""
    if raw is None:
        return None
    from evo.arch import ArchParseError, parse_arch, spec_to_text

    try:
        return spec_to_text(parse_arch(raw))
    except ArchParseError:
        return " ".join(raw.split())


def is_count(key: str) -> bool:
    """Whether a value stored under ``key`` counts something (params, MACs, bytes, images)."""
    return key in COUNT_KEYS or key.endswith("_bytes")


def integral_counts(value: Any, key: str = "") -> Any:
    """``value`` with every whole-number float stored under a count key made an ``int``,
    through nested dicts and lists (other values, accuracies included, are left alone)."""
    if isinstance(value, dict):
        return {k: integral_counts(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [integral_counts(v, key) for v in value]
    if isinstance(value, float) and is_count(key) and value.is_integer():
        return int(value)
    return value
