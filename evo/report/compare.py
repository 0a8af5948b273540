"""``evo compare``: several runs (seeds of a set-up, grouped by label) on one normalisation,
with the statistics that say whether one set-up beats another.

Why rescored here instead of reading the stored hypervolumes: a run stores its hypervolume on
the scales it was searched with, and two runs stored on different scales compare nothing. Every
run is rescored, generation by generation, from its stored survivors in ONE normalisation: for
error and params the fixed one of the paper's comparisons (x = (log10 params - 2) / 4 clipped to
[0, 1], y = validation error, reference (1, 1)); for other objectives the runs' common stored
scales, or a refusal when they disagree.

Statistics, only where they mean something: with two or more runs in a group, the median and
the min-max spread of the final hypervolume, a two-sided Mann-Whitney U test between every two
such groups, and each group's 50 % empirical attainment surface (the front at least half of its
runs reach). With one run per group those are left out with a note. This module computes;
:mod:`evo.report.compare_draw` draws and :mod:`evo.report.compare_page` writes the page. The
runs are read through :mod:`evo.run` only.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evo.errors import EvoError
from evo.moo.indicators import ObjectiveScale, hypervolume, normalise

FIXED_OBJECTIVES = frozenset({"error", "params"})
FIXED_SCALES = {"error": ObjectiveScale("error", "linear", 0.0, 1.0),
                "params": ObjectiveScale("params", "log10", 1e2, 1e6)}
FIXED_TEXT = ("fixed normalisation: x = (log10 params - 2) / 4 clipped to [0, 1] (100 to 1M "
              "parameters), y = validation error, hypervolume reference point (1, 1)")
SPREAD = "min-max"


@dataclass(frozen=True)
class RunResult:
    """One run rescored: hypervolume per generation and its last front, both normalised."""

    path: str
    group: str
    generations: tuple[int, ...]
    hypervolumes: tuple[float, ...]
    front: tuple[tuple[float, ...], ...]  # last generation's non-dominated points, raw values
    front_normalised: tuple[tuple[float, ...], ...]

    @property
    def final_hypervolume(self) -> float:
        return self.hypervolumes[-1]


@dataclass(frozen=True)
class GroupResult:
    """A group's final hypervolumes; median and spread only with two runs or more."""

    name: str
    runs: tuple[str, ...]
    final: tuple[float, ...]
    median: float
    low: float | None  # the spread: min ...
    high: float | None  # ... to max of the final hypervolumes


@dataclass(frozen=True)
class UTest:
    """A two-sided Mann-Whitney U test of two groups' final hypervolumes."""

    first: str
    second: str
    statistic: float  # U of the first group
    p_value: float
    smallest_p: float  # the smallest p the exact test can give with these group sizes


