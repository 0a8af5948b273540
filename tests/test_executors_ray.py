"""The Ray executor against a real Ray cluster on loopback, and the results of every executor.

One cluster serves the module (Ray start-ups take seconds): a helper process starts it with
evo's own :func:`evo.search.ray_executor.start_local_cluster` and holds it until the module is
done; searches join it with ``ray_address``. One test runs ``evo search --executor ray`` with no
address, where evo starts and stops a cluster of its own. Evaluations train real networks on
digits, except where a synthetic problem makes a fault cheap to cause.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from evo.config import SearchConfig
from evo.nas.problem import TrainingProblem, problem_factory
from evo.run.store import RunStore
from evo.search.contract import Job, Result
from evo.search.loop import run_search
from evo.search.synthetic import SyntheticEvaluator, SyntheticProblem
from tests._runs_helpers import TINY, front_objectives, stored_evaluations, tiny_digits_run
from tests._search_helpers import blocks_file, snapshot
from tests.test_transient_failures import DiesOnMemberOneProblem

# Not imported here: evo sets Ray's environment before Ray is first imported.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is not installed (pip install 'evo-edge-nas[ray]')")

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--grammar", "cnn_topology", "--population", "4", "--generations", "1", "--epochs", "1",
         "--no-export", "--no-bench", "--seed", "5"]
HEAD = """
import sys
from evo.search.ray_executor import start_local_cluster
print(start_local_cluster(2), flush=True)
sys.stdin.read()  # held until the tests close this pipe
import ray
ray.shutdown()
"""


@dataclass(frozen=True)
class Cluster:
    address: str
    holder: int  # pid of the process that started it


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, unvisited = set(), [pid]
    while unvisited:
        for child in children.get(unvisited.pop(), []):
            if child not in found:
                found.add(child)
                unvisited.append(child)
    return found


@pytest.fixture(scope="module")
def cluster() -> Any:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "token"  # Ray's default for a new cluster, whatever this shell says
    holder = subprocess.Popen([sys.executable, "-c", HEAD], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout is not None and holder.stdin is not None
    address = holder.stdout.readline().strip()
    assert address.startswith("127.0.0.1:"), address
    with pytest.MonkeyPatch.context() as patch:
        # The cluster evo starts uses Ray's token authentication; a driver joining it says so.
        patch.setenv("RAY_AUTH_MODE", "token")
        patch.delenv("RAY_ADDRESS", raising=False)
        yield Cluster(address, holder.pid)
    holder.stdin.close()
    holder.wait(timeout=120)


def _listening(pids: set[int]) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) the processes listen on."""
    inodes = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                found.append(parts[1].rsplit(":", 1)[0])
    return found


def test_the_local_cluster_listens_on_loopback_only(cluster):
    addresses = _listening({cluster.holder, *_descendants(cluster.holder)})
    assert addresses, "no listening socket found for the cluster's processes"
    # 127.0.0.1, ::1 and ::ffff:127.0.0.1
    loopback = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}
    assert set(addresses) <= loopback, addresses


def test_every_executor_gives_the_serial_results_candidate_by_candidate(
        tmp_path, tmp_path_factory, cluster):
    reference = snapshot(tiny_digits_run(tmp_path_factory))
    for name, options in (("local", dict(workers=2)),
                          ("ray", dict(executor="ray", workers=2, ray_address=cluster.address))):
        run_dir = run_search(SearchConfig(**TINY, **options, run_dir=str(tmp_path / name)),
                             problem_factory=problem_factory())
        assert snapshot(run_dir) == reference, name


@dataclass(frozen=True)
class StallsOnce:
    """The first job of the run writes its worker's pid to ``marker`` and waits to be killed;
    every other job (the lost one's retry included) evaluates normally."""

    inner: Any
    marker: str

    def __call__(self, job: Job) -> Result:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return self.inner(job)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        time.sleep(120)
        return self.inner(job)


class StallingProblem(TrainingProblem):
    marker = ""

    def evaluator(self) -> StallsOnce:  # type: ignore[override]
        return StallsOnce(super().evaluator(), self.marker)


