from __future__ import annotations

import os

# Graph backends (auto, the CPU default) export each run's networks on first use, seconds per network:
# the suite runs torch unless a test asks for a backend (tests/test_backends.py, the model contract).
os.environ.setdefault("GANVAS_BACKEND", "torch")

from collections.abc import Iterator  # noqa: E402
from pathlib import Path

import pytest
import torch

from ganvas.data.synthetic import write_paired_set
from ganvas.options import resolve_options


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Train a module's small networks on one thread (two threads on a busy two-core machine wait for
    each other: ten times slower), and put the thread count back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def paired_root(tmp_path_factory) -> Path:
    """A small built-in paired set: 12 training and 4 test A|B images of 32 px."""
    return write_paired_set(tmp_path_factory.mktemp("synth") / "facades", n_train=12, n_test=4, size=32, seed=1)


@pytest.fixture
def tiny_pix2pix(tmp_path, paired_root):
    """Options factory for a tiny, fast pix2pix run on the small paired set."""

    def make(command: str = "train", **overrides):
        given = {
            "dataroot": str(paired_root),
            "name": "tiny",
            "model": "pix2pix",
            "checkpoints_dir": str(tmp_path / "ck"),
            "results_dir": str(tmp_path / "res"),
            "netG": "unet_32",
            "ngf": 8,
            "ndf": 8,
            "batch_size": 2,
            "load_size": 36,
            "crop_size": 32,
            "n_epochs": 1,
            "n_epochs_decay": 1,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 3,
            "print_freq": 2,
            "display_freq": 8,
            "save_latest_freq": 10**9,
        }
        given.update(overrides)
        if command != "train":
            given = {k: v for k, v in overrides.items()} | {
                "name": "tiny",
                "checkpoints_dir": str(tmp_path / "ck"),
                "results_dir": str(tmp_path / "res"),
            }
        return resolve_options(given, command)

    return make
