"""A worker dies with its driver even while it is still importing (loading its evaluator).

The evaluator below takes seconds to unpickle, as a real one does while it imports torch; the
driver is killed with -9 during that time and the worker must be gone at once, not when its
"imports" end.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOAD_SECONDS = 8.0


class SlowToLoad:
    """An evaluator whose unpickling writes a marker file, then takes ``LOAD_SECONDS``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __getstate__(self) -> dict[str, str]:
        return {"marker": self.marker}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.marker = state["marker"]
        Path(self.marker).write_text("loading")
        time.sleep(LOAD_SECONDS)

    def __call__(self, job: object) -> object:
        raise AssertionError("never called")


DRIVER = """
import sys, time
from evo.search.executors import ProcessExecutor
from tests.test_worker_boot import SlowToLoad
executor = ProcessExecutor(SlowToLoad(sys.argv[1]), 1)
print(executor.pids[0], flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def outlives_killed_driver(driver_script: str, marker: Path, grace: float) -> bool:
    """Run ``driver_script`` (it prints its worker's pid, and the worker creates ``marker``
    while it loads its evaluator), SIGKILL the driver then, and say whether the worker is
    still alive ``grace`` seconds later."""
    driver = subprocess.Popen([sys.executable, "-c", driver_script, str(marker)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        worker = int(driver.stdout.readline())
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the worker never started loading its evaluator"
        driver.kill()
        driver.wait()
        killed = time.monotonic()
        while _alive(worker) and time.monotonic() - killed < grace:
            time.sleep(0.05)
        return _alive(worker)
    finally:
        driver.kill()
        driver.wait()


def test_a_worker_still_loading_dies_with_a_killed_driver(tmp_path):
    assert not outlives_killed_driver(DRIVER, tmp_path / "loading", LOAD_SECONDS / 2), \
        "a worker still loading outlived the killed driver"
