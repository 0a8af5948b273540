"""ImageFolder trees (one folder per class), as a directory or a ``.zip``, decoded with Pillow.

Layouts understood (after dropping wrapper folders that hold everything, e.g. ``cifar10/``):

- ``<class>/<image>``: one pool, split later with a seeded split;
- ``train/<class>/<image>`` plus optional ``val/`` and ``test/`` with the same class folders:
  those splits are kept as given (an official test set stays the test set).

Decoding tens of thousands of files takes a while, so the decoded arrays are cached as an
uncompressed ``.npz`` named after the sha256 of the source (the zip file, or every image file of
a tree), written atomically; a changed source gets a new key instead of a stale hit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from evo.datasets._raw import RawImages, sha256_file
from evo.errors import EvoError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm"}
)
_SPLITS = ("train", "val", "test")
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_CACHE_VERSION = 1

Reader = Callable[[], bytes]


def _is_image(parts: tuple[str, ...]) -> bool:
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return False
    name = parts[-1]
    return "." in name and name[name.rindex("."):].lower() in IMAGE_SUFFIXES


def _dir_entries(root: Path) -> dict[tuple[str, ...], Reader]:
    entries: dict[tuple[str, ...], Reader] = {}
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and _is_image(parts):
            entries[parts] = path.read_bytes
    return entries


def _zip_entries(archive: zipfile.ZipFile) -> dict[tuple[str, ...], Reader]:
    entries: dict[tuple[str, ...], Reader] = {}
    for info in archive.infolist():
        parts = tuple(part for part in info.filename.split("/") if part not in ("", "."))
        if not info.is_dir() and parts and _is_image(parts):
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
    """Pixels of one image as (H, W) for grayscale or (H, W, 3) for colour."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            gray = image.mode in _GRAY_MODES
            return np.asarray(image.convert("L" if gray else "RGB")), gray
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        raise EvoError(f"{where}: cannot decode {name} ({error}); the image is corrupt",
                       hint) from None


def _decode_all(
    groups: dict[str, dict[str, list[tuple[str, Reader]]]], where: str, hint: str
) -> dict[str, tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    """Split -> (x (N, H, W, C) uint8, y int64, class names of that split's folders)."""
    class_names = tuple(sorted(groups["train" if "train" in groups else "all"]))
    decoded: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    any_colour, size, first = False, None, ""
    for split, classes in groups.items():
        unknown = sorted(set(classes) - set(class_names))
        if unknown:
            raise EvoError(f"{where}: {split}/ has class folder(s) {', '.join(unknown)} that "
                           "train/ lacks; expected the same class folders in every split", hint)
        pixels, labels = decoded.setdefault(split, ([], []))
        for cls, files in classes.items():
            for name, reader in files:
                array, gray = _decode(reader(), name, where, hint)
                any_colour |= not gray
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
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return None  # absent or damaged: decode again and overwrite


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
            entries = _dir_entries(source)
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
            entries = _zip_entries(archive)
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
