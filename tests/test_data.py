"""Datasets: every format written tiny by the tests themselves, every failure mode, splits."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evo.data.dataset import (
    FASHION_MNIST_DIR,
    channel_stats,
    load_dataset,
    normalise,
    stratified_split,
)
from evo.data.readers.cifar import SafeUnpickler, safe_unpickle
from evo.errors import EvoError
from tests._data_helpers import (
    idx_bytes,
    image_tree,
    png_bytes,
    write_cifar_folder,
    write_cifar_tar,
    write_idx_set,
    write_tree,
    write_zip,
)


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache folder (never ~/.cache)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("EVO_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def _error(excinfo: pytest.ExceptionInfo[EvoError]) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, "an error is one line"
    assert excinfo.value.hint, "an error says how to fix it"
    return text


# ---------------------------------------------------------------- digits and common properties


def test_digits_is_the_default_and_split_without_overlap() -> None:
    data = load_dataset()
    assert data.name == "digits"
    assert data.input_shape == (1, 8, 8)
    assert data.num_classes == 10
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert not data.official_test
    for split in (data.train, data.val, data.test):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int64
        assert split.x.shape[1:] == (1, 8, 8) and split.x.flags.c_contiguous
        assert set(np.unique(split.y)) == set(range(10)), "stratified: every class in every split"
    # normalised with the training split's statistics
    assert abs(float(data.train.x.mean())) < 1e-4
    assert abs(float(data.train.x.std()) - 1.0) < 1e-3
    # no image appears in two splits
    rows = {split: {row.tobytes() for row in getattr(data, split).x}
            for split in ("train", "val", "test")}
    assert not rows["val"] & rows["test"]


def test_fingerprint_is_stable_and_follows_the_seed() -> None:
    first, again, other = load_dataset("digits"), load_dataset("digits"), load_dataset(
        "digits", seed=1)
    assert first.fingerprint == again.fingerprint and len(first.fingerprint) == 64
    assert np.array_equal(first.val.y, again.val.y)
    assert first.fingerprint != other.fingerprint
    assert not np.array_equal(first.val.x, other.val.x)
    assert load_dataset("digits", hflip=True).fingerprint != first.fingerprint


def test_describe_is_json_ready() -> None:
    info = load_dataset("digits").describe()
    assert json.loads(json.dumps(info)) == info
    assert info["sizes"]["train"] > info["sizes"]["val"] > 0
    assert info["mean"] and info["std"] and info["fingerprint"]


def test_unknown_name_is_one_clear_line() -> None:
    with pytest.raises(EvoError) as excinfo:
        load_dataset("imagenet-tiny")
    text = _error(excinfo)
    assert "unknown dataset 'imagenet-tiny'" in text and "digits" in text


@given(labels=st.lists(st.integers(0, 4), min_size=1, max_size=60), seed=st.integers(0, 2**16))
def test_stratified_split_partitions_every_index(labels: list[int], seed: int) -> None:
    y = np.asarray(labels)
    parts = stratified_split(y, (0.15, 0.15), np.random.default_rng(seed))
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(y)))
    for part in parts:
        assert np.all(np.diff(part) > 0)
    again = stratified_split(y, (0.15, 0.15), np.random.default_rng(seed))
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_normalise_matches_plain_arithmetic(rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (9000, 4, 5, 3), dtype=np.uint8)  # more than one chunk
    mean, std = channel_stats(x)
    reference = x.astype(np.float64) / 255.0
    assert np.allclose(mean, reference.mean(axis=(0, 1, 2)))
    assert np.allclose(std, reference.std(axis=(0, 1, 2)))
    out = normalise(x, mean, std)
    expected = ((reference - mean) / std).transpose(0, 3, 1, 2)
    assert out.shape == (9000, 3, 4, 5)
    assert np.allclose(out, expected, atol=1e-5)


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


def test_idx_set_keeps_the_official_test_split(tmp_path: Path, rng: np.random.Generator) -> None:
    arrays = write_idx_set(tmp_path / "mnist", rng)
    data = load_dataset("mnist", data_dir=tmp_path / "mnist")
    assert data.official_test
    assert data.input_shape == (1, 8, 8)
    assert data.class_names == tuple(str(d) for d in range(10))
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 60
    assert np.array_equal(data.test.y, arrays["t10k-labels-idx1-ubyte"].astype(np.int64))
    pixels = arrays["t10k-images-idx3-ubyte"][0].astype(np.float64) / 255.0
    restored = data.test.x[0, 0] * data.std[0] + data.mean[0]
    assert np.allclose(restored, pixels, atol=1e-5)
    fashion = load_dataset("fashion-mnist", data_dir=tmp_path / "mnist")
    assert fashion.class_names[0] == "T-shirt/top" and fashion.hflip and not data.hflip


@pytest.mark.parametrize("stem", ["train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])
def test_idx_wrong_magic(tmp_path: Path, rng: np.random.Generator, stem: str) -> None:
    arrays = write_idx_set(tmp_path, rng)
    (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(arrays[stem], magic=0x0802)))
    with pytest.raises(EvoError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    text = _error(excinfo)
    assert "wrong magic number 0x00000802" in text and stem in text


def test_idx_truncated_gzip(tmp_path: Path, rng: np.random.Generator) -> None:
    write_idx_set(tmp_path, rng)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(EvoError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    assert "train-images-idx3-ubyte.gz" in _error(excinfo)
    assert "truncated" in str(excinfo.value)


def test_idx_payload_shorter_than_its_header(tmp_path: Path, rng: np.random.Generator) -> None:
    arrays = write_idx_set(tmp_path, rng)
    stem = "train-images-idx3-ubyte"
    (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(arrays[stem])[:-7]))
    with pytest.raises(EvoError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    assert "header promises 60x8x8 = 3840 values but the file holds 3833" in _error(excinfo)


def test_idx_label_count_mismatch(tmp_path: Path, rng: np.random.Generator) -> None:
    write_idx_set(tmp_path, rng)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(59, np.uint8))))
    with pytest.raises(EvoError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    assert "60 images but train-labels-idx1-ubyte.gz has 59 labels" in _error(excinfo)


def test_idx_single_class(tmp_path: Path, rng: np.random.Generator) -> None:
    write_idx_set(tmp_path, rng, classes=1)
    with pytest.raises(EvoError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    assert "same label" in _error(excinfo)


def test_missing_idx_files_say_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(EvoError) as excinfo:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    text = _error(excinfo)
    assert str(tmp_path / "nowhere") in text and "apt-get install dataset-fashion-mnist" in text
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvoError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path / "empty")
    assert "missing train-images-idx3-ubyte.gz" in _error(excinfo)


@pytest.mark.skipif(not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
                    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_DIR} "
                           "(apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist() -> None:
    data = load_dataset("fashion-mnist")
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (54000, 6000, 10000)
    assert data.official_test and data.hflip
    assert np.bincount(data.test.y).tolist() == [1000] * 10


# ---------------------------------------------------------------- CIFAR-10 python batches


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_folder(tmp_path: Path, rng: np.random.Generator, protocol: int) -> None:
    write_cifar_folder(tmp_path / "cifar-10-batches-py", rng, protocol=protocol)
    data = load_dataset("cifar10", data_dir=tmp_path)  # the parent of the batches folder
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert data.class_names[0] == "airplane"
    assert len(data.test) == 8 and len(data.train) + len(data.val) == 40
    assert data.official_test and data.hflip


def test_cifar_pixels_are_decoded_in_channel_planes(tmp_path: Path,
                                                    rng: np.random.Generator) -> None:
    folder = tmp_path / "batches"
    write_cifar_folder(folder, rng)
    test = pickle.loads((folder / "test_batch").read_bytes())
    data = load_dataset("cifar10", data_dir=folder)
    rows = test[b"data"][0].reshape(3, 32, 32).astype(np.float64) / 255.0
    restored = data.test.x[0] * np.asarray(data.std)[:, None, None] + np.asarray(
        data.mean)[:, None, None]
    assert np.allclose(restored, rows, atol=1e-5)


def test_cifar_tar_gz_matches_folder(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "src"
    write_cifar_folder(folder, rng)
    write_cifar_tar(tmp_path / "cifar-10-python.tar.gz", folder)
    from_tar = load_dataset("cifar10", data_dir=tmp_path / "cifar-10-python.tar.gz")
    from_dir = load_dataset("cifar10", data_dir=folder)
    assert np.array_equal(from_tar.train.x, from_dir.train.x)


class _Evil:
    """Unpickling this would create a folder: the marker of code that ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path: Path,
                                                    rng: np.random.Generator) -> None:
    folder = tmp_path / "batches"
    write_cifar_folder(folder, rng)
    marker = tmp_path / "pwned"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Evil(marker)]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(EvoError) as excinfo:
        load_dataset("cifar10", data_dir=folder)
    text = _error(excinfo)
    assert "refused to load posix.mkdir" in text or "refused to load os.mkdir" in text
    assert "data_batch_3" in text
    assert not marker.exists()


