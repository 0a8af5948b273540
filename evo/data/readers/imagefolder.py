"""ImageFolder trees (one folder per class), as a directory or a ``.zip``, decoded with Pillow.

Layouts understood (after dropping wrapper folders that hold everything, e.g. ``cifar10/``):

- ``<class>/<image>``: one pool, split later with a seeded split;
- ``train/<class>/<image>`` plus optional ``val/`` and ``test/`` with the same class folders:
  those splits are kept as given (an official test set stays the test set).

Decoding tens of thousands of files takes a while, so the decoded arrays are cached as an
uncompressed ``.npz`` named after the sha256 of the source (the zip file, or every image file of
a tree), written atomically; a changed source gets a new key instead of a stale hit.

Hostile archives are refused with one line naming the entry: absolute or ``..`` paths, an entry
whose declared uncompressed size no image needs (checked before it is unpacked), an image whose
header declares more pixels than ``MAX_IMAGE_PIXELS`` (checked before it is decoded), and a
dataset whose decoded pixels would pass the data memory limit (checked after the first image).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from evo.data.readers._limits import (
    MAX_IMAGE_PIXELS,
    check_image_file,
    check_image_size,
    check_memory,
)
from evo.data.readers._raw import RawImages, sha256_file
from evo.errors import EvoError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
_SPLITS = ("train", "val", "test")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_CACHE_VERSION = 1
_DRIVE = re.compile(r"[A-Za-z]:")
_UNSAFE_HINT = ("re-create the zip from inside the dataset folder, e.g. "
                "`cd flowers && zip -r ../flowers.zip .`")

Reader = Callable[[], bytes]


def _is_image(parts: tuple[str, ...]) -> bool:
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    name = parts[-1]
    return "." in name and name[name.rindex("."):].lower() in IMAGE_SUFFIXES


def _dir_entries(root: Path, hint: str) -> dict[tuple[str, ...], Reader]:
    entries: dict[tuple[str, ...], Reader] = {}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and _is_image(parts):
            check_image_file(path.stat().st_size, str(root), "/".join(parts), hint)
            entries[parts] = path.read_bytes
    return entries


def _entry_parts(name: str, where: str) -> tuple[str, ...]:
    """Path parts of a zip entry; an absolute or ``..`` path is refused, never reinterpreted
    (it would otherwise become a class named after a system folder, or vanish)."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise EvoError(f"{where}: entry {name!r} has an absolute path; refusing the archive",
                       _UNSAFE_HINT)
    if ".." in parts:
        raise EvoError(f"{where}: entry {name!r} points outside the archive (..); refusing "
                       "the archive", _UNSAFE_HINT)
    return tuple(part for part in parts if part not in ("", "."))


def _zip_entries(archive: zipfile.ZipFile, where: str,
                 hint: str) -> dict[tuple[str, ...], Reader]:
    entries: dict[tuple[str, ...], Reader] = {}
    for info in archive.infolist():
        parts = _entry_parts(info.filename, where)
        # not info.is_dir(): it raises IndexError on an entry whose name is empty
        if not info.filename.endswith("/") and parts and _is_image(parts):
            # zipfile stops at the declared size, so checking it bounds what a read unpacks
            check_image_file(info.file_size, where, info.filename, hint)
            entries[parts] = (lambda name=info.filename: archive.read(name))
    return entries


def _strip_wrappers(
    entries: dict[tuple[str, ...], Reader],
) -> dict[tuple[str, ...], Reader]:
    """Drop leading folders every image shares (``cifar10/train/cat/1.png`` -> ``train/...``)."""
    while entries:
        firsts = {parts[0] for parts in entries}
        if len(firsts) != 1 or min(len(p) for p in entries) < 3 or firsts <= set(_SPLITS):
            return entries
        entries = {parts[1:]: reader for parts, reader in entries.items()}
    return entries


def _group(
    entries: dict[tuple[str, ...], Reader], where: str, hint: str
) -> dict[str, dict[str, list[tuple[str, Reader]]]]:
    """Split name -> class name -> [(relative path, reader)], in sorted path order."""
    if not entries:
        raise EvoError(f"{where}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
                       " files in one folder per class)", hint)
    split_layout = {parts[0] for parts in entries} <= set(_SPLITS)
    if split_layout and "train" not in {parts[0] for parts in entries}:
        raise EvoError(f"{where}: found {'/'.join(sorted({p[0] for p in entries}))} folders but "
                       "no train/; expected train/<class>/<image>", hint)
    groups: dict[str, dict[str, list[tuple[str, Reader]]]] = {}
    depth = 3 if split_layout else 2
    for parts in sorted(entries):
        if len(parts) < depth:
            raise EvoError(f"{where}: image {'/'.join(parts)} is not inside a class folder; "
                           "expected " + ("<split>/<class>/<image>" if split_layout
                                          else "<class>/<image>"), hint)
        split, cls = (parts[0], parts[1]) if split_layout else ("all", parts[0])
        groups.setdefault(split, {}).setdefault(cls, []).append(("/".join(parts), entries[parts]))
    return groups


