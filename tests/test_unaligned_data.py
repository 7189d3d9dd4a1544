"""Tests for unpaired data: the unaligned data set (CycleGAN layout) and the synthetic day/night facades."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.data import UnalignedDataset, collate_batch, make_dataset, read_image, synthetic
from ganvas.errors import DataError


def make_opt(dataroot: Path, **overrides) -> SimpleNamespace:
    """Options as the CLI would give them for unpaired data, small sizes."""
    values = dict(
        dataroot=str(dataroot),
        phase="train",
        direction="AtoB",
        input_nc=3,
        output_nc=3,
        preprocess="resize_and_crop",
        load_size=20,
        crop_size=16,
        no_flip=False,
        serial_batches=False,
        max_dataset_size=float("inf"),
        seed=0,
        dataset_mode="unaligned",
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def write_png(array: np.ndarray, path: Path) -> Path:
    """Save a uint8 array with Pillow (independently of ganvas' writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_folder(
    folder: Path, count: int, height: int = 16, width: int = 16, seed: int = 0, gray: bool = False
) -> list[Path]:
    """count noise images 0.png, 1.png, ... (asymmetric, so flips and crops show)."""
    rng = np.random.default_rng(seed)
    shape = (height, width) if gray else (height, width, 3)
    return [write_png(rng.integers(0, 256, size=shape, dtype=np.uint8), folder / f"{i}.png") for i in range(count)]


@pytest.fixture(scope="module")
def unpaired_root(tmp_path_factory) -> Path:
    """A small built-in unpaired set: 6 training and 3 test images per domain, 32 px."""
    return synthetic.write_unpaired_set(
        tmp_path_factory.mktemp("unpaired") / "facades", n_train=6, n_test=3, size=32, seed=1
    )


