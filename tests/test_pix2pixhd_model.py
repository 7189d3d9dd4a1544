"""pix2pixHD end to end: training on the built-in street set, coarse-to-fine, styles, editing, errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.data.io import find_images, read_image, read_label_map
from ganvas.data.synthetic import STREET_CLASSES, write_street_set
from ganvas.edit import SceneEditor
from ganvas.errors import CheckpointError, DataError, OptionsError
from ganvas.infer import load_for_inference, run_test
from ganvas.models.pix2pixhd import encode_features, kmeans
from ganvas.nets.vgg import VGG19Features
from ganvas.options import resolve_options
from ganvas.train import Callback, Trainer, train

CAR = STREET_CLASSES.index("car")


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    return write_street_set(tmp_path_factory.mktemp("street") / "s", n_train=6, n_test=2, size=(32, 64), seed=2)


@pytest.fixture
def tiny(tmp_path, street):
    """Options factory for tiny, fast pix2pixHD runs."""

    def make(command="train", **overrides):
        common = {"name": "hd", "checkpoints_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")}
        if command != "train":
            return resolve_options({**common, "dataroot": str(street), **overrides}, command)
        given = {
            **common,
            "dataroot": str(street),
            "model": "pix2pixhd",
            "label_nc": len(STREET_CLASSES),
            "ngf": 8,
            "ndf": 8,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "preprocess": "none",
            "n_epochs": 1,
            "n_epochs_decay": 0,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 0,
            "no_vgg_loss": True,
            "nef": 8,
            "n_downsample_E": 2,
            "n_clusters": 3,
        }
        return resolve_options({**given, **overrides}, command)

    return make


def class_colour_error(pred: torch.Tensor, real: torch.Tensor, label: np.ndarray) -> float:
    """Mean over the classes present of |mean colour of pred - mean colour of real| in that class's pixels."""
    errors = []
    for cls in np.unique(label):
        mask = torch.from_numpy(label == cls)
        errors.append(float((pred[:, mask].mean(1) - real[:, mask].mean(1)).abs().mean()))
    return float(np.mean(errors))


@pytest.mark.slow
def test_a_short_run_paints_each_class_closer_to_the_truth_than_the_mean_image(tmp_path):
    # Cars, trees and people get random colours, so PSNR has little room over the mean image on
    # this set; whether the label-to-appearance mapping is learnt shows in each class's colour.
    root = write_street_set(tmp_path / "data", n_train=32, n_test=8, size=(32, 64), seed=5)
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
            "model": "pix2pixhd",
            "label_nc": len(STREET_CLASSES),
            "ngf": 16,
            "ndf": 16,
            "n_downsample_global": 2,
            "n_blocks_global": 2,
            "preprocess": "none",
            "n_epochs": 6,
            "n_epochs_decay": 6,
            "num_threads": 0,
            "seed": 0,
            "no_vgg_loss": True,
            "batch_size": 2,
        },
        "train",
    )
    train(opt, show_progress=False)
    result = run_test(resolve_options(common, "test"))
    mean = torch.stack([read_image(f, 3) for f in find_images(root / "train_img")]).mean(0)
    model_err, base_err = [], []
    for f in find_images(root / "test_img"):
        real, label = read_image(f, 3), read_label_map(root / "test_label" / f.name)
        fake = read_image(result.page.parent / "images" / f"{f.stem}_fake_B.png", 3)
        model_err.append(class_colour_error(fake, real, label))
        base_err.append(class_colour_error(mean, real, label))
    assert result.count == 8
    assert np.mean(model_err) < 0.8 * np.mean(base_err), (np.mean(model_err), np.mean(base_err))


