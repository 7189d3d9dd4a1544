"""Every file ganvas writes, images included, gets the usual permissions: 0o666 less the umask."""

from __future__ import annotations

import os
import stat

import pytest

from ganvas.cli import main

NETS = ["--netG", "unet_32", "--ngf", "8", "--ndf", "8", "--load_size", "32", "--crop_size", "32"]
NETS += ["--gpu_ids", "-1", "--seed", "1", "--num_threads", "0"]


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_images_checkpoints_and_pages_are_0644_under_umask_022(tmp_path, umask_022, capsys):
    data = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(data), "--n_train", "2", "--n_test", "1", "--size", "32"]) == 0
    run = ["--name", "modes", "--checkpoints_dir", str(tmp_path / "ck")]
    assert main(["train", "--dataroot", str(data), *run, *NETS, "--n_epochs", "1", "--n_epochs_decay", "0"]) == 0
    photo = next((data / "test").glob("*.png"))
    assert main(["translate", *run, str(photo), "--out", str(tmp_path / "out")]) == 0
    assert main(["test", *run, "--results_dir", str(tmp_path / "res")]) == 0
    written = {
        "a synth image": photo,
        "a translate output": tmp_path / "out" / f"{photo.stem}.png",
        "a checkpoint": tmp_path / "ck/modes/latest_net_G.pth",
        "the run state": tmp_path / "ck/modes/latest_state.pt",
        "a training visual": next((tmp_path / "ck/modes/web/images").glob("*.png")),
        "a results image": next((tmp_path / "res/modes").glob("*/images/*.png")),
        "a results page": next((tmp_path / "res/modes").glob("*/index.html")),
    }
    modes = {what: oct(mode(path)) for what, path in written.items()}
    assert modes == {what: oct(0o644) for what in written}
