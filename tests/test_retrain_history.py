"""Every retrain keeps its own row and its own weights file; export says which it used.

A later retrain once replaced the file of an earlier one (whose row then said ``weights:
None``), export took whatever the file held, and a multi-seed retrain killed after its first
seed left an earlier retrain's file replaced by weights of another training. These tests use
real retrains on digits, a real ``evo retrain`` process killed with SIGKILL, and real ONNX
exports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from evo.errors import EvoError
from evo.net.checkpoint import load_checkpoint
from evo.post.export_weights import member_weights
from evo.post.retrain import retrain
from evo.report.show import member_details
from evo.run.front import front_of
from evo.run.retrains import (
    commit_retrain,
    parse_retrain_weights_name,
    retrain_records,
    retrain_weights,
    retrain_weights_name,
)
from evo.run.store import RunStore
from tests._runs_helpers import cli, copy_run, tiny_digits_run

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_digits_run(tmp_path_factory)


def _front(run_dir: Path) -> list[int]:
    """Front member ids, smallest network first."""
    store = RunStore.open(run_dir, write=False)
    try:
        return [ind.id for ind, _ev in sorted(front_of(store),
                                              key=lambda m: m[1].objectives["params"])]
    finally:
        store.close(checkpoint=False)


def _records(run_dir: Path, member: int) -> list:
    store = RunStore.open(run_dir, write=False)
    try:
        return retrain_records(store, member)
    finally:
        store.close(checkpoint=False)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_weights_file_names_are_one_function_and_parse_back():
    assert retrain_weights_name(14, 2) == "models/retrained-14-2.pt"
    assert parse_retrain_weights_name(retrain_weights_name(14, 2)) == (14, 2)
    assert parse_retrain_weights_name("retrained-14.pt") is None  # older runs' name: kept
    assert parse_retrain_weights_name("4b1b935e88fe6a77cb29fb45.pt") is None


def test_a_later_retrain_keeps_the_earlier_ones_file_and_row(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    member = _front(dest)[0]
    first = retrain(dest, [member], epochs=2, seeds=1)[0].record
    before = (dest / first.weights).read_bytes()
    second = retrain(dest, [member], epochs=1, seeds=1)[0].record
    assert (first.number, second.number) == (1, 2)
    assert (dest / first.weights).read_bytes() == before  # not replaced by the 1-epoch one
    assert load_checkpoint(dest / second.weights).metadata["retrain_epochs"] == 1
    assert _records(dest, member) == [first, second]

    shown = member_details(dest, member)["retrains"]
    assert [(r["retrain"], r["epochs"], r["seeds"], r["weights"], r["export_default"])
            for r in shown] == [(1, 2, 1, first.weights, False), (2, 1, 1, second.weights, True)]
    assert [r["test_accuracy_mean"] for r in shown] == [first.test_accuracy_mean,
                                                        second.test_accuracy_mean]
    code, out, err = cli(capsys, "show", str(dest), str(member))
    assert code == 0, err
    assert first.weights in out and second.weights in out and "default" in out
    code, out, _err = cli(capsys, "show", str(dest), str(member), "--json")
    assert [r["retrain"] for r in json.loads(out)["retrains"]] == [1, 2]


def test_export_uses_the_newest_retrain_or_the_one_named_and_says_which(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    member, other = _front(dest)[:2]
    better = retrain(dest, [member], epochs=2, seeds=1)[0].record
    newest = retrain(dest, [member], epochs=1, seeds=1)[0].record

    # Default: the newest retrain, whatever its test accuracy; said before the table.
    code, out, err = cli(capsys, "export", str(dest), "--member", str(member), "--format",
                         "onnx", "--out", str(tmp_path / "newest"))
    assert code == 0, err
    assert (f"member {member}: weights of retrain 2 (1 epoch, 1 seed, train+validation), "
            f"{newest.weights}") in out
    source = _manifest(tmp_path / "newest" / str(member) / "onnx")["source"]
    assert source["checkpoint"] == newest.weights and source["weights"] == "retrained"
    assert source["retrain"] == {"number": 2, "id": newest.id, "member": member, "epochs": 1,
                                 "seeds": 1, "trained_on": "train+val"}

    # --retrain N: exactly that retrain's weights, in the manifest and in --json.
    code, out, err = cli(capsys, "export", str(dest), "--member", str(member), "--retrain", "1",
                         "--format", "onnx", "--out", str(tmp_path / "first"), "--json")
    assert code == 0, err
    assert f"member {member}: weights of retrain 1 (2 epochs" in err
    data = json.loads(out)["members"][0]
    assert data["retrain"] == 1 and data["checkpoint"] == better.weights
    assert _manifest(tmp_path / "first" / str(member) / "onnx")["source"]["retrain"][
        "epochs"] == 2

    # A member never retrained: the search's weights, and said so.
    code, out, err = cli(capsys, "export", str(dest), "--member", str(other), "--format", "onnx",
                         "--out", str(tmp_path / "search"))
    assert code == 0, err
    assert f"member {other}: search weights (never retrained), models/" in out
    assert "retrain" not in _manifest(tmp_path / "search" / str(other) / "onnx")["source"]

    for args, message in ((("--member", str(member), "--retrain", "3"), "no retrain 3"),
                          (("--member", str(other), "--retrain", "1"), "no retrain 1"),
                          (("--front", "--retrain", "1"), "one member")):
        code, _out, err = cli(capsys, "export", str(dest), *args, "--format", "onnx")
        assert code == 2 and message in err and "Traceback" not in err


def test_one_seed_reports_no_spread_anywhere(run, tmp_path, capsys):
    dest = copy_run(run, tmp_path / "run")
    member = _front(dest)[0]
    code, out, err = cli(capsys, "retrain", str(dest), "--member", str(member), "--epochs", "1",
                         "--json")
    assert code == 0, err
    assert json.loads(out)[0]["retrain"]["test_accuracy_std"] is None
    assert member_details(dest, member)["retrains"][0]["test_accuracy_std"] is None
    code, out, _err = cli(capsys, "front", str(dest), "--json")
    row = next(r for r in json.loads(out)["front"] if r["member"] == member)
    assert row["test_accuracy"] is not None and row["test_accuracy_std"] is None
    code, out, _err = cli(capsys, "show", str(dest), str(member))
    assert "—" in out and "0.00 points" not in out


def test_a_killed_multi_seed_retrain_replaces_and_claims_nothing(run, tmp_path):
    """`evo retrain --seeds 3` killed with SIGKILL right after its first seed's line: the
    first seed's weights exist by then (the moment the old code replaced the earlier file)."""
    dest = copy_run(run, tmp_path / "run")
    member = _front(dest)[0]
    earlier = retrain(dest, [member], epochs=1, seeds=1)[0].record
    before = (dest / earlier.weights).read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo", "retrain", str(dest), "--member", str(member),
         "--epochs", "2", "--seeds", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if f"member {member} seed 1/3" in line:
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
    assert proc.returncode == -signal.SIGKILL
    models = dest / "models"
    assert list(models.glob(".retrained-*.tmp"))  # seed 1's weights: written, not attributed
    assert (dest / earlier.weights).read_bytes() == before
    assert _records(dest, member) == [earlier]
    store = RunStore.open(dest, write=False)
    try:
        ind = store.individual(member)
        chosen = member_weights(store, ind)
    finally:
        store.close(checkpoint=False)
    assert chosen.retrain == earlier and chosen.checkpoint == dest / earlier.weights

    # The next retrain sweeps what the kill left and takes the next number.
    again = retrain(dest, [member], epochs=1, seeds=1)[0].record
    assert again.number == 2 and not list(models.glob(".retrained-*.tmp"))
    assert (dest / earlier.weights).read_bytes() == before


