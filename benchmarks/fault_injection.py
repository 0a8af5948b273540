"""Fault injection: hostile input, kills and write errors against the real ``evo`` command.

    .venv/bin/python benchmarks/fault_injection.py [--cases 30] [--kills 6] [--seed 0]
        [--categories grammar,arch,cli,data,run,kill,write] [--out /tmp/evo-fault-injection]

Every case is one ``evo`` subprocess with its address space (``RLIMIT_AS``) and wall-clock time
capped, and for the write-error cases its file size (``RLIMIT_FSIZE``: the kernel answers a write
past it with EFBIG, as a full disk answers ENOSPC), so a regression fails a case instead of the
machine. ``--cases`` hostile inputs per input category (grammars, architecture texts, command
line and configuration values, data files: the review's own hostile inputs first, then fuzzed
ones, see fault_cases.py); ``--kills`` runs each of kill -9 of a search (then ``--resume``), of an
export and of a retrain, and of each command under a write limit, on copies of one tiny search
on digits.

A case is *clean* when it exits 0, or 1/2 with exactly one ``evo: error:`` line on stderr (or
click's usage error); a *traceback* when stderr holds one; a *hang* past its timeout; *data lost*
when afterwards the run no longer opens, a resumed search's front differs from the uninterrupted
run's, an export that was ok is no longer in place, or an earlier retrain's weights changed;
*other* is any other ending (a signal, several error lines). Prints one table; exit 1 unless
every case is clean.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_cases import BUILDERS, ROOT, Case, run_cases

MEMORY = 4 << 30  # address space per case: torch needs about 2 GiB of it to start
VERDICTS = ("clean", "traceback", "hang", "lost", "other")
# The uninterrupted run every kill and write-error case is compared with: ~10 s on 2 cores.
SMALL = ("--grammar", "cnn_topology", "--population", "4", "--generations", "1", "--epochs", "1",
         "--no-export", "--no-bench", "--seed", "5", "--quiet")


@dataclass(frozen=True)
class Ran:
    """How one subprocess ended; ``returncode`` None: killed at its timeout."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Outcome:
    category: str
    case: str
    verdict: str
    detail: str


def _environment(cache: Path | None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "120"}
    if cache is not None:
        env["EVO_CACHE_DIR"] = str(cache)
    return env


def start(argv: tuple[str, ...], *, memory: int = MEMORY, fsize: int | None = None,
          cache: Path | None = None) -> subprocess.Popen[str]:
    """``python -m evo ARGV`` in its own process group, with its limits set in the child."""
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.Popen([sys.executable, "-m", "evo", *argv], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, preexec_fn=limits,
                            start_new_session=True, env=_environment(cache))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL whatever is left of the case's process group (workers included)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def finish(proc: subprocess.Popen[str], timeout: float, started: float) -> Ran:
    try:
        out, err = proc.communicate(timeout=max(1.0, timeout - (time.monotonic() - started)))
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        code = None
    _kill_group(proc)
    return Ran(code, out, err, time.monotonic() - started)


def evo(argv: tuple[str, ...], *, timeout: float = 60.0, memory: int = MEMORY,
        fsize: int | None = None, cache: Path | None = None) -> Ran:
    started = time.monotonic()
    return finish(start(argv, memory=memory, fsize=fsize, cache=cache), timeout, started)


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def classify(ran: Ran) -> tuple[str, str]:
    """clean, traceback, hang or other, with the line that says why."""
    if ran.returncode is None:
        return "hang", f"still running after {ran.seconds:.0f} s"
    if "Traceback (most recent call last)" in ran.stderr:
        return "traceback", _last(ran.stderr)
    if ran.returncode == 0:
        return "clean", "exit 0"
    errors = [line for line in ran.stderr.splitlines() if line.startswith("evo: error:")]
    if ran.returncode in (1, 2) and len(errors) == 1:
        return "clean", f"exit {ran.returncode}: {errors[0][:200]}"
    if ran.returncode == 2 and "Usage:" in ran.stderr and not errors:
        return "clean", f"usage: {_last(ran.stderr)}"
    return "other", f"exit {ran.returncode}: {_last(ran.stderr)}"


def run_case(case: Case, cache: Path | None = None) -> Outcome:
    verdict, detail = classify(evo(case.argv, timeout=case.timeout, cache=cache))
    return Outcome(case.category, case.name, verdict, detail)


# ---------------------------------------------------------------- what a run holds


def front(run_dir: Path, cache: Path | None = None) -> list[tuple] | str:
    """(member, objectives, phenotype) of the front, or why the run did not open."""
    ran = evo(("front", str(run_dir), "--json"), cache=cache)
    if ran.returncode != 0:
        return f"evo front: {classify(ran)[1]}"
    data = json.loads(ran.stdout)
    return [(m["member"], json.dumps(m["objectives"], sort_keys=True), m["phenotype"])
            for m in data["front"]]