def load_uint8(path: Path) -> np.ndarray:
    """An RGB file as a float H x W x 3 array of 0..255 values."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float64)


# ---------------------------------------------------------------- the data set


def test_make_dataset_builds_the_unaligned_mode(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 2)
    write_folder(tmp_path / "trainB", 2)
    assert isinstance(make_dataset(make_opt(tmp_path), train=True), UnalignedDataset)


@pytest.mark.parametrize("count_a, count_b", [(3, 5), (5, 3)])
def test_length_is_the_larger_folder(tmp_path: Path, count_a: int, count_b: int) -> None:
    write_folder(tmp_path / "trainA", count_a)
    write_folder(tmp_path / "trainB", count_b, seed=1)
    assert len(UnalignedDataset(make_opt(tmp_path), train=True)) == 5


def test_a_index_cycles_through_the_smaller_folder(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 3)
    write_folder(tmp_path / "trainB", 7, seed=1)
    dataset = UnalignedDataset(make_opt(tmp_path), train=True)
    assert [Path(dataset[i]["A_paths"]).name for i in range(7)] == [f"{i % 3}.png" for i in range(7)]


def test_random_b_is_reproducible_per_seed_epoch_and_index(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 8)
    write_folder(tmp_path / "trainB", 8, seed=1)

    def b_names(seed: int, epoch: int) -> list[str]:
        dataset = UnalignedDataset(make_opt(tmp_path, seed=seed), train=True)
        dataset.set_epoch(epoch)
        return [Path(dataset[i]["B_paths"]).name for i in range(len(dataset))]

    first = b_names(seed=2, epoch=0)
    assert first == b_names(seed=2, epoch=0)
    assert first != b_names(seed=2, epoch=1)
    assert first != b_names(seed=3, epoch=0)
    assert first != [f"{i}.png" for i in range(8)]  # not the serial order
    picked = {name for epoch in range(6) for name in b_names(seed=2, epoch=epoch)}
    assert picked == {f"{i}.png" for i in range(8)}


def test_serial_batches_takes_b_in_order(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 5)
    write_folder(tmp_path / "trainB", 3, seed=1)
    dataset = UnalignedDataset(make_opt(tmp_path, serial_batches=True), train=True)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        assert [Path(dataset[i]["B_paths"]).name for i in range(5)] == [f"{i % 3}.png" for i in range(5)]


def test_a_and_b_get_independent_flips(tmp_path: Path) -> None:
    # The same image on both sides: any difference between A and B is a flip drawn for one side only.
    image = write_folder(tmp_path / "trainA", 1, height=8, width=12)[0]
    write_png(load_uint8(image).astype(np.uint8), tmp_path / "trainB" / "0.png")
    dataset = UnalignedDataset(make_opt(tmp_path, preprocess="none"), train=True)
    plain = read_image(image, 3) * 2 - 1
    seen = set()
    for epoch in range(40):
        dataset.set_epoch(epoch)
        item = dataset[0]
        flips = []
        for key in ("A", "B"):
            assert torch.equal(item[key], plain) or torch.equal(item[key], plain.flip(-1))
            flips.append(not torch.equal(item[key], plain))
        seen.add(tuple(flips))
    assert seen == {(False, False), (False, True), (True, False), (True, True)}


def test_a_and_b_get_independent_crops(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 1, height=24, width=24)
    shutil.copytree(tmp_path / "trainA", tmp_path / "trainB")
    dataset = UnalignedDataset(make_opt(tmp_path, no_flip=True), train=True)
    differ = []
    for epoch in range(10):
        dataset.set_epoch(epoch)
        item = dataset[0]
        differ.append(not torch.equal(item["A"], item["B"]))
    assert any(differ)


@pytest.mark.parametrize(
    "direction, shape_a, shape_b", [("AtoB", (1, 16, 16), (3, 16, 16)), ("BtoA", (3, 16, 16), (1, 16, 16))]
)
def test_direction_btoa_swaps_the_channel_counts_not_the_folders(
    tmp_path: Path, direction: str, shape_a: tuple, shape_b: tuple
) -> None:
    write_folder(tmp_path / "trainA", 2)
    write_folder(tmp_path / "trainB", 2, seed=1)
    opt = make_opt(tmp_path, direction=direction, input_nc=1, output_nc=3, preprocess="none", serial_batches=True)
    item = UnalignedDataset(opt, train=False)[1]
    assert item["A"].shape == shape_a and item["B"].shape == shape_b
    assert Path(item["A_paths"]).parent.name == "trainA" and Path(item["B_paths"]).parent.name == "trainB"


def test_folders_may_differ_in_size_and_channel_count(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 3, height=20, width=24)
    write_folder(tmp_path / "trainB", 2, height=12, width=12, gray=True)
    dataset = UnalignedDataset(make_opt(tmp_path, output_nc=1, preprocess="none"), train=True)
    batch = collate_batch([dataset[i] for i in range(len(dataset))])
    assert batch["A"].shape == (3, 3, 20, 24) and batch["B"].shape == (3, 1, 12, 12)
    assert batch["A"].min() >= -1 and batch["B"].max() <= 1


def test_missing_folder_is_named_with_the_fix(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 2)
    with pytest.raises(DataError, match=r"trainB does not exist.*trainA.*--dataroot/--phase"):
        UnalignedDataset(make_opt(tmp_path), train=True)


def test_empty_folder_is_named_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainA" / "readme.txt").write_text("no images here")
    write_folder(tmp_path / "trainB", 2)
    with pytest.raises(DataError, match=r"no images in .*trainA.*--dataroot/--phase"):
        UnalignedDataset(make_opt(tmp_path), train=True)


def test_truth_gets_the_crop_and_flip_of_its_own_side(tmp_path: Path) -> None:
    # Truth files that are copies of the images they belong to must come out exactly equal to them.
    write_folder(tmp_path / "trainA", 3, height=24, width=24)
    write_folder(tmp_path / "trainB", 2, height=22, width=26, seed=1)
    shutil.copytree(tmp_path / "trainA", tmp_path / "truth" / "trainB")
    shutil.copytree(tmp_path / "trainB", tmp_path / "truth" / "trainA")
    dataset = UnalignedDataset(make_opt(tmp_path), train=False)
    for index in range(len(dataset)):
        item = dataset[index]
        assert torch.equal(item["truth_B"], item["A"]) and torch.equal(item["truth_A"], item["B"])
        assert Path(item["truth_B_paths"]).name == Path(item["A_paths"]).name
        assert Path(item["truth_A_paths"]).name == Path(item["B_paths"]).name
    batch = collate_batch([dataset[0], dataset[1]])
    assert batch["truth_B"].shape == batch["A"].shape == (2, 3, 16, 16)
    # Training never reads the kept-aside truth.
    assert sorted(UnalignedDataset(make_opt(tmp_path), train=True)[0]) == ["A", "A_paths", "B", "B_paths"]


def test_truth_is_read_with_the_channels_of_the_domain_it_shows(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 2)
    write_folder(tmp_path / "trainB", 2, seed=1)
    shutil.copytree(tmp_path / "trainB", tmp_path / "truth" / "trainB")
    item = UnalignedDataset(make_opt(tmp_path, output_nc=1, preprocess="none"), train=False)[0]
    assert item["truth_B"].shape == item["B"].shape == (1, 16, 16)
    assert "truth_A" not in item


def test_no_truth_folder_gives_only_the_reference_keys(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 2)
    write_folder(tmp_path / "trainB", 2, seed=1)
    item = UnalignedDataset(make_opt(tmp_path), train=True)[0]
    assert sorted(item) == ["A", "A_paths", "B", "B_paths"]


def test_missing_truth_file_is_named_before_any_item_is_read(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 3)
    write_folder(tmp_path / "trainB", 2, seed=1)
    shutil.copytree(tmp_path / "trainA", tmp_path / "truth" / "trainB")
    (tmp_path / "truth" / "trainB" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1 of the 3 images in .*trainA.*truth.trainB.*first: 1\.png"):
        UnalignedDataset(make_opt(tmp_path), train=False)


def test_truth_of_another_size_names_both_files(tmp_path: Path) -> None:
    write_folder(tmp_path / "trainA", 1, height=16, width=16)
    write_folder(tmp_path / "trainB", 1)
    write_folder(tmp_path / "truth" / "trainB", 1, height=16, width=18)
    with pytest.raises(DataError, match=r"trainA.0\.png is 16x16.*trainB.0\.png is 18x16"):
        UnalignedDataset(make_opt(tmp_path), train=False)


def test_truth_b_is_the_night_render_of_the_a_scene(unpaired_root: Path) -> None:
    opt = make_opt(unpaired_root, phase="test", preprocess="none", serial_batches=True)
    dataset = UnalignedDataset(opt, train=False)
    assert len(dataset) == 3
    for index in range(3):
        item = dataset[index]
        name = f"{index:04d}.png"
        assert item["A_paths"] == str(unpaired_root / "testA" / name)
        assert item["truth_B_paths"] == str(unpaired_root / "truth" / "testB" / name)
        assert torch.equal(item["truth_B"], read_image(unpaired_root / "truth" / "testB" / name, 3) * 2 - 1)
        assert torch.equal(item["truth_A"], read_image(unpaired_root / "truth" / "testA" / name, 3) * 2 - 1)


# ---------------------------------------------------------------- synthetic day/night facades


def digest(folder: Path) -> dict[str, str]:
    """File name -> sha256 of every file under folder."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_unpaired_set_has_truth_for_every_file_and_is_seeded(tmp_path: Path, unpaired_root: Path) -> None:
    first = digest(unpaired_root)
    names = {f"{split}/{i:04d}.png" for split, n in (("train", 6), ("test", 3)) for i in range(n)}
    expected = {name.replace("/", f"{side}/", 1) for name in names for side in ("A", "B")}
    assert set(first) == expected | {f"truth/{name}" for name in expected}
    assert first == digest(synthetic.write_unpaired_set(tmp_path / "same", n_train=6, n_test=3, size=32, seed=1))
    other = digest(synthetic.write_unpaired_set(tmp_path / "other", n_train=6, n_test=3, size=32, seed=2))
    assert all(first[name] != other[name] for name in first)
    with Image.open(unpaired_root / "trainB" / "0000.png") as img:
        assert img.size == (32, 32) and img.mode == "RGB"