def _decode(data: bytes, name: str, where: str, hint: str) -> tuple[np.ndarray, bool]:
    """Pixels of one image as (H, W) for grayscale or (H, W, 3) for colour; its declared size
    is checked from the header before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check runs inside open(); as an error it is refused below
            # instead of printing a warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                check_image_size(image.width, image.height, where, name, hint)
                image.load()
                gray = image.mode in _GRAY_MODES
                return np.asarray(image.convert("L" if gray else "RGB")), gray
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise EvoError(f"{where}: {name} declares more than the {MAX_IMAGE_PIXELS:,} pixels an "
                       f"image may have ({error}); refused before decoding it", hint) from None
    except UnidentifiedImageError:
        reason = "not an image format Pillow reads"
    except (OSError, ValueError, SyntaxError) as error:
        reason = str(error)
    # Pillow names the in-memory buffer (<_io.BytesIO object at 0x...>); the entry is the name
    reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", name, reason)
    raise EvoError(f"{where}: cannot decode {name} ({reason}); the image is corrupt", hint)


def _decode_all(
    groups: dict[str, dict[str, list[tuple[str, Reader]]]], where: str, hint: str
) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    """Split -> (x (N, H, W, C) uint8, y int64, class names of that split's folders)."""
    class_names = tuple(sorted(groups["train" if "train" in groups else "all"]))
    decoded: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    any_colour, size, first = False, None, ""
    total = sum(len(files) for classes in groups.values() for files in classes.values())
    for split, classes in groups.items():
        unknown = sorted(set(classes) - set(class_names))
        if unknown:
            raise EvoError(f"{where}: {split}/ has class folder(s) {', '.join(unknown)} that "
                           "train/ lacks; expected the same class folders in every split", hint)
        pixels, labels = decoded.setdefault(split, ([], []))
        for cls, files in classes.items():
            for name, reader in files:
                array, gray = _decode(reader(), name, where, hint)
                colour = any_colour or not gray
                if size is None or colour != any_colour:  # the first image, or colour one
                    # every image has this size, so the decoded set (uint8 twice: the images
                    # and their stack, then a float32 copy) is known before the rest is decoded
                    check_memory(total * array.shape[0] * array.shape[1] * (3 if colour else 1)
                                 * 6, where, f"decoding {total:,} images of this size")
                any_colour = colour
                if size is None:
                    size, first = array.shape[:2], name
                elif array.shape[:2] != size:
                    raise EvoError(
                        f"{where}: {name} is {array.shape[1]}x{array.shape[0]} pixels but "
                        f"{first} is {size[1]}x{size[0]}; expected one image size",
                        "resize the images to one size first (e.g. with Pillow), then retry",
                    )
                pixels.append(array)
                labels.append(class_names.index(cls))
    result = {}
    for split, (pixels, labels) in decoded.items():
        if any_colour:
            pixels = [p if p.ndim == 3 else np.repeat(p[..., None], 3, axis=2) for p in pixels]
        x = np.stack(pixels)
        result[split] = (x if x.ndim == 4 else x[..., None], np.asarray(labels, np.int64),
                         class_names)
    return result


def _tree_sha256(entries: Iterable[tuple[tuple[str, ...], Reader]]) -> str:
    digest = hashlib.sha256()
    for parts, reader in sorted(entries, key=lambda item: item[0]):
        digest.update("/".join(parts).encode() + b"\0")
        digest.update(hashlib.sha256(reader()).digest())
    return digest.hexdigest()


def _cache_path(cache_dir: Path, sha: str) -> Path:
    return cache_dir / "images" / f"{sha}-v{_CACHE_VERSION}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray] | None:
    from evo.data.readers.npz import read_npz

    if not path.is_file():
        return None
    try:
        return read_npz(path, "")
    except EvoError:
        return None  # damaged: decode again and overwrite


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write atomically, so a crash or a concurrent writer never leaves a half file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez(out, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _as_raw(arrays: dict[str, np.ndarray], source: str, sha: str, hint: str) -> RawImages:
    base = "train" if "x_train" in arrays else "all"
    return RawImages(
        x=arrays[f"x_{base}"], y=arrays[f"y_{base}"],
        class_names=tuple(str(name) for name in arrays["class_names"]),
        source=source, source_sha256=sha,
        x_val=arrays.get("x_val"), y_val=arrays.get("y_val"),
        x_test=arrays.get("x_test"), y_test=arrays.get("y_test"),
    ).checked(hint)


def load_imagefolder(source: Path, cache_dir: Path | None, hint: str) -> RawImages:
    """Read an ImageFolder directory or ``.zip``; ``cache_dir=None`` disables the cache."""
    where = str(source)
    archive = None
    try:
        if source.is_dir():
            entries = _dir_entries(source, hint)
            sha = _tree_sha256(entries.items())
        else:
            sha = sha256_file(source)
        cached = _read_cache(_cache_path(cache_dir, sha)) if cache_dir is not None else None
        if cached is not None:
            return _as_raw(cached, where, sha, hint)
        if not source.is_dir():
            try:
                archive = zipfile.ZipFile(source)
            except (zipfile.BadZipFile, OSError) as error:
                raise EvoError(f"{where}: not a readable zip archive ({error})", hint) from None
            entries = _zip_entries(archive, where, hint)
        groups = _group(_strip_wrappers(entries), where, hint)
        try:
            decoded = _decode_all(groups, where, hint)
        except (zipfile.BadZipFile, zlib.error, EOFError) as error:
            raise EvoError(f"{where}: damaged zip member ({error})", hint) from None
    finally:
        if archive is not None:
            archive.close()
    arrays: dict[str, np.ndarray] = {}
    for split, (x, y, names) in decoded.items():
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
        arrays["class_names"] = np.asarray(names, dtype=str)
    raw = _as_raw(arrays, where, sha, hint)
    if cache_dir is not None:
        with contextlib.suppress(OSError):  # an unwritable cache only costs the next decode
            _write_cache(_cache_path(cache_dir, sha), arrays)
    return raw
