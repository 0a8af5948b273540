"""Genome -> phenotype mapping speed: ours against PonyGE2's linear mapper.

    .venv/bin/python benchmarks/bench_mapping.py [--genomes 20000] [--repeats 7]

Uniform random genomes of length 100 (codons in [0, 100000], seed 0) on PonyGE2's own
``blocks.bnf`` (../shared/conformance/ponyge2/). When PONYGE2_SRC points at a PonyGE2 checkout
(its ``src`` folder or the repository root), its ``map_ind_from_genome`` maps the same genomes in
the same process, interleaved with ours; otherwise the recorded PonyGE2 figure is printed,
labelled as recorded. PonyGE2 is GPL and not on PyPI: it is never vendored here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from evo.grammar import load_grammar
from evo.mapper import map_genome

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = ROOT.parent / "shared" / "conformance" / "ponyge2" / "blocks.bnf"
RECORDED_PONYGE2 = 90_000  # genomes/s, PonyGE2's linear mapper on this machine (issue #2)


def _ponyge2_mapper(grammar_path: Path):
    src = Path(os.environ["PONYGE2_SRC"])
    src = src / "src" if (src / "src").is_dir() else src
    sys.path.insert(0, str(src))
    from algorithm import mapper  # type: ignore[import-not-found]
    from algorithm.parameters import params  # type: ignore[import-not-found]
    from representation.grammar import Grammar  # type: ignore[import-not-found]

    params.update({"MAX_TREE_DEPTH": 90, "MAX_WRAPS": 0, "CODON_SIZE": 100000})
    params["BNF_GRAMMAR"] = Grammar(str(grammar_path))
    return lambda genome: mapper.map_ind_from_genome(genome)


def _rate(fn, genomes) -> float:
    start = time.perf_counter()
    for genome in genomes:
        fn(genome)
    return len(genomes) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genomes", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if not BLOCKS.is_file():
        sys.exit(f"bench_mapping: {BLOCKS} not found (the shared conformance folder is needed)")
    grammar = load_grammar(BLOCKS)
    genomes = np.random.default_rng(0).integers(0, 100_001, size=(args.genomes, 100)).tolist()
    ours = lambda g: map_genome(grammar, g, 0, 90)  # noqa: E731
    theirs = _ponyge2_mapper(BLOCKS) if os.environ.get("PONYGE2_SRC") else None
    ours_rates, theirs_rates = [], []
    for _ in range(args.repeats):
        ours_rates.append(_rate(ours, genomes))
        if theirs:
            theirs_rates.append(_rate(theirs, genomes))
    valid = sum(map_genome(grammar, g).valid for g in genomes) / len(genomes)
    print(f"blocks.bnf, {args.genomes} uniform genomes of length 100, {valid:.1%} valid, "
          f"{args.repeats} interleaved repeats")
    print(f"{'mapper':<26}{'median genomes/s':>18}{'min':>12}{'max':>12}")
    med = statistics.median(ours_rates)
    print(f"{'evo.mapper':<26}{med:>18,.0f}{min(ours_rates):>12,.0f}{max(ours_rates):>12,.0f}")
    if theirs_rates:
        ref = statistics.median(theirs_rates)
        print(f"{'PonyGE2 (same run)':<26}{ref:>18,.0f}{min(theirs_rates):>12,.0f}"
              f"{max(theirs_rates):>12,.0f}")
    else:
        ref = RECORDED_PONYGE2
        print(f"{'PonyGE2 (recorded)':<26}{ref:>18,.0f}{'-':>12}{'-':>12}")
    print(f"ratio evo / PonyGE2: {med / ref:.2f}")


if __name__ == "__main__":
    main()
