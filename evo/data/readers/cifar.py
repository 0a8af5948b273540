"""CIFAR-10 from the original python-pickle batches, read without executing anything.

The batches are pickles, and a pickle can name any importable callable. ``SafeUnpickler``
admits only the few numpy functions that rebuild arrays and dtypes (plus ``_codecs.encode``, which
protocol-2 pickles written by Python 3 use for raw bytes); dicts, lists, tuples, strings and
numbers need no lookup at all. Anything else stops the read before it can run.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from evo.data.readers._limits import human_bytes
from evo.data.readers._raw import RawImages, sha256_file
from evo.errors import EvoError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_META = "batches.meta"
_FOLDER = "cifar-10-batches-py"
_SIDE = 32
_MAX_MEMBER_BYTES = 64 * 2**20

# (module, name) pairs a CIFAR batch may reference; numpy moved ``core`` to ``_core`` in 2.0.
_ALLOWED = frozenset(
    [(module, name)
     for module in ("numpy.core.multiarray", "numpy._core.multiarray")
     for name in ("_reconstruct", "scalar")]
    + [(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
)


class RefusedPickle(pickle.UnpicklingError):
    """The pickle names something outside the allow-list; nothing was run."""


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and plain containers, and nothing else."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise RefusedPickle(
                f"refused to load {module}.{name}: only numpy arrays, dtypes and plain "
                "containers are allowed"
            )
        return super().find_class(module, name)

    def persistent_load(self, pid: object) -> object:
        raise RefusedPickle("refused a persistent reference")


def safe_unpickle(data: bytes, where: str, hint: str) -> object:
    """Unpickle with ``SafeUnpickler``; every failure is an ``EvoError`` naming ``where``."""
    try:
        return SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    except RefusedPickle as error:
        raise EvoError(f"{where}: not a plain CIFAR batch ({error})", hint) from None
    except Exception as error:  # any decode failure of a corrupt file: EOF, bad opcode, ...
        raise EvoError(f"{where}: corrupt or truncated pickle ({type(error).__name__}: "
                       f"{error})", hint) from None


def _field(batch: dict, key: str, where: str, hint: str) -> object:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise EvoError(f"{where}: batch has no '{key}' entry; expected a CIFAR-10 python batch", hint)


def _decode_batch(data: bytes, where: str, hint: str) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(data, where, hint)
    if not isinstance(batch, dict):
        raise EvoError(f"{where}: expected a dict, found {type(batch).__name__}", hint)
    pixels = _field(batch, "data", where, hint)
    labels = _field(batch, "labels", where, hint)
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2 \
            or pixels.shape[1] != 3 * _SIDE * _SIDE:
        shape = getattr(pixels, "shape", type(pixels).__name__)
        raise EvoError(f"{where}: 'data' is {shape}; expected uint8 rows of 3072 pixels", hint)
    try:
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
    except (TypeError, ValueError):
        raise EvoError(f"{where}: 'labels' is not a list of integers", hint) from None
    if y.shape[0] != pixels.shape[0]:
        raise EvoError(f"{where}: {pixels.shape[0]} images but {y.shape[0]} labels; expected "
                       "one label per image", hint)
    x = pixels.reshape(-1, 3, _SIDE, _SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), y


def _read_members(source: Path, hint: str) -> tuple[dict[str, bytes], str]:
    """Bytes of every batch file, from a folder or a ``cifar-10-python.tar.gz``; plus a hash."""
    wanted = (*_TRAIN_BATCHES, _TEST_BATCH, _META)
    found: dict[str, bytes] = {}
    if source.is_file():
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive.getmembers():
                    base = Path(member.name).name
                    if member.isfile() and base in wanted:
                        if member.size > _MAX_MEMBER_BYTES:  # read() would unpack it whole
                            raise EvoError(
                                f"{source}: {member.name} declares {human_bytes(member.size)}, "
                                f"more than the {human_bytes(_MAX_MEMBER_BYTES)} a CIFAR-10 "
                                "batch may take (one is about 30 MB); refused before unpacking",
                                hint)
                        handle = archive.extractfile(member)
                        if handle is not None:
                            found[base] = handle.read()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise EvoError(f"{source}: cannot read the archive ({error})", hint) from None
        digest = sha256_file(source)
    else:
        folder = source / _FOLDER if (source / _FOLDER).is_dir() else source
        for name in wanted:
            if (folder / name).is_file():
                found[name] = (folder / name).read_bytes()
        hasher = hashlib.sha256()
        for name in sorted(found):
            hasher.update(name.encode() + b"\0" + found[name])
        digest = hasher.hexdigest()
    missing = [name for name in (*_TRAIN_BATCHES, _TEST_BATCH) if name not in found]
    if missing:
        raise EvoError(f"{source}: missing CIFAR-10 batch file(s) {', '.join(missing)}; "
                       f"expected {', '.join(_TRAIN_BATCHES)} and {_TEST_BATCH}", hint)
    return found, digest


def _class_names(found: dict[str, bytes], where: str, hint: str) -> tuple[str, ...]:
    if _META not in found:
        return CIFAR10_CLASSES
    meta = safe_unpickle(found[_META], f"{where}/{_META}", hint)
    names = _field(meta, "label_names", f"{where}/{_META}", hint) if isinstance(meta, dict) \
        else None
    if not isinstance(names, list) or not all(isinstance(n, bytes | str) for n in names):
        raise EvoError(f"{where}/{_META}: 'label_names' is not a list of names", hint)
    return tuple(n.decode() if isinstance(n, bytes) else n for n in names)


def load_cifar10(source: Path, hint: str) -> RawImages:
    """Read CIFAR-10 from a batches folder (or its parent) or the original ``.tar.gz``."""
    if not source.exists():
        raise EvoError(f"{source}: not found; expected the CIFAR-10 python batches there", hint)
    found, digest = _read_members(source, hint)
    parts = [_decode_batch(found[name], f"{source}/{name}", hint) for name in _TRAIN_BATCHES]
    x_test, y_test = _decode_batch(found[_TEST_BATCH], f"{source}/{_TEST_BATCH}", hint)
    return RawImages(
        x=np.concatenate([x for x, _ in parts]),
        y=np.concatenate([y for _, y in parts]),
        class_names=_class_names(found, str(source), hint),
        source=str(source), source_sha256=digest, x_test=x_test, y_test=y_test,
    ).checked(hint)
