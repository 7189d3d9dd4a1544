"""Short training runs on the built-in data must beat trivial baselines by a clear margin."""

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from ganvas.data.io import find_images, read_image
from ganvas.data.synthetic import write_image_folder, write_paired_set, write_unpaired_set
from ganvas.infer import run_test
from ganvas.metrics import image_metrics
from ganvas.options import resolve_options
from ganvas.train import Trainer, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def test_pix2pix_beats_the_mean_image_baseline(tmp_path):
    root = write_paired_set(tmp_path / "data", n_train=64, n_test=8, size=32, seed=5)
    common = {
        "name": "learn",
        "checkpoints_dir": str(tmp_path / "ck"),
        "results_dir": str(tmp_path / "res"),
        "gpu_ids": "-1",
    }
    opt = resolve_options(
        {
            **common,
            "dataroot": str(root),
            "model": "pix2pix",
            "netG": "unet_32",
            "ngf": 16,
            "ndf": 16,
            "batch_size": 4,
            "load_size": 32,
            "crop_size": 32,
            "n_epochs": 15,
            "n_epochs_decay": 15,
            "num_threads": 0,
            "seed": 0,
        },
        "train",
    )
    train(opt, show_progress=False)
    result = run_test(resolve_options(common, "test"))

    targets = lambda split: [read_image(f, 3)[:, :, 32:] * 2 - 1 for f in find_images(root / split)]
    mean_image = torch.stack(targets("train")).mean(0)
    baseline = np.mean([image_metrics(mean_image, t)["psnr"] for t in targets("test")])
    assert result.count == 8
    assert result.metrics["psnr"] > baseline + 4.0, (result.metrics, baseline)


def test_gan_samples_are_varied_and_closer_to_held_out_photos_than_collapse_or_structureless_pixels(tmp_path):
    from ganvas.demo import sample_figures, trivial_sample_sets

    root = write_image_folder(tmp_path / "photos", n=256, size=16, seed=2)
    held_out = write_image_folder(tmp_path / "held_out", n=128, size=16, seed=3)
    opt = resolve_options(
        {
            "name": "gan",
            "checkpoints_dir": str(tmp_path / "ck"),
            "dataroot": str(root),
            "model": "gan",
            "crop_size": 16,
            "load_size": 16,
            "ngf": 32,
            "ndf": 32,
            "nz": 32,
            "batch_size": 32,
            "n_epochs": 60,
            "n_epochs_decay": 60,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 0,
        },
        "train",
    )
    trainer = Trainer(opt, show_progress=False)
    trainer.run()  # 960 steps: about 45 s on one core
    real = torch.stack([read_image(f, 3) * 2 - 1 for f in find_images(held_out)])
    train_images = torch.stack([read_image(f, 3) * 2 - 1 for f in find_images(root)])
    samples = trainer.model.sample(128, seed=1)
    figures = sample_figures(samples, real)
    trivial = trivial_sample_sets(train_images, 128)
    collapsed = sample_figures(trivial["collapse"], real)
    structureless = sample_figures(trivial["structureless"], real)
    assert figures["diversity"] > 0.5, figures  # not collapsed (held-out photos: 1.0)
    assert figures["fd"] < 0.75 * min(collapsed["fd"], structureless["fd"]), (figures, collapsed, structureless)


