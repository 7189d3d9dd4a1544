"""Milliseconds per frame of DIS optical flow (each preset) and of flow warping, at video sizes.

    python benchmarks/bench_flow.py [--sizes 256x256 512x512 1024x512] [--steps 5] [--threads N]

Frames are two consecutive frames of the synthetic video set (data.synthetic.moving_shapes_video: textured
shapes moving 1-4 pixels over a panning textured background) at each size (height x width). "DIS" is one
backward flow (data.flow.dis_flow); "DIS + check" is what the per-sequence flow cache computes per frame
(DIS both ways and the forward-backward check, data.flow.flow_and_validity); "warp" is nets.flow.warp of
one 3-channel float32 frame (grid_sample), forward only and forward + backward. --threads sets OpenCV's and
torch's threads (default: what they pick).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ganvas.bench import cpu_name, timed  # one timing rule for every benchmark and `ganvas bench`
from ganvas.data.flow import PRESETS, dis_flow, flow_and_validity
from ganvas.data.synthetic import moving_shapes_video
from ganvas.nets.flow import warp


def parse_size(text: str) -> tuple[int, int]:
    """'1024x512' -> (512, 1024): WIDTHxHEIGHT as people write video sizes."""
    width, height = (int(part) for part in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["256x256", "512x512", "1024x512"], help="WIDTHxHEIGHT")
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="OpenCV and torch threads (0: their default)")
    args = parser.parse_args()
    import cv2

    if args.threads:
        cv2.setNumThreads(args.threads)
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    print(
        f"{cpu_name()}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads)"
    )
    print("| size (W x H) | preset | DIS ms / frame | DIS + check ms / frame |")
    print("|---|---|---:|---:|")
    warps = []
    for text in args.sizes:
        height, width = parse_size(text)
        _, photos, flows, _ = moving_shapes_video(np.random.default_rng(0), 2, (height, width))
        prev, cur = photos[0], photos[1]
        for preset in args.presets:
            one = timed(lambda: dis_flow(prev, cur, preset), 1, args.steps, cpu)  # noqa: B023
            both = timed(lambda: flow_and_validity(prev, cur, preset), 1, args.steps, cpu)  # noqa: B023
            print(f"| {width} x {height} | {preset} | {one * 1e3:.1f} | {both * 1e3:.1f} |")
        frame = torch.from_numpy(photos[0]).permute(2, 0, 1)[None].float() / 255
        flow = torch.from_numpy(flows[1]).permute(2, 0, 1)[None]
        forward = timed(lambda: warp(frame, flow), 2, args.steps * 4, cpu)  # noqa: B023
        x, f = frame.clone().requires_grad_(), flow.clone().requires_grad_()
        backward = timed(lambda: warp(x, f).sum().backward(), 2, args.steps * 4, cpu)  # noqa: B023
        warps.append((width, height, forward, backward))
    print()
    print("| size (W x H) | warp ms (forward) | warp ms (forward + backward) |")
    print("|---|---:|---:|")
    for width, height, forward, backward in warps:
        print(f"| {width} x {height} | {forward * 1e3:.2f} | {backward * 1e3:.2f} |")


if __name__ == "__main__":
    main()
