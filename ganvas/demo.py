"""`ganvas demo`: the built-in paired data set, a few CPU minutes of pix2pix, a test page and a baseline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas.checkpoint import atomic_write_text
from ganvas.data.io import find_images, read_image
from ganvas.data.synthetic import write_paired_set
from ganvas.infer import run_test
from ganvas.metrics import image_metrics
from ganvas.options import resolve_options
from ganvas.train import train

DEMO_SIZE = 64
# A U-Net as deep as the images allow (64 px -> 6 levels) at half the reference widths: the
# paper's recipe, scaled to a 2-core CPU.
DEMO_FLAGS = {
    "model": "pix2pix",
    "netG": "unet_64",
    "ngf": 32,
    "ndf": 32,
    "batch_size": 4,
    "load_size": DEMO_SIZE,
    "crop_size": DEMO_SIZE,
    "num_threads": 0,
    "print_freq": 40,
    "display_freq": 400,
    "save_latest_freq": 100_000,
    "save_epoch_freq": 1000,
}
DEMO_EPOCHS = 8


def mean_image_baseline(dataroot: Path, test_files: list[Path]) -> dict[str, float]:
    """Metrics of the trivial predictor that outputs the mean training target for every input."""
    half = DEMO_SIZE
    train_b = [read_image(f, 3)[:, :, half:] for f in find_images(dataroot / "train")]
    mean = torch.stack(train_b).mean(0) * 2 - 1
    scores = [image_metrics(mean, read_image(f, 3)[:, :, half:] * 2 - 1) for f in test_files]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr", "ssim", "l1")}


def run_demo(
    out: Path,
    epochs: int | None = None,
    seed: int = 0,
    gpu_ids: str = "-1",
    show_progress: bool = True,
    amp: str = "off",
) -> dict[str, Any]:
    """Write the data, train (with --amp `amp`), test in fp32 and compare with the mean-image baseline.

    Returns the summary: test metrics, the baseline's, the page, and the training's wall seconds.
    """
    out = Path(out)
    dataroot = write_paired_set(out / "data", n_train=200, n_test=20, size=DEMO_SIZE, seed=seed)
    epochs = DEMO_EPOCHS if epochs is None else epochs
    common = {
        "name": "demo_pix2pix",
        "checkpoints_dir": str(out / "checkpoints"),
        "results_dir": str(out / "results"),
        "gpu_ids": gpu_ids,
        "seed": seed,
    }
    # A demo run starts afresh each time (--overwrite): it is a showcase, not a run to resume.
    opt = resolve_options(
        {
            **common,
            **DEMO_FLAGS,
            "dataroot": str(dataroot),
            "n_epochs": epochs,
            "overwrite": True,
            "n_epochs_decay": epochs,
            "amp": amp,
        },
        "train",
    )
    started = time.perf_counter()
    train(opt, show_progress=show_progress)
    train_seconds = time.perf_counter() - started
    result = run_test(resolve_options(common, "test"))
    baseline = mean_image_baseline(dataroot, find_images(dataroot / "test"))
    summary = {
        **result.metrics,
        **{f"baseline_{k}": v for k, v in baseline.items()},
        "page": str(result.page),
        "count": result.count,
        "train_seconds": train_seconds,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary
