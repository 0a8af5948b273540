"""The record every format reader produces, and the checks all of them share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evo.errors import EvoError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks so large archives stay cheap on memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class RawImages:
    """Decoded images before any split or normalisation.

    ``x`` is ``(N, H, W, C)``: uint8 pixels (scaled by 1/255 later) or float32 values used as
    they are. ``x_val``/``x_test`` hold a split the source itself defines (an official test set,
    a ``val/`` folder); when absent, ``evo.data.dataset`` carves one out of ``x`` with a seeded
    split.
    ``source_sha256`` identifies the source bytes, which is what caches and fingerprints key on.
    """

    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    source: str
    source_sha256: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def checked(self, hint: str) -> RawImages:
        """Return self after checking shapes, labels and classes; ``hint`` says how to fix it.

        Every reader ends here, so a broken source fails with the same kind of message whatever
        its format.
        """
        where = self.source
        _check_pair(self.x, self.y, f"{where} (training images)", hint)
        # Negative labels first: class names derived from the highest label would otherwise
        # count {0, -1} as one class and blame the class count instead of the labels.
        _check_labels(self.y, None, f"{where} (training labels)", hint)
        num_classes = len(self.class_names)
        if num_classes < 2:
            raise EvoError(
                f"{where}: found {num_classes} class ({', '.join(self.class_names) or 'none'}); "
                "classification needs at least 2",
                hint,
            )
        present = np.unique(self.y)
        if present.size < 2:
            raise EvoError(
                f"{where}: every training image has the same label ({int(present[0])}); "
                "classification needs at least 2 classes",
                hint,
            )
        _check_labels(self.y, num_classes, f"{where} (training labels)", hint)
        for split, x, y in (("validation", self.x_val, self.y_val),
                            ("test", self.x_test, self.y_test)):
            if x is None and y is None:
                continue
            if x is None or y is None:
                raise EvoError(f"{where}: {split} images and labels must come together", hint)
            _check_pair(x, y, f"{where} ({split} images)", hint)
            if x.shape[1:] != self.x.shape[1:]:
                raise EvoError(
                    f"{where}: {split} images are {_shape_text(x.shape[1:])} but training images "
                    f"are {_shape_text(self.x.shape[1:])}; expected the same height, width and "
                    "channels",
                    hint,
                )
            if x.dtype != self.x.dtype:
                raise EvoError(
                    f"{where}: {split} images are {x.dtype} but training images are "
                    f"{self.x.dtype}; expected one pixel type",
                    hint,
                )
            _check_labels(y, num_classes, f"{where} ({split} labels)", hint)
        return self


def _shape_text(hwc: tuple[int, ...]) -> str:
    height, width, channels = hwc
    return f"{height}x{width} with {channels} channel(s)"


def _check_pair(x: np.ndarray, y: np.ndarray, where: str, hint: str) -> None:
    if x.ndim != 4:
        raise EvoError(f"{where}: expected images shaped (N, H, W, C), got {x.shape}", hint)
    if x.shape[0] == 0:
        raise EvoError(f"{where}: no images found", hint)
    if x.shape[3] not in (1, 3):
        raise EvoError(f"{where}: expected 1 or 3 channels, got {x.shape[3]}", hint)
    if y.ndim != 1:
        raise EvoError(
            f"{where}: labels have shape {y.shape}; expected a 1-D array of class indices", hint
        )
    if y.shape[0] != x.shape[0]:
        raise EvoError(
            f"{where}: {x.shape[0]} images but {y.shape[0]} labels; expected one label per image",
            hint,
        )
    if x.dtype != np.uint8 and not (x.dtype == np.float32 and np.isfinite(x).all()):
        raise EvoError(
            f"{where}: pixels are {x.dtype}; expected uint8 (0-255) or finite floats", hint
        )


def _check_labels(y: np.ndarray, num_classes: int | None, where: str, hint: str) -> None:
    """Integer labels from 0; below ``num_classes`` too when it is given."""
    if y.dtype != np.int64:
        raise EvoError(f"{where}: labels are {y.dtype}; expected integers", hint)
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise EvoError(
            f"{where}: labels out of range: labels run from {low} to {high}; expected class "
            "indices 0 to K-1 (a negative label is no class)",
            hint,
        )
    if num_classes is not None and high >= num_classes:
        raise EvoError(
            f"{where}: labels out of range: labels run from {low} to {high}; expected 0 to "
            f"{num_classes - 1} ({num_classes} classes)",
            hint,
        )
