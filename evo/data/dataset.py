"""Datasets by name or path, with fixed seeded splits and per-channel normalisation.

``load_dataset`` turns a name (``digits``, ``fashion-mnist``, ``mnist``, ``cifar10``) or a path
(an ImageFolder directory or ``.zip``, an ``.npz``) into a ``Dataset`` whose train, validation and
test splits are fixed by the source bytes and the split seed. A source's official test set stays
the test split; otherwise a stratified seeded cut makes one. The search trains on ``train`` and
scores on ``val``; ``test`` is for the final retrain only, so model selection never sees it.

Normalisation statistics come from the training split alone, are stored with the dataset (and
so with every run and checkpoint), and are part of the ``fingerprint``, the one string that
says "same data, same splits, same preprocessing" to every cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evo.data.readers import RawImages
from evo.errors import EvoError

DEFAULT_DATASET = "digits"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
VAL_FRACTION = 0.1  # of the training pool, when the source has its own test set
HOLDOUT_FRACTIONS = (0.15, 0.15)  # (validation, test) when the source has no test set
_FINGERPRINT_VERSION = 1
_CHUNK = 4096

_IMAGEFOLDER_HINT = (
    "expected one folder of images per class (or train/, val/, test/ folders each holding the "
    "class folders), as a directory or a .zip; see docs/datasets.md"
)
_NPZ_HINT = (
    "expected an .npz with 'x' images (N, H, W[, C]) and 'y' integer labels (N,), optionally "
    "x_val/y_val, x_test/y_test and class_names; see docs/datasets.md"
)


def cache_dir() -> Path:
    """Where decoded datasets are cached: ``$EVO_CACHE_DIR`` or ``~/.cache/evo``."""
    override = os.environ.get("EVO_CACHE_DIR")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "evo"


@dataclass(frozen=True, eq=False)
class Split:
    """One split: ``x`` float32 ``(N, C, H, W)`` already normalised, ``y`` int64 ``(N,)``."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset ready for training; ``fingerprint`` identifies data, splits and preprocessing."""

    name: str
    source: str
    source_sha256: str
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, int, int]
    num_classes: int
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    hflip: bool
    split_seed: int
    official_test: bool
    fingerprint: str
    subset: dict[str, object] | None = None  # a proxy-budget subset's facts (evo.data.subset)

    def describe(self) -> dict[str, object]:
        """JSON-ready facts for the run store and reports (no pixel data)."""
        return {
            "name": self.name,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "fingerprint": self.fingerprint,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "hflip": self.hflip,
            "split_seed": self.split_seed,
            "official_test": self.official_test,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            **({"subset": dict(self.subset)} if self.subset is not None else {}),
        }


# ---------------------------------------------------------------- sources by name


def _digits() -> RawImages:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = bunch.images.astype(np.uint8)  # integers 0..16
    digest = hashlib.sha256(pixels.tobytes() + bunch.target.astype(np.int64).tobytes())
    return RawImages(
        x=(pixels.astype(np.float32) / 16.0)[..., None],
        y=bunch.target.astype(np.int64),
        class_names=tuple(str(d) for d in range(10)),
        source="sklearn.datasets.load_digits",
        source_sha256=digest.hexdigest(),
    ).checked("reinstall scikit-learn, which bundles this dataset")


def _fashion_mnist(data_dir: Path | None) -> RawImages:
    from evo.data.readers.idx import FASHION_MNIST_CLASSES, load_idx_dataset

    directory = data_dir or FASHION_MNIST_DIR
    hint = ("install it with `apt-get install dataset-fashion-mnist` (files land in "
            f"{FASHION_MNIST_DIR}), or download the four .gz files from "
            "https://github.com/zalandoresearch/fashion-mnist and pass --data-dir DIR")
    return load_idx_dataset(directory, FASHION_MNIST_CLASSES, hint)


def _mnist(data_dir: Path | None) -> RawImages:
    from evo.data.readers.idx import MNIST_CLASSES, load_idx_dataset

    directory = data_dir or cache_dir() / "mnist"
    hint = ("download train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz from an MNIST mirror into "
            f"{directory} or pass --data-dir DIR")
    return load_idx_dataset(directory, MNIST_CLASSES, hint)


def _cifar10(data_dir: Path | None) -> RawImages:
    from evo.data.readers.cifar import load_cifar10

    source = data_dir or cache_dir() / "cifar10"
    hint = ("download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html "
            f"into {source} (or extract it there), or pass --data-dir with the .tar.gz or its "
            "cifar-10-batches-py folder")
    return load_cifar10(source, hint)


_NAMED = {
    "digits": (lambda data_dir: _digits(), False),
    "fashion-mnist": (_fashion_mnist, True),
    "mnist": (_mnist, False),
    "cifar10": (_cifar10, True),
}
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist",
            "cifar-10": "cifar10"}


