"""pix2pixHD uses its instance maps: the boundary channel, how it enters G and D, and a run that needs it."""

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.cli import main
from ganvas.data.io import find_images, read_image, read_label_map
from ganvas.data.synthetic import STREET_CLASSES, street_scene, touching_boundaries, write_street_set
from ganvas.infer import run_test
from ganvas.models import create_model
from ganvas.nets.pix2pixhd import instance_edges, one_hot_labels
from ganvas.options import resolve_options
from ganvas.train import train

CAR = STREET_CLASSES.index("car")
LABEL_NC = len(STREET_CLASSES)
# write_street_set(n_train=3, n_test=1, size=(32, 64), seed=0) as it was before touching scenes existed.
DEFAULT_STREET_DIGEST = "1e2ed03794186a3b496fd6c79c6d2cdeaaee1259973cd02c9f0a3b3c3448de53"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def two_touching_cars() -> tuple[torch.Tensor, torch.Tensor]:
    """A 1 x 1 x 4 x 6 label map that is all car, and its instance map: car 0 in columns 0-2, car 1 in 3-5."""
    label = torch.full((1, 1, 4, 6), CAR)
    inst = torch.full((1, 1, 4, 6), CAR * 1000)
    inst[..., 3:] = CAR * 1000 + 1
    return label, inst


def test_the_boundary_map_marks_both_sides_of_two_touching_cars_of_one_class():
    label, inst = two_touching_cars()
    edges = instance_edges(inst)[0, 0]
    assert edges[:, 2:4].eq(1).all() and edges[:, [0, 1, 4, 5]].eq(0).all()
    assert one_hot_labels(label, LABEL_NC).unique(dim=-1).shape[-1] == 1  # the label map shows no boundary
    assert np.array_equal(touching_boundaries(label[0, 0].numpy(), inst[0, 0].numpy()), edges.bool().numpy())


@pytest.mark.parametrize("no_instance", [False, True])
def test_g_and_d_see_the_boundary_channel_after_the_one_hot_labels(no_instance):
    opt = resolve_options(
        {
            "model": "pix2pixhd",
            "label_nc": LABEL_NC,
            "ngf": 4,
            "ndf": 4,
            "n_downsample_global": 1,
            "n_blocks_global": 1,
            "no_vgg_loss": True,
            "no_instance": no_instance,
            "dataroot": "unused",
            "name": "edges",
            "gpu_ids": "-1",
        },
        "train",
    )
    torch.manual_seed(0)
    model = create_model(opt, torch.device("cpu"), train=True)
    seen: dict[str, list[torch.Tensor]] = {"G": [], "D": []}
    for name in seen:
        model.nets[name].register_forward_pre_hook(lambda net, args, name=name: seen[name].append(args[0].detach()))
    label, inst = two_touching_cars()
    label, inst = label.repeat(1, 1, 4, 4), inst.repeat(1, 1, 4, 4)  # 16 x 24, a multiple of G's 2
    model.train_step({"label": label, "inst": inst, "image": torch.zeros(1, 3, 16, 24), "path": ["cars.png"]})
    expected = one_hot_labels(label, LABEL_NC)
    if not no_instance:
        expected = torch.cat([expected, instance_edges(inst)], 1)
    assert len(seen["G"]) == 1 and torch.equal(seen["G"][0], expected)
    assert len(seen["D"]) >= 3  # fake for G, then fake and real for D
    for d_input in seen["D"]:
        assert torch.equal(d_input[:, : expected.shape[1]], expected) and d_input.shape[1] == expected.shape[1] + 3


