"""Runs written before the model contract (tests/fixtures/old_runs, made by commit 834b52b) still test, translate,
export and resume, and give what the old code gave."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ganvas.cli import main
from ganvas.infer import run_test
from ganvas.options import resolve_options

FIXTURE = Path(__file__).parent / "fixtures" / "old_runs"


@pytest.fixture
def old(tmp_path) -> Path:
    """A copy of the old runs and their data (tests write into run folders)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "old_runs"))


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def test_the_old_option_files_hold_options_of_every_model(old) -> None:
    # What makes these runs a real test: the old code saved the flat option set, CUT's and pix2pixHD's included.
    saved = yaml.safe_load((old / "checkpoints" / "pix2pix_old" / "opt.yaml").read_text())
    assert {"lambda_NCE", "label_nc", "pool_size", "lambda_L1"} <= set(saved)
    assert not list((old / "checkpoints").rglob("*.json"))  # and wrote no network descriptions


def test_an_old_pix2pix_run_translates_as_the_old_code_did(old, tmp_path) -> None:
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                "--name",
                "pix2pix_old",
                "--checkpoints_dir",
                str(old / "checkpoints"),
                "--gpu_ids",
                "-1",
                "--eval",
                str(old / "data" / "facades" / "test" / "0000.png"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(pixels(out / "0000.png"), pixels(old / "expected" / "pix2pix_old" / "0000.png"))


def test_an_old_pix2pixhd_style_run_tests_as_the_old_code_did(old, tmp_path) -> None:
    opt = resolve_options(
        {
            "name": "pix2pixhd_old",
            "checkpoints_dir": str(old / "checkpoints"),
            "gpu_ids": "-1",
            "eval": True,
            "dataroot": str(old / "data" / "streets"),
            "results_dir": str(tmp_path / "res"),
        },
        "test",
    )
    assert opt.instance_feat and opt.label_nc == 8  # its own options came back from the old file
    result = run_test(opt)
    made = result.page.parent / "images" / "0000_fake_B.png"
    np.testing.assert_array_equal(pixels(made), pixels(old / "expected" / "pix2pixhd_old" / "0000_fake_B.png"))


def test_an_old_run_exports_and_the_graph_matches_the_run(old, tmp_path) -> None:
    from ganvas.api import load

    out = tmp_path / "g.pt"
    assert (
        main(
            [
                "export",
                "--name",
                "pix2pix_old",
                "--checkpoints_dir",
                str(old / "checkpoints"),
                "--format",
                "torchscript",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    graph = torch.jit.load(str(out))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    expected = load(old / "checkpoints" / "pix2pix_old", device="cpu", eval=True).translate(x)
    torch.testing.assert_close(graph(x), expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name, data", [("pix2pix_old", "facades"), ("pix2pixhd_old", "streets")])
def test_an_old_run_resumes_and_then_writes_network_descriptions(old, name, data) -> None:
    run = old / "checkpoints" / name
    before = torch.load(run / "latest_net_G.pth", weights_only=True)
    log_rows = len((run / "loss_log.csv").read_text().splitlines())
    argv = [
        "train",
        "--continue_train",
        "--name",
        name,
        "--checkpoints_dir",
        str(old / "checkpoints"),
        "--dataroot",
        str(old / "data" / data),
        "--gpu_ids",
        "-1",
        "--num_threads",
        "0",
        "--n_epochs_decay",
        "2",
    ]
    assert main(argv) == 0
    after = torch.load(run / "latest_net_G.pth", weights_only=True)
    assert before.keys() == after.keys()  # the same network, in the original key names
    assert any(not torch.equal(before[k], after[k]) for k in before)  # and it trained on
    assert len((run / "loss_log.csv").read_text().splitlines()) > log_rows
    saved = yaml.safe_load((run / "opt.yaml").read_text())
    assert saved["n_epochs_decay"] == 2 and "lambda_NCE" not in saved  # now only the model's own options
    for pth in run.glob("latest_net_*.pth"):
        assert pth.with_suffix(".json").is_file(), f"{pth.name} has no description beside it"


def test_the_old_files_load_by_their_shapes_without_a_description(old) -> None:
    from ganvas.interop import load_network

    net = load_network(old / "checkpoints" / "pix2pix_old" / "latest_net_G.pth")
    assert net.ganvas_arch["family"] == "unet" and net.ganvas_arch["input_nc"] == 3
