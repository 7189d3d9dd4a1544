"""Tests for the pix2pixHD data layout: label/inst/img folders, integer maps, pairing by name, street scenes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.data import (
    Pix2PixHDDataset,
    collate_batch,
    label_channels,
    make_dataset,
    read_label_map,
    synthetic,
)
from ganvas.errors import DataError
from ganvas.registry import DATASETS

CAR = synthetic.STREET_CLASSES.index("car")


def make_opt(dataroot: Path, **overrides) -> SimpleNamespace:
    """Options as the CLI would give them for pix2pixHD, small sizes."""
    values = dict(
        dataroot=str(dataroot),
        phase="train",
        direction="AtoB",
        input_nc=3,
        output_nc=3,
        preprocess="none",
        load_size=32,
        crop_size=32,
        no_flip=False,
        max_dataset_size=float("inf"),
        seed=0,
        dataset_mode="pix2pixhd",
        label_nc=35,
        no_instance=False,
        contain_dontcare_label=False,
        serial_batches=False,
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def write_map(ids: np.ndarray, path: Path) -> Path:
    """Save integer ids with Pillow (8-bit L below 256, else 16-bit), independently of ganvas' writer."""
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint8 if ids.max() < 256 else np.uint16
    Image.fromarray(ids.astype(dtype)).save(path)
    return path


