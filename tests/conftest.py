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


@pytest.fixture(scope="session")
def studio_runs(tmp_path_factory) -> Path:
    """Small trained runs the studio tests serve, in <root>/checkpoints: facades (pix2pix on colour label maps),
    streets (pix2pixHD with instance styles and objects), hints (a user-guided colouriser), cycle (CycleGAN)."""
    from ganvas.data.synthetic import write_color_set, write_street_set, write_unpaired_set
    from ganvas.models.pix2pixhd import encode_training_styles
    from ganvas.train import train

    root = tmp_path_factory.mktemp("studio")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    common = {"checkpoints_dir": str(root / "checkpoints"), "gpu_ids": "-1", "seed": 0, "num_threads": 0}
    common["save_latest_freq"] = 10**9
    runs = {
        "facades": {
            "dataroot": str(write_paired_set(root / "facades", n_train=48, n_test=2, size=32, seed=0)),
            "model": "pix2pix",
            "netG": "unet_32",
            "ngf": 16,
            "ndf": 16,
            "batch_size": 4,
            "load_size": 32,
            "crop_size": 32,
            "lr": 0.001,
            "n_epochs": 3,
            "n_epochs_decay": 2,
        },
        "streets": {
            "dataroot": str(write_street_set(root / "streets", n_train=8, n_test=2, size=(32, 64), seed=0)),
            "model": "pix2pixhd",
            "label_nc": 8,
            "ngf": 8,
            "ndf": 8,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "num_D": 1,
            "no_vgg_loss": True,
            "preprocess": "none",
            "instance_feat": True,
            "nef": 8,
            "n_downsample_E": 2,
            "n_clusters": 3,
            "n_epochs": 1,
            "n_epochs_decay": 0,
        },
        "hints": {
            "dataroot": str(write_color_set(root / "shapes", n_train=64, n_test=2, size=32, seed=0)),
            "model": "colorization_hints",
            "ngf": 8,
            "norm": "instance",
            "load_size": 32,
            "crop_size": 32,
            "batch_size": 4,
            "lr": 0.001,
            "n_epochs": 3,
            "n_epochs_decay": 2,
        },
        "cycle": {
            "dataroot": str(write_unpaired_set(root / "unpaired", n_train=4, n_test=2, size=32, seed=0)),
            "model": "cycle_gan",
            "netG": "resnet_2blocks",
            "ngf": 8,
            "ndf": 8,
            "load_size": 32,
            "crop_size": 32,
            "n_epochs": 1,
            "n_epochs_decay": 0,
        },
    }
    try:
        for name, flags in runs.items():
            train(resolve_options({**common, "name": name, **flags}, "train"), show_progress=False)
        encode_training_styles(resolve_options({**common, "name": "streets"}, "test"))
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="session")
def fid_weights(tmp_path_factory):
    """Random Inception weights in the layout of pt_inception-2015-12-05-6726825d.pth (no batch counters, as that
    file was saved before PyTorch had them); batch-norm statistics random too, so every layer is exercised."""
    from ganvas.nets.inception import FIDInception

    torch.manual_seed(0)
    net = FIDInception()
    state = {}
    for key, value in net.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            value = torch.rand_like(value) + 0.5
        elif key.endswith(("running_mean", "bn.bias")):
            value = torch.randn_like(value) * 0.1
        elif key.endswith("bn.weight"):
            value = torch.rand_like(value) + 0.5
        state[key] = value.clone()
    path = tmp_path_factory.mktemp("inception") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(state, path)
    return path


def import_reference(load, stand_ins: dict, package: str):
    """load() with `stand_ins` (modules for torchvision, which the reference packages import at the top but these
    tests do not use) in sys.modules, put back afterwards. A missing package skips, or fails in CI (GANVAS_CI=1)."""
    import os
    import sys

    saved = {k: v for k, v in sys.modules.items() if k == "torchvision" or k.startswith("torchvision.")}
    sys.modules.update(stand_ins)
    try:
        return load()
    except ImportError:
        fix = f"pip install --no-deps {package}"
        if os.environ.get("GANVAS_CI"):
            pytest.fail(f"{package} is missing: {fix} (.ci/run does)")
        pytest.skip(f"{package} is not installed ({fix})")
    finally:
        for name in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules.update(saved)