def _sha(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def member_state(run_dir: Path, member: int, cache: Path | None = None) -> dict | str:
    """What ``evo show --json`` says of a member's exports and retrains (with the hash of each
    retrain's weights), or why it could not say."""
    ran = evo(("show", str(run_dir), str(member), "--json"), cache=cache)
    if ran.returncode != 0:
        return f"evo show: {classify(ran)[1]}"
    data = json.loads(ran.stdout)
    retrains = {}
    for r in data["retrains"]:
        if r["weights"] and not r.get("weights_present", True):
            return f"retrain {r['retrain']} is listed without its weights file"
        retrains[r["id"]] = _sha(run_dir / r["weights"]) if r["weights"] else None
    ok = sorted({row["format"] for row in data["exports"] if row["status"] == "ok"})
    return {"exports_ok": ok, "retrains": retrains}


def lost_between(before: dict, after: dict | str) -> str | None:
    """Data lost: the run no longer shows, an ok export went, an earlier retrain changed."""
    if isinstance(after, str):
        return after
    gone = sorted(set(before["exports_ok"]) - set(after["exports_ok"]))
    if gone:
        return f"exports no longer in place: {', '.join(gone)}"
    for ident, sha in before["retrains"].items():
        if after["retrains"].get(ident) != sha:
            return f"retrain id {ident}: its weights changed or went"
    return None


# ---------------------------------------------------------------- runs, kills, write errors


@dataclass
class Workspace:
    """The uninterrupted reference run, and copies of it with an export and a retrain."""

    folder: Path
    cache: Path
    reference: Path
    seconds: float
    front: list[tuple]
    member: int

    @classmethod
    def build(cls, folder: Path) -> Workspace:
        cache = folder / "cache"
        reference = folder / "reference"
        ran = evo(("search", *SMALL, "--run-dir", str(reference)), timeout=300, cache=cache)
        if ran.returncode != 0:
            raise SystemExit(f"the reference search failed: {classify(ran)[1]}")
        ref_front = front(reference, cache)
        assert isinstance(ref_front, list) and ref_front, ref_front
        member = ref_front[-1][0]  # the smallest network: quick to export and retrain
        done = cls(folder, cache, reference, ran.seconds, ref_front, member)
        prepared = done.copy("prepared")
        for argv in (("export", str(prepared), "--member", str(member), "--format", "onnx"),
                     ("retrain", str(prepared), "--member", str(member), "--epochs", "1")):
            ran = evo(argv, timeout=300, cache=cache)
            if ran.returncode != 0:
                raise SystemExit(f"preparing the kill cases failed: {classify(ran)[1]}")
        return done

    def copy(self, name: str, source: Path | None = None) -> Path:
        target = self.folder / name
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source or self.reference, target)
        return target


def _kill_at_random(argv: tuple[str, ...], moment: float, ws: Workspace,
                    fsize: int | None = None) -> Ran:
    """Start ``evo ARGV``, SIGKILL its driver after ``moment`` seconds (if still running)."""
    started = time.monotonic()
    proc = start(argv, fsize=fsize, cache=ws.cache)
    try:
        proc.wait(timeout=moment)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its workers must follow it
    return finish(proc, 300, started)


def _ending(first: Ran) -> str:
    if first.returncode == -signal.SIGKILL:
        return "killed"
    return _last(first.stderr) or f"ended (exit {first.returncode}) before the kill"


def _search_then_resume(ws: Workspace, category: str, name: str, run_dir: Path,
                        first: Ran) -> Outcome:
    """After a killed or failed search: the first command's ending (unless killed), then
    ``--resume`` (or a fresh start when nothing was committed) must give the reference front."""
    if category == "write":
        verdict, detail = classify(first)
        if verdict != "clean":
            return Outcome(category, name, verdict, detail)
    if (run_dir / "run.db").is_file():
        again = evo(("search", "--resume", str(run_dir), "--quiet"), timeout=300, cache=ws.cache)
    else:
        again = evo(("search", *SMALL, "--run-dir", str(run_dir)), timeout=300, cache=ws.cache)
    verdict, detail = classify(again)
    if verdict != "clean" or again.returncode != 0:
        return Outcome(category, name, "lost" if verdict == "clean" else verdict,
                       f"resume: {detail}")
    got = front(run_dir, ws.cache)
    if got != ws.front:
        return Outcome(category, name, "lost", f"front after resume differs: {got}")
    return Outcome(category, name, "clean", f"{_ending(first)}; resumed equal")


def _member_command(kind: str, run_dir: Path, member: int) -> tuple[str, ...]:
    if kind == "export":
        return ("export", str(run_dir), "--member", str(member), "--format", "onnx,ir-fp32",
                "--json")
    return ("retrain", str(run_dir), "--member", str(member), "--epochs", "2", "--seeds", "3",
            "--json")


