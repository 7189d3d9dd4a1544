"""Image sizes of both code bases' preprocessing: pix2pixHD's for --model pix2pixhd, junyanz's for the others.

The rules, as each original's data/base_dataset.py has them (sizes are height x width):

- NVIDIA/pix2pixHD `__scale_width`: width -> loadSize, height -> int(loadSize * h / w), nothing else
  (the aspect ratio is kept, no minimum height). `get_transform` rounds to the generator's multiple
  (`__make_power_2`, base 2 ** n_downsample_global, times 2 ** n_local_enhancers for --netG local) only
  for --resize_or_crop none, with Python's round (ties to even). `__crop` cuts only an image with a side
  longer than fineSize; `get_params` draws x in [0, max(0, w - fineSize)], y likewise.
- junyanz/pytorch-CycleGAN-and-pix2pix `__scale_width`: width -> load_size, height ->
  int(max(load_size * h / w, crop_size)): the aspect ratio is kept down to a crop_size minimum, so a
  square crop always fits.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.api import Translator
from ganvas.data import make_dataset, read_label_map, synthetic
from ganvas.data.datasets import resize_rule
from ganvas.data.transforms import apply_transform, make_params, resized_size
from ganvas.errors import DataError
from ganvas.infer import translate_files

STREET = (64, 128)  # the street set's maps: 128 wide, 64 high
FOUR_BY_THREE = (480, 640)


def hd_size(size, preprocess, load_size, crop_size=512, multiple=16):
    """resized_size under pix2pixHD's rule."""
    return resized_size(size, preprocess, load_size, crop_size, rule="pix2pixhd", multiple=multiple)


@pytest.mark.parametrize(
    "size, load_size, expected",
    [
        (STREET, 128, (64, 128)),  # already loadSize wide: untouched
        (STREET, 256, (128, 256)),  # 2:1 stays 2:1
        (STREET, 64, (32, 64)),
        (FOUR_BY_THREE, 512, (384, 512)),  # 4:3 stays 4:3, not 512 x 512
        ((768, 1024), 512, (384, 512)),
        ((1024, 2048), 1024, (512, 1024)),  # Cityscapes at the paper's --loadSize 1024
        ((37, 50), 64, (47, 64)),  # int(64 * 37 / 50) = int(47.36): truncated, not rounded to a multiple
        ((30, 60), 44, (22, 44)),
    ],
)
def test_pix2pixhd_scale_width_sets_the_width_and_keeps_the_aspect_ratio(size, load_size, expected):
    assert hd_size(size, "scale_width", load_size) == expected
    # crop_size plays no part in pix2pixHD's __scale_width, unlike junyanz's
    assert hd_size(size, "scale_width", load_size, crop_size=4 * load_size) == expected


@pytest.mark.parametrize(
    "size, load_size, crop_size, expected",
    [
        (STREET, 128, 128, (128, 128)),  # 64 rows < crop_size 128: raised to 128
        (STREET, 256, 256, (256, 256)),
        (STREET, 256, 64, (128, 256)),  # above the minimum the aspect ratio is kept
        (FOUR_BY_THREE, 512, 512, (512, 512)),
        (FOUR_BY_THREE, 512, 256, (384, 512)),
        ((37, 50), 64, 32, (47, 64)),
    ],
)
def test_pix2pix_scale_width_keeps_the_aspect_ratio_down_to_crop_size(size, load_size, crop_size, expected):
    assert resized_size(size, "scale_width", load_size, crop_size, rule="pix2pix") == expected
    assert resized_size(size, "scale_width", load_size, crop_size) == expected  # the default rule


@pytest.mark.parametrize(
    "size, multiple, expected",
    [
        ((30, 60), 16, (32, 64)),  # round(1.875) = 2, round(3.75) = 4
        ((24, 40), 16, (32, 32)),  # round(1.5) = 2 and round(2.5) = 2: ties go to the even multiple
        ((48, 96), 16, (48, 96)),  # multiples already
        ((48, 96), 32, (64, 96)),  # --netG local, one enhancer: 2 ** (4 + 1)
        ((100, 200), 4, (100, 200)),
        ((101, 203), 4, (100, 204)),
        ((5, 40), 16, (16, 32)),  # the original would make 0 rows; one multiple at least
    ],
)
def test_pix2pixhd_none_rounds_each_side_to_the_generators_multiple(size, multiple, expected):
    assert hd_size(size, "none", 1024, multiple=multiple) == expected
    assert resized_size(size, "none", 1024, 512, rule="pix2pix") == size  # junyanz's `none` in ganvas: kept


@pytest.mark.parametrize(
    "preprocess, size, load_size, crop_size, expected",
    [
        ("resize_and_crop", (45, 61), 40, 32, (32, 32)),
        ("resize", (45, 61), 40, 32, (40, 40)),
        ("crop", (45, 61), 0, 32, (32, 32)),
        ("scale_width_and_crop", STREET, 256, 128, (128, 128)),  # 128 x 256, then a 128 square
        ("scale_width_and_crop", STREET, 128, 64, (64, 64)),
        # no side longer than fineSize: pix2pixHD's __crop leaves the image as it is
        ("scale_width_and_crop", STREET, 128, 128, (64, 128)),
        ("crop", (20, 30), 0, 32, (20, 30)),
    ],
)
def test_pix2pixhd_crops_as_the_original(preprocess, size, load_size, crop_size, expected):
    image = torch.rand(3, *size)
    for seed in range(5):
        params = make_params(
            size, preprocess, load_size, crop_size, False, True, np.random.default_rng(seed), rule="pix2pixhd"
        )
        out = apply_transform(image, params, preprocess, load_size, crop_size, rule="pix2pixhd", multiple=16)
        assert tuple(out.shape[-2:]) == expected


