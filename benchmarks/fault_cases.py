"""Hostile inputs for benchmarks/fault_injection.py: grammars, architecture texts, command-line
and configuration values, data files.

Each builder takes a seeded ``random.Random``, a case count and a folder to write files into, and
returns :class:`Case` objects: the ``evo`` arguments of one subprocess. The hostile inputs the
fault review of issue 19 used come first (so a small count still covers them), then fuzzed ones:
random or mutated BNF, random token streams, random option values, damaged data files.
"""

from __future__ import annotations

import gzip
import io
import random
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script, the tests' data builders are importable too
    sys.path.insert(0, str(ROOT))

from tests._data_helpers import (  # noqa: E402
    gzip_of_deflate,
    idx_bytes,
    image_tree,
    npy_header,
    png_declaring,
    write_idx_set,
    write_raw_zip,
    write_zip,
    zeros_deflate,
)

# A search that costs seconds when the values happen to be valid (no export, no bench); the
# population comes from a configuration file when one is given (the command line would win).
TINY = ("--generations", "0", "--epochs", "1", "--no-export", "--no-bench", "--quiet")
STORED, DEFLATED = 0, 8
BOMB = 3 << 29  # 1.5 GiB of zeros, about 1.5 MB deflated


@dataclass(frozen=True)
class Case:
    """One ``evo`` invocation; ``timeout`` in seconds (past it the case is a hang)."""

    category: str
    name: str
    argv: tuple[str, ...]
    timeout: float = 60.0


def _take(fixed: list[Case], fuzz, n: int) -> list[Case]:
    """The first ``n`` of the fixed cases, then fuzzed ones up to ``n``."""
    cases = fixed[:n]
    while len(cases) < n:
        cases.append(fuzz(len(cases)))
    return cases


def _search(folder: Path, name: str, *args: str) -> tuple[str, ...]:
    population = () if "--config" in args or "--population" in args else ("--population", "2")
    return ("search", *args, *population, *TINY, "--run-dir", str(folder / f"run-{name}"))


# ---------------------------------------------------------------- grammars

_BNF_TOKENS = ['<a>', '<b>', '<c>', '<net>', '::=', '|', '"conv(8, k=3) "', '"relu "', '"gap"',
               '"dense("', '")"', '"bn "', 'GE_RANGE:3', 'GE_RANGE:999999999999', 'GE_RANGE:0',
               '""', '"', '<', '>', '\n', '\n', ' ', '#', '::= ::=', '<a b>', '\t', 'é', '\\',
               '"maxpool(2) "', '16', '"flatten "']


def grammar_cases(rng: random.Random, n: int, folder: Path) -> list[Case]:
    """Hostile grammars through ``evo grammar check|sample|map`` (and a few searches)."""
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, text: str | bytes) -> str:
        path = folder / f"{name}.bnf"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return str(path)

    doubling = "".join(f'<a{i}> ::= <a{i + 1}> <a{i + 1}> | "relu "\n' for i in range(400))
    chain = "".join(f"<a{i}> ::= <a{i + 1}>\n" for i in range(990))
    digits = "<s> ::= " + "\n  ".join(" ".join(["<d>"] * 100) for _ in range(44))
    files = {
        "doubling-400": doubling + '<a400> ::= "gap "\n',
        "range-huge": '<n> ::= "conv(" <f> ", k=3) relu gap"\n<f> ::= GE_RANGE:999999999999\n',
        "unit-chain-990": chain + '<a990> ::= "conv(8, k=3) relu gap"\n',
        "line-1mb": "<s> ::= " + " | ".join(f'"x{i}"' for i in range(120_000)) + "\n",
        "space-4400-digits": digits + "\n<d> ::= 0|1|2|3|4|5|6|7|8|9\n",
        "hello-world": '<net> ::= "hello world"\n',
        "empty": "",
        "binary": bytes(range(256)) * 4,
        "only-recursion": "<a> ::= <a> | <a> <a>\n",
        "missing-rule": "<a> ::= <b>\n",
        "unterminated": '<a> ::= "conv(8\n',
    }
    paths = {name: write(name, text) for name, text in files.items()}
    fixed = [Case("grammar", f"check {name}", ("grammar", "check", path))
             for name, path in paths.items()]
    fixed += [Case("grammar", f"search {name}", _search(folder, name, "--grammar", paths[name]),
                   timeout=120) for name in ("doubling-400", "unit-chain-990", "hello-world")]
    shipped = sorted((ROOT / "grammars").glob("*.bnf"))

    def fuzz(i: int) -> Case:
        if rng.random() < 0.5:
            text = "".join(rng.choice(_BNF_TOKENS) + rng.choice([" ", ""])
                           for _ in range(rng.randint(1, 60)))
            kind = "random"
        else:
            text = rng.choice(shipped).read_text()
            for _ in range(rng.randint(1, 6)):
                at = rng.randrange(len(text) + 1)
                width = rng.randint(0, 40)
                text = rng.choice([
                    text[:at] + text[at + width:],  # delete
                    text[:at] + text[at:at + width] * rng.randint(2, 50) + text[at:],  # repeat
                    text[:at] + rng.choice(_BNF_TOKENS) + text[at:],  # insert
                ])
            kind = "mutated"
        path = write(f"fuzz-{i}", text)
        command = rng.choice(["check", "sample", "map"])
        if command == "check":
            argv = ("grammar", "check", path)
        elif command == "sample":
            argv = ("grammar", "sample", path, "-n", "3", "--seed", str(i),
                    "--init", rng.choice(["sensible", "pi-grow", "random"]))
        else:
            codons = [rng.choice([0, 1, 7, -3, 10**30, rng.randrange(10**5)]) for _ in range(12)]
            argv = ("grammar", "map", path, "--genome", ",".join(map(str, codons)))
        return Case("grammar", f"{kind} {command} #{i}", argv)

    return _take(fixed, fuzz, n)


