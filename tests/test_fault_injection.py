"""The fault-injection suite in CI: a deterministic subset of benchmarks/fault_injection.py.

Every case is a real ``evo`` subprocess with its address space and time capped (and, for write
errors, its file size): hostile grammars, architecture texts, option values and data files must
each end in exit 0 or one ``evo: error:`` line; a search killed with -9 at a random moment and
one stopped by a full disk must resume to the front of an uninterrupted run. Plus the fixes the
suite led to: ``evo grammar check`` parses a sample of derivations, a search whose first
generation is all invalid stops with the reason, a full disk is one line naming the path.
"""

from __future__ import annotations

import importlib.util
import json
import random
import resource
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evo.errors import EvoError
from tests._data_helpers import image_tree, write_raw_zip

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fault_injection",
                                               ROOT / "benchmarks" / "fault_injection.py")
assert _spec is not None and _spec.loader is not None
fi = importlib.util.module_from_spec(_spec)
sys.modules["fault_injection"] = fi
_spec.loader.exec_module(fi)

HELLO = '<net> ::= "hello world"\n'
# Small networks (a few KiB of weights each), so a file-size limit hits run.db, not them.
SMALL_GRAMMAR = ('<net> ::= <conv> <conv> "gap"\n<conv> ::= "conv(" <f> ", k=3) relu "\n'
                 "<f> ::= 2 | 3 | 4 | 5 | 6 | 7 | 8\n")
SUBSET = {
    "grammar": ["check doubling-400", "check range-huge", "check unit-chain-990",
                "check line-1mb", "check hello-world", "check binary"],
    "arch": ["5000-digit int", "deep nesting", "huge network 3x224x224", "nan rate",
             "input huge"],
    # Each of these starts `evo search` (seconds each); tests/test_cli_validation.py and
    # tests/test_hostile_data.py hold the rest of the list in-process.
    "cli": ["config population-float"],
    "data": ["zip ../ entry"],
}


def evo(*argv: str, **limits) -> fi.Ran:
    return fi.evo(tuple(argv), **limits)


def one_error_line(ran: fi.Ran) -> str:
    """The single stderr line of a refusal (exit 2), checked to be the only one."""
    assert ran.returncode == 2, (ran.returncode, ran.stderr[-2000:])
    lines = ran.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evo: error: "), ran.stderr[-2000:]
    return lines[0]


# ---------------------------------------------------------------- the classifier


def test_classifier_tells_clean_endings_from_faults():
    def ran(code, err):
        return fi.Ran(code, "", err, 1.0)

    assert fi.classify(ran(0, "anything"))[0] == "clean"
    assert fi.classify(ran(2, "evo: warning: w\nevo: error: bad value\n"))[0] == "clean"
    assert fi.classify(ran(2, "Usage: evo show\nError: Invalid value\n"))[0] == "clean"
    trace = "Traceback (most recent call last):\n  File x\nValueError: boom\n"
    assert fi.classify(ran(1, trace)) == ("traceback", "ValueError: boom")
    assert fi.classify(ran(None, ""))[0] == "hang"
    assert fi.classify(ran(2, "evo: error: a\nevo: error: b\n"))[0] == "other"
    assert fi.classify(ran(-9, ""))[0] == "other"


# ---------------------------------------------------------------- hostile inputs


def test_hostile_inputs_each_end_in_exit_0_or_one_error_line(tmp_path):
    outcomes = []
    for category, names in SUBSET.items():
        cases = fi.BUILDERS[category](random.Random(0), 30, tmp_path / category)
        chosen = [case for case in cases if case.name in names]
        assert sorted(case.name for case in chosen) == sorted(names)
        fuzzed = cases[-2:] if category == "grammar" else []  # seeded: the same every run
        outcomes += [fi.run_case(case, tmp_path / "cache") for case in chosen + fuzzed]
    faults = [o for o in outcomes if o.verdict != "clean"]
    assert not faults, fi.table(outcomes)
    refused = {o.case for o in outcomes if o.detail.startswith("exit 2: evo: error:")}
    assert {"config population-float", "zip ../ entry", "check hello-world"} <= refused


def test_zip_entry_with_an_empty_name_is_skipped_not_a_traceback(tmp_path):
    from evo.data.dataset import load_dataset

    files = image_tree(np.random.default_rng(0))
    entries = [(name, data, 0, len(data)) for name, data in files.items()]
    path = write_raw_zip(tmp_path / "set.zip", [*entries, ("", b"x", 0, 1)])
    dataset = load_dataset(path, use_cache=False)  # was IndexError in ZipInfo.is_dir
    assert dataset.num_classes == 2


# ---------------------------------------------------------------- grammars that are no networks


