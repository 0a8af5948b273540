"""The search loop and run store, driven by the synthetic ZDT problem (fast, deterministic)."""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evo.config import SearchConfig
from evo.errors import EvoError
from evo.moo import nsga2
from evo.run.store import RunStore
from evo.search.engine import Search
from evo.search.synthetic import SyntheticProblem
from tests._search_helpers import blocks_file, run_synthetic, snapshot

ROOT = Path(__file__).resolve().parents[1]


def config(tmp_path: Path, name: str = "run", **kw) -> SearchConfig:
    base = dict(grammar=str(blocks_file(tmp_path)), population=10, generations=5, seed=1,
                run_dir=str(tmp_path / name))
    base.update(kw)
    return SearchConfig(**base)


def test_search_runs_to_completion_and_records_everything(tmp_path):
    run_dir = run_synthetic(config(tmp_path))
    store = RunStore.open(run_dir, write=False)
    assert store.meta("status") == "finished"
    assert store.last_generation() == 5
    assert store.count_individuals() == 60
    gens = [store.generation(g) for g in range(6)]
    assert all(len(g["population"]) == 10 for g in gens)
    # Elitism: hypervolume never drops from one generation to the next.
    hv = [g["hypervolume"] for g in gens]
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(hv))
    # The stored ranks are NSGA-II's ranks of the stored population.
    last = gens[-1]
    assert last["ranks"] == sorted(last["ranks"]) or len(set(last["ranks"])) >= 1
    assert store.meta("objective_scales")[0]["name"] == "error"
    store.close(checkpoint=False)
    assert not (run_dir / "run.db-wal").exists() or (run_dir / "run.db-wal").stat().st_size == 0
    assert (run_dir / "config.toml").read_text().startswith("# Written from run.db")


def test_same_seed_same_run_and_different_seed_differs(tmp_path):
    a = snapshot(run_synthetic(config(tmp_path, "a")))
    b = snapshot(run_synthetic(config(tmp_path, "b")))
    c = snapshot(run_synthetic(config(tmp_path, "c", seed=2)))
    assert a == b
    assert a["individuals"] != c["individuals"]


def test_no_duplicate_networks_inside_a_population(tmp_path):
    run_dir = run_synthetic(config(tmp_path))
    store = RunStore.open(run_dir, write=False)
    for g in range(store.last_generation() + 1):
        pop = store.individuals(store.generation(g)["population"])
        keys = [i.eval_key for i in pop if i.eval_key]
        assert len(keys) == len(set(keys))
    store.close(checkpoint=False)


def test_cache_never_retrains_a_known_key(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=8))
    conn = sqlite3.connect(run_dir / "run.db")
    keys = [k for (k,) in conn.execute(
        "SELECT eval_key FROM individuals WHERE eval_key IS NOT NULL")]
    evaluated = conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    hits = sum(r[0] for r in conn.execute("SELECT cache_hits FROM generations"))
    conn.close()
    assert evaluated == len(set(keys))  # one evaluation per distinct key
    assert len(keys) > len(set(keys)) and hits > 0  # ... although keys did repeat


def test_resume_after_stop_equals_uninterrupted(tmp_path):
    whole = snapshot(run_synthetic(config(tmp_path, "whole")))
    part_dir = run_synthetic(config(tmp_path, "part", generations=2))
    cfg = config(tmp_path, "part", generations=5)
    resumed = snapshot(run_synthetic(cfg, resume=part_dir))
    assert resumed == whole


def test_resume_refuses_changed_options(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=1))
    with pytest.raises(EvoError, match="--population"):
        run_synthetic(config(tmp_path, population=12), resume=run_dir)


def test_second_process_on_same_run_is_refused(tmp_path):
    cfg = config(tmp_path)
    search = Search.create(Path(cfg.run_dir), cfg, SyntheticProblem())
    try:
        with pytest.raises(EvoError, match="run in progress"):
            RunStore.open(Path(cfg.run_dir), write=True)
    finally:
        search.close("interrupted")
    RunStore.open(Path(cfg.run_dir), write=True).close()


def test_corrupt_database_is_one_clear_error(tmp_path):
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    (run_dir / "run.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(EvoError, match="not a readable evo run database"):
        RunStore.open(run_dir, write=False)
    with pytest.raises(EvoError, match="no run here"):
        RunStore.open(tmp_path / "missing", write=False)


def test_failures_and_invalids_are_infeasible_with_reasons(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=2), fail_token="pool( max )")
    store = RunStore.open(run_dir, write=False)
    evs = store.evaluations()
    failed = [e for e in evs.values() if e.status == "failed"]
    assert failed and all(e.reason == "synthetic failure" for e in failed)
    last = store.generation(store.last_generation())
    for ind_id, rank, v in zip(last["population"], last["ranks"], last["violation"], strict=True):
        ind = store.individual(ind_id)
        if evs.get(ind.eval_key) and evs[ind.eval_key].status == "failed":
            assert v > 0 and rank > 0
    store.close(checkpoint=False)


def test_constraints_make_members_infeasible(tmp_path):
    run_dir = run_synthetic(config(tmp_path, constraint=("params<=2k",)))
    store = RunStore.open(run_dir, write=False)
    last = store.generation(store.last_generation())
    evs = store.evaluations()
    for ind_id, v in zip(last["population"], last["violation"], strict=True):
        params = evs[store.individual(ind_id).eval_key].objectives["params"]
        assert (v > 0) == (params > 2000)
    store.close(checkpoint=False)


def test_random_strategy_spends_the_same_budget(tmp_path):
    run_dir = run_synthetic(config(tmp_path, strategy="random"))
    store = RunStore.open(run_dir, write=False)
    origins = {i.origin for i in store.individuals()}
    assert origins == {"init", "random"}
    assert store.count_individuals() == 60
    store.close(checkpoint=False)