def test_checkpoints_have_the_original_names_and_test_scores_against_the_photos(tiny):
    run = train(tiny(), show_progress=False).run_dir
    assert sorted(p.name for p in run.glob("latest_net_*.pth")) == ["latest_net_D.pth", "latest_net_G.pth"]
    keys = torch.load(run / "latest_net_D.pth")
    assert "scale0_layer0.0.weight" in keys and "scale1_layer4.0.weight" in keys  # 2 scales, features on
    result = run_test(tiny("test"))
    assert result.count == 2 and set(result.scores) == {"fake_B"}
    assert (result.page.parent / "images" / "0000_input_label.png").is_file()


def test_a_label_beyond_label_nc_stops_before_training_naming_file_value_and_fix(tiny):
    with pytest.raises(DataError, match=r"label 7 in .*train_label.*0000\.png.*--label_nc 8"):
        Trainer(tiny(label_nc=7), show_progress=False)
    # The value label_nc itself is the don't-care label of data sets that have one.
    assert Trainer(tiny(label_nc=7, contain_dontcare_label=True), show_progress=False).model.label_nc == 8


def test_local_enhancer_starts_from_a_global_run_and_unfreezes_it_after_niter_fix_global(tiny):
    train(tiny(name="global"), show_progress=False)
    flags = {
        "name": "local",
        "netG": "local",
        "ngf": 4,
        "load_pretrain": str(Path(tiny().checkpoints_dir) / "global"),
        "niter_fix_global": 1,
        "n_epochs": 2,
    }
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch):  # G as each epoch left it
            snapshots.append({k: v.clone() for k, v in trainer.model.nets["G"].state_dict().items()})

    trainer = Trainer(tiny(**flags), show_progress=False, callbacks=[Snapshot()])
    G = trainer.model.nets["G"]
    pretrained = torch.load(Path(tiny().checkpoints_dir) / "global" / "latest_net_G.pth")
    assert torch.equal(G.state_dict()["model.1.weight"], pretrained["model.1.weight"])  # copied into the global part
    optimizer = trainer.model.optimizers["G"]
    initial = {k: v.clone() for k, v in G.state_dict().items()}
    trainer.run()
    assert trainer.model.optimizers["G"] is optimizer  # one optimiser: its state and schedule carry over
    after_fixed, after_all = snapshots
    assert torch.equal(after_fixed["model.1.weight"], pretrained["model.1.weight"])  # frozen in epoch 1 ...
    assert not torch.equal(after_fixed["model1_1.1.weight"], initial["model1_1.1.weight"])  # ... the enhancer not
    assert not torch.equal(after_all["model.1.weight"], pretrained["model.1.weight"])  # trained in epoch 2


