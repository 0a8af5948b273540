"""Plain ``.npz`` archives of arrays: the simplest way to bring your own data.

Required: ``x`` (images) and ``y`` (integer labels). Optional: ``x_val``/``y_val`` and
``x_test``/``y_test`` (kept as given, e.g. an official test set), ``class_names`` (strings).
Images may be ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with 1 or 3 channels, as uint8
pixels or floats. Object arrays are refused (``allow_pickle=False``): nothing we read executes.

Each array's ``.npy`` header is read first and its declared shape checked against the bytes the
entry holds and against the data memory limit, so a header promising terabytes is refused
before anything is allocated.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from evo.data.readers._limits import check_memory, human_bytes
from evo.data.readers._raw import RawImages, sha256_file
from evo.errors import EvoError

_READ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError)


def _header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str,
            hint: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype an entry's ``.npy`` header declares, checked against the entry's size."""
    key = info.filename[:-4]
    with archive.open(info) as handle:
        version = npy.read_magic(handle)
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _fortran, dtype = reader(handle)
        payload = info.file_size - handle.tell()
    if dtype.hasobject:
        raise EvoError(f"{where}: cannot read as .npz ('{key}' holds Python objects, which evo "
                       "never unpickles)", hint)
    declared = math.prod(shape) * dtype.itemsize
    if declared > payload:
        raise EvoError(f"{where}: '{key}' declares shape {shape} of {dtype} "
                       f"({human_bytes(declared)}) but its entry holds {payload:,} bytes; the "
                       "file is truncated, corrupt or hostile", hint)
    return shape, dtype


def read_npz(path: Path, hint: str) -> dict[str, np.ndarray]:
    """Every ``.npy`` array of an ``.npz``, its headers checked before anything is allocated.

    Needed bytes are the arrays plus a float32 copy of the images (what normalising makes).
    """
    where = str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = [info for info in archive.infolist() if info.filename.endswith(".npy")]
            headers = {info.filename[:-4]: _header(archive, info, where, hint)
                       for info in entries}
            needed = sum(math.prod(shape) * (dtype.itemsize + 4 * key.startswith("x"))
                         for key, (shape, dtype) in headers.items())
            check_memory(needed, where, "loading its arrays")
            arrays = {}
            for info in entries:
                with archive.open(info) as handle:
                    arrays[info.filename[:-4]] = npy.read_array(handle, allow_pickle=False)
            return arrays
    except _READ_ERRORS as error:
        raise EvoError(f"{where}: cannot read as .npz ({error})", hint) from None


def as_images(array: np.ndarray, where: str, hint: str) -> np.ndarray:
    """Images as ``(N, H, W, C)``: a channel axis added or moved last, pixel type checked."""
    if array.ndim == 3:
        array = array[..., None]
    elif array.ndim == 4 and array.shape[3] not in (1, 3) and array.shape[1] in (1, 3):
        array = array.transpose(0, 2, 3, 1)
    if array.ndim != 4:
        raise EvoError(f"{where}: images have shape {array.shape}; expected (N, H, W), "
                       "(N, H, W, C) or (N, C, H, W)", hint)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        return np.ascontiguousarray(array, dtype=np.float32)
    raise EvoError(f"{where}: images are {array.dtype}; expected uint8 pixels or floats", hint)


def as_labels(array: np.ndarray, where: str, hint: str) -> np.ndarray:
    """Integer labels as int64; floats are refused rather than silently truncated."""
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != np.bool_:
        raise EvoError(f"{where}: labels are {array.dtype}; expected integers 0..K-1", hint)
    return array.astype(np.int64)


def load_npz(path: Path, hint: str) -> RawImages:
    """Read ``x``/``y`` (+ optional splits and class names) from an ``.npz`` file."""
    where = str(path)
    arrays = read_npz(path, hint)
    missing = [key for key in ("x", "y") if key not in arrays]
    if missing:
        raise EvoError(f"{where}: no '{missing[0]}' array (found: "
                       f"{', '.join(sorted(arrays)) or 'nothing'}); expected 'x' images and "
                       "'y' labels", hint)
    splits: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for split in ("", "_val", "_test"):
        x, y = arrays.get(f"x{split}"), arrays.get(f"y{split}")
        if x is None and y is None:
            splits[split] = None
            continue
        if x is None or y is None:
            raise EvoError(f"{where}: has {'x' if y is None else 'y'}{split} without its "
                           f"{'y' if y is None else 'x'}{split}", hint)
        splits[split] = (as_images(x, f"{where}: x{split}", hint),
                         as_labels(y, f"{where}: y{split}", hint))
    if "class_names" in arrays:
        names = arrays["class_names"]
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise EvoError(f"{where}: class_names must be a 1-D array of strings", hint)
        class_names = tuple(str(n.decode() if isinstance(n, bytes) else n) for n in names)
    else:
        highest = max(int(pair[1].max(initial=0)) for pair in splits.values() if pair)
        class_names = tuple(str(i) for i in range(highest + 1))
    (x, y), val, test = splits[""], splits["_val"], splits["_test"]
    return RawImages(
        x=x, y=y, class_names=class_names, source=where, source_sha256=sha256_file(path),
        x_val=val[0] if val else None, y_val=val[1] if val else None,
        x_test=test[0] if test else None, y_test=test[1] if test else None,
    ).checked(hint)
