"""Writers of tiny datasets in every format evo reads, for the data and training tests."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes; ``magic`` overrides the computed magic number."""
    header = (magic if magic is not None else (0x08 << 8) | array.ndim).to_bytes(4, "big")
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def write_idx_set(directory: Path, rng: np.random.Generator, n_train: int = 60,
                  n_test: int = 20, side: int = 8, classes: int = 3) -> dict[str, np.ndarray]:
    """The four MNIST-style ``.gz`` files; returns the arrays written."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % classes,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(n_test, dtype=np.uint8) % classes,
    }
    for stem, array in arrays.items():
        (directory / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    return arrays


def cifar_batch(rng: np.random.Generator, n: int, classes: int = 4, protocol: int = 2) -> bytes:
    """A CIFAR-10 python batch as the original (a dict with bytes keys), pickled."""
    batch = {
        b"batch_label": b"testing batch",
        b"labels": [int(i % classes) for i in range(n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(batch, protocol=protocol)


def write_cifar_folder(folder: Path, rng: np.random.Generator, per_batch: int = 8,
                       protocol: int = 2) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(cifar_batch(rng, per_batch, protocol=protocol))
    (folder / "test_batch").write_bytes(cifar_batch(rng, per_batch, protocol=protocol))
    names = [n.encode() for n in ("airplane", "automobile", "bird", "cat", "deer", "dog",
                                  "frog", "horse", "ship", "truck")]
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=protocol))


def write_cifar_tar(path: Path, folder: Path) -> None:
    with tarfile.open(path, "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_tree(rng: np.random.Generator, classes: tuple[str, ...] = ("cat", "dog"),
               per_class: int = 10, side: int = 6, gray: bool = False,
               prefix: str = "") -> dict[str, bytes]:
    """Relative path -> PNG bytes of an ImageFolder tree (``prefix`` e.g. ``train/``)."""
    shape = (side, side) if gray else (side, side, 3)
    files = {}
    for cls in classes:
        for i in range(per_class):
            files[f"{prefix}{cls}/{i:03d}.png"] = png_bytes(
                rng.integers(0, 256, shape, dtype=np.uint8))
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], wrapper: str = "") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"{wrapper}{name}", data)
    return path


# ---------------------------------------------------------------- hostile files, small on disk

_MIB = 1 << 20


def zeros_deflate(prefix: bytes, zeros: int) -> bytes:
    """A raw deflate stream of ``prefix`` then ``zeros`` zero bytes (a multiple of 1 MiB),
    about 1 KiB per MiB: each MiB is compressed once and repeated (a full flush byte-aligns the
    output and resets the window, so every repeat is identical), so gigabytes cost milliseconds.
    """
    assert zeros % _MIB == 0
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = block.compress(prefix) + block.flush(zlib.Z_FULL_FLUSH)
    piece = block.compress(bytes(_MIB)) + block.flush(zlib.Z_FULL_FLUSH)
    assert piece == block.compress(bytes(_MIB)) + block.flush(zlib.Z_FULL_FLUSH)
    return head + piece * (zeros // _MIB) + block.flush()


def write_raw_zip(path: Path, entries: list[tuple[str, bytes, int, int]]) -> Path:
    """A zip written by hand from (name, stored or deflated data, method, declared size), so an
    entry can declare gigabytes without them ever existing. A deflated entry's CRC is zero: a
    reader that checks it has already unpacked the whole entry, which the tests must never see.
    """
    local, central = b"", b""
    for name, data, method, size in entries:
        encoded = name.encode()
        crc = zlib.crc32(data) if method == 0 else 0
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0x21, crc, len(data), size,
                             len(encoded), 0)
        central += (struct.pack("<IH", 0x02014B50, 20) + fields
                    + struct.pack("<HHHII", 0, 0, 0, 0, len(local)) + encoded)
        local += struct.pack("<I", 0x04034B50) + fields + encoded + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central),
                      len(local), 0)
    path.write_bytes(local + central + end)
    return path


def npy_header(shape: tuple[int, ...], dtype: str = "|u1") -> bytes:
    """The header of an ``.npy`` file declaring ``shape`` (no data follows)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels, with one tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
            + chunk(b"IEND", b""))


def gzip_of_deflate(deflated: bytes) -> bytes:
    """A .gz member around a raw deflate stream (CRC and size left zero, see above)."""
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflated + bytes(8)
