"""Training throughput of evo's trainer against a minimal plain PyTorch loop, plus the cnn_full
acceptance checks on digits.

    .venv/bin/python benchmarks/bench_train.py [--repeats 5] [--device cpu] [--threads 1]
    .venv/bin/python benchmarks/bench_train.py --section cnn_full

Throughput: the same fixed networks (named in ``NETWORKS``), the same data, the same
optimiser, batch size, memory format and initial weights, in the same process, repeats
interleaved (the order alternates every repeat, so drift hits both sides alike). Ours is
``evo.net.train.train_candidate``; "loop" is its training loop alone (``train_seconds``), "whole"
is the entire call (model build, MAC count, memory check, validation scoring, weight copy).
The plain loop is what a person writes by hand: randperm, index, forward, cross entropy,
backward, step. A second plain loop in NCHW (PyTorch's default layout) shows what
channels-last buys. Images/s = training images seen / seconds; median and min-max over repeats.
On a machine shared with other jobs wall-clock rates swing with the load, so the loop ratio is
also given in process CPU time (one torch thread: CPU time is the work done, whatever waits).

cnn_full: a named reference phenotype of ``grammars/cnn_full.bnf`` (with the genome that
derives it) trained on digits, and ten seeded random cnn_full genomes trained on digits.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from evo.arch import parse_arch, resolve
from evo.data.dataset import Dataset, load_dataset
from evo.net.model import build_model
from evo.net.train import TrainBudget, make_optimizer, train_candidate

# name -> (phenotype, dataset, epochs per timed run)
NETWORKS = {
    "cnn_full-reference (digits 1x8x8)": (
        "conv(32, k=3) bn relu conv(32, k=3) bn relu maxpool(2) conv(64, k=3) bn relu gap "
        "dense(64) relu | optimizer=adam lr=0.003 batch_size=32 weight_decay=0.0001 "
        "schedule=cosine label_smoothing=0 augment=off",
        "digits", 3),
    "mobile-ir (3x32x32, 2048 images)": (
        "conv(16, k=3, s=2) bn relu6 ir(24, e=4, s=2) ir(24, e=4) ir(40, e=4, s=2) gap "
        "dense(10) | optimizer=momentum lr=0.05 batch_size=64 schedule=cosine augment=off",
        "synthetic32", 1),
}
# The reference phenotype and the cnn_full genome that derives it (PonyGE2 mapping).
REFERENCE_GENOME = [0, 1, 0, 1, 0, 3, 1, 0, 0, 3, 1, 0, 1, 0, 0, 0, 5, 1, 0, 0, 0, 0, 1, 2, 0,
                    3, 2, 1, 2, 1, 0, 0]
REFERENCE_EPOCHS = 5


def _synthetic32(folder: Path) -> Dataset:
    """CIFAR-shaped random images: throughput does not depend on pixel values."""
    rng = np.random.default_rng(0)
    path = folder / "synthetic32.npz"
    n = 2048 + 2 * 452  # ~2048 training images after the 15 % / 15 % holdout cut
    np.savez(path, x=rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), y=np.arange(n) % 10)
    return load_dataset(path, use_cache=False)


def plain_loop(resolved, dataset: Dataset, epochs: int, seed: int, device: torch.device,
               channels_last: bool) -> tuple[float, float]:
    """A minimal hand-written loop; returns training images per wall and per CPU second."""
    recipe = resolved.recipe
    model = build_model(resolved, torch.Generator().manual_seed(seed))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device, memory_format=fmt)
    optimizer = make_optimizer(model, recipe, device)
    x = torch.from_numpy(dataset.train.x).to(device)
    y = torch.from_numpy(dataset.train.y).to(device)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator(device=device).manual_seed(seed)
    n, batch = x.shape[0], recipe.batch_size
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        for i in range(0, n, batch):
            index = order[i:i + batch]
            if index.shape[0] < 2:
                continue
            inputs = x[index].contiguous(memory_format=fmt)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(inputs)
            loss = loss_fn(logits.float(), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    float(loss.item())
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return epochs * n / wall, epochs * n / cpu


def ours(resolved, dataset: Dataset, epochs: int, seed: int, device: str,
         threads: int) -> tuple[float, float, float]:
    """Images/s of ``train_candidate``: its loop (wall), the whole call (wall), its loop (CPU)."""
    start = time.perf_counter()
    result = train_candidate(resolved, dataset, TrainBudget(epochs=epochs), device=device,
                             threads=threads, seed=seed)
    whole = time.perf_counter() - start
    if not result.ok:
        raise SystemExit(f"bench_train: our trainer failed: {result.reason}")
    images = epochs * len(dataset.train)
    return (result.metrics["images_per_second"], images / whole,
            images / result.metrics["train_cpu_seconds"])


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def throughput(args: argparse.Namespace, device: torch.device) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        datasets = {"digits": load_dataset("digits"), "synthetic32": _synthetic32(Path(tmp))}
    print(f"## Throughput, device {device}, {args.threads} thread(s), {args.repeats} repeats\n")
    print("Images/s, median (min-max) over repeats. CL = channels-last. Ratios are per repeat "
          "(paired), median (min-max).\n")
    print("| network | train images | epochs/run | plain CL | ours loop | ours whole call | "
          "plain NCHW | loop/plain, wall | loop/plain, CPU time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (text, data_name, epochs) in NETWORKS.items():
        dataset = datasets[data_name]
        resolved = resolve(parse_arch(text), dataset.input_shape, dataset.num_classes)
        # warm-up: first-call costs (kernel selection, lazy imports) hit neither side's timing
        ours(resolved, dataset, 1, 0, str(device), args.threads)
        plain_loop(resolved, dataset, 1, 0, device, True)
        rows: dict[str, list[float]] = {key: [] for key in
                                        ("plain", "plain_cpu", "loop", "loop_cpu", "whole",
                                         "nchw")}
        for repeat in range(args.repeats):
            steps = ["plain", "ours", "nchw"]
            for step in (steps if repeat % 2 == 0 else steps[::-1]):
                if step == "ours":
                    loop, whole, loop_cpu = ours(resolved, dataset, epochs, repeat, str(device),
                                                 args.threads)
                    rows["loop"].append(loop)
                    rows["whole"].append(whole)
                    rows["loop_cpu"].append(loop_cpu)
                elif step == "plain":
                    wall, cpu = plain_loop(resolved, dataset, epochs, repeat, device, True)
                    rows["plain"].append(wall)
                    rows["plain_cpu"].append(cpu)
                else:
                    rows["nchw"].append(plain_loop(resolved, dataset, epochs, repeat, device,
                                                   False)[0])
        wall = [a / b for a, b in zip(rows["loop"], rows["plain"], strict=True)]
        cpu = [a / b for a, b in zip(rows["loop_cpu"], rows["plain_cpu"], strict=True)]
        print(f"| {name} | {len(dataset.train)} | {epochs} | {_spread(rows['plain'])} | "
              f"{_spread(rows['loop'])} | {_spread(rows['whole'])} | {_spread(rows['nchw'])} | "
              f"{_ratio(wall)} | {_ratio(cpu)} |", flush=True)


def _ratio(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def cnn_full_checks(args: argparse.Namespace) -> None:
    from evo.ge.grammar import load_grammar
    from evo.ge.mapper import map_genome
    from evo.ge.operators import random_genome

    grammar = load_grammar("cnn_full")
    digits = load_dataset("digits")
    derived = map_genome(grammar, REFERENCE_GENOME)
    text = NETWORKS["cnn_full-reference (digits 1x8x8)"][0]
    assert derived.valid and "".join(derived.phenotype.split()) == "".join(text.split())
    resolved = resolve(parse_arch(derived.phenotype), digits.input_shape, digits.num_classes)
    print("## cnn_full on digits (CPU, 1 thread)\n")
    print(f"Reference phenotype (cnn_full genome {REFERENCE_GENOME}):\n`{text}`\n")
    print("| seed | epochs | status | val accuracy | seconds (whole call) |")
    print("|---|---|---|---|---|")
    for seed in range(3):
        start = time.perf_counter()
        result = train_candidate(resolved, digits, TrainBudget(epochs=REFERENCE_EPOCHS),
                                 device="cpu", threads=1, seed=seed)
        print(f"| {seed} | {REFERENCE_EPOCHS} | {result.status} | "
              f"{result.metrics.get('val_accuracy', float('nan')):.4f} | "
              f"{time.perf_counter() - start:.1f} |", flush=True)
    print(f"\nTen random cnn_full genomes (numpy default_rng(seed), length 100), "
          f"{args.sample_epochs} epochs each:\n")
    print("| seed | status | val accuracy | params | MACs | seconds | reason |")
    print("|---|---|---|---|---|---|---|")
    ok = 0
    for seed in range(10):
        phenotype = map_genome(grammar, random_genome(np.random.default_rng(seed))).phenotype
        candidate = resolve(parse_arch(phenotype), digits.input_shape, digits.num_classes)
        start = time.perf_counter()
        result = train_candidate(candidate, digits, TrainBudget(epochs=args.sample_epochs),
                                 device="cpu", threads=1, seed=seed)
        ok += result.ok
        print(f"| {seed} | {result.status} | {result.metrics.get('val_accuracy', 0):.4f} | "
              f"{result.objectives.get('params', 0):,.0f} | "
              f"{result.objectives.get('macs', 0):,.0f} | "
              f"{time.perf_counter() - start:.1f} | {result.reason} |", flush=True)
    print(f"\n{ok} of 10 trained without failure.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=["throughput", "cnn_full", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sample-epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device if args.device != "cuda" else "cuda:0")
    print(f"# bench_train: torch {torch.__version__}, {platform.processor() or platform.machine()}"
          f", {torch.get_num_threads()} thread(s)\n")
    if args.section in ("throughput", "all"):
        throughput(args, device)
        print()
    if args.section in ("cnn_full", "all"):
        cnn_full_checks(args)


if __name__ == "__main__":
    main()
