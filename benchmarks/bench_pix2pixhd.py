"""pix2pixHD generator latency at Cityscapes sizes and the training-step time, fp32 (and bf16) eager.

    python benchmarks/bench_pix2pixhd.py [--device cpu] [--steps 2] [--precision fp32 bf16]

Random inputs with Cityscapes' channel counts (35 labels + instance edges = 36 G inputs, 39 D
inputs), the paper's networks: global G (ngf 64, 4 downsamplings, 9 blocks) at 512x1024 and
1024x2048; local G (ngf 32, one enhancer, global part as above at half size) at 1024x2048 and
512x1024; training step of the global model (G, 2-scale D with feature matching, no VGG weights
here) at 256x512 and batch 1. Inference runs without autograd, padded to the generator's multiple.
"""

from __future__ import annotations

import argparse
import platform
from contextlib import nullcontext

import torch

from ganvas.bench import timed  # one timing rule for every benchmark and `ganvas bench`

SIZES = {"global": [(512, 1024), (1024, 2048)], "local": [(512, 1024), (1024, 2048)]}


def model(netG: str, device: torch.device, train: bool):
    from ganvas.models.pix2pixhd import Pix2PixHDModel
    from ganvas.options import resolve_options

    flags = {
        "model": "pix2pixhd",
        "netG": netG,
        "ngf": 64 if netG == "global" else 32,
        "gpu_ids": "-1",
        "seed": 0,
        "no_vgg_loss": True,
    }
    return Pix2PixHDModel(resolve_options(flags, "train"), device, train=train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--skip_train", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, device {device}"
    )
    print(f"{'generator':>10} {'size':>10} {'precision':>9} {'s/image':>8} {'images/s':>9}")
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    for netG, sizes in SIZES.items():
        G = model(netG, device, train=False).nets["G"].eval()
        for height, width in sizes:
            x = torch.rand(1, 36, height, width, device=device)
            for precision in args.precision:
                autocast = torch.autocast(device.type, dtype=dtypes[precision]) if dtypes[precision] else nullcontext()

                def run(G=G, x=x, autocast=autocast):  # bound now: the loop moves on after timing
                    with torch.no_grad(), autocast:
                        G(x)

                seconds = timed(run, 1, args.steps, device)
                print(
                    f"{netG:>10} {f'{height}x{width}':>10} {precision:>9} {seconds:>8.2f} {1 / seconds:>9.3f}",
                    flush=True,
                )
    if args.skip_train:
        return
    m = model("global", device, train=True)
    batch = {
        "label": torch.randint(0, 35, (1, 1, 256, 512)),
        "inst": torch.randint(0, 3, (1, 1, 256, 512)),
        "image": torch.rand(1, 3, 256, 512) * 2 - 1,
        "path": ["random"],
    }
    seconds = timed(lambda: m.train_step(batch), 1, args.steps, device)
    print(f"train step, global G + 2-scale D, 256x512, batch 1: {seconds:.2f} s/step")


if __name__ == "__main__":
    main()
