"""CUT, FastCUT and CycleGAN against the original code bases' behaviour, stated here without their code.

The step-by-step comparison (same initial weights, batches, patch ids and flips; float64) found
ganvas's CUT/FastCUT and CycleGAN steps equal to taesungp/contrastive-unpaired-translation's CUTModel and
junyanz/pytorch-CycleGAN-and-pix2pix's CycleGANModel to 1e-12; these tests pin what differed besides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganvas.models  # noqa: F401  (registers the models the data set asks about)
from ganvas.data import make_dataset, read_image
from ganvas.options import resolve_options


def write_noise(folder: Path, count: int, size: int, seed: int) -> list[Path]:
    """count noise images (no symmetry, so any zoom or crop shows)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def unpaired_options(root: Path, model: str, **extra):
    given = {
        "dataroot": str(root),
        "model": model,
        "gpu_ids": "-1",
        "load_size": 40,
        "crop_size": 32,
        "no_flip": True,
        "n_epochs": 2,
        "n_epochs_decay": 2,
        "seed": 0,
        **extra,
    }
    return resolve_options(given, "train")


@pytest.mark.parametrize("model, extra", [("cut", {}), ("cut", {"CUT_mode": "FastCUT"})])
def test_cut_trains_its_decay_epochs_on_whole_images_at_crop_size(tmp_path, model, extra):
    # CUT's UnalignedDataset: is_finetuning = isTrain and current_epoch > n_epochs, and then
    # load_size = crop_size. With resize_and_crop a 32 px image at --crop_size 32 is then itself (the
    # resize and the crop change nothing), while the n_epochs epochs zoom it to 40 px and crop 32.
    images = write_noise(tmp_path / "trainA", 1, 32, seed=1)
    write_noise(tmp_path / "trainB", 1, 32, seed=2)
    dataset = make_dataset(unpaired_options(tmp_path, model, **extra), train=True)
    whole = read_image(images[0], 3) * 2 - 1
    for epoch in (1, 2):  # epochs at the full rate: zoomed crops
        dataset.set_epoch(epoch)
        assert not torch.allclose(dataset[0]["A"], whole, atol=1e-3)
    for epoch in (3, 4):  # the decay epochs
        dataset.set_epoch(epoch)
        assert torch.allclose(dataset[0]["A"], whole, atol=1e-6)
        assert dataset[0]["B"].shape == (3, 32, 32)


def test_cycle_gan_and_test_time_keep_load_size_in_every_epoch(tmp_path):
    # junyanz's CycleGAN data set has no such rule, and test time never trains.
    images = write_noise(tmp_path / "trainA", 1, 32, seed=1)
    write_noise(tmp_path / "trainB", 1, 32, seed=2)
    whole = read_image(images[0], 3) * 2 - 1
    cycle_gan = make_dataset(unpaired_options(tmp_path, "cycle_gan"), train=True)
    cut_test = make_dataset(unpaired_options(tmp_path, "cut", preprocess="resize"), train=False)
    for epoch in (1, 3, 4):
        cycle_gan.set_epoch(epoch)
        cut_test.set_epoch(epoch)
        assert not torch.allclose(cycle_gan[0]["A"], whole, atol=1e-3)
        assert cut_test[0]["A"].shape == (3, 40, 40)
