"""Hostile and damaged data files: each is refused with one line naming it, before it is unpacked.

The files are tiny on disk but declare gigabytes (a zip entry, an ``.npy`` shape, a PNG size, an
IDX ``.gz`` that expands past its header). Each load runs in a subprocess that imports only the
data module under an address-space cap (``RLIMIT_AS``): a regression that allocates what the file
declares dies there with ``MemoryError`` and fails the test, instead of eating the machine.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from evo.data.dataset import load_dataset
from evo.errors import EvoError
from tests._data_helpers import (
    gzip_of_deflate,
    idx_bytes,
    image_tree,
    npy_header,
    png_bytes,
    png_declaring,
    write_idx_set,
    write_raw_zip,
    write_zip,
    zeros_deflate,
)

ROOT = Path(__file__).resolve().parents[1]
ADDRESS_SPACE = 1 << 30  # python + numpy + Pillow need ~160 MB; every bomb declares >= 1.5 GiB
BOMB = 3 << 29  # 1.5 GiB of zeros, about 1.5 MB deflated
STORED, DEFLATED = 0, 8

# Loads a dataset under the cap; prints one JSON line: the refusal, or how it ended otherwise.
_CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from evo.data.dataset import load_dataset
from evo.errors import EvoError
try:
    load_dataset(sys.argv[1], data_dir=sys.argv[2] or None, use_cache=False)
    outcome = {{"refused": None}}
except EvoError as error:
    outcome = {{"refused": str(error)}}
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report the parent's
# (pytest's) size; the high-water mark belongs to this process's own address space.
with open("/proc/self/status") as status:
    outcome["peak_kib"] = next(int(line.split()[1]) for line in status
                               if line.startswith("VmHWM:"))
print(json.dumps(outcome))
"""


