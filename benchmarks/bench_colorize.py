"""Seconds per colourisation training step (256 px, batch 1) and per colourised photo (256 and 1024 px).

    python benchmarks/bench_colorize.py [--model colorization_hints] [--steps 5] [--backends torch auto]

The original settings: --model colorization (unet_256, basic PatchGAN, batch norm, crop 256) or
--model colorization_hints (the authors' network at their width, ngf 64, with simulated hints in
training), random weights and a random photo; no data loading. A photo is colourised as `ganvas colorize`
does it: RGB to Lab, the colour predicted with the longer side at --color_size (default the crop, 256)
and joined with the photo's full-resolution L, back to RGB; through torch eager and through the
`auto` backend (each network on the fastest installed backend, measured on its first call, which
the warm-up step takes).
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch

import ganvas
from ganvas.bench import cpu_name, timed  # one timing rule for every benchmark and `ganvas bench`
from ganvas.checkpoint import atomic_write_many, network_writes
from ganvas.models import create_model
from ganvas.options import OPT_FILE, resolve_options, save_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("colorization", "colorization_hints"), default="colorization")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["torch", "auto"])
    args = parser.parse_args()
    cpu = torch.device("cpu")
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        opt = resolve_options(
            {"model": args.model, "seed": 0, "gpu_ids": "-1", "name": "c", "checkpoints_dir": tmp, "dataroot": "-"},
            "train",
        )
        model = create_model(opt, cpu, train=True)
        batch = model.example_batch(256, 1)
        step = timed(lambda: model.train_step(batch), 2, args.steps, cpu)
        print(f"training step, 256 px, batch 1: {step:.3f} s")
        save_options(opt, opt.run_dir / OPT_FILE)
        atomic_write_many(network_writes(model.nets, opt.run_dir, "latest"))
        rng = np.random.default_rng(0)
        for backend in args.backends:
            translator = ganvas.load(opt.run_dir, device="cpu", backend=backend)
            for side in (256, 1024):
                photo = (rng.random((side, side, 3)) * 255).astype(np.uint8)
                seconds = timed(lambda: translator.translate(photo), 1, args.steps, cpu)  # noqa: B023
                print(f"colourise a {side} x {side} photo, {backend} (ran on {translator.backend}): {seconds:.3f} s")


if __name__ == "__main__":
    main()
