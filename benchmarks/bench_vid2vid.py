"""vid2vid on the CPU: seconds per training frame, frames per second at 256 px, flicker against per-frame pix2pix.

    python benchmarks/bench_vid2vid.py speed [--ngf 128] [--size 256]
    python benchmarks/bench_vid2vid.py compare [--epochs 6] [--pix2pix_epochs 10] [--out DIR]

speed: the original's generator (--ngf 128, 3 downsamplings, 9 blocks, n_frames_G 3, batch norm) and its
discriminators (2 temporal scales, no VGG: no weights file here), random weights, one frame per training
step (--max_frames_per_gpu 1 as the original's default) on random clips; inference is the sequential loop
(`translate` with a stream) on torch eager.

compare: the `ganvas demo --model vid2vid` recipe on the built-in video set (24 sequences of 12 frames,
64 px) against pix2pix (unet_64, ngf 16, batch 1) trained on the same frames for about as long,
both tested by `ganvas test` on the 4 test sequences with the set's exact flows: the warping error
(Lai et al. 2018) and L1 to the real frames after each sequence's first frame (given to vid2vid), with the
first real frame frozen as a baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from ganvas.bench import cpu_name, timed
from ganvas.models import create_model
from ganvas.options import resolve_options


def speed(args: argparse.Namespace) -> None:
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        opt = resolve_options(
            {"model": "vid2vid", "gpu_ids": "-1", "name": "b", "checkpoints_dir": tmp, "dataroot": "-", "seed": 0,
             "ngf": args.ngf, "no_vgg": True, "max_frames_per_gpu": 1, "preprocess": "none"},
            "train",
        )  # fmt: skip
        model = create_model(opt, cpu, train=True)
        batch = model.example_batch(args.size, 1)
        chunk = {"n": 0}

        def step() -> None:
            batch["chunk"] = [chunk["n"]]  # consecutive chunks of one clip: the temporal Ds see their frames
            chunk["n"] += 1
            model.train_step(batch)

        train_s = timed(step, 2, args.steps, cpu)
        model.set_mode(False)
        frame = batch["A"][:, 0]
        index = {"n": 0}

        def infer() -> None:
            with torch.no_grad():
                model.translate({"A": frame, "stream": ["s"], "frame": [index["n"]]})
            index["n"] += 1

        model.opt = dataclasses.replace(model.opt, no_first_img=True)  # G makes the first frame too
        infer_s = timed(infer, 2, args.steps, cpu)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"vid2vid ngf {args.ngf} at {args.size} px: {train_s:.2f} s per training frame (G, D, D_T0, D_T1), "
          f"{1 / infer_s:.2f} frames/s at inference ({infer_s * 1000:.0f} ms per frame, torch eager)")  # fmt: skip


def compare(args: argparse.Namespace) -> None:
    from ganvas.demo import BUILTIN_SETS, demo_recipe
    from ganvas.infer import run_test
    from ganvas.models.pix2pix import DEMO_FLAGS as P2P_FLAGS
    from ganvas.train import train

    out = Path(args.out or tempfile.mkdtemp())
    data = BUILTIN_SETS["video"].write(out / "data", 0)
    common = {"dataroot": str(data), "checkpoints_dir": str(out / "ck"), "gpu_ids": "-1", "seed": 0,
              "num_threads": 0, "display_freq": 10**9, "print_freq": 10**9}  # fmt: skip
    runs = {
        "vid2vid": ({**demo_recipe("vid2vid").flags, "name": "v", **json.loads(args.flags)}, args.epochs),
        "pix2pix": (
            {
                "model": "pix2pix",
                **P2P_FLAGS,
                "ngf": 16,
                "ndf": 16,
                "batch_size": 1,
                "preprocess": "none",
                "no_flip": True,
                "name": "p",
            },
            args.pix2pix_epochs,
        ),
    }
    figures = {}
    for name, (flags, epochs) in runs.items():
        start = time.perf_counter()
        train(resolve_options({**common, **flags, "n_epochs": epochs, "n_epochs_decay": epochs}, "train"),
              show_progress=False)  # fmt: skip
        seconds = time.perf_counter() - start
        test = {"name": flags["name"], "checkpoints_dir": common["checkpoints_dir"], "dataroot": str(data),
                "gpu_ids": "-1", "backend": "torch", "results_dir": str(out / "results"),
                "dataset_mode": "temporal"}  # fmt: skip
        if name == "vid2vid":
            test["use_real_img"] = True
        result = run_test(resolve_options(test, "test"))
        figures[name] = {"train_seconds": round(seconds, 1), **result.temporal}
    frozen = BUILTIN_SETS["video"].baselines(data)["the first frame, frozen"]
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}; data {data}")
    print("| run | training | warping error (x1e-3) | L1 after the first frame |")
    print("|---|---|---|---|")
    for name, f in figures.items():
        print(f"| {name} | {f['train_seconds']:.0f} s | {f['warping_error'] * 1e3:.2f} | {f['l1_after_first']:.4f} |")
    print(f"| the first frame, frozen | - | - | {frozen['l1']:.4f} |")
    ratio = figures["vid2vid"]["warping_error"] / figures["pix2pix"]["warping_error"]
    print(f"vid2vid's warping error is {ratio:.2f} x pix2pix's")
    (out / "compare.json").write_text(json.dumps({**figures, "frozen": frozen}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--ngf", type=int, default=128)
    s.add_argument("--size", type=int, default=256)
    s.add_argument("--steps", type=int, default=3)
    c = sub.add_parser("compare")
    c.add_argument("--epochs", type=int, default=5, help="vid2vid's epochs at the full rate (as many decaying)")
    c.add_argument("--pix2pix_epochs", type=int, default=8, help="pix2pix's (as many decaying)")
    c.add_argument("--flags", default="{}", help="vid2vid flags over the demo's, as JSON: '{\"n_scales_temporal\": 1}'")
    c.add_argument("--out", type=Path)
    args = parser.parse_args()
    speed(args) if args.what == "speed" else compare(args)


if __name__ == "__main__":
    main()