def _from_path(path: Path, use_cache: bool) -> RawImages:
    if path.suffix.lower() == ".npz" and path.is_file():
        from evo.data.readers.npz import load_npz

        return load_npz(path, _NPZ_HINT)
    if path.is_dir() or path.suffix.lower() == ".zip":
        from evo.data.readers.imagefolder import load_imagefolder

        return load_imagefolder(path, cache_dir() if use_cache else None, _IMAGEFOLDER_HINT)
    raise EvoError(f"{path}: not a dataset format evo reads; expected a directory, .zip or .npz",
                   _IMAGEFOLDER_HINT)


# ---------------------------------------------------------------- splitting and normalisation


def stratified_split(
    y: np.ndarray, fractions: tuple[float, ...], rng: np.random.Generator
) -> list[np.ndarray]:
    """Index arrays ``[rest, part_1, ...]``: each class shuffled and cut by ``fractions``.

    Stratified so a small dataset still gets every class in validation; each part is sorted, so
    the arrays keep source order and only the membership depends on the seed.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for cls in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == cls))
        start = 0
        for i, fraction in enumerate(fractions, start=1):
            count = round(len(members) * fraction)
            parts[i].append(members[start:start + count])
            start += count
        parts[0].append(members[start:])
    return [np.sort(np.concatenate(chunks)) for chunks in parts]


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of ``(N, H, W, C)`` pixels (uint8 scaled to [0, 1]).

    For uint8 a 256-bin histogram per channel gives exact sums far faster than float passes.
    """
    channels = x.shape[3]
    if x.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float64) / 255.0
        counts = [np.bincount(x[..., c].ravel(), minlength=256) for c in range(channels)]
        total = np.array([(n * levels).sum() for n in counts])
        squares = np.array([(n * levels**2).sum() for n in counts])
    else:
        total, squares = np.zeros(channels), np.zeros(channels)
        for start in range(0, x.shape[0], _CHUNK):
            chunk = x[start:start + _CHUNK].astype(np.float64)
            total += chunk.sum(axis=(0, 1, 2))
            squares += np.square(chunk).sum(axis=(0, 1, 2))
    count = x.shape[0] * x.shape[1] * x.shape[2]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # a constant channel carries no signal: leave it be
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def normalise(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``(N, H, W, C)`` pixels to normalised float32 ``(N, C, H, W)``.

    uint8 goes through a 256-entry lookup table per channel (one gather instead of three float
    passes); floats are processed in chunks to cap the temporary memory.
    """
    out = np.empty((x.shape[0], x.shape[3], x.shape[1], x.shape[2]), dtype=np.float32)
    mean_ = np.asarray(mean, dtype=np.float32)
    inv_std = np.float32(1.0) / np.asarray(std, dtype=np.float32)
    if x.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float32) / np.float32(255.0)
        tables = [(levels - mean_[c]) * inv_std[c] for c in range(x.shape[3])]
        for start in range(0, x.shape[0], _CHUNK):
            planar = np.ascontiguousarray(x[start:start + _CHUNK].transpose(0, 3, 1, 2))
            for c, table in enumerate(tables):
                np.take(table, planar[:, c], out=out[start:start + _CHUNK, c])
        return out
    for start in range(0, x.shape[0], _CHUNK):
        chunk = (x[start:start + _CHUNK].astype(np.float32) - mean_) * inv_std
        out[start:start + _CHUNK] = chunk.transpose(0, 3, 1, 2)
    return out


def _fingerprint(fields: dict[str, object]) -> str:
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _override_test(raw: RawImages, test_path: Path) -> RawImages:
    """Replace the test split with the arrays of an ``.npz`` (e.g. a lossless official test)."""
    from evo.data.readers.npz import load_npz

    if not test_path.is_file():
        raise EvoError(f"{test_path}: test set not found", _NPZ_HINT)
    test = load_npz(test_path, _NPZ_HINT)
    if test.x.shape[1:] != raw.x.shape[1:] or test.x.dtype != raw.x.dtype:
        raise EvoError(
            f"{test_path}: test images are {test.x.shape[1:]} {test.x.dtype} but {raw.source} "
            f"has {raw.x.shape[1:]} {raw.x.dtype}; expected the same shape and pixel type",
            "pass a test set made for this dataset",
        )
    if int(test.y.max()) >= len(raw.class_names):
        raise EvoError(f"{test_path}: labels reach {int(test.y.max())} but {raw.source} has "
                       f"{len(raw.class_names)} classes", "pass a test set made for this dataset")
    return dataclasses.replace(raw, x_test=test.x, y_test=test.y)


def load_dataset(
    name_or_path: str | Path = DEFAULT_DATASET,
    data_dir: Path | None = None,
    seed: int = 0,
    *,
    test_path: Path | None = None,
    hflip: bool | None = None,
    use_cache: bool = True,
) -> Dataset:
    """Load, split and normalise a dataset.

    ``data_dir`` is where a named dataset's files are (defaults: Debian's Fashion-MNIST folder;
    ``<cache>/mnist``, ``<cache>/cifar10``). ``seed`` fixes the train/val(/test) cut.
    ``test_path`` replaces the test split with an ``.npz`` (the JPEG CIFAR-10 zip plus the
    lossless official test set). ``hflip`` overrides whether horizontal flips are a valid
    augmentation (on for photos of objects, off for digits and for user data by default).
    """
    text = str(name_or_path)
    key = _ALIASES.get(text.lower(), text.lower())
    test_sha = None
    if key in _NAMED:
        reader, default_flip = _NAMED[key]
        raw = reader(Path(data_dir).expanduser() if data_dir else None)
        name = key
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise EvoError(
                f"unknown dataset '{text}': not one of {', '.join(_NAMED)} and no such file or "
                "directory",
                "name a built-in dataset or give the path of an ImageFolder directory, a .zip "
                "of one, or an .npz",
            )
        raw, default_flip, name = _from_path(path, use_cache), False, path.stem
    if test_path is not None:
        raw = _override_test(raw, Path(test_path).expanduser())
        test_sha = hashlib.sha256(raw.x_test.tobytes() + raw.y_test.tobytes()).hexdigest()
    return _prepare(raw, name, seed, default_flip if hflip is None else bool(hflip), test_sha)


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    name: str = "arrays",
    class_names: tuple[str, ...] | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    seed: int = 0,
    hflip: bool = False,
) -> Dataset:
    """A ``Dataset`` from in-memory arrays (``.npz`` rules: ``(N, H, W[, C])`` or
    ``(N, C, H, W)``, uint8 or float pixels, integer labels), split and normalised like any
    other; the fingerprint hashes the array bytes. For notebooks and synthetic checks."""
    from evo.data.readers.npz import as_images, as_labels

    hint = "pass images shaped (N, H, W[, C]) or (N, C, H, W) and one integer label per image"
    images, labels = as_images(np.asarray(x), name, hint), as_labels(np.asarray(y), name, hint)
    test = None
    if x_test is not None and y_test is not None:
        test = (as_images(np.asarray(x_test), name, hint),
                as_labels(np.asarray(y_test), name, hint))
    digest = hashlib.sha256()
    for array in (images, labels, *(test or ())):
        digest.update(repr((array.dtype.str, array.shape)).encode() + array.tobytes())
    if class_names is None:
        highest = max(int(labels.max(initial=0)), int(test[1].max(initial=0)) if test else 0)
        class_names = tuple(str(i) for i in range(highest + 1))
    raw = RawImages(x=images, y=labels, class_names=tuple(class_names), source=name,
                    source_sha256=digest.hexdigest(),
                    x_test=test[0] if test else None, y_test=test[1] if test else None
                    ).checked(hint)
    return _prepare(raw, name, seed, hflip, None)


def _prepare(raw: RawImages, name: str, seed: int, flip: bool, test_sha: str | None) -> Dataset:
    """Split (seeded, stratified), normalise with training statistics, fingerprint."""
    rng = np.random.default_rng(seed)
    x, y = raw.x, raw.y
    official_test = raw.x_test is not None
    if raw.x_val is not None:
        x_val, y_val = raw.x_val, raw.y_val
        if official_test:
            x_test, y_test = raw.x_test, raw.y_test
        else:
            rest, test_idx = stratified_split(y, (HOLDOUT_FRACTIONS[1],), rng)
            x, y, x_test, y_test = x[rest], y[rest], x[test_idx], y[test_idx]
    elif official_test:
        rest, val_idx = stratified_split(y, (VAL_FRACTION,), rng)
        x, y, x_val, y_val = x[rest], y[rest], x[val_idx], y[val_idx]
        x_test, y_test = raw.x_test, raw.y_test
    else:
        rest, val_idx, test_idx = stratified_split(y, HOLDOUT_FRACTIONS, rng)
        x_val, y_val, x_test, y_test = x[val_idx], y[val_idx], x[test_idx], y[test_idx]
        x, y = x[rest], y[rest]
    for split, labels in (("training", y), ("validation", y_val), ("test", y_test)):
        if labels.size == 0:
            raise EvoError(f"{raw.source}: too few images to make a {split} split "
                           f"({raw.x.shape[0]} in all)", "add more images per class")

    mean, std = channel_stats(x)
    input_shape = (int(x.shape[3]), int(x.shape[1]), int(x.shape[2]))
    fingerprint = _fingerprint({
        "version": _FINGERPRINT_VERSION,
        "source_sha256": raw.source_sha256,
        "test_sha256": test_sha,
        "split_seed": seed,
        "fractions": [VAL_FRACTION, *HOLDOUT_FRACTIONS],
        "mean": mean,
        "std": std,
        "hflip": flip,
        "input_shape": input_shape,
        "class_names": raw.class_names,
        "sizes": [len(y), len(y_val), len(y_test)],
    })
    return Dataset(
        name=name,
        source=raw.source,
        source_sha256=raw.source_sha256,
        train=Split(normalise(x, mean, std), y),
        val=Split(normalise(x_val, mean, std), y_val),
        test=Split(normalise(x_test, mean, std), y_test),
        input_shape=input_shape,
        num_classes=len(raw.class_names),
        class_names=raw.class_names,
        mean=mean,
        std=std,
        hflip=flip,
        split_seed=seed,
        official_test=official_test,
        fingerprint=fingerprint,
    )
