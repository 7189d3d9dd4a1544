"""Tests for ganvas.data: image I/O, paired transforms, data set layouts, batching, synthetic facades."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.data import (
    AlignedDataset,
    SingleDataset,
    apply_transform,
    collate_batch,
    find_images,
    make_dataset,
    make_params,
    read_image,
    save_image,
    synthetic,
    tensor_to_uint8,
)
from ganvas.errors import DataError, OptionsError


def make_opt(dataroot: Path, **overrides) -> SimpleNamespace:
    """Options as the CLI would give them, small sizes."""
    values = dict(
        dataroot=str(dataroot),
        phase="train",
        direction="AtoB",
        input_nc=3,
        output_nc=3,
        preprocess="resize_and_crop",
        load_size=40,
        crop_size=32,
        no_flip=False,
        max_dataset_size=float("inf"),
        seed=0,
        dataset_mode="aligned",
    )
    values.update(overrides)
    return SimpleNamespace(**values)


def random_rgb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A uint8 H x W x 3 noise image, asymmetric enough that flips and crops show."""
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def write_png(array: np.ndarray, path: Path) -> Path:
    """Save a uint8 array with Pillow (independently of ganvas' writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ---------------------------------------------------------------- transforms


def test_identical_halves_get_the_same_crop_and_flip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    half = random_rgb(rng, 48, 48)
    write_png(np.concatenate([half, half], axis=1), tmp_path / "train" / "0.png")
    flips, crops = set(), set()
    for seed in range(24):
        dataset = AlignedDataset(make_opt(tmp_path, seed=seed), train=True)
        item = dataset[0]
        assert torch.equal(item["A"], item["B"])
        assert item["A"].shape == (3, 32, 32)
        # Recover which crop/flip happened by comparing with the unflipped transform of the half.
        image = read_image(tmp_path / "train" / "0.png", 3)[..., :48]
        params = make_params((48, 48), "resize_and_crop", 40, 32, False, True, np.random.default_rng([seed, 0, 0]))
        flips.add(params["flip"])
        crops.add(params["crop_pos"])
        expected = apply_transform(image, params, "resize_and_crop", 40, 32) * 2 - 1
        assert torch.allclose(item["A"], expected)
    assert flips == {True, False}
    assert len(crops) > 1


def test_flip_and_crop_change_the_pixels() -> None:
    image = torch.rand(3, 20, 20)
    flipped = apply_transform(image, {"crop_pos": (0, 0), "flip": True}, "none", 0, 0)
    assert torch.equal(flipped, image.flip(-1))
    cropped = apply_transform(image, {"crop_pos": (3, 5), "flip": False}, "crop", 0, 8)
    assert torch.equal(cropped, image[:, 5:13, 3:11])


def test_eval_params_are_centred_and_unflipped() -> None:
    for seed in range(10):
        params = make_params((50, 70), "crop", 0, 30, False, False, np.random.default_rng(seed))
        assert params == {"crop_pos": ((70 - 30) // 2, (50 - 30) // 2), "flip": False}


def test_no_flip_never_flips() -> None:
    flips = {make_params((40, 40), "crop", 0, 32, True, True, np.random.default_rng(s))["flip"] for s in range(30)}
    assert flips == {False}


@pytest.mark.parametrize(
    "preprocess, size, load_size, expected",
    [
        ("resize_and_crop", (45, 61), 40, (32, 32)),
        ("crop", (45, 61), 40, (32, 32)),
        ("scale_width", (90, 60), 30, (45, 30)),  # width -> load_size, height keeps the aspect
        ("scale_width", (45, 60), 30, (32, 30)),  # 22 rows would be < crop_size, so raised to 32
        ("scale_width_and_crop", (90, 60), 40, (32, 32)),
        ("resize", (45, 61), 40, (40, 40)),
        ("none", (37, 53), 40, (37, 53)),
    ],
)
def test_preprocess_output_size(
    preprocess: str, size: tuple[int, int], load_size: int, expected: tuple[int, int]
) -> None:
    image = torch.rand(3, *size)
    params = make_params(size, preprocess, load_size, 32, False, True, np.random.default_rng(0))
    out = apply_transform(image, params, preprocess, load_size, 32)
    assert tuple(out.shape[-2:]) == expected
    assert out.min() >= 0 and out.max() <= 1


def test_nearest_resize_keeps_label_ids() -> None:
    labels = torch.from_numpy(np.random.default_rng(0).integers(0, 35, size=(1, 24, 24)))
    params = make_params((24, 24), "resize_and_crop", 37, 30, False, True, np.random.default_rng(3))
    out = apply_transform(labels, params, "resize_and_crop", 37, 30, method="nearest")
    assert out.dtype == labels.dtype
    assert set(out.unique().tolist()) <= set(labels.unique().tolist())


def test_crop_larger_than_image_names_the_sizes() -> None:
    with pytest.raises(DataError, match=r"--crop_size 64.*20x10.*--load_size >= --crop_size"):
        make_params((10, 20), "crop", 0, 64, False, True, np.random.default_rng(0))


def test_unknown_preprocess_is_an_options_error() -> None:
    with pytest.raises(OptionsError, match="resize_and_crop"):
        make_params((10, 10), "resize_or_crop", 8, 8, False, True, np.random.default_rng(0))


# ---------------------------------------------------------------- reading and writing


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_is_scaled_by_65535(tmp_path: Path, suffix: str) -> None:
    values = np.array([[0, 255, 32768, 65535]], dtype=np.uint16)
    path = tmp_path / f"depth{suffix}"
    Image.fromarray(values).save(path)
    image = read_image(path, 1)
    assert image.dtype == torch.float32 and image.shape == (1, 1, 4)
    assert torch.allclose(image[0, 0], torch.from_numpy(values[0].astype(np.float32) / 65535))
    assert image[0, 0, 3] == 1.0 and abs(image[0, 0, 2].item() - 0.5) < 1e-4
    assert image[0, 0, 1] < 0.01  # 255 is dark in 16 bits, not white as a clip to 8 bits would give


def test_8bit_channel_conversions(tmp_path: Path) -> None:
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 200, 90]]], dtype=np.uint8)
    path = write_png(rgb, tmp_path / "rgb.png")
    luma = read_image(path, 1)
    expected = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])) / 255
    assert luma.shape == (1, 1, 4)
    assert np.allclose(luma[0].numpy(), expected, atol=1 / 255)
    as_rgba = read_image(path, 4)
    assert torch.allclose(as_rgba[:3], read_image(path, 3)) and torch.all(as_rgba[3] == 1)
    assert torch.allclose(read_image(path, 3), torch.from_numpy(rgb / 255).permute(2, 0, 1).float())

    gray = write_png(np.array([[0, 128, 255]], dtype=np.uint8), tmp_path / "gray.png")
    as_rgb = read_image(gray, 3)
    assert as_rgb.shape == (3, 1, 3) and torch.equal(as_rgb[0], as_rgb[2])
    assert torch.allclose(as_rgb[1], torch.tensor([[0, 128 / 255, 1.0]]))

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = (40, 80, 120), 7
    rgba_path = write_png(rgba, tmp_path / "rgba.png")
    dropped = read_image(rgba_path, 3)  # alpha dropped without compositing, like convert('RGB')
    assert torch.allclose(dropped[:, 0, 0], torch.tensor([40, 80, 120]) / 255)
    assert torch.allclose(read_image(rgba_path, 4)[3], torch.full((2, 2), 7 / 255))


def test_palette_image_reads_as_its_colours(tmp_path: Path) -> None:
    rgb = random_rgb(np.random.default_rng(2), 6, 6) // 64 * 64
    palette_path = tmp_path / "p.png"
    Image.fromarray(rgb).quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(palette_path)
    with Image.open(palette_path) as img:
        assert img.mode == "P"
        expected = np.asarray(img.convert("RGB"), dtype=np.float32) / 255
    assert np.allclose(read_image(palette_path, 3).permute(1, 2, 0).numpy(), expected)


def test_save_image_round_trip(tmp_path: Path) -> None:
    image = torch.rand(3, 9, 7) * 2 - 1
    path = tmp_path / "deep" / "out.png"
    save_image(image, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]  # no temp file left over
    back = read_image(path, 3) * 2 - 1
    assert (back - image).abs().max() <= 1 / 255 + 1e-6
    gray = torch.linspace(-1, 1, 12).reshape(1, 3, 4)
    save_image(gray, tmp_path / "gray.png")
    with Image.open(tmp_path / "gray.png") as img:
        assert img.mode == "L"
    assert tensor_to_uint8(gray)[..., 0][0, 0] == 0 and tensor_to_uint8(gray)[..., 0][-1, -1] == 255


# ---------------------------------------------------------------- errors that name the file


def test_corrupt_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match=r"noise\.png.*re-export it or remove it"):
        read_image(path, 3)


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    full = write_png(random_rgb(np.random.default_rng(0), 64, 64), tmp_path / "full.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.png"):
        read_image(cut, 3)


def test_empty_folder_names_the_folder_and_extensions(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"empty.*\.png.*\.jpg"):
        find_images(tmp_path / "empty")


def test_missing_folder_suggests_dataroot(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere.*does not exist.*--dataroot"):
        find_images(tmp_path / "nowhere")


def test_missing_layouts_name_both_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        AlignedDataset(make_opt(tmp_path), train=True)
    message = str(info.value)
    assert str(tmp_path / "train") in message and str(tmp_path / "trainA") in message


def test_unmatched_pair_names_are_listed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("a", "b", "only_in_a"):
        write_png(random_rgb(rng, 8, 8), tmp_path / "trainA" / f"{name}.png")
    for name in ("a", "b", "only_in_b"):
        write_png(random_rgb(rng, 8, 8), tmp_path / "trainB" / f"{name}.jpg")
    with pytest.raises(DataError, match=r"1 images in .*trainA.*only_in_a.*1 images in .*trainB.*only_in_b"):
        AlignedDataset(make_opt(tmp_path), train=True)


def test_pair_of_different_sizes_names_both_files_before_any_item_is_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_png(random_rgb(rng, 8, 8), tmp_path / "trainA" / "x.png")
    write_png(random_rgb(rng, 8, 10), tmp_path / "trainB" / "x.png")
    with pytest.raises(DataError, match=r"trainA.x\.png is 8x8.*trainB.x\.png is 10x8"):
        AlignedDataset(make_opt(tmp_path, preprocess="none"), train=True)


def test_a_file_that_is_no_image_stops_the_data_set_before_training(tmp_path: Path) -> None:
    write_png(random_rgb(np.random.default_rng(0), 8, 16), tmp_path / "train" / "good.png")
    (tmp_path / "train" / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"junk\.png"):
        AlignedDataset(make_opt(tmp_path, preprocess="none"), train=True)


def test_float_tiff_outside_unit_range_is_rejected_rather_than_rescaled(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.full((4, 4), 3.5, np.float32), mode="F").save(path)
    with pytest.raises(DataError, match=r"f\.tif.*\[0, 1\]"):
        read_image(path, 1)


def test_mixed_sizes_in_a_batch_names_two_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_png(random_rgb(rng, 8, 8), tmp_path / "small.png")
    write_png(random_rgb(rng, 12, 12), tmp_path / "wide.png")
    dataset = SingleDataset(make_opt(tmp_path, preprocess="none", dataset_mode="single"), train=False)
    with pytest.raises(DataError, match=r"small\.png.*wide\.png.*--batch_size 1"):
        collate_batch([dataset[0], dataset[1]])


def test_unknown_dataset_mode_lists_the_modes(tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match=r"aligned.*single"):
        make_dataset(make_opt(tmp_path, dataset_mode="colourful"), train=True)


# ---------------------------------------------------------------- layouts


def test_two_folder_layout_gives_the_same_pairs_as_side_by_side(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    for name in ("0001", "0002", "0003"):
        a, b = random_rgb(rng, 36, 36), random_rgb(rng, 36, 36)
        write_png(np.concatenate([a, b], axis=1), tmp_path / "combined" / "train" / f"{name}.png")
        write_png(a, tmp_path / "split" / "trainA" / f"{name}.png")
        write_png(b, tmp_path / "split" / "trainB" / f"{name}.png")
    combined = AlignedDataset(make_opt(tmp_path / "combined", seed=3), train=True)
    split = AlignedDataset(make_opt(tmp_path / "split", seed=3), train=True)
    assert len(combined) == len(split) == 3
    for epoch in (0, 1):
        combined.set_epoch(epoch)
        split.set_epoch(epoch)
        for index in range(3):
            one, two = combined[index], split[index]
            assert torch.equal(one["A"], two["A"]) and torch.equal(one["B"], two["B"])
            assert Path(two["A_paths"]).parent.name == "trainA" and Path(two["B_paths"]).parent.name == "trainB"


def test_epoch_changes_the_crops_and_is_reproducible(tmp_path: Path) -> None:
    write_png(random_rgb(np.random.default_rng(0), 40, 80), tmp_path / "train" / "0.png")
    dataset = AlignedDataset(make_opt(tmp_path, load_size=48), train=True)
    draws = []
    for epoch in range(6):
        dataset.set_epoch(epoch)
        draws.append(dataset[0]["A"])
    dataset.set_epoch(2)
    assert torch.equal(dataset[0]["A"], draws[2])
    assert any(not torch.equal(draws[0], other) for other in draws[1:])


def test_direction_btoa_reads_a_with_output_nc(tmp_path: Path) -> None:
    write_png(random_rgb(np.random.default_rng(0), 16, 32), tmp_path / "train" / "0.png")
    opt = make_opt(tmp_path, direction="BtoA", input_nc=3, output_nc=1, preprocess="none")
    item = AlignedDataset(opt, train=False)[0]
    assert item["A"].shape == (1, 16, 16) and item["B"].shape == (3, 16, 16)
    assert item["A"].min() >= -1 and item["A"].max() <= 1


def test_single_dataset_reads_folders_recursively_and_single_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    write_png(random_rgb(rng, 10, 10), tmp_path / "photos" / "a.png")
    write_png(random_rgb(rng, 10, 10), tmp_path / "photos" / "sub" / "b.JPG")
    write_png(random_rgb(rng, 10, 10), tmp_path / "photos" / ".ipynb_checkpoints" / "a.png")
    opt = make_opt(tmp_path / "photos", dataset_mode="single", preprocess="none")
    dataset = make_dataset(opt, train=False)
    assert [Path(p).name for p in dataset.paths] == ["a.png", "b.JPG"]
    batch = collate_batch([dataset[0], dataset[1]])
    assert batch["A"].shape == (2, 3, 10, 10) and len(batch["A_paths"]) == 2
    single = make_dataset(make_opt(tmp_path / "photos" / "a.png", dataset_mode="single", preprocess="none"), False)
    assert len(single) == 1 and torch.equal(single[0]["A"], dataset[0]["A"])


def test_max_dataset_size_limits_the_pairs(tmp_path: Path) -> None:
    synthetic.write_paired_set(tmp_path, n_train=5, n_test=0, size=16)
    dataset = AlignedDataset(make_opt(tmp_path, max_dataset_size=3, preprocess="none"), train=True)
    assert len(dataset) == 3


# ---------------------------------------------------------------- synthetic facades


def digest(folder: Path) -> dict[str, str]:
    """File name -> sha256 of every file under folder."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_synthetic_set_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    first = digest(synthetic.write_paired_set(tmp_path / "one", n_train=6, n_test=2, n_val=1, size=32, seed=4))
    second = digest(synthetic.write_paired_set(tmp_path / "two", n_train=6, n_test=2, n_val=1, size=32, seed=4))
    other = digest(synthetic.write_paired_set(tmp_path / "three", n_train=6, n_test=2, n_val=1, size=32, seed=5))
    assert sorted(first) == [
        "classes.json",  # the label colours and class names, for the studio's palette
        "test/0000.png",
        "test/0001.png",
        "train/0000.png",
        "train/0001.png",
        "train/0002.png",
        "train/0003.png",
        "train/0004.png",
        "train/0005.png",
        "val/0000.png",
    ]
    assert first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.endswith(".png"))


