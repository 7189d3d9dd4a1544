"""Issue 6's throughput table: images/second and peak memory per model, precision and batch size.

    python benchmarks/bench_table.py [--size 256] [--batches 1 8] [--configs fp32 bf16 bf16+compile]
                                     [--models pix2pix cycle_gan CUT FastCUT pix2pixhd] [--hd_infer 1024]
                                     [--gpu_ids 0] [--steps 10] [--warmup 3]

Every configuration is built afresh in this one process and timed by `ganvas bench`'s rule (warm-up
steps, in which compilation happens, then the median of the timed steps) on synthetic tensors at the
published settings (pix2pixhd: the global generator at size x 2*size without the VGG loss). Rows are
printed as Markdown as they finish, so a run stopped at a time limit still leaves what it measured;
each row's speed-up is over the fp32 eager row of the same model and batch. `--hd_infer H` first times
the pix2pixHD local generator's inference at H x 2H, batch 1, in frames per second (the
interactive-rate target: 30 fps at 1024 x 2048 in bf16); `--models` with no names times only that.
"""

from __future__ import annotations

import argparse
import platform

import torch

from ganvas.bench import bench_one
from ganvas.speed import select_device

CONFIGS = {
    "fp32": {},
    "bf16": {"amp": "bf16"},
    "fp16": {"amp": "fp16"},
    "fp32+compile": {"compile": True},
    "bf16+compile": {"amp": "bf16", "compile": True},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True},
    "bf16+channels_last+compile": {"amp": "bf16", "channels_last": True, "compile": True},
}
MODELS = {
    "pix2pix": ("pix2pix", {}),
    "cycle_gan": ("cycle_gan", {}),
    "CUT": ("cut", {"CUT_mode": "CUT"}),
    "FastCUT": ("cut", {"CUT_mode": "FastCUT"}),
    "pix2pixhd": ("pix2pixhd", {}),
    "gan": ("gan", {}),
}


def device_name(gpu_ids: str) -> str:
    device = select_device(gpu_ids)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["fp32", "bf16", "bf16+compile"])
    parser.add_argument(
        "--models",
        nargs="*",
        choices=list(MODELS),
        default=["pix2pix", "cycle_gan", "CUT", "FastCUT", "pix2pixhd"],
        help="none: --hd_infer only",
    )
    parser.add_argument(
        "--hd_infer",
        type=int,
        nargs="*",
        default=[],
        help="heights at which to time pix2pixHD's local generator (batch 1, every config)",
    )
    parser.add_argument("--gpu_ids", default="0")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    print(f"{device_name(args.gpu_ids)}, torch {torch.__version__}, synthetic data", flush=True)
    for height in args.hd_infer:
        print(
            f"\npix2pixHD local generator, inference, {height} x {2 * height}, batch 1\n\n"
            "| configuration | s/frame | frames/s | peak MB | vs fp32 eager |\n|---|---:|---:|---:|---:|",
            flush=True,
        )
        baseline = None
        for config in args.configs:
            result = bench_one(
                "pix2pixhd",
                height,
                1,
                args.gpu_ids,
                True,
                args.steps,
                args.warmup,
                config,
                netG="local",
                ngf=32,
                **CONFIGS[config],
            )  # label2city_1024p
            baseline = result.seconds if config == "fp32" else baseline
            ratio = f"{baseline / result.seconds:.2f}x" if baseline else "-"
            print(
                f"| {config} | {result.seconds:.4f} | {result.images_per_second:.1f} | {result.peak_mb:.0f} "
                f"| {ratio} |",
                flush=True,
            )
    if args.models:
        print(
            f"\ntraining step, {args.size} px\n\n| model | batch | configuration | s/step | images/s | peak MB "
            "| vs fp32 eager |\n|---|---:|---|---:|---:|---:|---:|",
            flush=True,
        )
        for name in args.models:
            model, extra = MODELS[name]
            for batch in args.batches:
                baseline = None
                for config in args.configs:
                    result = bench_one(
                        model,
                        args.size,
                        batch,
                        args.gpu_ids,
                        False,
                        args.steps,
                        args.warmup,
                        config,
                        **{**extra, **CONFIGS[config]},
                    )
                    baseline = result.seconds if config == "fp32" else baseline
                    ratio = f"{baseline / result.seconds:.2f}x" if baseline else "-"
                    print(
                        f"| {name} | {batch} | {config} | {result.seconds:.4f} | {result.images_per_second:.2f} | "
                        f"{result.peak_mb:.0f} | {ratio} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