def test_gan_training_previews_leave_the_generator_untouched(tmp_path):
    root = write_image_folder(tmp_path / "photos", n=8, size=16, seed=2)
    opt = resolve_options(
        {
            "name": "gan",
            "checkpoints_dir": str(tmp_path / "ck"),
            "dataroot": str(root),
            "model": "gan",
            "crop_size": 16,
            "load_size": 16,
            "ngf": 8,
            "ndf": 8,
            "nz": 8,
            "batch_size": 4,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 0,
        },
        "train",
    )
    model = Trainer(opt, show_progress=False).model
    before = {k: v.clone() for k, v in model.nets["G"].state_dict().items()}
    model.current_visuals()
    after = model.nets["G"].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_demo_beats_its_baseline_can_be_run_again_and_its_next_steps_work_as_printed(tmp_path, monkeypatch, capsys):
    from ganvas.cli import main
    from ganvas.demo import run_demo

    monkeypatch.chdir(tmp_path)
    first = run_demo(Path("ganvas_demo"), epochs=1, show_progress=False)
    again = run_demo(Path("ganvas_demo"), epochs=1, show_progress=False)
    assert again["psnr"] == first["psnr"]  # seeded, and the second run does not resume the first
    baseline = first["baselines"]["the mean training photo"]
    assert first["psnr"] > baseline["psnr"] + 2.0 and first["count"] == 20
    assert first["margin"] == pytest.approx(first["psnr"] - baseline["psnr"])
    page = Path(first["page"]).read_text()
    assert f"{baseline['psnr']:.2f} dB" in page and f"{first['psnr']:.2f} dB" in page  # baseline and units
    assert (tmp_path / "ganvas_demo/results/demo_pix2pix/test_latest/index.html").is_file()

    translate, test = first["next_steps"]
    assert translate.startswith("ganvas translate") and "--checkpoints_dir ganvas_demo/checkpoints" in translate
    capsys.readouterr()
    for command in (translate, test):
        assert main(shlex.split(command)[1:]) == 0
    out = capsys.readouterr().out
    assert "translated 4 images" in out and "20 images: PSNR" in out
    assert len(list((tmp_path / "ganvas_demo/translated/demo_pix2pix").glob("*.png"))) == 4


@pytest.mark.parametrize(
    "model, flags, epochs, margin",
    [
        ("cycle_gan", {"ngf": 16}, 3, 5.0),
        ("cut", {"ngf": 16, "num_patches": 64, "netF_nc": 64}, 3, 5.0),
        # FastCUT's own path (no identity term, flip equivariance). At its published --lambda_NCE 10 the
        # contrastive term dominates on these flat-coloured 32 px facades (many identical patches) and
        # the generator learns stripes rather than night colours within a test's budget, so the weight
        # is CUT's here; benchmarks/RESULTS.md records the published setting on this data.
        ("cut", {"CUT_mode": "FastCUT", "ngf": 16, "lambda_NCE": 1.0, "num_patches": 64, "netF_nc": 64}, 3, 5.0),
    ],
)
def test_unpaired_models_beat_the_identity_baseline_against_the_kept_aside_truth(
    tmp_path, model, flags, epochs, margin
):
    root = write_unpaired_set(tmp_path / "data", n_train=32, n_test=8, size=32, seed=5)
    common = {
        "name": "learn",
        "checkpoints_dir": str(tmp_path / "ck"),
        "results_dir": str(tmp_path / "res"),
        "gpu_ids": "-1",
    }
    opt = resolve_options(
        {
            **common,
            "dataroot": str(root),
            "model": model,
            "netG": "resnet_2blocks",
            "ndf": 16,
            "load_size": 32,
            "crop_size": 32,
            "n_epochs": epochs,
            "n_epochs_decay": epochs,
            "num_threads": 0,
            "seed": 0,
            **flags,
        },
        "train",
    )
    train(opt, show_progress=False)
    result = run_test(resolve_options(common, "test"))

    # The trivial translator returns its input: the day image scored against the true night one.
    identity = np.mean(
        [
            image_metrics(read_image(a, 3) * 2 - 1, read_image(root / "truth/testB" / a.name, 3) * 2 - 1)["psnr"]
            for a in find_images(root / "testA")
        ]
    )
    assert result.count == 8
    assert result.scores["fake_B"]["psnr"] > identity + margin, (result.scores, identity)
    if model == "cycle_gan":  # the backward generator learns too
        day = np.mean(
            [
                image_metrics(read_image(b, 3) * 2 - 1, read_image(root / "truth/testA" / b.name, 3) * 2 - 1)["psnr"]
                for b in find_images(root / "testB")
            ]
        )
        assert result.scores["fake_A"]["psnr"] > day + margin, (result.scores, day)