# ---------------------------------------------------------------- architecture texts

_LAYERS = ["conv", "dwsep", "ir", "bn", "relu", "relu6", "hardswish", "leakyrelu", "maxpool",
           "avgpool", "gap", "flatten", "dropout", "dense", "se", "add", "hello"]
_KEYS = ["k", "s", "p", "e", "rate", "units", "same", "valid", "optimizer", "lr", "batch_size",
         "epochs_mult", "schedule", "augment", "weight_decay", "label_smoothing"]
_NUMBERS = ["0", "1", "3", "16", "-1", "2.5", "1e-3", "nan", "inf", "-inf", "1e309", "4096",
            "65536", "99999999999999999999", "9" * 5000, "0x10", "1_000", "٣"]


def _number(rng: random.Random) -> str:
    return rng.choice(_NUMBERS)


def arch_cases(rng: random.Random, n: int, folder: Path) -> list[Case]:
    """Hostile texts through ``evo arch show`` (long ones from a file)."""
    folder.mkdir(parents=True, exist_ok=True)

    def text_arg(name: str, text: str) -> str:
        if len(text) < 2000:
            return text
        path = folder / f"{name}.txt"
        path.write_text(text)
        return str(path)

    huge = "conv(4096, k=15) bn relu " * 4 + "dense(65536)"
    fixed_texts = {
        "5000-digit int": f"conv({'9' * 5000}, k=3) relu gap",
        "float overflow": "dense(1e400)",
        "nan rate": "conv(8, k=3) dropout(nan) gap",
        "deep nesting": "(" * 100_000 + "conv(8)" + ")" * 100_000,
        "long text": "conv(8, k=3) relu " * 20_000 + "gap",
        "huge network 3x224x224": huge,
        "bad recipe": "conv(8, k=3) gap | lr=-1 optimizer=nope epochs_mult=1e99",
        "empty": "",
        "unicode": "conv(８, k=３) relu gap ☃",
        "only a bar": "|",
    }
    fixed = []
    for name, text in fixed_texts.items():
        shape = "3x224x224" if name.startswith("huge") else "1x8x8"
        fixed.append(Case("arch", name, ("arch", "show", text_arg(name, text), "--input", shape)))
    fixed += [Case("arch", "input 0x0x0", ("arch", "show", "conv(8) gap", "--input", "0x0x0")),
              Case("arch", "input huge", ("arch", "show", "conv(8) gap", "--input",
                                          "1x99999999x99999999")),
              Case("arch", "classes 0", ("arch", "show", "gap", "--classes", "0"))]

    def fuzz(i: int) -> Case:
        parts: list[str] = []
        for _ in range(rng.randint(1, 12)):
            roll = rng.random()
            if roll < 0.55:
                args = [rng.choice([_number(rng), f"{rng.choice(_KEYS)}={_number(rng)}"])
                        for _ in range(rng.randint(0, 4))]
                parts.append(f"{rng.choice(_LAYERS)}({', '.join(args)})"
                             if rng.random() < 0.7 else rng.choice(_LAYERS))
            elif roll < 0.7:
                parts.append(rng.choice(["|", "(", ")", ",", "=", ";", "\n", "\t", "..."]))
            elif roll < 0.85:
                parts.append(f"{rng.choice(_KEYS)}={_number(rng)}")
            else:
                parts.append(_number(rng))
        text = " ".join(parts)
        argv = ["arch", "show", text_arg(f"fuzz-{i}", text)]
        if rng.random() < 0.3:
            argv += ["--input", rng.choice(["3x32x32", "1x1x1", "1x28x28", "-1x8x8", "3x32",
                                            "axbxc", "1x100000x100000"])]
        argv += rng.choice([[], [], ["--json"], ["--torch"]])
        return Case("arch", f"random tokens #{i}", tuple(argv))

    return _take(fixed, fuzz, n)