def test_a_file_renamed_but_not_committed_is_never_attributed(run, tmp_path):
    """What a kill between the rename and the commit leaves: the next retrain's final name
    exists, no row names it. Readers ignore it; the next retrain sweeps it first."""
    dest = copy_run(run, tmp_path / "run")
    member = _front(dest)[0]
    earlier = retrain(dest, [member], epochs=1, seeds=1)[0].record
    store = RunStore.open(dest, write=False)
    search_weights = dest / store.evaluation(store.individual(member).eval_key).weights
    store.close(checkpoint=False)
    orphan = dest / retrain_weights_name(member, 2)
    shutil.copy(search_weights, orphan)  # weights of another training under retrain 2's name
    stray = dest / retrain_weights_name(member, 7)
    shutil.copy(search_weights, stray)
    store = RunStore.open(dest, write=False)
    try:
        assert retrain_weights(store, member) == (earlier, dest / earlier.weights)
    finally:
        store.close(checkpoint=False)
    assert [r["retrain"] for r in member_details(dest, member)["retrains"]] == [1]

    again = retrain(dest, [member], epochs=2, seeds=1)[0].record
    assert again.weights == retrain_weights_name(member, 2) and not stray.exists()
    meta = load_checkpoint(dest / again.weights).metadata
    assert meta["retrain_epochs"] == 2 and meta["test_accuracy"] == again.test_accuracy_mean


