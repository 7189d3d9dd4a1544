"""User-guided colourisation (--model colorization_hints): the authors' hint simulation and encoding, a
user's hints and colour suggestions, tests per hint count, resume, and hints that colour whole shapes."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

import ganvas
from ganvas import color, hints
from ganvas.cli import main
from ganvas.data.synthetic import color_shapes, write_color_set
from ganvas.errors import DataError, OptionsError
from ganvas.infer import run_test
from ganvas.models.colorization_hints import ColorizationHintsModel
from ganvas.options import resolve_options
from ganvas.train import train


def test_the_simulated_hints_follow_the_papers_statistics_and_take_their_patchs_mean_colour() -> None:
    ab = torch.rand(2, 256, 256) * 2 - 1
    counts = []
    for i in range(3000):
        hint, mask = hints.simulate(ab, np.random.default_rng(i), 0.125, (1,), "uniform")
        counts.append(int(mask.sum()))  # 1-pixel patches on 65536 pixels: overlaps are rare
    counts = np.array(counts)
    # Geometric with p = 0.125: mean (1 - p) / p = 7 (standard error 0.14 here), no hint 12.5% (0.6%).
    assert abs(counts.mean() - 7) < 0.6 and abs((counts == 0).mean() - 0.125) < 0.025
    assert (hints.simulate(ab, np.random.default_rng(0), 1.0, (3,))[1] == 0).all()  # p = 1: never a hint
    hint, mask = hints.simulate(ab, np.random.default_rng(5), 0.125, (5,), count=1)
    rows, cols = torch.nonzero(mask[0], as_tuple=True)
    patch = ab[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert mask.sum() == 25 and torch.allclose(hint[:, rows[0], cols[0]], patch.mean(dim=(1, 2)), atol=1e-6)
    again = hints.simulate(ab, np.random.default_rng(5), 0.125, (5,), count=1)
    assert torch.equal(again[0], hint) and torch.equal(again[1], mask)


def test_ab_is_quantised_into_529_classes_whose_centres_come_back_to_their_class() -> None:
    assert hints.bins(110, 10) ** 2 == 529
    centres = hints.bin_centres(110, 10)
    index = hints.quantise((centres / hints.AB_NORM).T.reshape(1, 2, 23, 23), 110, 10)
    assert torch.equal(index.flatten(), torch.arange(529))


def test_the_network_input_is_encoded_as_the_authors_code() -> None:
    light = torch.tensor([[[[-1.0, 0.0, 1.0]]]])  # L / 50 - 1 for L = 0, 50, 100
    x = hints.network_input(light, torch.zeros(1, 2, 1, 3), torch.tensor([[[[0.0, 1.0, 0.0]]]]))
    assert torch.allclose(x[0, 0, 0], torch.tensor([-0.5, 0.0, 0.5])) and torch.allclose(
        x[0, 3, 0], torch.tensor([-0.5, 0.5, -0.5])
    )


@pytest.mark.parametrize(
    "points, message",
    [
        ([(40, 5, (255, 0, 0))], r"point 0 of the hints at \(40, 5\) is outside the 32 x 24 image"),
        ([(1, 1, (255, 0, 0)), (3, 3, "red")], "point 1 of the hints has colour 'red'; give three values"),
        ([(1, 1, (255, 0, 300))], "give three values from 0 to 255"),
        ([(1, 1, (255, 0, 0), 0)], "patch 0; give a side from 1 to 64 pixels"),
        ([{"x": 1, "rgb": [1, 2, 3]}], "point 0 of the hints is"),
        ("1,2", "must be a list of points"),
    ],
)
def test_bad_hints_are_refused_in_one_sentence(points, message) -> None:
    with pytest.raises(DataError, match=message):
        hints.parse_hints(points, 32, 24)


def test_a_colour_outside_the_gamut_at_its_pixels_lightness_is_snapped_and_said() -> None:
    light = torch.full((1, 1, 8, 8), -0.8)  # L = 10: a dark pixel cannot hold a saturated yellow
    hint, mask, notes = hints.hint_maps(hints.parse_hints([(2, 2, (255, 255, 0), 3)], 8, 8), light, 8, 8)
    assert len(notes) == 1 and "(255, 255, 0)" in notes[0] and "lightness 10" in notes[0]
    assert mask.sum() == 9
    rgb = hints._unclipped_rgb(torch.cat([torch.tensor([[10.0]]), hint[0, :, 2, 2][None] * hints.AB_NORM], 1))
    assert float(rgb.min()) > -2e-3 and float(rgb.max()) < 1 + 2e-3


def colour_run(
    tmp_path: Path, steps_epochs: int = 1, size: int = 32, n_train: int = 16, **flags
) -> ganvas.options.Options:
    root = write_color_set(tmp_path / "shapes", n_train=n_train, n_test=4 if size == 32 else 12, size=size, seed=0)
    given = {
        "model": "colorization_hints",
        "dataroot": str(root),
        "name": "h",
        "checkpoints_dir": str(tmp_path / "ck"),
        "results_dir": str(tmp_path / "res"),
        "gpu_ids": "-1",
        "ngf": 4,
        "load_size": size,
        "crop_size": size,
        "batch_size": 4,
        "n_epochs": steps_epochs,
        "n_epochs_decay": steps_epochs,
        "num_threads": 0,
        "seed": 2,
        "save_latest_freq": 10**9,
        **flags,
    }
    return resolve_options(given, "train")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_torch_thread):
    # Instance norm: a few steps leave batch norm's running statistics near their start, which in eval mode
    # would scale this tiny network's signal away.
    opt = colour_run(tmp_path_factory.mktemp("hints"), norm="instance")
    train(opt, show_progress=False)
    return opt


def test_test_writes_a_column_and_metrics_per_hint_count(tiny_run) -> None:
    opt = resolve_options(
        {"name": "h", "checkpoints_dir": tiny_run.checkpoints_dir, "results_dir": tiny_run.results_dir,
         "num_hints": "0,3,30", "dataroot": tiny_run.dataroot}, "test",
    )  # fmt: skip
    result = run_test(opt)
    metrics = json.loads((result.page.parent / "metrics.json").read_text())
    assert set(metrics["by_output"]) == {"fake_B_0", "fake_B_3", "fake_B_30"}
    names = {p.name.split("_", 1)[1] for p in (result.page.parent / "images").glob("0000_*.png")}
    assert names == {"real_A.png", "hints_0.png", "fake_B_0.png", "hints_3.png", "fake_B_3.png", "hints_30.png",
                     "fake_B_30.png", "real_B.png"}  # fmt: skip
    assert "hints simulated from the real photo" in result.page.read_text()


def test_the_api_takes_hints_and_suggests_distinct_colours_with_their_probabilities(tiny_run) -> None:
    translator = ganvas.load(Path(tiny_run.checkpoints_dir) / "h", backend="torch")
    photo = color_shapes(np.random.default_rng(7), 32)[0]
    assert translator.translate(photo).shape == (32, 32, 3)
    light = color.encode(torch.from_numpy(photo.transpose(2, 0, 1)[None]).float() / 127.5 - 1)[0]
    plain = translator.translate(light)  # tensors are the model's input, L / 50 - 1
    hinted = translator.translate(light, hints=[(16, 16, (250, 20, 20), 4)])
    assert plain.shape == hinted.shape == (1, 3, 32, 32) and float((plain - hinted).abs().max()) > 1e-4
    suggestions = translator.suggest(photo, 16, 16, k=5)
    assert 1 <= len(suggestions) <= 5 and len({rgb for rgb, _ in suggestions}) == len(suggestions)
    probabilities = [p for _, p in suggestions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    with pytest.raises(DataError, match="outside the 32 x 32 image"):
        translator.suggest(photo, 40, 3)


def test_hints_go_only_to_user_guided_colourisers(tiny_pix2pix, tmp_path) -> None:
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    translator = ganvas.load(tiny_pix2pix("test").run_dir)
    with pytest.raises(OptionsError, match="takes no colour hints"):
        translator.translate(np.zeros((32, 32, 3), np.uint8), hints=[(1, 1, (1, 2, 3))])
    with pytest.raises(OptionsError, match="suggests no colours"):
        translator.suggest(np.zeros((32, 32, 3), np.uint8), 1, 1)


def test_colorize_reads_a_hints_file_and_names_a_bad_one(tiny_run, tmp_path, capsys) -> None:
    photo = color_shapes(np.random.default_rng(3), 32)[0]
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "p.png")
    (tmp_path / "hints.json").write_text(json.dumps({"points": [{"x": 10, "y": 12, "rgb": [30, 200, 40], "patch": 3}]}))
    base = ["colorize", "--name", "h", "--checkpoints_dir", tiny_run.checkpoints_dir, "--gpu_ids", "-1",
            str(tmp_path / "p.png")]  # fmt: skip
    assert main([*base, "--hints", str(tmp_path / "hints.json"), "--out", str(tmp_path / "o")]) == 0
    assert np.asarray(Image.open(tmp_path / "o" / "p.png")).shape == (32, 32, 3)
    (tmp_path / "bad.json").write_text(json.dumps({"points": [{"x": 99, "y": 1, "rgb": [1, 2, 3]}]}))
    capsys.readouterr()
    assert main([*base, "--hints", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json at (99, 1) is outside the 32 x 32 image" in err[0]


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch, one_torch_thread) -> None:
    straight = train(colour_run(tmp_path / "a"), show_progress=False)
    original = ColorizationHintsModel.train_step
    calls = {"n": 0}

    def interrupt_after_three(self, batch):
        losses = original(self, batch)
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(ColorizationHintsModel, "train_step", interrupt_after_three)
    first = train(colour_run(tmp_path / "b"), show_progress=False)
    assert first.interrupted
    monkeypatch.setattr(ColorizationHintsModel, "train_step", original)
    second = train(colour_run(tmp_path / "b", continue_train=True), show_progress=False)
    assert second.progress.steps == straight.progress.steps
    want = torch.load(straight.run_dir / "latest_net_G.pth", weights_only=True)
    got = torch.load(second.run_dir / "latest_net_G.pth", weights_only=True)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_training_visuals_show_the_hints_and_rgb_for_every_image(tiny_run) -> None:
    opt = colour_run(Path(tiny_run.checkpoints_dir).parent / "visuals")
    from ganvas.data import make_dataset
    from ganvas.models import create_model

    model = create_model(opt, torch.device("cpu"), train=True)
    items = [make_dataset(opt, train=True)[i] for i in range(3)]
    batch = {k: torch.stack([item[k] for item in items]) for k in ("A", "B", "hint_B", "mask_B")}
    model.train_step(batch)
    visuals = model.current_visuals()
    assert {k: tuple(v.shape) for k, v in visuals.items()} == {
        k: (3, 3, 32, 32) for k in ("real_A", "hints", "fake_B", "real_B")
    }
    assert torch.allclose(visuals["real_B"], color.decode(batch["A"], batch["B"]), atol=1e-5)


@pytest.mark.slow
def test_after_a_short_cpu_run_hints_raise_psnr_and_one_hint_colours_its_whole_shape(
    tmp_path, one_torch_thread
) -> None:
    """The built-in colour set: shapes of one lightness whose colours only hints can tell."""
    opt = colour_run(tmp_path, steps_epochs=12, size=64, ngf=16, batch_size=8, lr=0.0005, n_train=200)
    train(opt, show_progress=False)
    test_opt = resolve_options(
        {"name": "h", "checkpoints_dir": opt.checkpoints_dir, "results_dir": opt.results_dir,
         "dataroot": opt.dataroot, "num_hints": "0,10", "backend": "torch"}, "test",
    )  # fmt: skip
    scores = run_test(test_opt).scores
    assert scores["fake_B_10"]["psnr"] > scores["fake_B_0"]["psnr"] + 1.5, scores

    translator = ganvas.load(opt.run_dir, backend="torch")
    without, with_hint = [], []
    for index in range(6):
        photo, ids = color_shapes(np.random.default_rng([9, index]), 64)
        truth = color.rgb_to_lab(torch.from_numpy(photo.transpose(2, 0, 1)[None]).float() / 255)[0, 1:]
        plain = translator.translate(photo)
        for shape in range(1, int(ids.max()) + 1):
            ys, xs = np.nonzero(ids == shape)
            cy, cx = int(np.median(ys)), int(np.median(xs))
            if len(ys) < 40 or ids[cy, cx] != shape:
                continue
            far = torch.from_numpy(
                (ids == shape) & ((np.abs(np.arange(64)[:, None] - cy) > 3) | (np.abs(np.arange(64)[None] - cx) > 3))
            )
            hinted = translator.translate(photo, hints=[(cx, cy, tuple(int(v) for v in photo[cy, cx]), 3)])
            for out, errors in ((plain, without), (hinted, with_hint)):
                ab = color.rgb_to_lab(torch.from_numpy(out.transpose(2, 0, 1)[None]).float() / 255)[0, 1:]
                errors.append(float((ab[:, far] - truth[:, far]).norm(dim=0).mean()))
    assert len(without) >= 8
    # Beyond its 3 x 3 patch, one hint brings the shape's colour at least a fifth closer to the truth.
    assert np.mean(with_hint) < 0.8 * np.mean(without), (np.mean(with_hint), np.mean(without))


@pytest.mark.parametrize("classification", [True, False])
def test_classification_chooses_which_head_trains_the_trunk(classification: bool) -> None:
    from ganvas.nets.siggraph import SIGGRAPHGenerator

    torch.manual_seed(0)
    net = SIGGRAPHGenerator(4, 2, ngf=4, classes=9, norm="instance")
    net.classification = classification
    logits, ab = net(torch.rand(2, 4, 16, 16), both=True)
    trains, detached = (logits, ab) if classification else (ab, logits)
    trunk = net.model1[0].weight
    (detached.float().pow(2).mean()).backward(retain_graph=True)
    assert trunk.grad is None or float(trunk.grad.abs().max()) == 0  # the other head learns on detached features
    trains.float().pow(2).mean().backward()
    assert float(trunk.grad.abs().max()) > 0


def test_the_optional_gan_loss_trains_a_discriminator_on_l_and_ab_pairs(tmp_path, one_torch_thread) -> None:
    from ganvas.data import make_dataset
    from ganvas.models import create_model

    opt = colour_run(tmp_path, lambda_GAN=1.0, norm="instance")
    model = create_model(opt, torch.device("cpu"), train=True)
    assert set(model.nets) == {"G", "D"} and set(model.optimizers) == {"G", "D"}
    items = [make_dataset(opt, train=True)[i] for i in range(2)]
    losses = model.train_step({k: torch.stack([item[k] for item in items]) for k in ("A", "B", "hint_B", "mask_B")})
    assert {"G_GAN", "D_fake", "D_real", "G_CE", "G_reg"} <= set(losses) and all(np.isfinite(list(losses.values())))
    plain = create_model(colour_run(tmp_path / "plain", norm="instance"), torch.device("cpu"), train=True)
    assert set(plain.nets) == {"G"}  # no GAN loss, no discriminator (the paper's setting)
