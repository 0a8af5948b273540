"""Bounds on what a data file may make evo allocate, checked from its headers first.

A few header bytes can promise terabytes: an ``.npy`` shape, IDX dimensions, a PNG's width and
height, a zip entry's uncompressed size. Every reader asks here before it allocates or
decompresses, so a hostile or damaged file is refused with one line naming it instead of
exhausting the machine (a compression bomb is refused before it is unpacked).

The memory limit is half of what this process may use by default (the machine's RAM, or a
tighter address-space or container limit): the decoded data plus its normalised float32 copy
must leave room for training. ``EVO_DATA_MEMORY_LIMIT`` (bytes, or with a K/M/G/T
suffix, powers of 1024) overrides it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from evo.errors import EvoError

MEMORY_ENV = "EVO_DATA_MEMORY_LIMIT"
MAX_IMAGE_PIXELS = 8192 * 8192  # one image of a dataset; below Pillow's own warning (89.5 M)
MAX_IMAGE_FILE_BYTES = 256 * 2**20  # one image file as stored (a BMP of 8192x8192x3 fits)
_FALLBACK_RAM = 8 * 2**30  # when the platform does not say how much RAM it has
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"(\d+(?:\.\d*)?)\s*([kKmMgGtT]?)(?:i?B)?")


def human_bytes(count: int | float) -> str:
    """``58.2 TiB``-style text for a byte count (powers of 1024, as the limit is written)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def memory_limit() -> int:
    """Bytes of decoded data (plus its float32 copy) one dataset may take."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    if text:
        match = _SIZE.fullmatch(text)
        value = int(float(match[1]) * _UNITS[match[2].upper()]) if match else 0
        if value <= 0:
            raise EvoError(f"{MEMORY_ENV}={text!r} is not a positive size",
                           "write bytes or a size such as 512M or 8G")
        return value
    return min(_memory_bounds()) // 2


def _memory_bounds() -> list[int]:
    """What this process may use: the machine's RAM, and tighter caps where set (an address
    space limit, a container's cgroup limit), which a default must respect too."""
    try:
        bounds = [int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))]
    except (ValueError, OSError, AttributeError):
        bounds = [_FALLBACK_RAM]
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            bounds.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            bounds.append(int(text))
    except OSError:
        pass
    return bounds


def check_memory(needed: int, where: str, what: str) -> None:
    """Refuse before allocating when ``needed`` bytes exceed the data memory limit."""
    limit = memory_limit()
    if needed > limit:
        raise EvoError(
            f"{where}: {what} needs about {human_bytes(needed)}, more than the data memory limit "
            f"of {human_bytes(limit)}",
            f"use a smaller dataset, or raise the limit with {MEMORY_ENV} (e.g. 16G) on a "
            "machine that has the memory",
        )


def check_image_file(size: int, where: str, name: str, hint: str) -> None:
    """Refuse an image file (or zip entry) larger than any image evo would train on."""
    bound = min(MAX_IMAGE_FILE_BYTES, memory_limit())
    if size > bound:
        raise EvoError(
            f"{where}: {name} is {human_bytes(size)} uncompressed, more than the "
            f"{human_bytes(bound)} an image file may take; refused before unpacking it", hint)


def check_image_size(width: int, height: int, where: str, name: str, hint: str) -> None:
    """Refuse an image whose header declares more pixels than ``MAX_IMAGE_PIXELS``."""
    if width * height > MAX_IMAGE_PIXELS:
        raise EvoError(
            f"{where}: {name} declares {width}x{height} pixels, more than the "
            f"{MAX_IMAGE_PIXELS:,} an image may have; refused before decoding it", hint)