def test_an_error_before_the_commit_leaves_no_row_and_no_file(run, tmp_path):
    dest = copy_run(run, tmp_path / "run")
    member = _front(dest)[0]
    store = RunStore.open(dest, write=True)
    try:
        ind = store.individual(member)
        seed = {"test_accuracy": 0.5, "test_correct": 1}
        with pytest.raises(FileNotFoundError):  # the pending weights vanished
            commit_retrain(store, ind, 1, [seed], 2, dest / "models" / ".gone.tmp", {})
        assert retrain_records(store, member) == []
        assert not (dest / retrain_weights_name(member, 1)).exists()
    finally:
        store.close()


def test_rows_of_older_versions_stay_readable(run, tmp_path):
    """Older evo kept one file per member, owned by its newest retrain (earlier rows were set
    to no weights). Those rows are numbered and shown; export takes the newest; a new retrain
    never touches the old file."""
    dest = copy_run(run, tmp_path / "run")
    member = _front(dest)[0]
    store = RunStore.open(dest, write=False)
    search_weights = dest / store.evaluation(store.individual(member).eval_key).weights
    store.close(checkpoint=False)
    legacy = dest / "models" / f"retrained-{member}.pt"
    shutil.copy(search_weights, legacy)
    conn = sqlite3.connect(dest / "run.db")
    with conn:
        for epochs, weights in ((3, None), (1, f"models/retrained-{member}.pt")):
            conn.execute(
                "INSERT INTO retrains (individual_id, epochs, seeds, test_accuracy_mean,"
                " test_accuracy_std, test_correct, test_total, weights, metrics, created)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (member, epochs, 1, 0.5, 0.0, "[1]", 2, weights, "{}", time.time()))
    conn.close()
    shown = member_details(dest, member)["retrains"]
    assert [(r["retrain"], r["weights_present"], r["test_accuracy_std"]) for r in shown] == [
        (1, False, None), (2, True, None)]
    store = RunStore.open(dest, write=False)
    try:
        ind = store.individual(member)
        assert member_weights(store, ind).checkpoint == legacy
        with pytest.raises(EvoError, match="retrain 1 kept no weights"):
            member_weights(store, ind, 1)
    finally:
        store.close(checkpoint=False)
    before = legacy.read_bytes()
    again = retrain(dest, [member], epochs=1, seeds=1)[0].record
    assert again.number == 3 and again.weights == retrain_weights_name(member, 3)
    assert legacy.read_bytes() == before
