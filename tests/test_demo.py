"""`ganvas demo --model NAME`: every model has a demo, recipes are valid runs, and the figures tell collapse apart."""

import json

import pytest
import torch

from ganvas.data.io import find_images, read_image
from ganvas.data.synthetic import write_image_folder
from ganvas.demo import BUILTIN_SETS, demo_names, demo_recipe, sample_figures, trivial_sample_sets
from ganvas.metrics import sample_diversity, thumbnail_fd
from ganvas.models.base import DemoRecipe, register_demo
from ganvas.options import resolve_options
from ganvas.registry import DEMOS, MODELS


def test_every_trainable_model_has_a_demo():
    shown = {demo_recipe(name).flags["model"] for name in demo_names()}
    assert set(MODELS.names(trainable=True)) <= shown
    assert {"pix2pix", "cycle_gan", "cut", "fastcut", "pix2pixhd", "gan"} <= set(demo_names())


@pytest.mark.parametrize("name", demo_names())
def test_each_demo_recipe_is_a_valid_training_run_on_a_builtin_set(name, tmp_path):
    recipe = demo_recipe(name)
    assert recipe.data in BUILTIN_SETS and recipe.epochs >= 1 and recipe.shows
    opt = resolve_options(
        {"name": "d", "checkpoints_dir": str(tmp_path), "dataroot": str(tmp_path), **recipe.flags}, "train"
    )
    assert opt.model == recipe.flags["model"]


def test_fastcut_demo_takes_fastcuts_own_path_and_cut_demo_cuts(tmp_path):
    def resolved(name):
        flags = demo_recipe(name).flags
        return resolve_options(
            {"name": "d", "checkpoints_dir": str(tmp_path), "dataroot": str(tmp_path), **flags}, "train"
        )

    fast, cut = resolved("fastcut"), resolved("cut")
    # FastCUT: no identity term, flip equivariance (its PatchNCE weight is CUT's at this size: see cut.py).
    assert (fast.nce_idt, fast.flip_equivariance) == (False, True)
    assert (cut.nce_idt, cut.flip_equivariance, cut.lambda_NCE) == (True, False, 1.0)


def test_a_model_file_can_register_another_demo():
    with DEMOS.scoped():
        register_demo("mine", DemoRecipe(data="paired", flags={"model": "pix2pix"}, epochs=1, shows="x"))
        assert "mine" in demo_names()
    assert "mine" not in demo_names()


def _photos(folder, n, seed):
    write_image_folder(folder, n, size=32, seed=seed)
    return torch.stack([read_image(f, 3) * 2 - 1 for f in find_images(folder)])


def test_sample_figures_tell_real_photos_from_collapse_and_from_structureless_pixels(tmp_path):
    real = _photos(tmp_path / "a", 128, 1)
    other_real = _photos(tmp_path / "b", 128, 2)
    trivial = trivial_sample_sets(other_real, 128)
    collapsed, shuffled = trivial["collapse"], trivial["structureless"]
    assert sample_diversity(collapsed) == 0.0
    assert sample_figures(other_real, real)["diversity"] == pytest.approx(1.0, abs=0.1)
    fd_real = thumbnail_fd(other_real, real)
    assert fd_real < 0.5 * thumbnail_fd(shuffled, real)
    assert fd_real < 0.5 * thumbnail_fd(collapsed, real)


def test_thumbnail_fd_is_zero_for_a_set_against_itself_and_symmetric():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 64, 3, 16, 16, generator=gen) - 1  # in [-1, 0]: a shift of 0.5 stays in range
    assert thumbnail_fd(a, a) == pytest.approx(0.0, abs=1e-6)
    assert thumbnail_fd(a, b) == pytest.approx(thumbnail_fd(b, a), rel=1e-6)
    assert thumbnail_fd(a + 0.5, a) == pytest.approx(64 * 3 * 0.25**2, rel=1e-6)  # a mean shift of 0.25 in [0, 1]


