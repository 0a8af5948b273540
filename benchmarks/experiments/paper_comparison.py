"""The paper's comparison: ``cnn_topology`` against ``cnn_full``, same budget, several seeds.

    .venv/bin/python benchmarks/experiments/paper_comparison.py

Reads ``paper_comparison.toml``; runs (or reuses, see common.py) one NSGA-II search per grammar
and seed without export or latency, then ``evo compare`` scores every run in the fixed
normalisation (x = (log10 params - 2) / 4 clipped to [0, 1], y = validation error, reference
(1, 1)) and draws the fronts, hypervolume curves and 50 % attainment surfaces. Writes
``docs/results/paper_comparison.md`` (median and min-max spread of the final hypervolume per
group, the two-sided Mann-Whitney U p-value, the smallest front member at >= 95 % validation
accuracy per seed) and ``docs/results/paper_comparison/compare.png``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def main() -> None:
    config = common.load_config("paper_comparison")
    out, budget = Path(config["out"]), config["budget"]
    groups = {g: [common.search(budget, g, config["strategy"], s, out) for s in config["seeds"]]
              for g in config["grammars"]}
    figures = common.RESULTS / "paper_comparison"
    scratch = out / "compare-paper_comparison"
    result = common.compare(groups, scratch)
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(scratch / "compare.png", figures / "compare.png")
    common.write(common.RESULTS / "paper_comparison.md", table(config, groups, result))


def table(config: dict, groups: dict[str, list[Path]], result: dict) -> str:
    """The markdown page: set-up, one row per grammar, the test, the figure."""
    budget = config["budget"]
    by_name = {g["name"]: g for g in result["groups"]}
    lines = [
        "# Paper comparison: cnn_topology against cnn_full",
        "",
        f"NSGA-II on {budget['dataset']}, population {budget['population']}, "
        f"{budget['generations']} generations after the initial one, {budget['epochs']} epochs "
        f"per candidate ({budget['workers']} worker(s), {budget['threads']} torch thread(s) "
        f"each), seeds {config['seeds']}, no export. {result['normalisation']}.",
        f"Machine: {common.machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `.venv/bin/python benchmarks/experiments/paper_comparison.py`.",
        "",
        "| grammar | final hypervolume, median (min - max) | trained evaluations per seed "
        "| smallest front member at >= 95 % val. accuracy per seed: params (val. acc.) |",
        "|---|---|---|---|",
    ]
    lines += common.group_rows(groups, by_name, result, "paper_comparison/compare.png")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