def scene_maps(root: Path, split: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The class and instance ids of one scene of a street set."""
    return read_label_map(root / f"{split}_label" / name), read_label_map(root / f"{split}_inst" / name)


def street_files_digest(root: Path) -> str:
    """SHA-256 of every image's name, mode and pixels (not the PNG bytes, which depend on zlib)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        with Image.open(path) as image:
            digest.update(f"{path.relative_to(root).as_posix()} {image.mode}".encode())
            digest.update(np.asarray(image).tobytes())
    return digest.hexdigest()


def test_the_default_street_scenes_are_unchanged(tmp_path):
    # Fixtures and recorded figures depend on these files; touching scenes are opt-in.
    root = write_street_set(tmp_path / "s", n_train=3, n_test=1, size=(32, 64), seed=0)
    assert street_files_digest(root) == DEFAULT_STREET_DIGEST


def test_touching_scenes_have_touching_cars_with_a_dark_seam_the_label_map_does_not_show(tmp_path):
    seams, apart = [], []
    for index in range(8):
        rng = np.random.default_rng([1, index])
        labels, instances, _ = street_scene(rng, (32, 64), touching=True)
        seams.append(touching_boundaries(labels, instances) & (labels == CAR))
        labels, instances, _ = street_scene(rng, (32, 64))
        apart.append(touching_boundaries(labels, instances) & (labels == CAR))
    assert all(s.sum() >= 8 for s in seams)
    assert np.mean([s.mean() for s in seams]) > 3 * np.mean([a.mean() for a in apart])

    root = write_street_set(tmp_path / "t", n_train=2, n_test=0, size=(32, 64), seed=0, touching=True)
    for path in find_images(root / "train_img"):
        photo = read_image(path, 3)
        seam = torch.from_numpy(touching_boundaries(*scene_maps(root, "train", path.name)))
        assert seam.sum() > 0 and photo[:, seam].max() < 0.15  # the seam colour, shaded, outlined and noisy


def test_data_synth_writes_touching_street_scenes_and_refuses_touching_for_other_kinds(tmp_path, capsys):
    out = tmp_path / "streets"
    args = ["data", "synth", "--kind", "street", "--touching", "--out", str(out), "--n_train", "2", "--n_test", "1"]
    assert main([*args, "--size", "32"]) == 0
    expected = write_street_set(tmp_path / "direct", n_train=2, n_test=1, size=(32, 64), seed=0, touching=True)
    assert street_files_digest(out) == street_files_digest(expected)
    assert main(["data", "synth", "--kind", "paired", "--touching", "--out", str(tmp_path / "p")]) == 2
    assert "--touching draws street scenes, not --kind paired; add --kind street" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def psnr(squared_error: float, count: int) -> float:
    return 10 * math.log10(count / squared_error)


def seam_and_overall_psnr(images: Path, data: Path) -> tuple[float, float]:
    """PSNR (dB, images in [0, 1]) of the test fakes against the photos on the boundaries between touching
    objects of one class (touching_boundaries), and over all pixels; errors pooled over the test set."""
    band_error = band_count = all_error = all_count = 0.0
    for path in find_images(data / "test_img"):
        real, fake = read_image(path, 3), read_image(images / f"{path.stem}_fake_B.png", 3)
        error = (fake - real) ** 2
        band = torch.from_numpy(touching_boundaries(*scene_maps(data, "test", path.name)))
        band_error, band_count = band_error + float(error[:, band].sum()), band_count + 3 * int(band.sum())
        all_error, all_count = all_error + float(error.sum()), all_count + error.numel()
    return psnr(band_error, band_count), psnr(all_error, all_count)


# Training seeds 0, 1 and 2 of this run gave the instance run 2.3 to 4.0 dB more on the seams (15.8, 14.7,
# 16.8 against 13.1, 12.5, 12.8 dB) and 0.5 to 0.7 dB more overall; a 1 dB margin leaves room for the spread.
SEAM_MARGIN_DB = 1.0


def train_and_score(tmp_path: Path, data: Path, no_instance: bool, seed: int = 0) -> tuple[float, float]:
    """Train the small pix2pixHD run on data (384 steps at 32 x 64), test it; its seam and overall PSNR."""
    common = {
        "name": f"no_instance_{no_instance}_{seed}",
        "checkpoints_dir": str(tmp_path / "ck"),
        "results_dir": str(tmp_path / "res"),
        "gpu_ids": "-1",
    }
    given = {
        **common,
        "dataroot": str(data),
        "model": "pix2pixhd",
        "label_nc": LABEL_NC,
        "ngf": 16,
        "ndf": 16,
        # One downsampling: two-pixel seams survive G's bottleneck at this budget (with two, the
        # instance run still wins, by less: 0.9 to 2.8 dB after 384 to 1536 steps).
        "n_downsample_global": 1,
        "n_blocks_global": 2,
        "num_D": 1,
        "no_vgg_loss": True,
        "preprocess": "none",
        "n_epochs": 8,
        "n_epochs_decay": 4,
        "num_threads": 0,
        "seed": seed,
        "no_instance": no_instance,
    }
    train(resolve_options(given, "train"), show_progress=False)
    result = run_test(resolve_options(common, "test"))
    assert result.count == len(find_images(data / "test_img"))
    return seam_and_overall_psnr(result.page.parent / "images", data)


@pytest.mark.slow
def test_a_run_with_instance_maps_draws_the_seams_between_touching_cars_that_one_without_cannot(tmp_path):
    data = write_street_set(tmp_path / "data", n_train=32, n_test=8, size=(32, 64), seed=0, touching=True)
    with_seams, with_overall = train_and_score(tmp_path, data, no_instance=False)
    without_seams, without_overall = train_and_score(tmp_path, data, no_instance=True)
    scores = {"seams": (with_seams, without_seams), "overall": (with_overall, without_overall)}
    assert with_seams > without_seams + SEAM_MARGIN_DB, scores
    assert with_overall > without_overall - 0.5, scores  # the seams are not bought elsewhere