def test_a_gans_results_page_shows_sample_diversity_and_collapse(tmp_path, monkeypatch):
    from ganvas.infer import run_test
    from ganvas.models.gan import GANModel
    from ganvas.train import train

    root = write_image_folder(tmp_path / "photos", 8, size=32, seed=0)
    common = {"name": "g", "checkpoints_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")}
    flags = {"model": "gan", "load_size": 32, "crop_size": 32, "nz": 8, "ngf": 8, "ndf": 8, "batch_size": 4}
    opt = resolve_options({**common, **flags, "dataroot": str(root), "n_epochs": 1, "n_epochs_decay": 0}, "train")
    train(opt, show_progress=False)
    result = run_test(resolve_options({**common, "num_test": 8}, "test"))
    assert result.metrics["diversity"] > 0 and result.metrics["real_diversity"] > 0
    assert "Sample diversity" in result.page.read_text()

    def collapsed(self, n, seed):
        return torch.zeros(n, 3, 32, 32)

    monkeypatch.setattr(GANModel, "sample", collapsed)
    result = run_test(resolve_options({**common, "num_test": 8}, "test"))
    assert result.metrics["diversity"] == 0.0
    assert "collapsed): 0.000" in result.page.read_text()


@pytest.mark.parametrize("name", demo_names())
def test_the_printed_train_command_of_each_demo_gives_the_demos_options(name, tmp_path):
    import shlex

    from ganvas.demo import train_command
    from ganvas.options import parse_options

    recipe = demo_recipe(name)
    argv = shlex.split(train_command(name, tmp_path))[2:] + ["--checkpoints_dir", str(tmp_path)]
    parsed, _ = parse_options(argv, "train")
    direct = resolve_options(
        {"name": name, "checkpoints_dir": str(tmp_path), "dataroot": str(tmp_path), **recipe.flags}, "train"
    )
    for key in recipe.flags:
        assert getattr(parsed, key) == getattr(direct, key), key
    assert (parsed.n_epochs, parsed.n_epochs_decay) == (recipe.epochs, recipe.epochs)


def test_data_synth_prints_a_cpu_sized_command_for_the_street_set(tmp_path, capsys):
    from ganvas.cli import main

    assert (
        main(["data", "synth", "--kind", "street", "--out", str(tmp_path / "s"), "--n_train", "2", "--n_test", "1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "--model pix2pixhd" in out and "--n_downsample_global 3" in out and "--no_vgg_loss" in out
    assert "--loadSize 1024" not in out and "--netG local" not in out


def test_a_demo_runs_its_prepare_steps_and_prints_next_steps_that_work_with_its_test_flags(
    tmp_path, monkeypatch, capsys
):
    """The pix2pixHD demo's path, tiny: train with styles, `encode-features`, test with encoded styles, then
    the printed test (with --use_encoded_image) and translate (styles drawn from the clusters) commands."""
    import shlex

    from ganvas.cli import main
    from ganvas.demo import run_demo

    monkeypatch.chdir(tmp_path)
    real = demo_recipe("pix2pixhd")
    tiny = DemoRecipe(
        data="street",
        flags={
            **real.flags,
            "ngf": 8,
            "ndf": 8,
            "nef": 8,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "n_downsample_E": 2,
            "num_D": 1,
        },
        epochs=1,
        shows="tiny",
        data_args={"n_train": 4, "n_test": 2, "size": 32},
        test_flags=real.test_flags,
        prepare=real.prepare,
    )
    with DEMOS.scoped():
        register_demo("tiny_hd", tiny)
        summary = run_demo(tmp_path / "out", model="tiny_hd", show_progress=False)
    run = tmp_path / "out/checkpoints/demo_tiny_hd"
    assert list(run.glob("features_clustered_*.npy")), "encode-features did not run"
    test, translate = (
        (s for s in summary["next_steps"] if s.startswith("ganvas test")),
        (s for s in summary["next_steps"] if s.startswith("ganvas translate")),
    )
    test, translate = next(test), next(translate)
    assert "--use_encoded_image" in test
    # The test page and metrics.json say where the styles came from.
    test_dir = tmp_path / "out/results/demo_tiny_hd/test_latest"
    assert "encoded from the real photo" in (test_dir / "index.html").read_text()
    assert "encoded from the real photo" in json.loads((test_dir / "metrics.json").read_text())["notes"][0]
    capsys.readouterr()
    for command in (test, translate):
        assert main(shlex.split(command)[1:]) == 0, command
    assert len(list((tmp_path / "out/translated/demo_tiny_hd").glob("*.png"))) == 2
    # Without --use_encoded_image the page says the styles were drawn from the clusters.
    assert main(["test", "--name", "demo_tiny_hd", "--checkpoints_dir", str(run.parent)]) == 0
    assert "drawn from the style clusters" in (tmp_path / "results/demo_tiny_hd/test_latest/index.html").read_text()
