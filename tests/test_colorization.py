"""Automatic colourisation (--model colorization): Lab as scikit-image computes it, the original repository's
data set and command line, RGB pages for every image, and photos of any size and kind colourised at full
resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

import ganvas
from ganvas import color
from ganvas.cli import main
from ganvas.data import make_dataset
from ganvas.data.io import tensor_to_uint8
from ganvas.data.synthetic import write_image_folder
from ganvas.errors import OptionsError
from ganvas.infer import run_test
from ganvas.models import create_model
from ganvas.nets import make_generator
from ganvas.options import resolve_options
from ganvas.train import train


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_lab_matches_scikit_image_both_ways_on_random_and_extreme_colours() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((40, 50, 3))
    rgb[0, :6] = [[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0.01, 0.02, 0.03]]
    lab = color.rgb_to_lab(torch.from_numpy(rgb.transpose(2, 0, 1)[None]))[0].numpy().transpose(1, 2, 0)
    assert np.abs(lab - skcolor.rgb2lab(rgb)).max() < 1e-4
    wild = np.stack([rng.uniform(0, 100, (30, 30)), rng.uniform(-110, 110, (30, 30)), rng.uniform(-110, 110, (30, 30))])
    back = color.lab_to_rgb(torch.from_numpy(wild[None]))[0].numpy().transpose(1, 2, 0)
    with pytest.warns(UserWarning):  # scikit-image warns about the colours it clips
        expected = skcolor.lab2rgb(wild.transpose(1, 2, 0))
    assert np.abs(back - expected).max() < 1e-4
    light, ab = color.encode(torch.from_numpy(rgb.transpose(2, 0, 1)[None]).float() * 2 - 1)
    assert torch.allclose(
        color.decode(light, ab), torch.from_numpy(rgb.transpose(2, 0, 1)[None]).float() * 2 - 1, atol=1e-4
    )


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """The original layout: <dataroot>/train/ and <dataroot>/test/ of colour photos (facades, 64 px)."""
    root = tmp_path_factory.mktemp("colorization")
    write_image_folder(root / "train", 200, 64, seed=0)
    write_image_folder(root / "test", 8, 64, seed=1)
    return root


def test_a_grey_file_gives_its_lab_lightness_and_no_colour(tmp_path) -> None:
    (tmp_path / "train").mkdir()
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(tmp_path / "train" / "grey.png")
    opt = resolve_options(
        {"model": "colorization", "dataroot": str(tmp_path), "crop_size": 32, "load_size": 32}, "train"
    )
    item = make_dataset(opt, train=False)[0]
    lightness = skcolor.rgb2lab(np.full((1, 1, 3), 128 / 255))[0, 0, 0]  # 53.6, not 128 / 255 * 100 = 50.2
    assert item["A"].shape == (1, 32, 32) and item["B"].shape == (2, 32, 32)
    assert torch.allclose((item["A"] + 1) * 50, torch.full((1, 32, 32), float(lightness)), atol=1e-3)
    assert float(item["B"].abs().max()) < 1e-4


def test_wrong_channels_or_data_layout_are_refused_in_one_sentence(photos) -> None:
    cpu = torch.device("cpu")
    given = {"model": "colorization", "dataroot": str(photos), "gpu_ids": "-1"}
    with pytest.raises(OptionsError, match="drop --input_nc 3"):
        create_model(resolve_options({**given, "input_nc": 3}, "train"), cpu, train=True)
    with pytest.raises(OptionsError, match="trains on --dataset_mode colorization"):
        create_model(resolve_options({**given, "dataset_mode": "aligned"}, "train"), cpu, train=True)


@pytest.fixture(scope="module")
def colourised(photos, tmp_path_factory, one_torch_thread):
    """A short run from the original command line (plus CPU sizes), and its test results."""
    ck = tmp_path_factory.mktemp("ck")
    argv = ["train", "--model", "colorization", "--dataroot", str(photos), "--name", "col", "--checkpoints_dir",
            str(ck), "--gpu_ids", "-1", "--netG", "unet_64", "--ngf", "16", "--ndf", "16", "--load_size", "64",
            "--crop_size", "64", "--batch_size", "4", "--n_epochs", "2", "--n_epochs_decay", "2",
            "--num_threads", "0", "--seed", "1", "--display_freq", "400"]  # fmt: skip
    assert main(argv) == 0
    opt = resolve_options(
        {"name": "col", "checkpoints_dir": str(ck), "dataroot": str(photos), "results_dir": str(ck / "res")}, "test"
    )
    return opt, run_test(opt)


def test_the_original_command_line_trains_a_colouriser_that_beats_the_grey_image(colourised) -> None:
    opt, result = colourised
    assert (opt.dataset_mode, opt.input_nc, opt.output_nc, opt.netD) == ("colorization", 1, 2, "basic")
    images = result.page.parent / "images"
    grey, model = [], []
    for real in sorted(images.glob("*_real_B.png")):
        truth = np.asarray(Image.open(real))
        assert truth.shape == (64, 64, 3)  # RGB, every image of the set
        grey.append(psnr(np.asarray(Image.open(str(real).replace("real_B", "real_A"))), truth))
        model.append(psnr(np.asarray(Image.open(str(real).replace("real_B", "fake_B"))), truth))
    assert len(model) == 8
    assert np.mean(model) > np.mean(grey) + 3, (np.mean(model), np.mean(grey))
    assert result.metrics["psnr"] == pytest.approx(np.mean(model), abs=0.1)
    metrics = json.loads((result.page.parent / "metrics.json").read_text())
    assert metrics["by_output"]["fake_B"]["target"] == "real_B"


def test_training_visuals_are_rgb_for_every_image_of_a_batch(photos) -> None:
    opt = resolve_options(
        {"model": "colorization", "dataroot": str(photos), "netG": "unet_32", "ngf": 4, "ndf": 4, "crop_size": 32,
         "load_size": 32, "gpu_ids": "-1", "seed": 0}, "train",
    )  # fmt: skip
    model = create_model(opt, torch.device("cpu"), train=True)
    dataset = make_dataset(opt, train=True)
    batch = {
        "A": torch.stack([dataset[i]["A"] for i in range(3)]),
        "B": torch.stack([dataset[i]["B"] for i in range(3)]),
    }
    model.train_step(batch)
    visuals = model.current_visuals()
    assert {k: tuple(v.shape) for k, v in visuals.items()} == {
        k: (3, 3, 32, 32) for k in ("real_A", "fake_B", "real_B")
    }
    expected = color.decode(batch["A"], batch["B"])
    assert torch.allclose(visuals["real_B"], expected, atol=1e-5)  # the real photo again, every image


def test_a_large_photo_is_colourised_at_full_resolution_with_its_own_lightness(colourised, tmp_path) -> None:
    opt, _ = colourised
    rng = np.random.default_rng(3)
    photo = (rng.random((150, 230, 3)) * 255).astype(np.uint8)  # fine detail everywhere
    Image.fromarray(photo).save(tmp_path / "photo.png")
    Image.fromarray(photo).convert("L").save(tmp_path / "grey.png")
    code = main(["colorize", "--name", "col", "--checkpoints_dir", opt.checkpoints_dir, "--gpu_ids", "-1",
                 str(tmp_path / "photo.png"), str(tmp_path / "grey.png"), "--out", str(tmp_path / "out")])  # fmt: skip
    assert code == 0
    out = np.asarray(Image.open(tmp_path / "out" / "photo.png"))
    assert out.shape == (150, 230, 3)
    lightness_in = skcolor.rgb2lab(photo / 255)[..., 0]
    lightness_out = skcolor.rgb2lab(out / 255)[..., 0]
    assert np.abs(lightness_out - lightness_in).mean() < 1.0  # the input's own L, pixel by pixel
    api = ganvas.load(Path(opt.checkpoints_dir) / "col").translate(str(tmp_path / "photo.png"))
    assert np.abs(np.asarray(api).astype(int) - out.astype(int)).max() <= 1
    grey_out = np.asarray(Image.open(tmp_path / "out" / "grey.png"))
    assert grey_out.shape == (150, 230, 3) and grey_out.std(axis=2).mean() > 1  # a grey file comes back coloured


def test_colorize_refuses_a_run_that_does_not_colourise(tiny_pix2pix, tmp_path, capsys) -> None:
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    opt = tiny_pix2pix("test")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "x.png")
    code = main(["colorize", "--name", opt.name, "--checkpoints_dir", opt.checkpoints_dir, str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "does not colourise" in err[0]


def test_a_bare_generator_file_of_the_original_colouriser_takes_rgb_files(tmp_path) -> None:
    net = make_generator("unet_32", 1, 2, 8)
    torch.save(net.state_dict(), tmp_path / "latest_net_G.pth")
    translator = ganvas.load(tmp_path / "latest_net_G.pth", backend="torch")
    photo = (np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)
    out = translator.translate(photo)
    assert translator.image_space == "lab_l" and out.shape == (40, 50, 3)
    light = color.encode(torch.from_numpy(photo.transpose(2, 0, 1)[None]).float() / 127.5 - 1)[0]
    with torch.no_grad():
        expected = color.decode(
            light, net.eval()(torch.nn.functional.pad(light, (0, 14, 0, 24), mode="reflect"))[..., :40, :50]
        )
    assert np.abs(out.astype(int) - tensor_to_uint8(expected[0]).astype(int)).max() <= 1
