"""A re-export killed part-way never leaves a format folder that disagrees with its run.db row:
each member is built in a staging folder, recorded, then swapped in by renames; a killed export's
leftovers are deleted (not committed) or moved into place (committed) by the next command."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo.post.benchrun import exported_models
from evo.post.exporting import export_run, record_report
from evo.run.exports import STAGING_PREFIX, checked_exports, latest_exports, staging_dir
from evo.run.store import RunStore
from export.manifest import read_manifest, verify_files
from tests._runs_helpers import copy_run, tiny_digits_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def exported(tmp_path, tmp_path_factory) -> Path:
    """A copy of the shared tiny run with its front exported to ONNX."""
    run_dir = copy_run(tiny_digits_run(tmp_path_factory), tmp_path / "run")
    export_run(run_dir, front=True, formats="onnx")
    return run_dir


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_rows_match_files(run_dir: Path) -> None:
    """Every newest row is ok, and its folder holds exactly the files the row records."""
    store = RunStore.open(run_dir, write=False)
    try:
        latest = latest_exports(store)
        assert latest
        for formats in latest.values():
            for name, row in formats.items():
                assert row["status"] == "ok", (name, row["reason"])
                folder = run_dir / row["path"]
                assert verify_files(folder) == []
                assert read_manifest(folder)["files"] == row["details"]["files"]
        for model in exported_models(store):
            assert model.path.is_file()
    finally:
        store.close(checkpoint=False)


def test_a_killed_re_export_leaves_the_previous_export_intact(exported):
    base = exported / "export"
    before = {member.name: _files(member) for member in base.iterdir() if member.is_dir()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evo", "export", str(exported), "--front", "--format", "all"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().startswith("member"), line  # the first member is being exported
        member = line.split()[1].rstrip(":")
        old_model = base / member / "onnx" / "model.onnx"
        old_digest = hashlib.sha256(old_model.read_bytes()).hexdigest()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # a new file written, staged or over the old one
            if any(base.glob(f"{STAGING_PREFIX}*/*/model.*")) or not old_model.is_file() or \
                    hashlib.sha256(old_model.read_bytes()).hexdigest() != old_digest:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the export wrote nothing in 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    after = {m.name: _files(m) for m in base.iterdir() if m.is_dir() and m.name[0] != "."}
    assert after == before
    _assert_rows_match_files(exported)
    assert not list(base.glob(f"{STAGING_PREFIX}*")), "the killed export's staging was kept"


def test_a_committed_export_killed_before_its_swap_is_moved_into_place(exported):
    """The state a kill between the commit and the renames leaves: rows name a staging folder
    that holds the new files. The next command moves them into place."""
    from evo.net.checkpoint import load_checkpoint
    from export.formats import export_all

    store = RunStore.open(exported, write=True)
    try:
        row = next(r for r in store.exports() if r["format"] == "onnx")
        member = int(row["individual_id"])
        checkpoint = load_checkpoint(exported / store.evaluation(row["eval_key"]).weights)
        staging = staging_dir(exported / "export", member)
        report = export_all(checkpoint.model, checkpoint.input_shape, staging, "onnx",
                            source={"note": "second export"})
        from evo.run.exports import relocated

        record_report(store, member, relocated(report, exported / "export" / str(member)),
                      {"note": "second export"}, staging)
    finally:
        store.close()
    shown = RunStore.open(exported, write=False)  # a reader: evo front, evo show
    try:
        rows = [r for r in checked_exports(shown) if r["individual_id"] == member]
    finally:
        shown.close(checkpoint=False)
    assert rows[-1]["status"] == "ok" and not staging.exists()
    manifest = read_manifest(exported / "export" / str(member) / "onnx")
    assert manifest["source"] == {"note": "second export"}
    _assert_rows_match_files(exported)


def test_a_row_whose_files_are_gone_reads_missing(exported):
    store = RunStore.open(exported, write=False)
    try:
        row = next(r for r in store.exports() if r["format"] == "onnx")
    finally:
        store.close(checkpoint=False)
    (exported / row["path"] / "model.onnx").unlink()
    store = RunStore.open(exported, write=False)
    try:
        latest = latest_exports(store)[row["eval_key"]]["onnx"]
        assert latest["status"] == "missing" and "model.onnx is missing" in latest["reason"]
        assert all(m.export_id != row["id"] for m in exported_models(store))
    finally:
        store.close(checkpoint=False)
