"""End-to-end searches through the `evo` command, training real networks on digits."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._search_helpers import snapshot

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--grammar", "cnn_topology", "--population", "4", "--generations", "1", "--epochs", "1",
         "--no-export", "--no-bench", "--seed", "5"]


def evo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evo", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("e2e") / "serial"
    out = evo("search", *SMALL, "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert "Pareto front" in out.stdout
    return run_dir


def test_cli_search_trains_real_networks_and_prints_a_front(serial_run):
    out = evo("front", str(serial_run), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "finished" and data["front"]
    for member in data["front"]:
        assert 0.0 < member["val_accuracy"] <= 1.0
        assert member["params"] > 0 and member["macs"] > 0
        assert (serial_run / member["weights"]).is_file()
    assert sorted(os.listdir(serial_run)) == [".lock", "config.toml", "models", "run.db"]


def test_workers_give_results_identical_to_serial(serial_run, tmp_path):
    run_dir = tmp_path / "workers"
    out = evo("search", *SMALL, "--workers", "2", "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    a, b = snapshot(serial_run), snapshot(run_dir)
    assert a == b


def _evaluations(run_dir: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_ctrl_c_stops_cleanly_with_exit_130_and_resume_finishes(tmp_path):
    run_dir = tmp_path / "interrupted"
    args = ["search", "--grammar", "cnn_topology", "--population", "4", "--generations", "1",
            "--epochs", "1", "--no-export", "--no-bench", "--workers", "2",
            "--run-dir", str(run_dir)]
    proc = subprocess.Popen([sys.executable, "-m", "evo", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while _evaluations(run_dir) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    saved = _evaluations(run_dir)
    assert saved >= 1
    conn = sqlite3.connect(run_dir / "run.db")
    assert json.loads(conn.execute("SELECT value FROM meta WHERE key='status'").fetchone()[0]) \
        == "interrupted"
    conn.close()
    time.sleep(0.5)
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    out = evo("search", "--resume", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert _evaluations(run_dir) >= saved


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--grammar", "no_such"], "unknown grammar"),
        (["--dataset", "no_such"], "unknown dataset"),
        (["--objectives", "error,weight"], "unknown objective"),
        (["--constraint", "params<<5"], "constraint"),
        (["--constraint", "params<=5ms"], "unit"),
        (["--population", "1"], "--population"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    out = evo("search", *args, "--run-dir", str(tmp_path / "r"), timeout=120)
    assert out.returncode == 2, out.stderr
    assert words in out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr


def test_second_process_on_a_running_run_and_corrupt_db(tmp_path, serial_run):
    from evo.run.store import RunStore

    holder = RunStore.open(serial_run, write=True)
    try:
        out = evo("search", "--resume", str(serial_run), timeout=120)
        assert out.returncode == 2 and "run in progress" in out.stderr
    finally:
        holder.close()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "run.db").write_bytes(b"garbage" * 1000)
    out = evo("search", "--resume", str(broken), timeout=120)
    assert out.returncode == 2 and "not a readable evo run database" in out.stderr
    out = evo("front", str(tmp_path / "nowhere"), timeout=120)
    assert out.returncode == 2 and "no run here" in out.stderr


def test_kill_9_of_a_real_search_then_resume_equals_uninterrupted(serial_run, tmp_path):
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "evo", "search", *SMALL, "--workers", "2",
            "--run-dir", str(run_dir)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _evaluations(run_dir) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                              text=True).stdout.split()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in children):
        time.sleep(0.05)
    survivors = [p for p in children if Path(f"/proc/{p}").exists()
                 and Path(f"/proc/{p}/stat").read_text().split()[2] != "Z"]
    assert not survivors, "a worker outlived the killed driver"
    out = evo("search", "--resume", str(run_dir), "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert snapshot(run_dir) == snapshot(serial_run)


def test_a_refused_warm_start_leaves_no_run_folder(serial_run, tmp_path):
    run_dir = tmp_path / "warm"
    args = [a if a != "5" else "6" for a in SMALL]  # --seed 6: other splits, other keys
    out = evo("search", *args, "--warm-start", str(serial_run), "--run-dir", str(run_dir),
              timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "its seed (5 there, 6 here) differs from this run's" in out.stderr
    assert "the seed sets the train/validation/test splits" in out.stderr
    assert not run_dir.exists()  # nothing for `evo runs` to call interrupted, nothing to resume


def test_the_commands_config_toml_prints_work(serial_run, tmp_path):
    header = [line[1:].strip() for line in (serial_run / "config.toml").read_text().splitlines()
              if line.startswith("#")]
    commands = [line.split() for line in header if line.startswith("evo search")]
    assert [c[:3] for c in commands] == [["evo", "search", "--resume"],
                                         ["evo", "search", "--config"]]
    assert "run-dir =" not in (serial_run / "config.toml").read_text().replace("# run-dir", "")
    elsewhere = tmp_path / "elsewhere"  # the commands work from any folder
    elsewhere.mkdir()
    for words in commands:
        out = subprocess.run([sys.executable, "-m", *words], capture_output=True, text=True,
                             cwd=elsewhere, timeout=300)
        assert out.returncode == 0, (words, out.stderr)
        assert "Pareto front" in out.stdout
    (new_run,) = (elsewhere / "runs").iterdir()  # a new run in a new folder, not nested
    assert snapshot(new_run) == snapshot(serial_run)  # the same configuration, the same run
    assert not (serial_run / "runs").exists()
