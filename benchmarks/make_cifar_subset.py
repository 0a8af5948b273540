"""A small uint8 CIFAR-10 npz for the GPU check, decoded from the shared JPEG zip.

    .venv/bin/python benchmarks/make_cifar_subset.py            # build/gpu_check/cifar10-subset.npz

Why: the GPU machine sees only the repository (64 MiB in all may travel with it), not
``../shared/datasets/``, and has Python and PyTorch but not necessarily Pillow. So the images
are decoded here, once, into an ``.npz`` that evo reads as a dataset path (``x`` uint8
(N, 32, 32, 3) and ``y`` from the zip's ``train/`` folder, ``x_test``/``y_test`` from its
``test/`` folder, ``class_names``), and the file is carried along with the working tree. It is
written under ``build/`` (git-ignored): a dataset never enters the repository.

The images are drawn per class with a fixed seed (same arguments, same file), in the class
order of the zip's folder names (the standard CIFAR-10 order: airplane ... truck). The zip's
images are JPEG quality 75 re-saves of CIFAR-10 (see ../shared/datasets/README.md), so
accuracies come out close to, not identical with, published CIFAR-10 figures.

Exit status: 0 written, 2 bad input (no zip, not the expected layout, a file too large to
carry), with one line saying which.
"""

from __future__ import annotations

import argparse
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ZIP = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.zip"
DEFAULT_OUT = ROOT / "build" / "gpu_check" / "cifar10-subset.npz"
IMAGE_SHAPE = (32, 32, 3)


class SubsetError(Exception):
    """Bad input: printed as one line, exit status 2."""


def _members(archive: zipfile.ZipFile, split: str) -> dict[str, list[str]]:
    """``{class name: sorted JPEG member names}`` of one split folder of the zip."""
    found: dict[str, list[str]] = {}
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == split and parts[2].lower().endswith(".jpg"):
            found.setdefault(parts[1], []).append(name)
    return {label: sorted(names) for label, names in sorted(found.items())}


def _decode(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(archive.read(member))) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if pixels.shape != IMAGE_SHAPE:
        raise SubsetError(f"{member}: image is {pixels.shape}, expected {IMAGE_SHAPE}")
    return pixels


def build_subset(zip_path: Path, out: Path, train_per_class: int, test_per_class: int,
                 seed: int, max_bytes: int) -> dict[str, int]:
    """Write the npz and return its counts and size; refuse a file over ``max_bytes``."""
    if not zip_path.is_file():
        raise SubsetError(f"{zip_path}: no such file (the CIFAR-10 JPEG zip of "
                          "../shared/datasets/; pass --zip)")
    if train_per_class < 1 or test_per_class < 1:
        raise SubsetError("--train-per-class and --test-per-class must be at least 1")
    rng = np.random.default_rng(seed)
    arrays: dict[str, list[np.ndarray]] = {"x": [], "x_test": []}
    labels: dict[str, list[int]] = {"y": [], "y_test": []}
    try:
        with zipfile.ZipFile(zip_path) as archive:
            splits = {"train": _members(archive, "train"), "test": _members(archive, "test")}
            classes = list(splits["train"])
            if not classes or list(splits["test"]) != classes:
                raise SubsetError(f"{zip_path}: expected train/<class>/*.jpg and "
                                  "test/<class>/*.jpg with the same classes")
            for split, per_class, xs, ys in (("train", train_per_class, "x", "y"),
                                             ("test", test_per_class, "x_test", "y_test")):
                for label, name in enumerate(classes):
                    members = splits[split][name]
                    if len(members) < per_class:
                        raise SubsetError(f"{zip_path}: {split}/{name} has {len(members)} "
                                          f"images, fewer than the {per_class} asked for")
                    for index in sorted(rng.choice(len(members), per_class, replace=False)):
                        arrays[xs].append(_decode(archive, members[index]))
                        labels[ys].append(label)
    except (zipfile.BadZipFile, OSError) as error:
        raise SubsetError(f"{zip_path}: cannot read ({error})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial.npz")
    np.savez_compressed(partial, x=np.stack(arrays["x"]), y=np.array(labels["y"], np.int64),
                        x_test=np.stack(arrays["x_test"]),
                        y_test=np.array(labels["y_test"], np.int64),
                        class_names=np.array(classes))
    size = partial.stat().st_size
    if size > max_bytes:
        partial.unlink()
        raise SubsetError(f"{out}: {size / 2**20:.1f} MiB would exceed the "
                          f"{max_bytes / 2**20:g} MiB limit; lower --train-per-class")
    partial.replace(out)  # never a half-written file under the final name
    return {"train": len(labels["y"]), "test": len(labels["y_test"]), "bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="the CIFAR-10 JPEG zip")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the npz to write")
    parser.add_argument("--train-per-class", type=int, default=300,
                        help="training images per class (the search splits validation off)")
    parser.add_argument("--test-per-class", type=int, default=50, help="test images per class")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-class draw")
    parser.add_argument("--max-mib", type=float, default=16.0,
                        help="refuse a file larger than this (64 MiB in all travel to the GPU)")
    args = parser.parse_args(argv)
    try:
        counts = build_subset(args.zip, args.out, args.train_per_class, args.test_per_class,
                              args.seed, int(args.max_mib * 2**20))
    except SubsetError as error:
        print(f"make_cifar_subset: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {counts['train']} train and {counts['test']} test images "
          f"(uint8 32x32x3), {counts['bytes'] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
