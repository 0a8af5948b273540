"""NSGA-II against random search: ``cnn_full``, the same budget, several seeds, on digits.

    .venv/bin/python benchmarks/experiments/nsga2_vs_random.py

Reads ``nsga2_vs_random.toml``; the NSGA-II runs are the ``cnn_full`` runs of
``paper_comparison`` (reused when complete), the random ones (``--strategy random``: the same
grammar and number of individuals, no selection) are searched here. ``evo compare`` scores all
of them in the fixed normalisation. Writes ``docs/results/nsga2_vs_random.md`` and
``docs/results/nsga2_vs_random/compare.png``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common


def main() -> None:
    config = common.load_config("nsga2_vs_random")
    out, budget = Path(config["out"]), config["budget"]
    groups = {s: [common.search(budget, config["grammar"], s, seed, out)
                  for seed in config["seeds"]] for s in config["strategies"]}
    scratch = out / "compare-nsga2_vs_random"
    result = common.compare(groups, scratch)
    figures = common.RESULTS / "nsga2_vs_random"
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(scratch / "compare.png", figures / "compare.png")
    common.write(common.RESULTS / "nsga2_vs_random.md", table(config, groups, result))


def table(config: dict, groups: dict[str, list[Path]], result: dict) -> str:
    """The markdown page: set-up, one row per strategy, the test, the figure."""
    budget = config["budget"]
    by_name = {g["name"]: g for g in result["groups"]}
    lines = [
        f"# NSGA-II against random search ({config['grammar']})",
        "",
        f"{config['grammar']} on {budget['dataset']}, population {budget['population']}, "
        f"{budget['generations']} generations after the initial one (random search: the same "
        f"number of individuals), {budget['epochs']} epochs per candidate "
        f"({budget['workers']} worker(s), {budget['threads']} torch thread(s) each), seeds "
        f"{config['seeds']}, no export. {result['normalisation']}.",
        f"Machine: {common.machine()}. Date: {dt.date.today().isoformat()}.",
        "Command: `.venv/bin/python benchmarks/experiments/nsga2_vs_random.py` (the NSGA-II "
        "runs are shared with paper_comparison).",
        "",
        "| strategy | final hypervolume, median (min - max) | trained evaluations per seed "
        "| smallest front member at >= 95 % val. accuracy per seed: params (val. acc.) |",
        "|---|---|---|---|",
    ]
    lines += common.group_rows(groups, by_name, result, "nsga2_vs_random/compare.png")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