def _member_case(ws: Workspace, category: str, kind: str, name: str, run_dir: Path,
                 first: Ran, before: dict) -> Outcome:
    """After a killed or failed export/retrain: nothing that was in place is lost, and running
    the command again completes."""
    verdict, detail = classify(first) if category == "write" else ("clean", _ending(first))
    if verdict != "clean":
        return Outcome(category, name, verdict, detail)
    lost = lost_between(before, member_state(run_dir, ws.member, ws.cache))
    if lost:
        return Outcome(category, name, "lost", lost)
    again = evo(_member_command(kind, run_dir, ws.member), timeout=300, cache=ws.cache)
    verdict, again_detail = classify(again)
    if verdict != "clean" or again.returncode != 0:
        return Outcome(category, name, "lost" if verdict == "clean" else verdict,
                       f"again: {again_detail}")
    lost = lost_between(before, member_state(run_dir, ws.member, ws.cache))
    return Outcome(category, name, "lost" if lost else "clean", lost or detail)


def fault_case(ws: Workspace, category: str, kind: str, index: int,
               rng: random.Random) -> Outcome:
    """One kill (``category`` "kill") or write-limit ("write") case of a search, an export or
    a retrain, on a fresh copy of the prepared runs."""
    name = f"{kind} #{index}"
    if kind == "search":
        run_dir = ws.folder / f"{category}-{index}"
        shutil.rmtree(run_dir, ignore_errors=True)
        workers = "2" if index % 2 else "1"
        argv = ("search", *SMALL, "--workers", workers, "--run-dir", str(run_dir))
        if category == "kill":
            moment = rng.uniform(0.5, ws.seconds * 1.2)
            name += f" (workers {workers}, kill -9 at {moment:.1f} s)"
            first = _kill_at_random(argv, moment, ws)
        else:
            fsize = rng.choice([24, 48, 96, 256, 1024]) << 10
            name += f" (workers {workers}, files <= {fsize >> 10} KiB)"
            first = evo(argv, timeout=300, fsize=fsize, cache=ws.cache)
        return _search_then_resume(ws, category, name, run_dir, first)
    run_dir = ws.copy(f"{category}-{index}", ws.folder / "prepared")
    before = member_state(run_dir, ws.member, ws.cache)
    if isinstance(before, str):
        return Outcome(category, name, "lost", f"before: {before}")
    argv = _member_command(kind, run_dir, ws.member)
    if category == "kill":
        moment = rng.uniform(1.0, 12.0)
        name += f" (kill -9 at {moment:.1f} s)"
        first = _kill_at_random(argv, moment, ws)
    else:
        fsize = rng.choice([4, 32, 128, 512]) << 10
        name += f" (files <= {fsize >> 10} KiB)"
        first = evo(argv, timeout=300, fsize=fsize, cache=ws.cache)
    return _member_case(ws, category, kind, name, run_dir, first, before)


# ---------------------------------------------------------------- the table


def table(outcomes: list[Outcome]) -> str:
    rows = ["| category | cases tried | clean errors | tracebacks | hangs | data lost | other |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    categories = list(dict.fromkeys(o.category for o in outcomes))
    for category in [*categories, "all"]:
        mine = [o for o in outcomes if category in ("all", o.category)]
        counts = [sum(o.verdict == v for o in mine) for v in VERDICTS]
        label = f"**{category}**" if category == "all" else category
        rows.append(f"| {label} | {len(mine)} | " + " | ".join(map(str, counts)) + " |")
    bad = [o for o in outcomes if o.verdict != "clean"]
    rows += ["", *(f"- {o.verdict}: {o.category} {o.case}: {o.detail}" for o in bad)]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=30, help="cases per input category")
    parser.add_argument("--kills", type=int, default=3,
                        help="cases per command (search, export, retrain) killed, and as many "
                             "under a write limit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--categories", default="grammar,arch,cli,data,run,kill,write")
    parser.add_argument("--out", type=Path, default=Path("/tmp/evo-fault-injection"))
    parser.add_argument("--verbose", action="store_true", help="print every case as it ends")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    chosen = args.categories.split(",")
    started = time.monotonic()
    outcomes: list[Outcome] = []

    def record(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if args.verbose or outcome.verdict != "clean":
            print(f"[{time.monotonic() - started:6.0f} s] {outcome.verdict:9} "
                  f"{outcome.category} {outcome.case}: {outcome.detail}", flush=True)

    for category, build in BUILDERS.items():
        if category in chosen:
            for case in build(rng, args.cases, args.out / category):
                record(run_case(case, args.out / "cache"))
    faults: list[Callable[[], Outcome]] = []
    if {"run", "kill", "write"} & set(chosen):
        ws = Workspace.build(args.out / "runs")
        if "run" in chosen:
            used = ws.copy("commands")
            for case in run_cases(used, args.out / "run"):
                record(run_case(case, ws.cache))
            after = front(used, ws.cache)
            if after != ws.front:
                record(Outcome("run", "the run the commands read", "lost", f"front: {after}"))
        for category in ("kill", "write"):
            if category in chosen:
                for i in range(args.kills):
                    for kind in ("search", "export", "retrain"):
                        faults.append(lambda c=category, k=kind, i=i: fault_case(ws, c, k, i, rng))
    for fault in faults:
        record(fault())
    print(table(outcomes))
    print(f"\n{len(outcomes)} cases in {(time.monotonic() - started) / 60:.1f} min "
          f"(--cases {args.cases} --kills {args.kills} --seed {args.seed})")
    return 0 if all(o.verdict == "clean" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