def test_synthetic_pairs_have_the_expected_size_and_content(tmp_path: Path) -> None:
    root = synthetic.write_paired_set(tmp_path, n_train=4, n_test=0, size=48, seed=0)
    palette = {tuple(color) for color in synthetic.label_colors().tolist()}
    for path in sorted((root / "train").iterdir()):
        with Image.open(path) as img:
            assert img.size == (96, 48) and img.mode == "RGB"
            pair = np.asarray(img)
        labels_side = {tuple(color) for color in pair[:, :48].reshape(-1, 3).tolist()}
        assert labels_side <= palette  # A is drawn only with the label palette
        assert len(labels_side) >= 4
        assert not np.array_equal(pair[:, :48], pair[:, 48:])


def test_facade_labels_use_several_classes() -> None:
    rng = np.random.default_rng(0)
    classes_per_scene = [set(np.unique(synthetic.facade_labels(rng, 64)).tolist()) for _ in range(20)]
    assert all({synthetic.SKY, synthetic.WALL, synthetic.WINDOW, synthetic.DOOR} <= c for c in classes_per_scene)
    assert len(set().union(*classes_per_scene)) == len(synthetic.label_colors())
    first, second = (synthetic.facade_labels(np.random.default_rng(s), 64) for s in (1, 2))
    assert first.shape == (64, 64) and first.dtype == np.uint8 and not np.array_equal(first, second)


def test_photo_is_mostly_a_function_of_the_labels() -> None:
    labels = synthetic.facade_labels(np.random.default_rng(0), 64)
    one = synthetic.render_facade(labels, np.random.default_rng(1)).astype(float)
    two = synthetic.render_facade(labels, np.random.default_rng(2)).astype(float)
    other_scene = synthetic.render_facade(
        synthetic.facade_labels(np.random.default_rng(9), 64), np.random.default_rng(1)
    ).astype(float)
    assert np.abs(one - two).mean() < np.abs(one - other_scene).mean() / 2


def test_image_folder_writes_photos(tmp_path: Path) -> None:
    root = synthetic.write_image_folder(tmp_path / "photos", n=3, size=32, seed=1)
    images = find_images(root)
    assert [p.name for p in images] == ["0000.png", "0001.png", "0002.png"]
    assert read_image(images[0], 3).shape == (3, 32, 32)


def test_synthetic_set_refuses_a_folder_with_other_images(tmp_path: Path) -> None:
    write_png(random_rgb(np.random.default_rng(0), 8, 8), tmp_path / "train" / "mine.png")
    with pytest.raises(DataError, match=r"train.*mine\.png"):
        synthetic.write_paired_set(tmp_path, n_train=2, n_test=0, size=16)