def _load_capped(source: str | Path, data_dir: Path | None = None,
                 env: dict[str, str] | None = None) -> tuple[str, int]:
    """The one-line refusal of loading ``source`` under the cap, and the peak RSS (KiB)."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD.format(cap=ADDRESS_SPACE), str(source),
         str(data_dir or "")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-2000:]  # MemoryError or a traceback: not refused
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["refused"], "the hostile file was accepted"
    assert "\n" not in outcome["refused"]
    return outcome["refused"], int(outcome["peak_kib"])


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache folder (never ~/.cache) and the default memory limit."""
    monkeypatch.setenv("EVO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("EVO_DATA_MEMORY_LIMIT", raising=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _npy_entry(name: str, array: np.ndarray) -> tuple[str, bytes, int, int]:
    data = npy_header(array.shape, array.dtype.str) + array.tobytes()
    return name, data, STORED, len(data)


# ---------------------------------------------------------------- .npz


def test_npz_header_claiming_terabytes_is_refused_before_allocating(tmp_path: Path) -> None:
    header = npy_header((10**12, 8, 8))
    path = write_raw_zip(tmp_path / "huge.npz", [
        ("x.npy", header + bytes(64), STORED, len(header) + 64),
        _npy_entry("y.npy", np.arange(10) % 2),
    ])
    message, peak = _load_capped(path)
    assert message.startswith(f"{path}: 'x' declares shape (1000000000000, 8, 8)")
    assert "58.2 TiB" in message and "holds 64 bytes" in message
    assert peak < 300_000


def test_npz_entry_expanding_past_the_memory_limit_is_refused(tmp_path: Path) -> None:
    header = npy_header((BOMB,))
    path = write_raw_zip(tmp_path / "bomb.npz", [
        ("x.npy", zeros_deflate(header, BOMB), DEFLATED, len(header) + BOMB),
        _npy_entry("y.npy", np.arange(10) % 2),
    ])
    assert path.stat().st_size < 3_000_000
    message, peak = _load_capped(path)  # the cap halves the default limit to 512 MiB
    assert message.startswith(f"{path}: loading its arrays needs about 7.5 GiB")
    assert "data memory limit" in message and peak < 300_000


def test_memory_limit_can_be_set_and_is_checked(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.npz"
    np.savez(path, x=np.zeros((40, 16, 16), np.uint8), y=np.arange(40) % 2)
    monkeypatch.setenv("EVO_DATA_MEMORY_LIMIT", "50K")
    with pytest.raises(EvoError) as excinfo:  # 10,240 pixels + 4 bytes each normalised + y
        load_dataset(path)
    assert str(excinfo.value).startswith(
        f"{path}: loading its arrays needs about 50.3 KiB, more than the data memory limit of "
        "50.0 KiB (use a smaller dataset, or raise the limit with EVO_DATA_MEMORY_LIMIT")
    monkeypatch.setenv("EVO_DATA_MEMORY_LIMIT", "100K")
    assert len(load_dataset(path).train) > 0
    monkeypatch.setenv("EVO_DATA_MEMORY_LIMIT", "lots")
    with pytest.raises(EvoError, match="EVO_DATA_MEMORY_LIMIT='lots' is not a positive size"):
        load_dataset(path)


# ---------------------------------------------------------------- ImageFolder zips


def test_zip_entry_declaring_a_gigabyte_is_refused_before_unpacking(tmp_path: Path,
                                                                    rng: np.random.Generator
                                                                    ) -> None:
    entries = [(name, data, STORED, len(data)) for name, data in image_tree(rng).items()]
    entries.append(("dog/bomb.png", zeros_deflate(b"", BOMB), DEFLATED, BOMB))
    path = write_raw_zip(tmp_path / "bomb.zip", entries)
    message, peak = _load_capped(path)
    assert message.startswith(f"{path}: dog/bomb.png is 1.5 GiB uncompressed")
    assert "refused before unpacking" in message and peak < 300_000


@pytest.mark.parametrize("width, height, words", [
    (30000, 30000, "more than the 67,108,864 pixels an image may have"),  # Pillow's own check
    (9000, 9000, "declares 9000x9000 pixels"),  # under Pillow's limit, over ours
])
def test_png_declaring_a_huge_size_is_refused_before_decoding(
        tmp_path: Path, rng: np.random.Generator, width: int, height: int, words: str) -> None:
    files = image_tree(rng)
    files["cat/huge.png"] = png_declaring(width, height)
    path = write_zip(tmp_path / "huge.zip", files)
    message, peak = _load_capped(path)
    assert message.startswith(f"{path}: cat/huge.png") and words in message
    assert "refused before decoding" in message and peak < 300_000


@pytest.mark.parametrize("name, words", [
    ("/tmp/cat/000.png", "entry '/tmp/cat/000.png' has an absolute path"),
    ("../dog/000.png", "entry '../dog/000.png' points outside the archive (..)"),
    ("set/../../dog/000.png", "entry 'set/../../dog/000.png' points outside the archive"),
    ("C:/dog/000.png", "entry 'C:/dog/000.png' has an absolute path"),
])
def test_zip_entries_outside_the_archive_are_refused(tmp_path: Path, rng: np.random.Generator,
                                                     name: str, words: str) -> None:
    files = image_tree(rng)
    path = write_zip(tmp_path / "set.zip", files)
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(zipfile.ZipInfo(name), files["cat/000.png"])
    with pytest.raises(EvoError) as excinfo:
        load_dataset(path, use_cache=False)
    assert str(excinfo.value).startswith(f"{path}: {words}")


def test_corrupt_image_names_the_entry_not_a_buffer(tmp_path: Path,
                                                    rng: np.random.Generator) -> None:
    files = image_tree(rng)
    files["dog/003.png"] = b"garbage, not an image"
    for source in (write_zip(tmp_path / "set.zip", files), tmp_path / "tree"):
        if source.suffix != ".zip":
            for name, data in files.items():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                (source / name).write_bytes(data)
        with pytest.raises(EvoError) as excinfo:
            load_dataset(source, use_cache=False)
        text = str(excinfo.value)
        assert text.startswith(f"{source}: cannot decode dog/003.png (not an image format")
        assert "BytesIO" not in text and "0x" not in text


def test_decoded_size_past_the_limit_is_refused_after_the_first_image(
        tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    files = image_tree(rng, per_class=50) | {"cat/big.png": png_bytes(np.zeros((6, 6, 3),
                                                                                np.uint8))}
    path = write_zip(tmp_path / "set.zip", files)
    monkeypatch.setenv("EVO_DATA_MEMORY_LIMIT", "4K")
    with pytest.raises(EvoError, match=r"decoding 101 images of this size needs about 63\.9 KiB"):
        load_dataset(path, use_cache=False)


# ---------------------------------------------------------------- IDX


def test_idx_gz_expanding_past_its_header_is_refused(tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    write_idx_set(tmp_path, rng)
    header = idx_bytes(np.zeros((60, 8, 8), np.uint8))[:16]  # promises 3,840 values
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip_of_deflate(zeros_deflate(header, BOMB)))
    message, peak = _load_capped("mnist", tmp_path)
    assert message.startswith(f"{tmp_path / 'train-images-idx3-ubyte.gz'}: expands past the "
                              "3,840 values its header promises (60x8x8)")
    assert peak < 300_000


def test_idx_header_promising_more_than_memory_is_refused(tmp_path: Path,
                                                          rng: np.random.Generator) -> None:
    write_idx_set(tmp_path, rng)
    dims = b"".join(d.to_bytes(4, "big") for d in (4_000_000_000, 4096, 4096))
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress((0x0803).to_bytes(4, "big") + dims + bytes(100)))
    message, _peak = _load_capped("mnist", tmp_path)
    assert "4000000000x4096x4096 values (and their float32 copy) needs about" in message
    plain = tmp_path / "plain"
    write_idx_set(plain, rng)
    (plain / "train-images-idx3-ubyte.gz").unlink()
    (plain / "train-images-idx3-ubyte").write_bytes((0x0803).to_bytes(4, "big") + dims)
    with pytest.raises(EvoError, match="the file holds 0; the file is truncated"):
        load_dataset("mnist", data_dir=plain)


# ---------------------------------------------------------------- labels


def test_negative_labels_are_out_of_range_not_one_class(tmp_path: Path) -> None:
    path = tmp_path / "neg.npz"
    np.savez(path, x=np.zeros((20, 4, 4), np.uint8), y=np.array([0, -1] * 10))
    with pytest.raises(EvoError) as excinfo:
        load_dataset(path)
    assert str(excinfo.value).startswith(
        f"{path} (training labels): labels out of range: labels run from -1 to 0")


def test_cli_refuses_each_hostile_file_with_one_line_and_exit_2(
        tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]) -> None:
    from evo.cli.app import main

    header = npy_header((10**12, 8, 8))
    huge = write_raw_zip(tmp_path / "huge.npz", [
        ("x.npy", header + bytes(64), STORED, len(header) + 64),
        _npy_entry("y.npy", np.arange(10) % 2)])
    files = image_tree(rng)
    outside = write_zip(tmp_path / "outside.zip", files | {"../x/0.png": files["cat/000.png"]})
    bomb = write_zip(tmp_path / "bomb.zip", files | {"cat/huge.png": png_declaring(30000, 30000)})
    for source in (huge, outside, bomb):
        with pytest.raises(SystemExit) as excinfo:
            main(["search", "--dataset", str(source), "--run-dir", str(tmp_path / "run"),
                  "--population", "2", "--generations", "1"])
        err = capsys.readouterr().err
        assert excinfo.value.code == 2
        assert err.startswith(f"evo: error: {source}: ") and err.count("\n") == 1
