"""Bad values, bad files and bad places: one line on stderr, exit code 2, nothing written.

The checks live in ``SearchConfig.check`` (evo/config.py), so the command line, a TOML file and
the Python API are refused alike; these tests drive the real ``evo`` entry point in-process.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from evo.capacity import WORKER_MEMORY_BYTES, worker_limit
from evo.cli.app import main
from evo.config import SearchConfig
from evo.errors import EvoError
from tests._search_helpers import blocks_file, run_synthetic


def evo(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``evo ARGS`` in this process; (exit code, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, words: str) -> None:
    assert code == 2, err
    assert words in err, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    config = SearchConfig(grammar=str(blocks_file(tmp_path)), population=4, generations=1,
                          run_dir=str(tmp_path / "run"), export=(), bench=())
    return run_synthetic(config)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-tree-depth", "-5"], "--max-tree-depth must be 0 (no limit) or more, not -5"),
        (["--max-evals", "-1"], "--max-evals must be at least 1, not -1"),
        (["--max-time", "-1"], "--max-time must be a positive number of minutes"),
        (["--max-time", "nan"], "--max-time must be a positive number of minutes, not nan"),
        (["--max-wraps", "-1"], "--max-wraps must be 0 or more, not -1"),
        (["--min-init-depth", "9", "--max-init-depth", "2"],
         "--min-init-depth 9 is above --max-init-depth 2"),
        (["--constraint", "params<=-5"], "params cannot be negative"),
        (["--constraint", "error<=200%"], "error is a fraction from 0 to 1"),
        (["--seed", "-1"], "--seed must be from 0"),
        (["--candidate-timeout", "0"], "--candidate-timeout must be a positive number"),
        (["--workers", "100000"], "this machine runs at most"),
        (["--export", "onnx,bogus"], "unknown export format bogus"),
    ],
)
def test_values_that_cannot_run_are_refused_before_the_run_folder_exists(
        capsys, tmp_path, args, words):
    run_dir = tmp_path / "r"
    code, err = evo(capsys, "search", *args, "--run-dir", str(run_dir))
    assert_one_line(code, err, words)
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("population = 2.5\n", "--population must be a whole number, not 2.5"),
        ('population = "many"\n', "--population must be a whole number, not 'many'"),
        ("objectives = 5\n", "--objectives must be a list of text, not 5"),
        ("[search]\nmax-time = nan\n", "--max-time must be a positive number of minutes"),
        ('[search]\nconstraint = ["error<=200%"]\n', "error is a fraction from 0 to 1"),
        ("quiet = 1\n", "--quiet must be true or false, not 1"),
    ],
)
def test_a_toml_file_gets_the_same_checks(capsys, tmp_path, text, words):
    config_file = tmp_path / "search.toml"
    config_file.write_text(text)
    code, err = evo(capsys, "search", "--config", str(config_file), "--run-dir",
                    str(tmp_path / "r"))
    assert_one_line(code, err, words)
    assert not (tmp_path / "r").exists()


def test_config_naming_a_folder_is_one_line(capsys, tmp_path):
    code, err = evo(capsys, "search", "--config", str(tmp_path))
    assert_one_line(code, err, "is a folder, not a configuration file")


def test_the_python_api_gets_the_same_checks(tmp_path):
    run_dir = tmp_path / "r"
    with pytest.raises(EvoError, match="--max-wraps must be 0 or more"):
        run_synthetic(SearchConfig(grammar=str(blocks_file(tmp_path)), max_wraps=-1,
                                   run_dir=str(run_dir)))
    assert not run_dir.exists()
    with pytest.raises(EvoError, match="--crossover is a probability"):
        SearchConfig(crossover=math.nan).check()
    SearchConfig(workers=100_000, oversubscribe=True).check()  # the user said so


def test_worker_limit_is_the_smaller_of_cores_and_memory():
    big = 1 << 40
    assert worker_limit(1, cores=2, memory=big).workers == 2
    assert worker_limit(2, cores=8, memory=big).workers == 4
    assert worker_limit(4, cores=2, memory=big).workers == 1  # one worker always runs
    limited = worker_limit(1, cores=64, memory=3 * WORKER_MEMORY_BYTES)
    assert limited.workers == 3
    assert "64 CPU cores at 1 thread per worker" in limited.reason and "GiB" in limited.reason


def test_resume_checks_the_changed_values_too(capsys, small_run):
    code, err = evo(capsys, "search", "--resume", str(small_run), "--max-evals", "-1")
    assert_one_line(code, err, "--max-evals must be at least 1")
    code, err = evo(capsys, "search", "--resume", str(small_run), "--workers", "100000")
    assert_one_line(code, err, "add --oversubscribe")


def test_a_lock_that_is_a_folder_is_one_line(capsys, small_run):
    (small_run / ".lock").unlink()
    (small_run / ".lock").mkdir()
    code, err = evo(capsys, "search", "--resume", str(small_run))
    assert_one_line(code, err, ".lock: is a folder, not the run's lock file")
    assert "rmdir" in err


def test_front_output_files_are_checked_before_any_work(capsys, small_run, tmp_path):
    code, err = evo(capsys, "front", str(small_run), "--csv", str(tmp_path))
    assert_one_line(code, err, "--csv")
    assert "is a folder, not a file" in err
    # /proc takes no new files, even from root (permission bits do not stop root).
    code, err = evo(capsys, "front", str(small_run), "--plot", "/proc/evo-front.png")
    assert_one_line(code, err, "--plot /proc/evo-front.png: cannot write in /proc")
    csv = tmp_path / "new" / "front.csv"
    code, err = evo(capsys, "front", str(small_run), "--csv", str(csv))
    assert code == 0, err
    assert csv.read_text().startswith("member")
    assert not list((tmp_path / "new").glob(".*probe*"))