def _kill_when_written(marker: Path, killed: list[int]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = marker.read_text() if marker.exists() else ""
        if text:
            os.kill(int(text), signal.SIGKILL)
            killed.append(int(text))
            return
        time.sleep(0.05)


def test_a_ray_worker_killed_mid_training_loses_only_that_evaluation(
        tmp_path, tmp_path_factory, cluster):
    marker = tmp_path / "pid"
    killed: list[int] = []
    killer = threading.Thread(target=_kill_when_written, args=(marker, killed), daemon=True)
    killer.start()

    def stalling(config: SearchConfig, run_dir: Path) -> StallingProblem:
        problem = StallingProblem(config, run_dir)
        problem.marker = str(marker)
        return problem

    config = SearchConfig(**TINY, executor="ray", workers=2, ray_address=cluster.address,
                          run_dir=str(tmp_path / "killed"))
    run_dir = run_search(config, problem_factory=stalling)
    killer.join(timeout=5)
    assert killed, "no Ray worker was killed"
    retried = [ev for ev in stored_evaluations(run_dir).values() if ev.metrics.get("retries")]
    assert len(retried) == 1 and retried[0].status == "ok"
    assert retried[0].metrics["retried_after"][0].startswith("Ray worker died")
    assert front_objectives(run_dir) == front_objectives(tiny_digits_run(tmp_path_factory))


def test_a_ray_worker_that_dies_on_every_attempt_fails_that_evaluation_only(tmp_path, cluster):
    config = SearchConfig(grammar=str(blocks_file(tmp_path)), population=6, generations=1,
                          seed=1, executor="ray", workers=2, ray_address=cluster.address,
                          task_retries=1, run_dir=str(tmp_path / "dies"))
    run_dir = run_search(config, problem_factory=lambda _c, _d: DiesOnMemberOneProblem())
    store = RunStore.open(run_dir, write=False)
    try:
        ev = store.evaluation(store.individual(1).eval_key)
        status = store.meta("status")
        others = [e for e in store.evaluations().values() if e.individual_id != 1]
    finally:
        store.close(checkpoint=False)
    assert status == "finished" and others and all(e.status == "ok" for e in others)
    assert ev is not None and ev.status == "failed" and ev.metrics["retries"] == 1
    assert ev.reason.startswith("Ray worker died") and "on all 2 attempts" in ev.reason


@dataclass(frozen=True)
class HangsOnMemberTwo(SyntheticEvaluator):
    def __call__(self, job: Job) -> Result:
        if job.individual_id == 2:
            time.sleep(300)
        return super().__call__(job)


@dataclass(frozen=True)
class HangsProblem(SyntheticProblem):
    def evaluator(self) -> HangsOnMemberTwo:
        return HangsOnMemberTwo()


def test_a_ray_task_past_the_candidate_timeout_is_cancelled(tmp_path, cluster):
    config = SearchConfig(grammar=str(blocks_file(tmp_path)), population=4, generations=0,
                          seed=1, executor="ray", workers=2, ray_address=cluster.address,
                          candidate_timeout=1.0, run_dir=str(tmp_path / "hangs"))
    started = time.monotonic()
    run_dir = run_search(config, problem_factory=lambda _c, _d: HangsProblem())
    assert time.monotonic() - started < 60
    store = RunStore.open(run_dir, write=False)
    try:
        ev = store.evaluation(store.individual(2).eval_key)
    finally:
        store.close(checkpoint=False)
    assert ev is not None and ev.status == "failed"
    assert ev.reason.startswith("timeout: stopped after") and "Ray task was cancelled" in ev.reason


def evo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evo", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def _count(run_dir: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_a_killed_ray_search_resumes_under_another_executor(tmp_path, tmp_path_factory,
                                                            cluster):
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "evo", "search", *SMALL, "--executor", "ray",
                             "--workers", "2", "--ray-address", cluster.address,
                             "--run-dir", str(run_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while _count(run_dir) < 1 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = evo("search", "--resume", str(run_dir), "--executor", "local", "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert snapshot(run_dir) == snapshot(tiny_digits_run(tmp_path_factory))
    config = json.loads(sqlite3.connect(run_dir / "run.db").execute(
        "SELECT value FROM meta WHERE key='config'").fetchone()[0])
    assert config["executor"] == "local"


def test_evo_search_on_a_local_cluster_it_starts_and_stops(tmp_path, tmp_path_factory):
    run_dir = tmp_path / "own-cluster"
    out = evo("search", *SMALL, "--executor", "ray", "--workers", "2", "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert "Pareto front" in out.stdout
    assert snapshot(run_dir) == snapshot(tiny_digits_run(tmp_path_factory))


def test_an_unreachable_ray_address_is_one_line_within_seconds(tmp_path):
    started = time.monotonic()
    out = evo("search", *SMALL, "--executor", "ray", "--ray-address", "127.0.0.1:9",
              "--run-dir", str(tmp_path / "r"), timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().count("\n") == 0 and "Traceback" not in out.stderr
    assert "--ray-address 127.0.0.1:9: no Ray cluster answers" in out.stderr
    assert not (tmp_path / "r").exists()
    assert time.monotonic() - started < 30  # the CLI's own start-up included


def test_a_cluster_that_wants_a_token_is_one_line_naming_it(tmp_path, cluster):
    """Joining a cluster with token authentication needs RAY_AUTH_MODE=token; without it evo
    says so, and leaves no run folder (the executor starts before the folder is made)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    run_dir = tmp_path / "r"
    out = subprocess.run([sys.executable, "-m", "evo", "search", *SMALL, "--executor", "ray",
                          "--ray-address", cluster.address, "--run-dir", str(run_dir)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert out.returncode == 2, out.stderr
    # Ray's C++ client logs each retry of its connection on stderr too; evo's own is one line.
    lines = [line for line in out.stderr.splitlines() if line.startswith("evo: ")]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "could not join the Ray cluster" in lines[0] and "RAY_AUTH_MODE=token" in lines[0]
    assert not run_dir.exists()
