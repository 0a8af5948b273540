"""Successive halving in the search (``--fidelity halving``), driven by synthetic learning
curves (milliseconds): rung bookkeeping, promotion at barriers, stopped candidates, resume
between and inside rungs (an interrupt and a real kill -9), a stopped candidate continued in a
later generation, the same front from serial and parallel executors, and the compute budget."""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from evo.run.compute import compute_spent
from evo.run.counts import counts_of
from evo.run.front import front_of
from evo.run.status import Status
from evo.run.store import RunStore
from evo.search.contract import Counted, Event, GenerationDone, Job, ResultArrived, RungDone
from evo.search.rungs import quota
from evo.search.synthetic import CurveProblem
from tests._halving_helpers import halving_config, halving_snapshot, run_curves
from tests._search_helpers import blocks_file

ROOT = Path(__file__).resolve().parents[1]


class _Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)


def _rows(run_dir: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_rungs_promote_the_best_third_and_only_last_rung_candidates_are_ok(tmp_path):
    recorder = _Recorder()
    run_dir = run_curves(halving_config(blocks_file(tmp_path), tmp_path / "run", population=10,
                                        generations=2, seed=1), listeners=(recorder,))
    barriers = [e for e in recorder.events if isinstance(e, RungDone)]
    assert len(barriers) == len({(e.generation, e.rung) for e in barriers})  # each once
    for generation in range(3):
        rungs = [e for e in barriers if e.generation == generation]
        assert [e.epochs for e in rungs] == [1, 3, 5] and rungs[0].rungs == 3
        for e, following in itertools.pairwise(rungs):
            assert e.promoted == following.entered == quota(e.entered, 3)
        assert rungs[-1].promoted == 0
    store = RunStore.open(run_dir, write=False)
    try:
        evaluations = store.evaluations()
        rung_rows = store.rung_results()
        stored_counts = counts_of(store)
        spent = compute_spent(store)
        front = front_of(store)
    finally:
        store.close(checkpoint=False)
    statuses = Counter(ev.status for ev in evaluations.values())
    assert set(statuses) == {Status.OK, Status.STOPPED}
    for ev in evaluations.values():
        last = (ev.key, 2) in rung_rows
        assert (ev.status == Status.OK) == last
        assert ev.metrics["rungs"] == 3 and (ev.metrics["rung"] == 2) == last
        if ev.status == Status.STOPPED:
            assert ev.reason.startswith(f"not promoted after rung {ev.metrics['rung'] + 1} of 3")
            assert ev.weights is None
    assert front and all(ev.status == Status.OK for _ind, ev in front)
    # The run's compute is every stored segment once; each evaluation carries its own total.
    assert spent == {"images_seen": sum(r.metrics["images_seen"] for r in rung_rows.values()),
                     "epochs_trained": sum(r.metrics["epochs_trained"]
                                           for r in rung_rows.values())}
    assert spent["images_seen"] == sum(ev.metrics["images_seen"] for ev in evaluations.values())
    assert all(ev.metrics["epochs_trained"] == ev.metrics["rung_epochs"]
               for ev in evaluations.values())
    # Live counts equal the stored ones; stopped is a word of its own.
    live = [e.counts for e in recorder.events if isinstance(e, Counted)][-1]
    assert live == stored_counts and stored_counts.stopped == statuses[Status.STOPPED]
    assert stored_counts.trained == statuses[Status.OK]
    # Only a stopped candidate keeps a state (its newest), for a later generation to continue.
    stopped = [ev for ev in evaluations.values() if ev.status == Status.STOPPED]
    kept = sorted(p.name for p in (run_dir / "states").iterdir())
    assert kept == sorted(f"{ev.key[:24]}-e{ev.metrics['rung_epochs']}.pt" for ev in stopped)


def test_a_promoted_candidate_equals_one_trained_straight_to_the_budget(tmp_path):
    run_dir = run_curves(halving_config(blocks_file(tmp_path), tmp_path / "run", generations=1))
    store = RunStore.open(run_dir, write=False)
    try:
        finished = [(store.individual(ev.individual_id), ev)
                    for ev in store.evaluations().values() if ev.status == Status.OK]
    finally:
        store.close(checkpoint=False)
    evaluator = CurveProblem(epochs=5).evaluator()
    assert finished
    for ind, ev in finished:
        text = " ".join((ind.phenotype or "").split())
        straight = evaluator(Job(ind.id, ev.key, text, 0))
        assert ev.objectives == straight.objectives


class _Interrupt:
    """Raises KeyboardInterrupt at the ``at``-th event of a kind (a Ctrl-C mid-run)."""

    def __init__(self, kind: type, at: int) -> None:
        self.kind, self.at, self.seen = kind, at, 0

    def __call__(self, event: Event) -> None:
        if isinstance(event, self.kind):
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt


def test_interrupted_inside_and_between_rungs_then_resumed_equals_uninterrupted(tmp_path):
    grammar = blocks_file(tmp_path)
    whole = halving_snapshot(run_curves(halving_config(grammar, tmp_path / "whole")))
    run_dir = tmp_path / "stopped"
    config = halving_config(grammar, run_dir)
    # Mid-rung (after a few results), right after a barrier, at a generation's end, mid-rung.
    for stop in (_Interrupt(ResultArrived, 2), _Interrupt(RungDone, 1),
                 _Interrupt(GenerationDone, 1), _Interrupt(ResultArrived, 9)):
        with pytest.raises(KeyboardInterrupt):
            if (run_dir / "run.db").exists():
                run_curves(None, resume=run_dir, listeners=(stop,))
            else:
                run_curves(config, listeners=(stop,))
        store = RunStore.open(run_dir, write=False)
        assert store.meta("status") == "interrupted"
        store.close(checkpoint=False)
    run_curves(None, resume=run_dir)
    assert halving_snapshot(run_dir) == whole


def test_weights_of_the_last_rung_survive_a_resume_before_its_barrier(tmp_path):
    """Killed after a last-rung result (its weights written) but before the rung's barrier
    wrote its evaluation: the resume's sweep of orphaned files must keep those weights."""
    grammar = blocks_file(tmp_path)
    run_dir = tmp_path / "run"
    last_rung = _LastRungResult()
    with pytest.raises(KeyboardInterrupt):
        run_curves(halving_config(grammar, run_dir, population=10, generations=0),
                   listeners=(last_rung,))
    assert list((run_dir / "models").glob("*.pt"))
    run_curves(None, resume=run_dir)
    store = RunStore.open(run_dir, write=False)
    try:
        finished = [ev for ev in store.evaluations().values() if ev.status == Status.OK]
    finally:
        store.close(checkpoint=False)
    assert finished and all((run_dir / ev.weights).is_file() for ev in finished)


class _LastRungResult:
    """Interrupts at the first result of a last rung (5 epochs)."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, ResultArrived) and event.result.metrics.get("epochs_run") == 5:
            raise KeyboardInterrupt


def _rung_rows(run_dir: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM rungs").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_equals_uninterrupted(tmp_path):
    grammar = str(blocks_file(tmp_path))
    script = [sys.executable, "-m", "tests._halving_helpers"]
    whole = tmp_path / "whole"
    subprocess.run([*script, str(whole), grammar, "1"], check=True, cwd=ROOT, timeout=120)
    killed = tmp_path / "killed"
    args = [*script, str(killed), grammar, "2"]
    rng = np.random.default_rng(7)
    for round_ in range(3):
        resume = ["resume"] if (killed / "run.db").exists() else []
        proc = subprocess.Popen(args + resume, cwd=ROOT)
        # Past some more rung results (a slow machine takes seconds to start), then a moment.
        deadline = time.monotonic() + 60
        while _rung_rows(killed) < 8 * (round_ + 1) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.3)))
        children = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)],
                                                   capture_output=True, text=True).stdout.split()]
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while any(_alive(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _rows(killed, "SELECT value FROM meta WHERE key = 'status'")[0][0] == '"running"'
    subprocess.run([*args, "resume"], check=True, cwd=ROOT, timeout=120)
    assert halving_snapshot(killed) == halving_snapshot(whole)


def test_a_stopped_candidate_met_again_continues_from_its_state(tmp_path):
    """Seed 2: a network stopped at the first rung of generation 0 is bred again in
    generation 4, promoted there, and continues from its 1-epoch state instead of
    training again (its rung 0 result is the stored one)."""
    recorder = _Recorder()
    run_dir = run_curves(halving_config(blocks_file(tmp_path), tmp_path / "run"),
                         listeners=(recorder,))
    rows = _rows(run_dir, "SELECT r.key, r.rung, r.epochs, r.metrics, i.generation FROM rungs r"
                          " JOIN individuals i ON i.id = r.individual_id ORDER BY r.key, r.rung")
    by_key: dict[str, list[sqlite3.Row]] = {}
    for row in rows:
        by_key.setdefault(row["key"], []).append(row)
    continued = {key: rs for key, rs in by_key.items() if len({r["generation"] for r in rs}) > 1}
    assert continued, "no stopped candidate was met again"
    for rs in continued.values():
        assert [r["rung"] for r in rs] == list(range(len(rs)))  # each rung trained once
        for before, after in itertools.pairwise(rs):
            trained = json.loads(after["metrics"])["epochs_trained"]
            assert trained == after["epochs"] - before["epochs"]  # continued, not restarted
    store = RunStore.open(run_dir, write=False)
    try:
        evaluations = store.evaluations()
        for key in continued:
            owner = store.individual(evaluations[key].individual_id)
            assert owner.generation == min(r["generation"] for r in continued[key])
        assert [e.counts for e in recorder.events if isinstance(e, Counted)][-1] == \
            counts_of(store)
    finally:
        store.close(checkpoint=False)


def test_serial_and_parallel_executors_give_the_same_run(tmp_path):
    grammar = blocks_file(tmp_path)
    serial = run_curves(halving_config(grammar, tmp_path / "serial", generations=2))
    parallel = run_curves(halving_config(grammar, tmp_path / "parallel", generations=2,
                                         workers=2), delay=0.002)
    assert halving_snapshot(parallel) == halving_snapshot(serial)


def test_max_images_stops_between_generations_once_spent(tmp_path):
    grammar = blocks_file(tmp_path)
    recorder = _Recorder()
    run_dir = run_curves(halving_config(grammar, tmp_path / "run", population=10,
                                        generations=20, max_images=5_000),
                         listeners=(recorder,))
    store = RunStore.open(run_dir, write=False)
    try:
        spent = compute_spent(store)["images_seen"]
        last = store.last_generation()
        batch = {ind.id for ind in store.individuals_of_generation(last)}
        rows = store.rung_results()
        assert not store.state("pending")  # stopped between generations, never inside one
    finally:
        store.close(checkpoint=False)
    last_cost = sum(r.metrics["images_seen"] for r in rows.values() if r.individual_id in batch)
    assert spent >= 5_000 > spent - last_cost
    assert last < 20
    done = [e for e in recorder.events if type(e).__name__ == "SearchDone"][-1]
    assert done.reason == f"--max-images 5,000 reached ({spent:,} images seen)"


def test_max_evals_counts_candidates_started_stopped_ones_too(tmp_path):
    run_dir = run_curves(halving_config(blocks_file(tmp_path), tmp_path / "run", population=10,
                                        generations=20, max_evals=12))
    store = RunStore.open(run_dir, write=False)
    try:
        counts = counts_of(store)
        last = store.last_generation()
    finally:
        store.close(checkpoint=False)
    assert counts.evaluated >= 12 and counts.stopped > 0
    assert last == 1  # generation 0 started 10 candidates, generation 1 reached 12


def test_early_abort_and_failures_end_a_candidate_for_good(tmp_path):
    run_dir = run_curves(halving_config(blocks_file(tmp_path), tmp_path / "run", population=10,
                                        generations=3, seed=1),
                         stop_token="bs=1", fail_token="bs=2")
    aborted = _rows(run_dir, "SELECT key, status, reason, metrics FROM evaluations"
                             " WHERE reason LIKE 'no better than chance%'")
    failed = _rows(run_dir, "SELECT key FROM evaluations WHERE status = 'failed'")
    assert aborted and failed
    assert all(r["status"] == Status.STOPPED and json.loads(r["metrics"])["rung"] == 0
               for r in aborted)
    ended = [r["key"] for r in aborted + failed]
    later = _rows(run_dir, "SELECT key, rung FROM rungs")
    assert Counter(r["key"] for r in later if r["key"] in ended) == dict.fromkeys(ended, 1)
    assert not list((run_dir / "states").glob("*")) or all(
        p.name[:24] not in {k[:24] for k in ended} for p in (run_dir / "states").iterdir())


def test_full_fidelity_keeps_no_rungs_and_counts_its_compute(tmp_path):
    config = halving_config(blocks_file(tmp_path), tmp_path / "run", fidelity="full",
                            generations=1)
    run_dir = run_curves(config)
    store = RunStore.open(run_dir, write=False)
    try:
        assert store.count_rungs() == 0
        evaluations = store.evaluations().values()
        assert all(ev.status == Status.OK for ev in evaluations)
        assert compute_spent(store) == {
            "images_seen": 500 * len(evaluations), "epochs_trained": 5 * len(evaluations)}
    finally:
        store.close(checkpoint=False)


def test_a_run_from_before_rungs_and_compute_still_opens_and_resumes(tmp_path):
    run_dir = run_curves(halving_config(blocks_file(tmp_path), tmp_path / "run",
                                        fidelity="full", generations=1))
    conn = sqlite3.connect(run_dir / "run.db")
    conn.execute("DROP TABLE rungs")
    conn.execute("DELETE FROM state WHERE key = 'compute'")
    conn.execute("UPDATE evaluations SET metrics = json_remove(metrics, '$.images_seen',"
                 " '$.epochs_trained')")
    conn.commit()
    conn.close()
    store = RunStore.open(run_dir, write=False)
    try:
        assert store.rung_results() == {}
        assert compute_spent(store) == {"images_seen": None,
                                        "epochs_trained": 5 * len(store.evaluations())}
    finally:
        store.close(checkpoint=False)
    run_curves(None, resume=run_dir, changes={"generations": 2})
    store = RunStore.open(run_dir, write=False)
    try:
        assert store.last_generation() == 2
        trained = [ev for ev in store.evaluations().values() if ev.source == "trained"]
        assert compute_spent(store) == {"images_seen": None, "epochs_trained": 5 * len(trained)}
    finally:
        store.close(checkpoint=False)
