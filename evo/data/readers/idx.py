"""MNIST-style IDX files (``.gz`` or plain), as shipped for MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the values. We accept only unsigned bytes (type 0x08):
that is what both data sets use, and anything else means the wrong file was given.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import zlib
from pathlib import Path
from typing import NoReturn

import numpy as np

from evo.data.readers._limits import check_memory
from evo.data.readers._raw import RawImages
from evo.errors import EvoError

_UBYTE = 0x08

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))

# (images, labels) stems of the training and the official test files.
_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path, ndim: int, hint: str) -> np.ndarray:
    """Decode one IDX file of unsigned bytes with ``ndim`` dimensions; errors name the file.

    The header's dimensions say how many bytes follow; they are checked against the data memory
    limit (and, uncompressed, the file size) before reading, and reading stops one byte past
    them, so a ``.gz`` that expands beyond its promise is refused without being unpacked.
    """
    header_size = 4 + 4 * ndim
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            header = handle.read(header_size)
            dims = _dims(path, header, ndim, hint)
            count = math.prod(dims)
            if path.suffix != ".gz" and path.stat().st_size - header_size != count:
                _promise_broken(path, dims, path.stat().st_size - header_size, hint)
            check_memory(5 * count, str(path), f"{'x'.join(map(str, dims))} values (and their "
                         "float32 copy)")
            data = handle.read(count + 1)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise EvoError(f"{path}: cannot decompress ({error}); the file is corrupt or truncated",
                       hint) from None
    if len(data) > count:
        raise EvoError(f"{path}: expands past the {count:,} values its header promises "
                       f"({'x'.join(map(str, dims))}); the file is corrupt or a compression "
                       "bomb, refused before unpacking further", hint)
    if len(data) < count:
        _promise_broken(path, dims, len(data), hint)
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _dims(path: Path, header: bytes, ndim: int, hint: str) -> list[int]:
    if len(header) < 4 + 4 * ndim:
        raise EvoError(f"{path}: {len(header)} bytes is too short for an IDX header; "
                       "the file is truncated", hint)
    magic = int.from_bytes(header[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise EvoError(
            f"{path}: wrong magic number 0x{magic:08x}; expected 0x{expected:08x} "
            f"(IDX, unsigned bytes, {ndim} dimension(s)) - is this the right file?",
            hint,
        )
    return [int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]


def _promise_broken(path: Path, dims: list[int], held: int, hint: str) -> NoReturn:
    raise EvoError(
        f"{path}: header promises {'x'.join(map(str, dims))} = {math.prod(dims)} values but the "
        f"file holds {held}; the file is truncated or corrupt",
        hint,
    )


def _find(directory: Path, stem: str, hint: str) -> Path:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    raise EvoError(f"{directory}: missing {stem}.gz; expected the four IDX files "
                   f"({', '.join(s + '.gz' for s in _TRAIN + _TEST)}) there", hint)


def _pair(directory: Path, stems: tuple[str, str], hint: str) -> tuple[np.ndarray, np.ndarray,
                                                                       list[Path]]:
    image_path, label_path = (_find(directory, stem, hint) for stem in stems)
    images = read_idx(image_path, 3, hint)
    labels = read_idx(label_path, 1, hint)
    if images.shape[0] != labels.shape[0]:
        raise EvoError(f"{image_path}: {images.shape[0]} images but {label_path.name} has "
                       f"{labels.shape[0]} labels; expected one label per image", hint)
    return images[..., None], labels.astype(np.int64), [image_path, label_path]


def load_idx_dataset(directory: Path, class_names: tuple[str, ...], hint: str) -> RawImages:
    """Read the training and official test IDX pairs from ``directory``."""
    if not directory.is_dir():
        raise EvoError(f"{directory}: no such directory; expected the IDX .gz files there", hint)
    x, y, train_files = _pair(directory, _TRAIN, hint)
    x_test, y_test, test_files = _pair(directory, _TEST, hint)
    digest = hashlib.sha256()
    for path in train_files + test_files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return RawImages(
        x=x, y=y, class_names=class_names, source=str(directory),
        source_sha256=digest.hexdigest(), x_test=x_test, y_test=y_test,
    ).checked(hint)