def write_rgb(array: np.ndarray, path: Path) -> Path:
    """Save a uint8 H x W x 3 array with Pillow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)
    return path


def write_item(
    root: Path,
    name: str,
    labels: np.ndarray,
    phase: str = "train",
    inst: np.ndarray | None = None,
    photo: np.ndarray | None = None,
) -> None:
    """One label map, instance map (the labels if not given) and photo (gray labels if not given) named name."""
    write_map(labels, root / f"{phase}_label" / name)
    write_map(labels if inst is None else inst, root / f"{phase}_inst" / name)
    gray = np.repeat(labels[..., None].astype(np.uint8), 3, axis=-1)
    write_rgb(gray if photo is None else photo, root / f"{phase}_img" / name)


@pytest.fixture(scope="module")
def street_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic.write_street_set(tmp_path_factory.mktemp("street"), n_train=6, n_test=2, size=(32, 64), seed=3)


# ---------------------------------------------------------------- layout and items


def test_make_dataset_builds_the_pix2pixhd_mode_with_integer_maps(street_root: Path) -> None:
    assert DATASETS.get("pix2pixhd") is Pix2PixHDDataset
    dataset = make_dataset(make_opt(street_root, label_nc=len(synthetic.STREET_CLASSES)), train=True)
    assert len(dataset) == 6
    item = dataset[0]
    assert set(item) == {"label", "inst", "image", "path", "A_paths"}
    assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 32, 64)
    assert item["inst"].dtype == torch.int64 and item["inst"].shape == (1, 32, 64)
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 32, 64)
    assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["path"] == item["A_paths"] == str(street_root / "train_label" / "0000.png")


def test_collate_stacks_the_integer_maps(street_root: Path) -> None:
    dataset = make_dataset(make_opt(street_root, label_nc=8), train=True)
    batch = collate_batch([dataset[0], dataset[1]])
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (2, 1, 32, 64)
    assert batch["inst"].dtype == torch.int64 and batch["inst"].shape == (2, 1, 32, 64)
    assert batch["A_paths"] == [dataset[0]["path"], dataset[1]["path"]]


def test_files_pair_by_name_with_cityscapes_endings_dropped(tmp_path: Path) -> None:
    for city, stem, value in (("aachen", "aachen_000000_000019", 3), ("bremen", "bremen_000001_000019", 5)):
        labels = np.full((8, 12), value)
        write_map(labels, tmp_path / "train_label" / city / f"{stem}_gtFine_labelIds.png")
        write_map(labels + 26000, tmp_path / "train_inst" / city / f"{stem}_gtFine_instanceIds.png")
        write_rgb(np.full((8, 12, 3), value * 10), tmp_path / "train_img" / city / f"{stem}_leftImg8bit.png")
    dataset = Pix2PixHDDataset(make_opt(tmp_path), train=True)
    assert len(dataset) == 2
    for index, value in enumerate((3, 5)):
        item = dataset[index]
        assert torch.all(item["label"] == value)
        assert torch.all(item["inst"] == value + 26000)
        assert torch.allclose((item["image"] + 1) * 127.5, torch.full((3, 8, 12), value * 10.0), atol=1e-3)


def test_files_pair_by_name_not_by_sorted_position(tmp_path: Path) -> None:
    # Sorted, the photos come as (a_b, a_leftImg8bit) and the labels as (a, a_b): the reference's
    # pairing by position would give each label map the other scene's photo.
    write_map(np.full((4, 4), 1), tmp_path / "train_label" / "a.png")
    write_map(np.full((4, 4), 2), tmp_path / "train_label" / "a_b.png")
    write_rgb(np.full((4, 4, 3), 10), tmp_path / "train_img" / "a_leftImg8bit.png")
    write_rgb(np.full((4, 4, 3), 20), tmp_path / "train_img" / "a_b.png")
    assert [p.name for p in sorted((tmp_path / "train_img").iterdir())] == ["a_b.png", "a_leftImg8bit.png"]
    dataset = Pix2PixHDDataset(make_opt(tmp_path, no_instance=True), train=True)
    for index in range(2):
        item = dataset[index]
        assert torch.allclose((item["image"] + 1) * 127.5, item["label"].float() * 10, atol=1e-3)


def test_unpaired_files_are_listed_with_their_counts(tmp_path: Path) -> None:
    for index in range(8):
        write_item(tmp_path, f"{index:02d}.png", np.zeros((4, 4), dtype=int))
    for index in range(1, 8):
        (tmp_path / "train_img" / f"{index:02d}.png").unlink()
    write_rgb(np.zeros((4, 4, 3)), tmp_path / "train_img" / "stray.png")
    with pytest.raises(DataError) as err:
        Pix2PixHDDataset(make_opt(tmp_path), train=True)
    message = str(err.value)
    assert "7 files in" in message and "01.png, 02.png, 03.png, 04.png, 05.png, ..." in message
    assert "06.png" not in message
    assert "1 files in" in message and "stray.png" in message
    assert str(tmp_path / "train_label") in message and str(tmp_path / "train_img") in message


def test_sizes_must_agree_before_any_item_is_read(tmp_path: Path) -> None:
    write_item(tmp_path, "0.png", np.zeros((8, 8), dtype=int))
    write_map(np.zeros((8, 9), dtype=int), tmp_path / "train_inst" / "0.png")
    with pytest.raises(DataError, match=r"train_label/0\.png is 8x8 but its pair .*train_inst/0\.png is 9x8"):
        Pix2PixHDDataset(make_opt(tmp_path), train=True)


def test_colour_label_map_is_rejected_with_the_fix(tmp_path: Path) -> None:
    write_item(tmp_path, "0.png", np.zeros((8, 8), dtype=int))
    write_rgb(np.zeros((8, 8, 3)), tmp_path / "train_label" / "0.png")
    with pytest.raises(DataError, match=r"train_label/0\.png is a RGB image.*--label_nc 0"):
        Pix2PixHDDataset(make_opt(tmp_path), train=True)


def test_missing_instance_folder_suggests_no_instance(tmp_path: Path) -> None:
    write_map(np.zeros((4, 4), dtype=int), tmp_path / "train_label" / "0.png")
    write_rgb(np.zeros((4, 4, 3)), tmp_path / "train_img" / "0.png")
    with pytest.raises(DataError, match=r"train_inst does not exist; add it or pass --no_instance"):
        Pix2PixHDDataset(make_opt(tmp_path), train=True)
    item = Pix2PixHDDataset(make_opt(tmp_path, no_instance=True), train=True)[0]
    assert "inst" not in item and "feat" not in item


def test_photos_may_be_missing_at_test_time_only(tmp_path: Path) -> None:
    write_map(np.zeros((4, 4), dtype=int), tmp_path / "test_label" / "0.png")
    write_map(np.zeros((4, 4), dtype=int), tmp_path / "test_inst" / "0.png")
    item = Pix2PixHDDataset(make_opt(tmp_path, phase="test"), train=False)[0]
    assert set(item) == {"label", "inst", "path", "A_paths"}
    with pytest.raises(DataError, match=r"real image folder .*test_img does not exist"):
        Pix2PixHDDataset(make_opt(tmp_path, phase="test"), train=True)


def test_label_nc_0_reads_photos_from_a_and_b(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_rgb(rng.integers(0, 256, (8, 10, 3)), tmp_path / "train_A" / "x.png")
    write_rgb(rng.integers(0, 256, (8, 10, 3)), tmp_path / "train_B" / "x.png")
    write_rgb(rng.integers(0, 256, (8, 10, 3)), tmp_path / "test_A" / "x.png")
    opt = make_opt(tmp_path, label_nc=0, no_instance=True, input_nc=1, output_nc=3)
    assert label_channels(opt) == 1
    item = Pix2PixHDDataset(opt, train=True)[0]
    assert item["label"].dtype == torch.float32 and item["label"].shape == (1, 8, 10)
    assert -1.0 <= float(item["label"].min()) < float(item["label"].max()) <= 1.0
    assert item["image"].shape == (3, 8, 10)
    test_item = Pix2PixHDDataset(make_opt(tmp_path, label_nc=0, no_instance=True, phase="test"), train=False)[0]
    assert set(test_item) == {"label", "path", "A_paths"}
    with pytest.raises(DataError, match=r"--label_nc 0 if the inputs are photos"):
        Pix2PixHDDataset(make_opt(tmp_path / "nothing", label_nc=5), train=True)


# ---------------------------------------------------------------- label range


def test_label_out_of_range_names_file_value_and_both_fixes(tmp_path: Path) -> None:
    labels = np.zeros((6, 6), dtype=int)
    labels[2, 3] = 4
    write_item(tmp_path, "0.png", labels)
    dataset = Pix2PixHDDataset(make_opt(tmp_path, label_nc=4), train=True)
    with pytest.raises(DataError) as err:
        dataset[0]
    message = str(err.value)
    assert str(tmp_path / "train_label" / "0.png") in message and "label 4" in message
    assert "--label_nc 5" in message and "--contain_dontcare_label" in message


def test_contain_dontcare_label_allows_the_value_label_nc(tmp_path: Path) -> None:
    labels = np.zeros((6, 6), dtype=int)
    labels[2, 3] = 4
    write_item(tmp_path, "0.png", labels)
    opt = make_opt(tmp_path, label_nc=4, contain_dontcare_label=True)
    assert label_channels(opt) == 5
    dataset = Pix2PixHDDataset(opt, train=True)
    assert int(dataset[0]["label"].max()) == 4
    assert dataset.check_labels() == 4


def test_check_labels_finds_the_largest_id_and_the_file_that_holds_it(tmp_path: Path) -> None:
    for name, top in (("a.png", 3), ("b.png", 30), ("c.png", 7)):
        labels = np.zeros((4, 4), dtype=int)
        labels[0, 0] = top
        write_item(tmp_path, name, labels)
    assert Pix2PixHDDataset(make_opt(tmp_path, label_nc=31), train=True).check_labels() == 30
    with pytest.raises(DataError) as err:
        Pix2PixHDDataset(make_opt(tmp_path, label_nc=5), train=True).check_labels()
    message = str(err.value)
    assert str(tmp_path / "train_label" / "b.png") in message and "label 30" in message
    assert "--label_nc 31" in message and "1 other files" in message


# ---------------------------------------------------------------- transforms


def test_nearest_resize_keeps_only_the_original_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = np.array([0, 3, 7, 20])
    write_item(tmp_path, "0.png", ids[rng.integers(0, 4, (37, 53))])
    opt = make_opt(tmp_path, preprocess="resize_and_crop", load_size=48, crop_size=40)
    label = Pix2PixHDDataset(opt, train=True)[0]["label"]
    assert label.shape == (1, 40, 40)
    assert set(torch.unique(label).tolist()) == {0, 3, 7, 20}


def test_label_inst_and_image_get_the_same_crop_and_flip(tmp_path: Path) -> None:
    columns = np.tile(np.arange(24), (16, 1))  # every column its own id, so flips and crops show
    photo = np.repeat((columns * 10)[..., None], 3, axis=-1)
    write_item(tmp_path, "0.png", columns, inst=columns + 26000, photo=photo)
    flips = set()
    for seed in range(12):
        opt = make_opt(tmp_path, seed=seed, preprocess="crop", crop_size=12)
        item = Pix2PixHDDataset(opt, train=True)[0]
        label = item["label"][0]
        assert torch.equal(item["inst"][0] - 26000, label)
        assert torch.equal(torch.round((item["image"][0] + 1) * 127.5 / 10).long(), label)
        flips.add(bool(label[0, 0] > label[0, -1]))
    assert flips == {True, False}


def test_16bit_instance_ids_survive_read_and_resize(tmp_path: Path) -> None:
    inst = np.full((20, 30), 7)
    inst[:10, :15], inst[10:, 15:], inst[5:15, 10:20] = 26003, 33001, 65535
    write_item(tmp_path, "0.png", np.zeros((20, 30), dtype=int), inst=inst)
    assert np.array_equal(read_label_map(tmp_path / "train_inst" / "0.png"), inst)
    opt = make_opt(tmp_path, preprocess="resize_and_crop", load_size=26, crop_size=24)
    out = Pix2PixHDDataset(opt, train=True)[0]["inst"]
    assert set(torch.unique(out).tolist()) == {7, 26003, 33001, 65535}


# ---------------------------------------------------------------- street scenes


def digest(root: Path) -> str:
    """Hash of every file's relative path and bytes."""
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*.png")):
        sha.update(path.relative_to(root).as_posix().encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()


def test_street_set_has_the_pix2pixhd_layout(street_root: Path) -> None:
    for split, count in (("train", 6), ("test", 2)):
        for kind in ("label", "inst", "img"):
            assert len(list((street_root / f"{split}_{kind}").glob("*.png"))) == count
    assert Image.open(street_root / "train_inst" / "0000.png").mode.startswith("I")
    assert Image.open(street_root / "train_label" / "0000.png").mode == "L"
    assert Image.open(street_root / "train_img" / "0000.png").size == (64, 32)


def test_street_instances_agree_with_the_labels(street_root: Path) -> None:
    classes = set()
    for path in sorted((street_root / "train_label").glob("*.png")):
        labels = read_label_map(path)
        inst = read_label_map(street_root / "train_inst" / path.name)
        things = inst >= 1000
        assert np.array_equal(inst[things] // 1000, labels[things])
        assert np.array_equal(inst[~things], labels[~things])
        cars = {int(i) for i in np.unique(inst) if i // 1000 == CAR}
        assert len(cars) >= 2, f"{path.name} has {len(cars)} cars"
        classes |= set(np.unique(labels).tolist())
    assert classes == set(range(len(synthetic.STREET_CLASSES)))


def test_street_set_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    def write(name: str, seed: int) -> str:
        return digest(synthetic.write_street_set(tmp_path / name, n_train=2, n_test=1, size=(32, 64), seed=seed))

    assert write("one", 1) == write("two", 1) != write("three", 2)


def test_street_set_with_fewer_classes_draws_only_those(tmp_path: Path) -> None:
    root = synthetic.write_street_set(tmp_path, n_train=3, n_test=0, size=(32, 64), n_classes=5)
    for path in (root / "train_label").glob("*.png"):
        assert read_label_map(path).max() < 5
    assert Pix2PixHDDataset(make_opt(root, label_nc=5), train=True).check_labels() <= 4


def test_street_set_refuses_a_folder_with_other_images(tmp_path: Path) -> None:
    write_rgb(np.zeros((4, 4, 3)), tmp_path / "train_img" / "holiday.png")
    with pytest.raises(DataError, match="holiday.png"):
        synthetic.write_street_set(tmp_path, n_train=2, n_test=0, size=(32, 64))