@dataclass(frozen=True)
class Comparison:
    objectives: tuple[str, ...]
    axes: tuple[int, int]  # the objectives on the figure's x and y axes (indices)
    scales: tuple[ObjectiveScale, ...]
    normalisation: str
    runs: tuple[RunResult, ...]
    groups: tuple[GroupResult, ...]
    tests: tuple[UTest, ...]
    attainment: dict[str, tuple[tuple[float, float], ...]]  # group -> 50 % surface (x, y)
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The whole comparison as JSON-ready data (``--json`` and ``compare.json``)."""
        return {
            "objectives": list(self.objectives),
            "normalisation": self.normalisation,
            "scales": [s.to_dict() for s in self.scales],
            "spread": SPREAD,
            "runs": [{"path": r.path, "group": r.group, "generations": list(r.generations),
                      "hypervolumes": list(r.hypervolumes),
                      "final_hypervolume": r.final_hypervolume,
                      "front": [list(p) for p in r.front],
                      "front_normalised": [list(p) for p in r.front_normalised]}
                     for r in self.runs],
            "groups": [{"name": g.name, "runs": list(g.runs), "final_hypervolumes": list(g.final),
                        "median": g.median, "min": g.low, "max": g.high} for g in self.groups],
            "tests": [{"test": "Mann-Whitney U, two-sided", "first": t.first,
                       "second": t.second, "u": t.statistic, "p_value": t.p_value,
                       "smallest_possible_p": t.smallest_p} for t in self.tests],
            "attainment_50": {name: [list(p) for p in pts]
                              for name, pts in self.attainment.items()},
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------- groups from the command line

def parse_groups(runs: list[Path], labels: list[str]) -> list[tuple[str, list[Path]]]:
    """Groups in command-line order: each ``--label NAME=RUN,RUN`` names some of the RUNs (any
    path to the same folder, or a shell pattern matched against the paths as given); every RUN
    no label names is a group of its own, named by its path."""
    if not runs:
        raise EvoError("no runs to compare", "pass two or more run folders")
    seen: dict[Path, Path] = {}
    for run in runs:
        if _same(run) in seen:
            raise EvoError(f"{run}: given twice (as {seen[_same(run)]} before)",
                           "pass each run folder once")
        seen[_same(run)] = run
    by_key = {_same(r): r for r in runs}
    named: dict[str, list[Path]] = {}
    owner: dict[Path, str] = {}
    for text in labels:
        name, sep, members = text.partition("=")
        name = name.strip()
        paths = [m.strip() for m in members.split(",") if m.strip()]
        if not sep or not name or not paths:
            raise EvoError(f"--label {text!r}: not NAME=RUN,RUN",
                           "e.g. --label nsga2=runs/a,runs/b")
        if name in named:
            raise EvoError(f"--label {name}: given twice", "list all of a group's runs in one "
                           "--label NAME=RUN,RUN")
        named[name] = []
        for member in paths:
            keys = _matching(member, runs)
            if not keys:
                raise EvoError(f"--label {name}: {member} is not one of the runs to compare",
                               "name only run folders also given as RUN arguments")
            for key in keys:
                if key in owner:
                    raise EvoError(f"--label {name}: {by_key[key]} is already in group "
                                   f"{owner[key]}", "put each run in one group")
                owner[key] = name
                named[name].append(by_key[key])
    groups: list[tuple[str, list[Path]]] = []
    for run in runs:
        label = owner.get(_same(run))
        if label is None:
            if str(run) in named:
                raise EvoError(f"--label {run}: a label named like a run that is not in it",
                               "choose another label name")
            groups.append((str(run), [run]))
        elif all(label != name for name, _members in groups):
            groups.append((label, named[label]))
    return groups


def _same(path: Path) -> Path:
    return Path(path).resolve()


def _matching(member: str, runs: list[Path]) -> list[Path]:
    """The RUN arguments a label member names: the same folder, or every RUN whose path as
    given matches it as a shell pattern (``runs/topo-*``), in command-line order."""
    if any(c in member for c in "*?["):
        return [_same(r) for r in runs if fnmatch.fnmatchcase(str(r), member)]
    key = _same(Path(member))
    return [key] if key in {_same(r) for r in runs} else []


# ---------------------------------------------------------------- reading and rescoring

@dataclass(frozen=True)
class _Stored:
    path: Path
    objectives: tuple[str, ...]
    scales: tuple[dict[str, Any], ...]
    # (generation, objective vectors of its front in ``objectives`` order), oldest first
    generations: list[tuple[int, tuple[tuple[float, ...], ...]]]


def _read(path: Path) -> _Stored:
    """A run's objectives, stored scales and per-generation survivors; one line when it cannot
    be compared (no run, damaged, no generation yet)."""
    from evo.config import SearchConfig
    from evo.run.per_generation import generation_fronts
    from evo.run.store import RunStore

    store = RunStore.open(path, write=False)
    try:
        objectives = tuple(SearchConfig.from_dict(store.meta("config") or {}).objectives)
        scales = tuple(store.meta("objective_scales") or ())
        fronts = generation_fronts(store)
    finally:
        store.close(checkpoint=False)
    generations = [
        (front.generation,
         tuple(tuple(float(ev.objectives[name]) for name in objectives)
               for _member, ev in front.members
               if all(name in ev.objectives for name in objectives)))
        for front in fronts]
    if not generations:
        raise EvoError(f"{path}: no generation finished yet, nothing to compare",
                       "compare it once its initial population is done")
    return _Stored(path, objectives, scales, generations)


def choose_scales(runs: list[_Stored]) -> tuple[tuple[ObjectiveScale, ...], str]:
    """The one normalisation of a comparison and the sentence that says which it is."""
    first = runs[0]
    for other in runs[1:]:
        if set(other.objectives) != set(first.objectives):
            raise EvoError(
                f"{other.path} searched {','.join(other.objectives)} but {first.path} searched "
                f"{','.join(first.objectives)}", "compare runs that share their objectives")
    if set(first.objectives) == FIXED_OBJECTIVES:
        return tuple(FIXED_SCALES[name] for name in first.objectives), FIXED_TEXT
    stored = []
    for run in runs:
        by_name = {s.get("name"): s for s in run.scales}
        stored.append(tuple(by_name.get(name) for name in first.objectives))
    if any(s != stored[0] or None in s for s in stored):
        raise EvoError(f"the runs store different scales for {','.join(first.objectives)}",
                       "compare runs searched with the same objective scales")
    scales = tuple(ObjectiveScale.from_dict(s) for s in stored[0])
    text = "the runs' common stored scales: " + "; ".join(
        f"{s.name} {s.transform} in [{s.lower:g}, {s.upper:g}]" for s in scales) + \
        ", hypervolume reference point 1 in every objective"
    return scales, text


def _rescore(run: _Stored, group: str, order: tuple[str, ...],
             scales: tuple[ObjectiveScale, ...]) -> RunResult:
    import moocore
    import numpy as np

    index = [run.objectives.index(name) for name in order]
    hvs, numbers = [], []
    for number, points in run.generations:
        pts = np.asarray([[p[i] for i in index] for p in points], dtype=float)
        hvs.append(hypervolume(pts.reshape(-1, len(order)), scales))
        numbers.append(number)
    last = np.asarray([[p[i] for i in index] for p in run.generations[-1][1]],
                      dtype=float).reshape(-1, len(order))
    if last.shape[0]:
        last = np.unique(last[moocore.is_nondominated(last)], axis=0)
    front = tuple(tuple(float(v) for v in row) for row in last)
    norm = tuple(tuple(float(v) for v in row) for row in normalise(last, scales))
    return RunResult(str(run.path), group, tuple(numbers), tuple(hvs), front, norm)


def plot_axes(objectives: tuple[str, ...]) -> tuple[int, int]:
    """Error on the vertical axis when it is searched, the first other objective across."""
    if "error" in objectives:
        y = objectives.index("error")
        return next(i for i in range(len(objectives)) if i != y), y
    return 0, 1


# ---------------------------------------------------------------- statistics

def _group(name: str, runs: list[RunResult]) -> GroupResult:
    import numpy as np

    final = tuple(r.final_hypervolume for r in runs)
    several = len(final) > 1
    return GroupResult(name, tuple(r.path for r in runs), final, float(np.median(final)),
                       min(final) if several else None, max(final) if several else None)


def u_test(first: GroupResult, second: GroupResult) -> UTest:
    """Two-sided Mann-Whitney U (scipy's default method: exact for small samples without ties)."""
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(first.final, second.final, alternative="two-sided")
    smallest = min(1.0, 2 / math.comb(len(first.final) + len(second.final), len(first.final)))
    return UTest(first.name, second.name, float(result.statistic), float(result.pvalue),
                 smallest)


def attainment_50(runs: list[RunResult], axes: tuple[int, int]
                  ) -> tuple[tuple[float, float], ...]:
    """The 50 % empirical attainment surface of a group's last fronts, in the figure's two
    normalised objectives: the points at least half of its runs attain (moocore.eaf)."""
    import moocore
    import numpy as np

    rows, sets = [], []
    for number, run in enumerate(runs, start=1):
        for point in run.front_normalised:
            rows.append([point[axes[0]], point[axes[1]]])
            sets.append(number)
    if not rows:
        return ()
    surface = moocore.eaf(np.asarray(rows, dtype=float), sets, percentiles=[50])
    return tuple(sorted((float(x), float(y)) for x, y, _level in surface))


def compare_runs(runs: list[Path], labels: list[str] | None = None) -> Comparison:
    """Read, rescore and compare ``runs`` grouped by ``labels`` (``NAME=RUN,RUN``)."""
    groups = parse_groups([Path(r) for r in runs], list(labels or []))
    stored = {run: _read(run) for _name, members in groups for run in members}
    scales, text = choose_scales(list(stored.values()))
    order = next(iter(stored.values())).objectives
    results = [(name, [_rescore(stored[run], name, order, scales) for run in members])
               for name, members in groups]
    summaries = [_group(name, members) for name, members in results]
    notes = []
    axes = plot_axes(order)
    several = [g for g in summaries if len(g.final) > 1]
    tests = tuple(u_test(a, b) for i, a in enumerate(several) for b in several[i + 1:])
    single = [g.name for g in summaries if len(g.final) == 1]
    if single and not several:
        notes.append("one run per group: spread, Mann-Whitney U test and attainment "
                     "surfaces need two runs or more in a group, so they are left out")
    elif single:
        notes.append(f"groups with one run ({', '.join(single)}): no spread, no test, no "
                     "attainment surface for them")
    if len(several) == 1:
        notes.append("one group has several runs: a test needs two such groups")
    if len(tests) > 1:
        notes.append(f"{len(tests)} pairwise tests, p-values not corrected for multiple testing")
    attainment: dict[str, tuple[tuple[float, float], ...]] = {}
    for name, members in results:
        if len(members) > 1 and len(order) == 2:
            attainment[name] = attainment_50(members, axes)
            empty = [r.path for r in members if not r.front]
            if empty:
                notes.append(f"{', '.join(empty)}: no feasible member on the last front, "
                             f"nothing it attains in group {name}'s attainment surface")
    if len(order) > 2:
        notes.append(f"fronts are drawn in {order[axes[0]]} and {order[axes[1]]} only, without "
                     f"attainment surfaces; the hypervolume uses all {len(order)} objectives")
    return Comparison(order, axes, scales, text,
                      tuple(r for _n, members in results for r in members), tuple(summaries),
                      tests, attainment, tuple(notes))