def test_unpaired_domains_are_drawn_from_different_scenes(unpaired_root: Path) -> None:
    # truth/trainA holds the day renders of the B scenes: none may show an A scene. Re-rendering one
    # label map with other noise changes it by under 10 levels, another scene by 25 or more.
    for split, count in (("train", 6), ("test", 3)):
        days_a = [load_uint8(unpaired_root / f"{split}A" / f"{i:04d}.png") for i in range(count)]
        days_b = [load_uint8(unpaired_root / "truth" / f"{split}A" / f"{i:04d}.png") for i in range(count)]
        assert min(np.abs(a - b).mean() for a in days_a for b in days_b) > 20


def test_day_and_night_renders_differ_strongly(unpaired_root: Path) -> None:
    for name in ("0000.png", "0001.png"):
        day, night = (load_uint8(unpaired_root / folder / name) for folder in ("trainA", "truth/trainB"))
        assert np.abs(day - night).mean() > 50
        assert night.mean() < day.mean()


def fit_colour_map(sources: np.ndarray, targets: np.ndarray, step: int = 16):
    """A lookup from each source colour (quantised by step) to the mean target colour of its pixels."""
    levels = 256 // step

    def keys(images: np.ndarray) -> np.ndarray:
        return ((images // step).astype(int) @ np.array([levels * levels, levels, 1])).ravel()

    source_keys, flat_targets = keys(sources), targets.reshape(-1, 3)
    table = {key: flat_targets[source_keys == key].mean(axis=0) for key in np.unique(source_keys)}
    fallback = flat_targets.mean(axis=0)
    return lambda images: np.stack([table.get(key, fallback) for key in keys(images)]).reshape(images.shape)


def test_night_is_a_colour_map_of_the_day_that_carries_over_to_new_scenes(unpaired_root: Path) -> None:
    def stack(folder: str, count: int) -> np.ndarray:
        return np.stack([load_uint8(unpaired_root / folder / f"{i:04d}.png") for i in range(count)])

    train_day, train_night = stack("trainA", 6), stack("truth/trainB", 6)
    test_day, test_night = stack("testA", 3), stack("truth/testB", 3)
    predicted = fit_colour_map(train_day, train_night)(test_day)
    # The same fit on the unpaired training images (night renders of other scenes) as a baseline.
    unpaired = fit_colour_map(train_day, stack("trainB", 6))(test_day)
    error, baseline = np.abs(predicted - test_night).mean(), np.abs(unpaired - test_night).mean()
    assert error < baseline / 2


def test_render_facade_palette_changes_the_colour_of_every_class() -> None:
    labels = synthetic.facade_labels(np.random.default_rng(0), 24)
    day_default = synthetic.render_facade(labels, np.random.default_rng(1))
    day = synthetic.render_facade(labels, np.random.default_rng(1), "day")
    night = synthetic.render_facade(labels, np.random.default_rng(1), "night")
    assert np.array_equal(day_default, day)
    assert set(synthetic.PHOTO_PALETTES) == {"day", "night"}
    for label in np.unique(labels):  # every class changes colour
        assert np.abs(day[labels == label].mean(0) - night[labels == label].mean(0).astype(float)).max() > 20
    with pytest.raises(ValueError, match=r"'dusk'.*day, night"):
        synthetic.render_facade(labels, np.random.default_rng(1), "dusk")


def test_unpaired_set_refuses_a_folder_with_other_images(tmp_path: Path) -> None:
    write_folder(tmp_path / "truth" / "testB", 1)
    with pytest.raises(DataError, match=r"truth.testB.*0\.png"):
        synthetic.write_unpaired_set(tmp_path, n_train=2, n_test=2, size=16)