def test_pix2pixhd_crop_positions_span_the_whole_spare_width():
    # 128 x 256 after scale_width: x in [0, 128] (randint's both ends), y = 0
    draws = [
        make_params(STREET, "scale_width_and_crop", 256, 128, True, True, np.random.default_rng(s), rule="pix2pixhd")
        for s in range(300)
    ]
    xs = {p["crop_pos"][0] for p in draws}
    assert {p["crop_pos"][1] for p in draws} == {0}
    assert min(xs) == 0 and max(xs) == 128 and len(xs) > 50


def test_pix2pixhd_crop_that_would_pad_black_is_refused_with_the_largest_crop():
    # 128 x 256 cropped to 192: the original pads 64 rows with black; ganvas says so and stops
    with pytest.raises(DataError, match=r"--crop_size 192.*128x64.*at most 128.*black"):
        make_params(STREET, "scale_width_and_crop", 256, 192, False, True, np.random.default_rng(0), rule="pix2pixhd")


# ------------------------------------------------------------------------------ through the data sets


def street_opt(root: Path, **overrides) -> SimpleNamespace:
    values = dict(
        dataroot=str(root),
        phase="train",
        direction="AtoB",
        input_nc=3,
        output_nc=3,
        preprocess="scale_width",
        load_size=256,
        crop_size=512,  # pix2pixHD's --fineSize default
        no_flip=False,
        max_dataset_size=float("inf"),
        seed=0,
        dataset_mode="pix2pixhd",
        label_nc=len(synthetic.STREET_CLASSES),
        no_instance=False,
        contain_dontcare_label=False,
        serial_batches=False,
        netG="global",
        n_downsample_global=4,
        n_local_enhancers=1,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture(scope="module")
def street_root(tmp_path_factory) -> Path:
    return synthetic.write_street_set(tmp_path_factory.mktemp("rules") / "s", n_train=2, n_test=1, size=STREET, seed=4)


@pytest.mark.parametrize("train", [True, False])  # training, and test / encode-features (train=False)
@pytest.mark.parametrize("load_size, expected", [(128, (64, 128)), (256, (128, 256)), (64, (32, 64))])
def test_pix2pixhd_dataset_keeps_the_street_maps_aspect_ratio(street_root, train, load_size, expected):
    item = make_dataset(street_opt(street_root, load_size=load_size), train=train)[0]
    for key in ("label", "inst", "image"):
        assert tuple(item[key].shape[-2:]) == expected, key
    # label and instance maps resized with nearest neighbour: only ids of the file
    label_ids = set(np.unique(read_label_map(street_root / "train_label" / "0000.png")).tolist())
    inst_ids = set(np.unique(read_label_map(street_root / "train_inst" / "0000.png")).tolist())
    assert set(item["label"].unique().tolist()) <= label_ids
    assert set(item["inst"].unique().tolist()) <= inst_ids


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, (48, 96)),  # multiples of 16 already
        ({"netG": "local"}, (64, 96)),  # multiple 32: round(1.5) = 2, round(3) = 3
        ({"n_downsample_global": 2}, (48, 96)),
    ],
)
def test_pix2pixhd_dataset_none_rounds_to_the_generators_multiple(tmp_path, overrides, expected):
    root = synthetic.write_street_set(tmp_path / "s", n_train=1, n_test=0, size=(48, 96), seed=1)
    opt = street_opt(root, preprocess="none", **overrides)
    item = make_dataset(opt, train=False)[0]
    assert all(tuple(item[key].shape[-2:]) == expected for key in ("label", "inst", "image"))
    assert resize_rule(opt)["multiple"] == (32 if overrides.get("netG") == "local" else 2**opt.n_downsample_global)


def test_other_layouts_keep_junyanz_rule(tmp_path):
    folder = tmp_path / "photos" / "trainA"
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(folder / "a.png")
    opt = street_opt(tmp_path / "photos", dataset_mode="single", load_size=128, crop_size=128)
    assert resize_rule(opt) == {"rule": "pix2pix", "multiple": 1}
    assert tuple(make_dataset(opt, train=False)[0]["A"].shape[-2:]) == (128, 128)


def test_translate_resizes_a_pix2pixhd_run_as_pix2pixhd(street_root, tmp_path):
    classes = len(synthetic.STREET_CLASSES)
    seen = []

    def forward(batch):
        seen.append((tuple(batch["label"].shape[-2:]), tuple(batch["inst"].shape[-2:])))
        return batch["label"].float().expand(-1, 3, -1, -1) / classes * 2 - 1

    translator = Translator(
        forward,
        input_nc=1,
        output_nc=3,
        device=torch.device("cpu"),
        dtype=torch.float32,
        network=torch.nn.Identity(),
        label_nc=classes,
        uses_instances=True,
    )
    opt = street_opt(street_root, load_size=256)
    written = translate_files(
        opt, [street_root / "test_label"], tmp_path / "out", translator, instance_dir=street_root / "test_inst"
    )
    assert seen == [((128, 256), (128, 256))]
    assert Image.open(written[0]).size == (256, 128)