# ---------------------------------------------------------------- command-line values

_OPTIONS = ["--population", "--generations", "--epochs", "--seed", "--workers", "--threads",
            "--max-evals", "--max-time", "--candidate-timeout", "--max-memory", "--max-wraps",
            "--max-tree-depth", "--max-init-depth", "--min-init-depth", "--codon-size",
            "--genome-length", "--crossover", "--mutation", "--constraint", "--objectives",
            "--strategy", "--init", "--device", "--grammar", "--dataset", "--final-epochs"]
_VALUES = ["-1", "0", "nan", "inf", "-inf", "1e309", "", "abc", "99999999999999999999", "2.5",
           "☃", "--", "params<=-5", "error<=200%", "macs<=50M", "latency:nope", "1KB", "1e3",
           "cuda:99", "error,error", "x" * 5000]


def cli_cases(rng: random.Random, n: int, folder: Path) -> list[Case]:
    """Bad option and configuration values for ``evo search`` (issue 19, items 9 and 10)."""
    folder.mkdir(parents=True, exist_ok=True)
    configs = {
        "population-float": "population = 2.5\n",
        "population-text": 'population = "many"\n',
        "broken-toml": "population = [\n",
        "unknown-key": "populaton = 4\n",
        "binary": "\x00\x01\x02",
    }
    for name, text in configs.items():
        (folder / f"{name}.toml").write_text(text)
    bad = [("max-tree-depth -5", ["--max-tree-depth", "-5"]), ("max-evals -1", ["--max-evals",
           "-1"]), ("max-time -1", ["--max-time", "-1"]), ("max-time nan", ["--max-time", "nan"]),
           ("max-wraps -1", ["--max-wraps", "-1"]),
           ("init depths 9 > 2", ["--min-init-depth", "9", "--max-init-depth", "2"]),
           ("constraint params<=-5", ["--constraint", "params<=-5"]),
           ("constraint error<=200%", ["--constraint", "error<=200%"]),
           ("seed -1", ["--seed", "-1"]), ("workers 1000", ["--workers", "1000"]),
           ("config is a folder", ["--config", str(folder)])]
    bad += [(f"config {name}", ["--config", str(folder / f"{name}.toml")]) for name in configs]
    fixed = [Case("cli", name, _search(folder, f"fixed-{i}", *args), timeout=120)
             for i, (name, args) in enumerate(bad)]

    def fuzz(i: int) -> Case:
        args: list[str] = []
        for _ in range(rng.randint(1, 3)):
            args += [rng.choice(_OPTIONS), rng.choice(_VALUES)]
        shown = " ".join(a if len(a) < 30 else a[:27] + "..." for a in args)
        return Case("cli", f"{shown} #{i}", _search(folder, f"fuzz-{i}", *args), timeout=120)

    return _take(fixed, fuzz, n)


# ---------------------------------------------------------------- data files


def _entry(name: str, array: np.ndarray) -> tuple[str, bytes, int, int]:
    data = npy_header(array.shape, array.dtype.str) + array.tobytes()
    return name, data, STORED, len(data)


