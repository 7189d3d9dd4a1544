"""Does pix2pixHD use its instance maps? The same small run with and without --no_instance, per seed.

    python benchmarks/bench_instance_maps.py [--seeds 0 1 2] [--n_downsample_global 1] [--epochs 8]
                                             [--no_seams] [--out DIR]

Writes the built-in street set with touching objects (`write_street_set(touching=True)`: cars parked
bumper to bumper and rows of trees, a dark seam where two objects of one class touch, which only the
instance map locates), 32 training and 8 test scenes of 32 x 64 px, data seed 0. Trains pix2pixHD
(ngf = ndf = 16, one global generator with 2 blocks, one discriminator scale, no VGG loss, batch 1,
--epochs constant and --epochs / 2 decay epochs) once with instance maps and once with --no_instance,
same seed and data order, tests both and prints PSNR on the seams (pixels next to another instance of
the same class, tests/test_instance_maps.py's measure) and over whole images. --no_seams re-renders the
photos with only the default scenes' darkened outline (x0.7) between touching objects.
"""

from __future__ import annotations

import argparse
import math
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganvas.data import synthetic
from ganvas.data.io import find_images, read_image, read_label_map, save_uint8
from ganvas.infer import run_test
from ganvas.options import resolve_options
from ganvas.train import train

SIZE = (32, 64)
RUNS = ("instance", "no_instance")


def write_data(root: Path, seams: bool) -> Path:
    """32 training and 8 test touching street scenes (seed 0); without seams, photos with outlines only."""
    root = synthetic.write_street_set(root, n_train=32, n_test=8, size=SIZE, seed=0, touching=True)
    if not seams:
        for split, count in (("train", 32), ("test", 8)):
            for index, name in enumerate(synthetic._file_names(count)):
                rng = np.random.default_rng([0, synthetic._STREET_STREAM, synthetic._SPLIT_STREAMS[split], index])
                scene = synthetic.street_scene(rng, SIZE, touching=True)
                save_uint8(synthetic.render_street(*scene, rng, seams=False), root / f"{split}_img" / name)
    return root


def seam_and_overall_psnr(images: Path, data: Path) -> tuple[float, float]:
    """PSNR (dB, [0, 1] images) of the test fakes on the touching boundaries and overall, errors pooled."""
    band_error = band_count = all_error = all_count = 0.0
    for path in find_images(data / "test_img"):
        real, fake = read_image(path, 3), read_image(images / f"{path.stem}_fake_B.png", 3)
        labels = read_label_map(data / "test_label" / path.name)
        instances = read_label_map(data / "test_inst" / path.name)
        error = (fake - real) ** 2
        band = torch.from_numpy(synthetic.touching_boundaries(labels, instances))
        band_error, band_count = band_error + float(error[:, band].sum()), band_count + 3 * int(band.sum())
        all_error, all_count = all_error + float(error.sum()), all_count + error.numel()
    return 10 * math.log10(band_count / band_error), 10 * math.log10(all_count / all_error)


def train_and_score(out: Path, data: Path, args: argparse.Namespace, seed: int, no_instance: bool) -> tuple:
    """(seam PSNR, overall PSNR, training seconds) of one run."""
    common = {
        "name": f"seed{seed}_{'no_instance' if no_instance else 'instance'}",
        "checkpoints_dir": str(out / "checkpoints"),
        "results_dir": str(out / "results"),
        "gpu_ids": "-1",
    }
    given = {
        **common,
        "dataroot": str(data),
        "model": "pix2pixhd",
        "label_nc": len(synthetic.STREET_CLASSES),
        "ngf": 16,
        "ndf": 16,
        "n_downsample_global": args.n_downsample_global,
        "n_blocks_global": 2,
        "num_D": 1,
        "no_vgg_loss": True,
        "preprocess": "none",
        "n_epochs": args.epochs,
        "n_epochs_decay": args.epochs // 2,
        "num_threads": 0,
        "seed": seed,
        "no_instance": no_instance,
    }
    start = time.perf_counter()
    train(resolve_options(given, "train"), show_progress=False)
    seconds = time.perf_counter() - start
    result = run_test(resolve_options(common, "test"))
    return (*seam_and_overall_psnr(result.page.parent / "images", data), seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n_downsample_global", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=8, help="constant-rate epochs of 32 steps; half as many decay")
    parser.add_argument("--no_seams", action="store_true", help="photos with the default x0.7 outlines only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (more than the free cores is slower)")
    parser.add_argument("--out", type=Path, help="where to keep the runs (a temporary folder by default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} threads, "
        f"{32 * (args.epochs + args.epochs // 2)} steps, n_downsample_global {args.n_downsample_global}, "
        f"{'outlines only' if args.no_seams else 'seams'}"
    )
    print(f"{'seed':<5} {'run':<12} {'seams dB':>9} {'overall dB':>11} {'train s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        data = write_data(out / "data", seams=not args.no_seams)
        for seed in args.seeds:
            rows = {name: train_and_score(out, data, args, seed, name == "no_instance") for name in RUNS}
            for name, (seams, overall, seconds) in rows.items():
                print(f"{seed:<5} {name:<12} {seams:>9.2f} {overall:>11.2f} {seconds:>8.1f}")
            gain = [a - b for a, b in zip(rows["instance"][:2], rows["no_instance"][:2])]
            print(f"{seed:<5} {'difference':<12} {gain[0]:>+9.2f} {gain[1]:>+11.2f}")


if __name__ == "__main__":
    main()
