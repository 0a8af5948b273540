"""CIFAR-10 on the GPU: a uint8 subset npz, a search with ``--device cuda``, the front retrained,
test accuracy.

    .venv/bin/python benchmarks/experiments/cifar10_gpu.py --build-only   # here: the npz
    .venv/bin/python benchmarks/experiments/cifar10_gpu.py                # on the GPU machine
        (carry build/cifar10-subset.npz there; docs/results/cifar10_gpu.md comes back)

Why a subset npz: the GPU machine sees only the repository (64 MiB may travel with it), not
``../shared/datasets/``; 1,500 training and 200 test images per class of the JPEG zip, decoded
to uint8 (N, 32, 32, 3), fit in under 60 MiB. It is written to ``build/cifar10-subset.npz``
(git-ignored: never committed) and carried to the GPU machine with the working tree. The
images are drawn per class with a fixed seed, so the same config builds the same file. The
test images come from the zip's ``test/`` folder (JPEG quality 75, so accuracies are close to,
not identical with, published CIFAR-10 figures).

NOT RUN YET: no GPU was lent to the task that wrote this script, so only ``--build-only`` was
checked (on a 200-image subset, ``--train-per-class 10 --test-per-class 10``). The full run
writes ``docs/results/cifar10_gpu.md`` with the front and the ``evo retrain`` table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

MAX_NPZ_BYTES = 60 * 2**20


def build_npz(zip_path: Path, npz_path: Path, train_per_class: int, test_per_class: int,
              seed: int) -> Path:
    """Decode a per-class random subset of the JPEG zip into one uint8 npz (x, y, x_test,
    y_test, class_names); refuse a file that would not travel to the GPU machine."""
    from PIL import Image

    rng = random.Random(seed)
    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".jpg")]
        classes = sorted({n.split("/")[1] for n in names})
        arrays: dict[str, list] = {"x": [], "y": [], "x_test": [], "y_test": []}
        for split, per_class, xs, ys in (("train", train_per_class, "x", "y"),
                                         ("test", test_per_class, "x_test", "y_test")):
            for label, name in enumerate(classes):
                files = sorted(n for n in names if n.startswith(f"{split}/{name}/"))
                for member in rng.sample(files, min(per_class, len(files))):
                    with Image.open(io.BytesIO(archive.read(member))) as img:
                        arrays[xs].append(np.asarray(img.convert("RGB"), dtype=np.uint8))
                    arrays[ys].append(label)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, x=np.stack(arrays["x"]), y=np.array(arrays["y"], np.int64),
                        x_test=np.stack(arrays["x_test"]),
                        y_test=np.array(arrays["y_test"], np.int64),
                        class_names=np.array(classes))
    size = npz_path.stat().st_size
    if size > MAX_NPZ_BYTES:
        npz_path.unlink()
        sys.exit(f"{npz_path}: {size / 2**20:.1f} MiB is over the 60 MiB that can travel to "
                 "the GPU machine; lower train_per_class")
    print(f"wrote {npz_path}: {len(arrays['x'])} train+val and {len(arrays['x_test'])} test "
          f"images, {size / 2**20:.1f} MiB", flush=True)
    return npz_path


def search_and_retrain(config: dict, npz_path: Path) -> None:
    """One search on the npz with the configured device, then the front retrained and tested."""
    s, r = config["search"], config["retrain"]
    run_dir = Path(config["out"]) / f"cifar10-{s['grammar']}-s{s['seed']}"
    subprocess.run([common.EVO, "search", "--grammar", s["grammar"], "--dataset", str(npz_path),
                    "--seed", str(s["seed"]), "--population", str(s["population"]),
                    "--generations", str(s["generations"]), "--epochs", str(s["epochs"]),
                    "--workers", str(s["workers"]), "--device", s["device"],
                    "--max-time", str(s["max_time"]), "--no-export",
                    "--no-bench", "--run-dir", str(run_dir)], check=True)
    front = subprocess.run([common.EVO, "front", str(run_dir)], check=True,
                           capture_output=True, text=True).stdout
    retrain = subprocess.run([common.EVO, "retrain", str(run_dir), "--epochs", str(r["epochs"]),
                              "--seeds", str(r["seeds"]), "--device", s["device"]],
                             check=True, capture_output=True, text=True).stdout
    common.write(common.RESULTS / "cifar10_gpu.md", "\n".join([
        "# CIFAR-10 subset on the GPU", "",
        f"{npz_path.name}: {config['train_per_class']} training and {config['test_per_class']} "
        f"test images per class of cifar10-jpeg.zip. NSGA-II over {s['grammar']}, population "
        f"{s['population']}, {s['generations']} generations, {s['epochs']} epochs, device "
        f"{s['device']}, seed {s['seed']}; the front retrained for {r['epochs']} epochs, "
        f"{r['seeds']} seeds.", f"Machine: {common.machine()}. Date: {dt.date.today()}.",
        "Command: `.venv/bin/python benchmarks/experiments/cifar10_gpu.py`.", "",
        "## Front (validation)", "", "```", front.rstrip(), "```", "",
        "## Retrained on train + validation, test accuracy", "", "```", retrain.rstrip(), "```",
        ""]))


def main() -> None:
    config = common.load_config("cifar10_gpu")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-only", action="store_true", help="write the npz and stop")
    parser.add_argument("--npz", type=Path, default=common.ROOT / config["npz"])
    parser.add_argument("--train-per-class", type=int, default=config["train_per_class"])
    parser.add_argument("--test-per-class", type=int, default=config["test_per_class"])
    args = parser.parse_args()
    if args.build_only or not args.npz.is_file():
        build_npz((common.ROOT / config["zip"]).resolve(), args.npz, args.train_per_class,
                  args.test_per_class, config["subset_seed"])
    if not args.build_only:
        search_and_retrain(config, args.npz)


if __name__ == "__main__":
    main()