def test_grammar_check_parses_a_sample_and_refuses_a_grammar_of_no_architectures(tmp_path):
    hello = tmp_path / "hello.bnf"
    hello.write_text(HELLO)
    line = one_error_line(evo("grammar", "check", str(hello)))
    assert "none of 50 sampled derivations is an architecture" in line
    assert "'hello world' does not parse: unknown layer at column 1: 'hello'" in line
    as_json = evo("grammar", "check", str(hello), "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout)["sample"]["architectures"] == 0

    mixed = tmp_path / "mixed.bnf"
    mixed.write_text('<net> ::= <l> "gap"\n<l> ::= "conv(8, k=3) relu " | "hello "\n')
    out = evo("grammar", "check", str(mixed))
    assert out.returncode == 0, out.stderr
    assert "derivations parse as architectures" in out.stdout
    assert "first that does not: 'hello gap' does not parse" in out.stdout
    sample = json.loads(evo("grammar", "check", "cnn_topology", "--json").stdout)["sample"]
    assert sample["architectures"] == sample["derivations"] == 50

    chain = tmp_path / "chain.bnf"
    chain.write_text("".join(f"<a{i}> ::= <a{i + 1}>\n" for i in range(120))
                     + '<a120> ::= "gap"\n')
    line = one_error_line(evo("grammar", "check", str(chain)))
    assert "tree deeper than max_tree_depth 90" in line and "--max-tree-depth" in line
    assert evo("grammar", "check", str(chain), "--max-tree-depth", "200").returncode == 0


@pytest.mark.slow
def test_a_search_whose_first_generation_is_all_invalid_stops_with_the_reason(tmp_path):
    hello = tmp_path / "hello.bnf"
    hello.write_text(HELLO)
    run_dir = tmp_path / "run"
    args = ("--grammar", str(hello), "--population", "3", "--generations", "2", "--epochs", "1",
            "--no-export", "--no-bench", "--quiet", "--run-dir", str(run_dir))
    line = one_error_line(evo("search", *args, timeout=120))
    assert "all 3 members of the first generation are invalid" in line
    assert "'hello world' does not parse" in line and "evo grammar check" in line
    again = one_error_line(evo("search", "--resume", str(run_dir), "--quiet", timeout=120))
    assert "all 3 members of the first generation are invalid" in again


# ---------------------------------------------------------------- kills and full disks


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[tuple[str, ...], float, list]:
    """An uninterrupted tiny search: its arguments (less --run-dir), seconds and front."""
    folder = tmp_path_factory.mktemp("reference")
    grammar = folder / "small.bnf"
    grammar.write_text(SMALL_GRAMMAR)
    args = ("search", "--grammar", str(grammar), "--population", "4", "--generations", "1",
            "--epochs", "1", "--seed", "1", "--no-export", "--no-bench", "--quiet")
    ran = fi.evo((*args, "--run-dir", str(folder / "run")), timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    front = fi.front(folder / "run")
    assert isinstance(front, list) and front
    return args, ran.seconds, front


@pytest.mark.slow
def test_kill_9_at_a_random_moment_then_resume_equals_the_uninterrupted_run(reference,
                                                                            tmp_path):
    args, seconds, front = reference
    run_dir = tmp_path / "killed"
    moment = random.Random(19).uniform(0.5 * seconds, 0.9 * seconds)
    proc = fi.start((*args, "--run-dir", str(run_dir)))
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(timeout=moment)  # still running: the kill lands mid-search
    proc.kill()  # SIGKILL
    fi.finish(proc, 60, time.monotonic())
    assert (run_dir / "run.db").is_file()
    resumed = evo("search", "--resume", str(run_dir), "--quiet", timeout=300)
    assert fi.classify(resumed)[0] == "clean" and resumed.returncode == 0, resumed.stderr
    assert fi.front(run_dir) == front


@pytest.mark.slow
def test_a_full_disk_while_searching_is_one_line_and_resume_finishes(reference, tmp_path):
    args, _seconds, front = reference
    run_dir = tmp_path / "full"
    # 64 KiB: the new database (48 KiB) and the small weights files fit, its log does not.
    limited = fi.evo((*args, "--run-dir", str(run_dir)), timeout=300, fsize=64 << 10)
    line = one_error_line(limited)
    assert line.startswith(f"evo: error: {run_dir / 'run.db'}: cannot write (")
    assert f"the disk holding {run_dir} is full or failing" in line
    assert "everything committed before is kept" in line
    assert f"evo search --resume {run_dir}" in line
    resumed = evo("search", "--resume", str(run_dir), "--quiet", timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert fi.front(run_dir) == front


def test_database_or_disk_is_full_names_the_path_and_keeps_what_was_committed(tmp_path):
    from evo.run.store import RunStore

    store = RunStore.create(tmp_path / "run", {"note": "kept"}, {})
    try:
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # SQLITE_FULL past it
        with pytest.raises(EvoError) as full, store.transaction() as conn:
            store.set_meta(conn, "big", "x" * 100_000)
        message = str(full.value)
        assert message.startswith(f"{tmp_path / 'run' / 'run.db'}: cannot write (database or "
                                  "disk is full)")
        assert "\n" not in message and "--resume" in message
        assert store.meta("note") == "kept" and store.meta("big") is None
        with store.transaction() as conn:  # the connection is usable again
            store.set_meta(conn, "small", 1)
    finally:
        store.close()
    assert sqlite3.connect(tmp_path / "run" / "run.db").execute(
        "SELECT value FROM meta WHERE key='small'").fetchone() == ("1",)


def test_a_run_opened_for_writing_on_a_full_disk_is_not_called_damaged(tmp_path):
    from evo.config import SearchConfig
    from evo.run.store import RunStore

    run = tmp_path / "run"
    RunStore.create(run, {"config": SearchConfig().to_dict(), "grammar_text": '<n> ::= "gap"\n',
                          "grammar_source": "n.bnf"}, {}).close()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # run.db is 48 KiB: EFBIG
    try:
        with pytest.raises(EvoError) as refused:
            RunStore.open(run, write=True)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    message = str(refused.value)  # was "not a readable evo run database ... restore a copy"
    assert message.startswith(f"{run / 'run.db'}: cannot write (disk I/O error)")
    assert "everything committed before is kept" in message
    store = RunStore.open(run, write=False)  # and it is whole
    try:
        assert store.meta("grammar_source") == "n.bnf"
    finally:
        store.close()