def test_safe_unpickler_rebuilds_arrays_only(rng: np.random.Generator) -> None:
    array = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        loaded = safe_unpickle(pickle.dumps({"a": [array, 1.5, "x"]}, protocol=protocol),
                               "mem", "hint")
        assert np.array_equal(loaded["a"][0], array) and loaded["a"][1:] == [1.5, "x"]
    with pytest.raises(pickle.UnpicklingError):
        SafeUnpickler(__import__("io").BytesIO(pickle.dumps(Path("/")))).load()


def test_cifar_truncated_and_missing_batches(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "batches"
    write_cifar_folder(folder, rng)
    data = (folder / "data_batch_2").read_bytes()
    (folder / "data_batch_2").write_bytes(data[: len(data) // 2])
    with pytest.raises(EvoError) as excinfo:
        load_dataset("cifar10", data_dir=folder)
    assert "data_batch_2: corrupt or truncated pickle" in _error(excinfo)
    (folder / "data_batch_2").unlink()
    with pytest.raises(EvoError) as excinfo:
        load_dataset("cifar10", data_dir=folder)
    text = _error(excinfo)
    assert "missing CIFAR-10 batch file(s) data_batch_2" in text and "cs.toronto.edu" in text


def test_cifar_wrong_row_width(tmp_path: Path, rng: np.random.Generator) -> None:
    folder = tmp_path / "batches"
    write_cifar_folder(folder, rng)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(EvoError) as excinfo:
        load_dataset("cifar10", data_dir=folder)
    assert "expected uint8 rows of 3072 pixels" in _error(excinfo)


def test_cifar_default_location_is_named(tmp_path: Path, _cache: Path) -> None:
    with pytest.raises(EvoError) as excinfo:
        load_dataset("cifar10")
    assert str(_cache / "cifar10") in _error(excinfo)


# ---------------------------------------------------------------- ImageFolder trees and zips


def test_imagefolder_directory(tmp_path: Path, rng: np.random.Generator) -> None:
    write_tree(tmp_path / "pets", image_tree(rng))
    data = load_dataset(tmp_path / "pets")
    assert data.name == "pets" and data.class_names == ("cat", "dog")
    assert data.input_shape == (3, 6, 6)
    assert len(data.train) + len(data.val) + len(data.test) == 20
    assert not data.official_test and not data.hflip


def test_imagefolder_zip_with_wrapper_equals_directory(tmp_path: Path,
                                                       rng: np.random.Generator) -> None:
    files = image_tree(rng, gray=True)
    from_dir = load_dataset(write_tree(tmp_path / "tree", files))
    from_zip = load_dataset(write_zip(tmp_path / "tree.zip", files, wrapper="tree/"))
    assert from_zip.input_shape == (1, 6, 6)
    assert np.array_equal(from_dir.train.x, from_zip.train.x)
    assert np.array_equal(from_dir.test.y, from_zip.test.y)


def test_imagefolder_split_layout_keeps_test(tmp_path: Path, rng: np.random.Generator) -> None:
    files = image_tree(rng, prefix="train/") | image_tree(rng, per_class=3, prefix="test/")
    files["README.txt"] = b"not an image"
    data = load_dataset(write_zip(tmp_path / "set.zip", files))
    assert data.official_test and len(data.test) == 6
    assert len(data.train) + len(data.val) == 20


def test_imagefolder_cache_is_keyed_by_sha_and_reused(tmp_path: Path, rng: np.random.Generator,
                                                      _cache: Path) -> None:
    path = write_zip(tmp_path / "set.zip", image_tree(rng))
    first = load_dataset(path)
    cached = list((_cache / "images").glob("*.npz"))
    assert len(cached) == 1 and cached[0].name.startswith(first.source_sha256)
    again = load_dataset(path)
    assert np.array_equal(first.train.x, again.train.x) and first.fingerprint == again.fingerprint
    cached[0].write_bytes(b"damaged")  # a damaged cache is decoded again, not trusted
    assert np.array_equal(load_dataset(path).train.x, first.train.x)
    write_zip(path, image_tree(np.random.default_rng(9)))  # new bytes, new key
    assert load_dataset(path).fingerprint != first.fingerprint
    assert len(list((_cache / "images").glob("*.npz"))) == 2


def test_mixed_gray_and_colour_become_rgb(tmp_path: Path, rng: np.random.Generator) -> None:
    files = image_tree(rng, classes=("a",)) | image_tree(rng, classes=("b",), gray=True)
    data = load_dataset(write_tree(tmp_path / "mixed", files))
    assert data.input_shape == (3, 6, 6)


@pytest.mark.parametrize("case, message", [
    ("empty", "no images found"),
    ("text-only", "no images found"),
    ("single-class", "found 1 class (cat)"),
    ("loose-image", "is not inside a class folder"),
    ("corrupt", "cannot decode dog/003.png"),
    ("sizes", "expected one image size"),
    ("test-only-class", "test/ has class folder(s) fish that train/ lacks"),
])
def test_imagefolder_failures(tmp_path: Path, rng: np.random.Generator, case: str,
                              message: str) -> None:
    files = image_tree(rng)
    if case == "empty":
        files = {}
    elif case == "text-only":
        files = {"cat/notes.txt": b"hello"}
    elif case == "single-class":
        files = image_tree(rng, classes=("cat",))
    elif case == "loose-image":
        files["stray.png"] = files["cat/000.png"]
    elif case == "corrupt":
        files["dog/003.png"] = b"\x89PNG not really"
    elif case == "sizes":
        files["dog/004.png"] = png_bytes(np.zeros((7, 6, 3), np.uint8))
    elif case == "test-only-class":
        files = image_tree(rng, prefix="train/") | image_tree(rng, ("fish",), prefix="test/")
    root = tmp_path / "set"
    root.mkdir()
    write_tree(root, files)
    for source in (root, write_zip(tmp_path / "set.zip", files)):
        with pytest.raises(EvoError) as excinfo:
            load_dataset(source)
        assert message in _error(excinfo)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK but not really")
    with pytest.raises(EvoError) as excinfo:
        load_dataset(path)
    assert "not a readable zip archive" in _error(excinfo)


# ---------------------------------------------------------------- .npz


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_layouts(tmp_path: Path, rng: np.random.Generator) -> None:
    y = np.arange(40) % 4
    nhwc = rng.integers(0, 256, (40, 5, 5, 3), dtype=np.uint8)
    a = load_dataset(_npz(tmp_path / "a.npz", x=nhwc, y=y))
    b = load_dataset(_npz(tmp_path / "b.npz", x=nhwc.transpose(0, 3, 1, 2).copy(), y=y))
    assert a.input_shape == b.input_shape == (3, 5, 5)
    assert np.array_equal(a.train.x, b.train.x)
    c = load_dataset(_npz(tmp_path / "c.npz", x=rng.random((40, 5, 5)), y=y,
                          class_names=np.array(["w", "x", "y", "z"])))
    assert c.input_shape == (1, 5, 5) and c.class_names == ("w", "x", "y", "z")
    assert a.class_names == ("0", "1", "2", "3")


def test_npz_with_own_splits(tmp_path: Path, rng: np.random.Generator) -> None:
    x = rng.integers(0, 256, (30, 4, 4), dtype=np.uint8)
    data = load_dataset(_npz(tmp_path / "s.npz", x=x, y=np.arange(30) % 3,
                             x_val=x[:6], y_val=np.arange(6) % 3,
                             x_test=x[:9], y_test=np.arange(9) % 3))
    assert (len(data.train), len(data.val), len(data.test)) == (30, 6, 9)
    assert data.official_test


@pytest.mark.parametrize("case, message", [
    ("lengths", "40 images but 39 labels"),
    ("no-y", "no 'y' array"),
    ("single", "classification needs at least 2"),
    ("float-labels", "labels are float64"),
    ("channels", "expected 1 or 3 channels"),
    ("objects", "cannot read as .npz"),
    ("label-range", "labels run from 0 to 7; expected 0 to 3"),
    ("test-shape", "test images are 5x5"),
])
def test_npz_failures(tmp_path: Path, rng: np.random.Generator, case: str, message: str) -> None:
    x = rng.integers(0, 256, (40, 4, 4), dtype=np.uint8)
    arrays: dict[str, np.ndarray] = {"x": x, "y": np.arange(40) % 4}
    if case == "lengths":
        arrays["y"] = arrays["y"][:39]
    elif case == "no-y":
        del arrays["y"]
    elif case == "single":
        arrays["y"] = np.zeros(40, np.int64)
    elif case == "float-labels":
        arrays["y"] = arrays["y"].astype(np.float64)
    elif case == "channels":
        arrays["x"] = rng.integers(0, 256, (40, 4, 4, 5), dtype=np.uint8)
    elif case == "objects":
        arrays["x"] = np.array([object()] * 40, dtype=object)
    elif case == "label-range":
        arrays["class_names"] = np.array(["a", "b", "c", "d"])
        arrays["y"] = np.arange(40) % 8
    elif case == "test-shape":
        arrays["x_test"] = rng.integers(0, 256, (5, 5, 5), dtype=np.uint8)
        arrays["y_test"] = np.arange(5) % 4
    if case == "objects":
        np.savez(tmp_path / "bad.npz", **arrays, allow_pickle=True)
        path = tmp_path / "bad.npz"
    else:
        path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(EvoError) as excinfo:
        load_dataset(path)
    assert message in _error(excinfo)


def test_test_split_override(tmp_path: Path, rng: np.random.Generator) -> None:
    files = image_tree(rng, prefix="train/") | image_tree(rng, per_class=2, prefix="test/")
    zipped = write_zip(tmp_path / "set.zip", files)
    override = _npz(tmp_path / "test.npz", x=rng.integers(0, 256, (7, 6, 6, 3), dtype=np.uint8),
                    y=np.arange(7) % 2)
    plain = load_dataset(zipped)
    data = load_dataset(zipped, test_path=override)
    assert len(data.test) == 7 and len(plain.test) == 4
    assert data.fingerprint != plain.fingerprint
    assert np.array_equal(data.train.x, plain.train.x)
    wrong = _npz(tmp_path / "wrong.npz", x=rng.integers(0, 256, (7, 6, 6), dtype=np.uint8),
                 y=np.arange(7) % 2)
    with pytest.raises(EvoError) as excinfo:
        load_dataset(zipped, test_path=wrong)
    assert "expected the same shape" in _error(excinfo)


def test_unsupported_file_type(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(EvoError) as excinfo:
        load_dataset(path)
    assert "not a dataset format evo reads" in _error(excinfo)


def test_a_zip_member_that_is_corrupt(tmp_path: Path, rng: np.random.Generator) -> None:
    path = write_zip(tmp_path / "set.zip", image_tree(rng))
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    raw = bytearray(path.read_bytes())
    offset = raw.find(b"IDAT")  # inside the first image's data: CRC check fails on read
    raw[offset + 8: offset + 16] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    with pytest.raises(EvoError) as excinfo:
        load_dataset(path)
    assert "set.zip" in _error(excinfo)


def test_from_arrays_matches_npz(tmp_path: Path, rng: np.random.Generator) -> None:
    from evo.data.dataset import from_arrays

    x = rng.integers(0, 256, (40, 6, 6, 3), dtype=np.uint8)
    y = np.arange(40) % 4
    in_memory = from_arrays(x, y, name="mine")
    from_file = load_dataset(_npz(tmp_path / "mine.npz", x=x, y=y))
    assert in_memory.name == "mine" and in_memory.input_shape == (3, 6, 6)
    assert np.array_equal(in_memory.train.x, from_file.train.x)
    assert in_memory.fingerprint == from_arrays(x, y, name="other").fingerprint
    assert in_memory.fingerprint != from_arrays(x, (y + 1) % 4).fingerprint
    with pytest.raises(EvoError, match="40 images but 39 labels"):
        from_arrays(x, y[:39])
