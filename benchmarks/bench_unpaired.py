"""Median seconds per training step and peak memory of CycleGAN, CUT and FastCUT at the papers' settings.

    python benchmarks/bench_unpaired.py [--sizes 64 128] [--steps 5] [--device cpu]

Random tensors (no data loading), batch 1, the published networks (resnet_9blocks G, basic
PatchGAN D, instance norm, ngf = ndf = 64; CUT's anti-aliased G and D with 256 patches per layer),
plain fp32 eager PyTorch. Each model and size runs in a fresh process so that its peak memory is
its own: process peak RSS on the CPU (and the growth over the RSS before the model was built), or
the CUDA allocator's peak on a GPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys

import torch

from ganvas.bench import timed  # one timing rule for every benchmark and `ganvas bench`

MODELS = {
    "cycle_gan": {"model": "cycle_gan"},
    "CUT": {"model": "cut"},
    "FastCUT": {"model": "cut", "CUT_mode": "FastCUT"},
}


def rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(name: str, size: int, steps: int, device: torch.device) -> dict:
    """Time one model at one size; returns seconds per step and memory figures."""
    from ganvas.models import create_model
    from ganvas.options import resolve_options

    before = rss_mb()
    opt = resolve_options({**MODELS[name], "seed": 0, "gpu_ids": "-1", "crop_size": size, "load_size": size}, "train")
    model = create_model(opt, device, train=True)
    batch = {"A": torch.rand(1, 3, size, size) * 2 - 1, "B": torch.rand(1, 3, size, size) * 2 - 1}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = timed(lambda: model.train_step(batch), 2, steps, device)
    peak_gpu = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {"step": step, "rss_peak": rss_mb(), "rss_growth": rss_mb() - before, "gpu_peak": peak_gpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.steps, device)))
        return
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(
        f"{'model':>10} {'size':>5} {'s/step':>8} {'img/s':>7} {'peak RSS MB':>12} {'RSS growth MB':>14}"
        + (f" {'peak GPU MB':>12}" if device.type == "cuda" else "")
    )
    for name in args.models:
        for size in args.sizes:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    name,
                    str(size),
                    "--steps",
                    str(args.steps),
                    "--device",
                    args.device,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"{name:>10} {size:>5} {r['step']:>8.3f} {1 / r['step']:>7.2f} {r['rss_peak']:>12.0f} "
                f"{r['rss_growth']:>14.0f}" + (f" {r['gpu_peak']:>12.0f}" if r["gpu_peak"] is not None else "")
            )


if __name__ == "__main__":
    main()