def test_the_perceptual_loss_needs_weights_and_names_both_remedies(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(CheckpointError, match="--vgg_weights.*--no_vgg_loss"):
        Trainer(tiny(no_vgg_loss=False), show_progress=False)
    weights = tmp_path / "vgg19_tiny.pth"
    torch.save(VGG19Features(width=4).state_dict(), weights)
    losses = Trainer(tiny(no_vgg_loss=False, vgg_weights=str(weights)), show_progress=False).run().losses
    assert losses["G_VGG"] > 0


def test_instance_styles_are_clustered_and_picked_per_instance(tiny):
    train(tiny(name="feat", instance_feat=True), show_progress=False)
    opt = tiny("test", name="feat", phase="train")
    path = encode_features(opt)
    assert path.name == "features_clustered_003.npy"
    centres = np.load(path, allow_pickle=True).item()
    assert CAR in centres and 1 <= len(centres[CAR]) <= 3 and centres[CAR].shape[1] == 3
    images = {
        seed: run_test(
            tiny("test", name="feat", cluster_seed=seed, results_dir=str(Path(opt.results_dir) / f"seed{seed}"))
        )
        for seed in (0, 1, 2)
    }
    fakes = [read_image(r.page.parent / "images" / "0000_fake_B.png", 3) for r in images.values()]
    assert any(not torch.equal(fakes[0], f) for f in fakes[1:])  # another seed, another choice of styles


def test_editing_changes_only_the_edited_labels_and_undo_restores_them(tiny, street):
    train(tiny(name="edit", instance_feat=True), show_progress=False)
    encode_features(tiny("test", name="edit", phase="train"))
    model = load_for_inference(tiny("test", name="edit"))
    label = torch.from_numpy(read_label_map(street / "test_label" / "0000.png"))
    inst = torch.from_numpy(read_label_map(street / "test_inst" / "0000.png"))
    editor = SceneEditor(model, label, inst, seed=0)
    before = editor.render()
    assert before.shape == (3, 32, 64)

    car = next(i for i in editor.instances() if i // 1000 == CAR)
    where = inst == car
    road = STREET_CLASSES.index("road")
    editor.set_instance_label(car, road)
    assert torch.equal(editor.label[where], torch.full_like(label[where], road))
    assert torch.equal(editor.label[~where], label[~where])

    mask = torch.zeros_like(label, dtype=torch.bool)
    mask[20:28, 5:20] = True
    new = editor.paste(mask, CAR)
    assert new // 1000 == CAR and new not in inst.unique().tolist()
    assert (editor.label[mask] == CAR).all() and torch.equal(editor.label[~mask & ~where], label[~mask & ~where])
    editor.set_style(new, 1)
    pasted = editor.render()
    editor.set_style(new, 2)
    restyled = editor.render()
    assert not torch.equal(pasted, restyled)
    for _ in range(4):
        editor.undo()
    assert torch.equal(editor.label, label) and torch.equal(editor.inst, inst) and not editor.undo()
    assert torch.allclose(editor.render(), before)
    with pytest.raises(OptionsError, match="outside"):
        editor.paint(mask, len(STREET_CLASSES))


def test_bf16_inference_is_close_to_fp32(tiny):
    train(tiny(), show_progress=False)
    fp32 = run_test(tiny("test"))
    bf16 = run_test(tiny("test", precision="bf16", results_dir=str(Path(tiny().results_dir) / "bf16")))
    a = read_image(fp32.page.parent / "images" / "0000_fake_B.png", 3)
    b = read_image(bf16.page.parent / "images" / "0000_fake_B.png", 3)
    assert (a - b).abs().mean() < 0.02 and not torch.equal(a, b)


def test_kmeans_finds_separated_clusters():
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    points = torch.cat([c + 0.1 * torch.randn(30, 2, generator=gen) for c in centres])
    found = kmeans(points, 3, seed=1)
    distance = torch.cdist(centres, found).min(1).values
    assert (distance < 0.1).all(), found


def test_an_interrupted_run_with_styles_and_a_frozen_global_part_resumes_exactly(tiny, monkeypatch):
    import os
    import signal

    from ganvas.models.pix2pixhd import Pix2PixHDModel

    train(tiny(name="global"), show_progress=False)
    flags = {
        "netG": "local",
        "ngf": 4,
        "instance_feat": True,
        "niter_fix_global": 1,
        "n_epochs": 2,
        "load_pretrain": str(Path(tiny().checkpoints_dir) / "global"),
    }
    reference = train(tiny(name="straight", **flags), show_progress=False)
    original = Pix2PixHDModel.train_step
    calls = {"n": 0}

    def step_then_ctrl_c(self, batch):
        losses = original(self, batch)
        calls["n"] += 1
        if calls["n"] == 3:  # in epoch 1: the resumed run must freeze the global part again
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(Pix2PixHDModel, "train_step", step_then_ctrl_c)
    assert train(tiny(name="resumed", **flags), show_progress=False).interrupted
    monkeypatch.setattr(Pix2PixHDModel, "train_step", original)
    resumed = train(tiny(name="resumed", continue_train=True, **flags), show_progress=False)
    for name in ("G", "D", "E"):
        want = torch.load(reference.run_dir / f"latest_net_{name}.pth")
        got = torch.load(resumed.run_dir / f"latest_net_{name}.pth")
        assert all(torch.equal(want[k], got[k]) for k in want), name


def test_styles_work_on_any_image_size_and_test_keeps_the_training_scale(tmp_path):
    root = write_street_set(tmp_path / "odd", n_train=3, n_test=1, size=(30, 60), seed=1)
    common = {"name": "odd", "checkpoints_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")}
    opt = resolve_options(
        {
            **common,
            "dataroot": str(root),
            "model": "pix2pixhd",
            "label_nc": len(STREET_CLASSES),
            "ngf": 8,
            "ndf": 8,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "nef": 8,
            "n_downsample_E": 3,
            "n_clusters": 2,
            "instance_feat": True,
            "no_vgg_loss": True,
            "preprocess": "scale_width",
            "load_size": 44,
            "crop_size": 22,
            "n_epochs": 1,
            "n_epochs_decay": 0,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 0,
        },
        "train",
    )
    train(opt, show_progress=False)  # 44 x 22 images, E's multiple is 8: padded and cropped back
    test_opt = resolve_options({**common, "dataroot": str(root)}, "test")
    assert (test_opt.preprocess, test_opt.load_size) == ("scale_width", 44)  # the scale it was trained at
    encode_features(resolve_options({**common, "dataroot": str(root), "phase": "train"}, "test"))
    result = run_test(resolve_options({**common, "dataroot": str(root), "use_encoded_image": True}, "test"))
    assert read_image(result.page.parent / "images" / "0000_fake_B.png", 3).shape == (3, 22, 44)


def test_settings_the_model_cannot_train_with_are_refused(tiny):
    with pytest.raises(OptionsError, match="--netG local"):
        Trainer(tiny(niter_fix_global=2), show_progress=False)
    with pytest.raises(OptionsError, match="--no_vgg_loss"):
        Trainer(tiny(no_vgg_loss=False, output_nc=1), show_progress=False)


def test_a_style_run_gives_each_image_the_same_styles_from_test_translate_and_the_api(tiny, street, tmp_path):
    from ganvas.api import load
    from ganvas.cli import main

    train(tiny(name="sty", instance_feat=True), show_progress=False)
    encode_features(tiny("test", name="sty", phase="train"))
    page = run_test(tiny("test", name="sty", cluster_seed=1)).page
    labels = sorted((street / "test_label").iterdir())
    insts = [street / "test_inst" / p.name for p in labels]
    translator = load(Path(tiny().checkpoints_dir) / "sty", device="cpu", cluster_seed=1)
    together = translator.translate(labels, insts)
    for label, inst, image in zip(labels, insts, together):
        assert np.array_equal(np.asarray(image), np.asarray(translator.translate(label, inst)))  # alone = batched
        assert np.array_equal(
            np.asarray(image),
            read_image(page.parent / "images" / f"{label.stem}_fake_B.png", 3)
            .mul(255)
            .round()
            .byte()
            .permute(1, 2, 0)
            .numpy(),
        )  # = the test page
    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                "--name",
                "sty",
                "--checkpoints_dir",
                tiny().checkpoints_dir,
                "--cluster_seed",
                "1",
                str(street / "test_label"),
                "--instance_dir",
                str(street / "test_inst"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for label in labels:
        assert np.array_equal(
            read_image(out / f"{label.stem}.png", 3), read_image(page.parent / "images" / f"{label.stem}_fake_B.png", 3)
        )


def test_a_photo_input_run_with_instance_maps_is_refused_by_translate_with_the_alternative(tiny, tmp_path):
    from ganvas.api import load

    root = tmp_path / "photos"
    for folder in ("train_A", "train_B", "train_inst"):
        (root / folder).mkdir(parents=True)
        for i in range(2):
            pixels = np.zeros((32, 64), np.uint8) if folder == "train_inst" else np.full((32, 64, 3), 40 * i, np.uint8)
            Image.fromarray(pixels).save(root / folder / f"{i}.png")
    train(tiny(name="photo", dataroot=str(root), label_nc=0), show_progress=False)
    with pytest.raises(OptionsError, match="photos with instance maps.*ganvas test"):
        load(Path(tiny().checkpoints_dir) / "photo", device="cpu")
