"""How many images per second the training loader delivers, by --num_threads: is data ever the bottleneck?

    python benchmarks/bench_loader.py [--dataroot DIR] [--size 256] [--workers 0 1 2 4] [--batch_size 1]

Iterates the trainer's own DataLoader (ganvas.train.make_loader: decoding, resize to --load_size,
random crop to --size, flip, collation) over three epochs, no model, and prints images per second for
each worker count; the first epoch's start (worker start-up) is not timed. Without --dataroot it writes
the built-in paired set (64 pairs, PNG, at 256 px and load_size 286 as the pix2pix facades recipe).
Compare the figure with `ganvas bench`'s training images/second at the same size: the loader must
deliver more. A run also logs both at each epoch's end (compute time against data-wait time).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from ganvas.data import make_dataset
from ganvas.data.synthetic import write_paired_set
from ganvas.options import resolve_options
from ganvas.train import EpochSampler, epoch_order, make_loader


def images_per_second(dataroot: Path, size: int, workers: int, batch_size: int) -> tuple[int, float]:
    """(workers the loader used, images/s) for --num_threads `workers`."""
    opt = resolve_options(
        {
            "dataroot": str(dataroot),
            "model": "pix2pix",
            "load_size": size * 286 // 256,
            "crop_size": size,
            "num_threads": workers,
            "batch_size": batch_size,
            "seed": 0,
            "gpu_ids": "-1",
        },
        "train",
    )
    dataset = make_dataset(opt, train=True)
    sampler = EpochSampler()
    loader = make_loader(dataset, sampler, opt, pin_memory=False)
    images, start = 0, None
    for epoch in (1, 2, 3):
        sampler.items = [(epoch, i) for i in epoch_order(len(dataset), opt.seed, epoch, False)]
        for batch in loader:
            if start is None:
                start = time.perf_counter()  # from the first batch: worker start-up is not timed
                continue
            images += len(batch["A"])
    return loader.num_workers, images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataroot", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--batch_size", type=int, default=1)
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, crop {args.size} px, "
        f"batch {args.batch_size}"
    )
    print(f"{'--num_threads':>13} {'workers':>8} {'images/s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        dataroot = args.dataroot or write_paired_set(
            Path(tmp) / "data", n_train=64, n_test=1, size=args.size * 286 // 256, seed=0
        )
        for workers in args.workers:
            used, rate = images_per_second(dataroot, args.size, workers, args.batch_size)
            print(f"{workers:>13} {used:>8} {rate:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