def test_max_evals_stops_between_generations(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=50, max_evals=25))
    store = RunStore.open(run_dir, write=False)
    assert 25 <= store.count_trained() < 25 + 10
    store.close(checkpoint=False)


def test_bad_inputs_are_evo_errors(tmp_path):
    with pytest.raises(EvoError, match="unknown objective"):
        run_synthetic(config(tmp_path, objectives=("error", "weight")))
    with pytest.raises(EvoError, match="constraint"):
        run_synthetic(config(tmp_path, constraint=("params<<3",)))
    with pytest.raises(EvoError, match="unknown grammar"):
        run_synthetic(config(tmp_path, grammar="nope"))
    blocked = tmp_path / "ro"
    blocked.mkdir()
    blocked.chmod(0o500)
    try:
        if os.geteuid() != 0:  # root writes anywhere
            with pytest.raises(EvoError, match="cannot write"):
                run_synthetic(config(tmp_path, run_dir=str(blocked / "run")))
    finally:
        blocked.chmod(0o700)
    file_in_way = tmp_path / "file"
    file_in_way.write_text("x")
    with pytest.raises(EvoError, match="cannot write"):
        run_synthetic(config(tmp_path, run_dir=str(file_in_way / "run")))


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_at_random_points_then_resume_equals_uninterrupted(tmp_path, workers):
    grammar = str(blocks_file(tmp_path))
    script = [sys.executable, "-m", "tests._search_helpers"]
    whole = tmp_path / "whole"
    subprocess.run([*script, str(whole), grammar, "1"], check=True, cwd=ROOT, timeout=120)
    killed = tmp_path / "killed"
    args = [*script, str(killed), grammar, str(workers)]
    rng = np.random.default_rng(workers)
    for _ in range(4):
        resume = ["resume"] if (killed / "run.db").exists() else []
        proc = subprocess.Popen(args + resume, cwd=ROOT)
        time.sleep(float(rng.uniform(0.6, 1.5)))
        children = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(c) for c in children), "a worker outlived the killed driver"
    subprocess.run([*args, "resume"], check=True, cwd=ROOT, timeout=120)
    assert snapshot(killed) == snapshot(whole)


def test_survival_keeps_the_pools_first_front(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=1))
    store = RunStore.open(run_dir, write=False)
    g0, g1 = store.generation(0), store.generation(1)
    pool = sorted(g0["population"] + [i.id for i in store.individuals_of_generation(1)])
    evs = store.evaluations()
    feasible = [i for i in pool if store.individual(i).eval_key in evs]
    F = np.array([[evs[store.individual(i).eval_key].objectives[o] for o in ("error", "params")]
                  for i in feasible])
    ranks, _ = nsga2.rank_and_crowding(F)
    first = {feasible[i] for i in np.flatnonzero(ranks == 0)}
    kept = set(g1["population"])
    # Equal networks share a key: compare by key, as survival sees them.
    key = lambda ids: {store.individual(i).eval_key for i in ids}  # noqa: E731
    assert len(key(first)) > len(kept) or key(first) <= key(kept)
    store.close(checkpoint=False)


def test_warm_start_reuses_evaluations_as_cache_hits(tmp_path):
    first = run_synthetic(config(tmp_path, "first", generations=3))
    second = run_synthetic(config(tmp_path, "second", generations=3, warm_start=str(first),
                                  warm_start_front=True))
    store = RunStore.open(second, write=False)
    evs = store.evaluations().values()
    warm = [e for e in evs if e.source == "warm-start"]
    assert warm, "no evaluation was reused"
    assert store.generation(0)["cache_hits"] >= 1
    assert store.count_trained() == sum(1 for e in evs if e.source == "trained")
    store.close(checkpoint=False)
    # The same seed with a warm start reaches the same population keys as without, but trains
    # fewer networks.
    plain = RunStore.open(run_synthetic(config(tmp_path, "plain", generations=3,
                                               warm_start=str(first))), write=False)
    assert plain.count_trained() < RunStore.open(first, write=False).count_trained()
    plain.close(checkpoint=False)


def test_resume_sweeps_orphaned_weights(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=1))
    orphan = run_dir / "models" / ("deadbeef" * 3 + ".pt")
    partial = run_dir / "models" / "cafe.pt.tmp"
    retrained = run_dir / "models" / "retrained-3.pt"
    retrained.write_bytes(b"x")
    orphan.write_bytes(b"x")
    partial.write_bytes(b"x")
    keep = run_dir / "models" / "notes.txt"
    keep.write_text("not ours to delete")
    run_synthetic(config(tmp_path, generations=2), resume=run_dir)
    assert not orphan.exists() and not partial.exists()
    assert keep.exists() and retrained.exists()


def test_max_time_stops_between_generations(tmp_path):
    start = time.monotonic()
    run_dir = run_synthetic(config(tmp_path, generations=1000, max_time=0.5 / 60), delay=0.01)
    assert time.monotonic() - start < 20
    store = RunStore.open(run_dir, write=False)
    assert 0 < store.last_generation() < 1000
    store.close(checkpoint=False)


def test_each_generation_stores_the_generator_state_it_ends_with(tmp_path):
    run_dir = run_synthetic(config(tmp_path, generations=2))
    store = RunStore.open(run_dir, write=False)
    states = [store.generation(g)["rng"] for g in range(3)]
    assert all(s["bit_generator"] == "PCG64" for s in states)
    assert states[0] != states[1] != states[2]
    assert store.state("rng") == states[2]  # the run continues from the last generation's state
    store.close(checkpoint=False)