def data_cases(rng: random.Random, n: int, folder: Path) -> list[Case]:
    """Hostile and damaged datasets given to ``evo search --dataset`` (or ``--data-dir``)."""
    folder.mkdir(parents=True, exist_ok=True)
    nprng = np.random.default_rng(rng.randrange(2**32))
    labels = np.arange(10) % 2
    header = npy_header((10**12, 8, 8))
    files: dict[str, Path] = {
        "npz header 10^12x8x8": write_raw_zip(folder / "huge.npz", [
            ("x.npy", header + bytes(64), STORED, len(header) + 64), _entry("y.npy", labels)]),
        "npz bomb 1.5 GiB": write_raw_zip(folder / "bomb.npz", [
            ("x.npy", zeros_deflate(npy_header((BOMB,)), BOMB), DEFLATED,
             len(npy_header((BOMB,))) + BOMB), _entry("y.npy", labels)]),
    }
    images = image_tree(nprng)
    files["zip absolute path"] = write_zip(folder / "absolute.zip",
                                           images | {"/tmp/x/0.png": images["cat/000.png"]})
    files["zip ../ entry"] = write_zip(folder / "dotdot.zip",
                                       images | {"../x/0.png": images["cat/000.png"]})
    files["png 30000x30000 in zip"] = write_zip(
        folder / "pngbomb.zip", images | {"cat/huge.png": png_declaring(30000, 30000)})
    objects = folder / "objects.npz"
    np.savez(objects, x=np.array([object()] * 20, dtype=object), y=np.arange(20) % 2)
    files["npz object array"] = objects
    (folder / "random.npz").write_bytes(rng.randbytes(4096))
    files["npz random bytes"] = folder / "random.npz"
    (folder / "empty.npz").write_bytes(b"")
    files["npz empty file"] = folder / "empty.npz"
    fixed = [Case("data", name, _search(folder, f"fixed-{i}", "--dataset", str(path)),
                  timeout=120) for i, (name, path) in enumerate(files.items())]
    idx = folder / "idx-bomb"
    write_idx_set(idx, nprng)
    promise = idx_bytes(np.zeros((60, 8, 8), np.uint8))[:16]
    (idx / "train-images-idx3-ubyte.gz").write_bytes(gzip_of_deflate(zeros_deflate(promise,
                                                                                   BOMB)))
    fixed.append(Case("data", "idx .gz past its header", _search(
        folder, "fixed-idx", "--dataset", "mnist", "--data-dir", str(idx)), timeout=120))

    good_npz = io.BytesIO()
    np.savez(good_npz, x=nprng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
             y=np.arange(40) % 4)
    good_zip = io.BytesIO()
    with zipfile.ZipFile(good_zip, "w") as archive:
        for name, data in image_tree(nprng).items():
            archive.writestr(name, data)
    good_idx = gzip.compress(idx_bytes(nprng.integers(0, 256, (60, 8, 8), dtype=np.uint8)))

    def fuzz(i: int) -> Case:
        kind, data = rng.choice([("npz", good_npz.getvalue()), ("zip", good_zip.getvalue()),
                                 ("idx", good_idx)])
        damaged = bytearray(data)
        how = rng.choice(["flip", "truncate", "zero"])
        if how == "truncate":
            damaged = damaged[:rng.randrange(len(damaged))]
        else:
            for _ in range(rng.randint(1, 20)):
                at = rng.randrange(len(damaged))
                damaged[at] = rng.randrange(256) if how == "flip" else 0
        if kind == "idx":
            target = folder / f"idx-fuzz-{i}"
            write_idx_set(target, nprng)
            (target / "train-images-idx3-ubyte.gz").write_bytes(bytes(damaged))
            args = ("--dataset", "mnist", "--data-dir", str(target))
        else:
            path = folder / f"fuzz-{i}.{kind}"
            path.write_bytes(bytes(damaged))
            args = ("--dataset", str(path))
        return Case("data", f"{kind} {how} #{i}", _search(folder, f"fuzz-{i}", *args),
                    timeout=120)

    return _take(fixed, fuzz, n)


BUILDERS = {"grammar": grammar_cases, "arch": arch_cases, "cli": cli_cases, "data": data_cases}


# ---------------------------------------------------------------- commands on a run folder


def run_cases(run: Path, folder: Path) -> list[Case]:
    """Bad values for the commands that read a finished ``run`` (which they must leave as it
    was), and damaged copies of it: a folder as its lock, random bytes inside run.db."""
    folder.mkdir(parents=True, exist_ok=True)
    locked = folder / "lock-is-a-folder"
    shutil.copytree(run, locked)
    (locked / ".lock").unlink(missing_ok=True)
    (locked / ".lock").mkdir()
    damaged = folder / "damaged"
    shutil.copytree(run, damaged)
    data = bytearray((damaged / "run.db").read_bytes())
    for page in range(1, len(data) // 4096):  # 100 random bytes over each page's header
        data[page * 4096:page * 4096 + 100] = random.Random(page).randbytes(100)
    (damaged / "run.db").write_bytes(bytes(data))
    r = str(run)
    argvs = {
        "front --plot into /proc": ("front", r, "--plot", "/proc/evo-front.png"),
        "front --plot into a missing folder": ("front", r, "--plot", str(folder / "no/x.png")),
        "front --plot .gif": ("front", r, "--plot", str(folder / "x.gif")),
        "front --csv a folder": ("front", r, "--csv", str(folder)),
        "show member 99999": ("show", r, "99999"),
        "show member -1": ("show", r, "-1"),
        "retrain member 99999": ("retrain", r, "--member", "99999"),
        "export format nope": ("export", r, "--format", "nope"),
        "resume changing the population": ("search", "--resume", r, "--population", "9"),
        "resume with .lock a folder": ("search", "--resume", str(locked), "--quiet"),
        "front of a damaged run.db": ("front", str(damaged)),
        "show of a damaged run.db": ("show", str(damaged), "1"),
        "resume of a damaged run.db": ("search", "--resume", str(damaged), "--quiet"),
        "runs of a folder with a damaged run": ("runs", str(folder)),
        "front of a folder that is no run": ("front", str(folder)),
    }
    return [Case("run", name, argv, timeout=120) for name, argv in argvs.items()]
