"""What every experiment shares: its TOML config, searches that are reused when already
complete, `evo compare` in the fixed normalisation, and markdown tables.

Why searches are reused: experiments share runs (``nsga2_vs_random`` reuses the ``cnn_full``
NSGA-II runs of ``paper_comparison``: same configuration, same seeds), so a run folder that
already holds every generation is read, not searched again. Run folders live outside the repo
(``out`` in the TOML, /tmp by default); only tables and figures go into ``docs/results/``.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"
EVO = str(Path(sys.executable).with_name("evo"))


def load_config(name: str) -> dict[str, Any]:
    """The experiment's TOML beside its script."""
    with open(Path(__file__).with_name(f"{name}.toml"), "rb") as fh:
        return tomllib.load(fh)


def run_name(strategy: str, grammar: str, seed: int) -> str:
    """One folder name per (strategy, grammar, seed): the key that lets experiments share runs."""
    return f"{strategy}-{grammar}-s{seed}"


def complete(run_dir: Path, generations: int) -> bool:
    """True when the run holds its last generation (reused instead of searched again)."""
    if not (run_dir / "run.db").is_file():
        return False
    from evo.run.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        last = store.last_generation()
        return last is not None and last >= generations
    finally:
        store.close(checkpoint=False)


def search(budget: dict[str, Any], grammar: str, strategy: str, seed: int, out: Path) -> Path:
    """One `evo search` (no export, no latency), or the complete run already in ``out``."""
    run_dir = out / run_name(strategy, grammar, seed)
    if complete(run_dir, int(budget["generations"])):
        print(f"reusing {run_dir}", flush=True)
        return run_dir
    args = [EVO, "search", "--grammar", grammar, "--dataset", str(budget["dataset"]),
            "--strategy", strategy, "--seed", str(seed),
            "--population", str(budget["population"]),
            "--generations", str(budget["generations"]), "--epochs", str(budget["epochs"]),
            "--workers", str(budget.get("workers", 1)), "--threads", str(budget.get("threads", 1)),
            "--no-export", "--no-bench", "--run-dir", str(run_dir)]
    if run_dir.exists():
        args = [EVO, "search", "--resume", str(run_dir), "--no-export", "--no-bench"]
    t0 = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    print(f"searched {run_dir} in {time.monotonic() - t0:.0f} s", flush=True)
    return run_dir


def compare(groups: dict[str, list[Path]], out: Path) -> dict[str, Any]:
    """`evo compare` over the groups: writes compare.png/html/json into ``out``, returns the
    JSON (hypervolumes in the fixed normalisation, medians, spreads, Mann-Whitney U)."""
    args = [EVO, "compare", *(str(p) for runs in groups.values() for p in runs)]
    for name, runs in groups.items():
        args += ["--label", f"{name}=" + ",".join(str(p) for p in runs)]
    args += ["--out", str(out), "--json"]
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def smallest_accurate(run_dir: Path, threshold: float = 0.95) -> tuple[float, float] | None:
    """(params, validation accuracy) of the smallest front member at >= ``threshold``."""
    from evo.run.front import front_of
    from evo.run.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        rows = [(ev.objectives["params"], ev.metrics.get("val_accuracy", 0.0))
                for _ind, ev in front_of(store)]
    finally:
        store.close(checkpoint=False)
    accurate = [r for r in rows if r[1] >= threshold]
    return min(accurate) if accurate else None


def trained_count(run_dir: Path) -> int:
    """Evaluations the run actually trained (cache hits and invalid individuals are free)."""
    from evo.run.store import RunStore

    store = RunStore.open(run_dir, write=False)
    try:
        return int(store.count_trained())
    finally:
        store.close(checkpoint=False)


def machine() -> str:
    """One line naming the machine the numbers came from (CPU count as the OS reports it; the
    evaluations' threads and workers are in each experiment's budget line)."""
    import os

    import torch

    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def hv_cell(group: dict[str, Any]) -> str:
    """Median (min - max) of a group's final hypervolumes."""
    if group.get("min") is None:
        return f"{group['median']:.4f}"
    return f"{group['median']:.4f} ({group['min']:.4f} - {group['max']:.4f})"


def small_cell(found: list[tuple[float, float] | None]) -> str:
    """Per seed: the smallest member at >= 95 % validation accuracy, or a dash."""
    return ", ".join(f"{p:,.0f} ({a:.1%})" if (p, a) != (0, 0) else "-"
                     for p, a in ((f if f else (0, 0)) for f in found))


def group_rows(groups: dict[str, list[Path]], by_name: dict[str, Any], result: dict[str, Any],
               figure: str) -> list[str]:
    """The rows both comparison tables share: one per group, then the tests, notes and figure."""
    lines = []
    for name, runs in groups.items():
        trained = ", ".join(str(trained_count(r)) for r in runs)
        small = small_cell([smallest_accurate(r) for r in runs])
        lines.append(f"| {name} | {hv_cell(by_name[name])} | {trained} | {small} |")
    lines.append("")
    for test in result["tests"]:
        lines.append(f"Two-sided Mann-Whitney U, {test['first']} vs {test['second']}: "
                     f"U = {test['u']:.1f}, p = {test['p_value']:.3f} (the smallest p three "
                     f"seeds per group can give is {test['smallest_possible_p']:.3f}).")
    lines += ["", *(f"Note: {n}" for n in result["notes"]), "",
              f"![fronts, hypervolume and attainment]({figure})", ""]
    return lines


def write(path: Path, text: str) -> None:
    """Write one results file and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path.relative_to(ROOT)}", flush=True)
