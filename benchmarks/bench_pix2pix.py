"""Median seconds per pix2pix training step and per inference image, at the paper's settings.

    python benchmarks/bench_pix2pix.py [--sizes 128 256] [--steps 5] [--device cpu]

Uses random tensors (no data loading), batch 1, the reference networks (unet_128 at 128 px,
unet_256 at 256 px; basic PatchGAN D; batch norm; ngf = ndf = 64) and plain fp32 eager PyTorch.
"""

from __future__ import annotations

import argparse
import platform

import torch

from ganvas.bench import timed  # one timing rule for every benchmark and `ganvas bench`
from ganvas.models.pix2pix import Pix2PixModel
from ganvas.options import resolve_options


def bench(size: int, steps: int, device: torch.device) -> tuple[float, float]:
    """(train step seconds, inference seconds per image) at `size` px."""
    opt = resolve_options({"model": "pix2pix", "netG": f"unet_{size}", "seed": 0, "gpu_ids": "-1"}, "train")
    model = Pix2PixModel(opt, device, train=True)
    batch = {"A": torch.rand(1, 3, size, size) * 2 - 1, "B": torch.rand(1, 3, size, size) * 2 - 1}
    step = timed(lambda: model.train_step(batch), 2, steps, device)
    model.set_mode(False)
    infer = timed(lambda: model.translate({"A": batch["A"]}), 2, steps, device)
    return step, infer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(f"{'size':>6} {'train s/step':>13} {'infer s/image':>14} {'train img/s':>12}")
    for size in args.sizes:
        step, infer = bench(size, args.steps, device)
        print(f"{size:>6} {step:>13.3f} {infer:>14.3f} {1 / step:>12.2f}")


if __name__ == "__main__":
    main()
