"""Data sets in the reference layouts (aligned A|B or phaseA/phaseB folders, unaligned, single folder) and batching."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ganvas.data.io import find_images, image_size, is_image_file, read_image
from ganvas.data.transforms import apply_transform, check_preprocess, make_params
from ganvas.errors import DataError, OptionsError

_SHOW_NAMES = 3  # how many unmatched file names an error lists per side


class ImageDataset(Dataset):
    """Shared parts: options, epoch-seeded per-item randomness and the photo transform."""

    def __init__(self, opt: Any, train: bool) -> None:
        """Keep the options; check --preprocess early so a typo fails before any file is read."""
        check_preprocess(opt.preprocess)
        self.opt = opt
        self.train = train
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and flips __getitem__ draws (call before iterating a DataLoader)."""
        self.epoch = int(epoch)

    def item_rng(self, index: int) -> np.random.Generator:
        """A generator that depends only on (seed, epoch, index): reproducible with workers and on resume."""
        seed = getattr(self.opt, "seed", 0) or 0
        return np.random.default_rng([int(seed), self.epoch, int(index)])

    def item_params(self, image: torch.Tensor, index: int, source: Path,
                    rng: np.random.Generator | None = None) -> dict:
        """Crop position and flip for one item, shared by all its images; rng defaults to item_rng(index).

        Pass one item_rng to several calls to draw independent crops and flips for the images of an
        unpaired item.
        """
        opt = self.opt
        return make_params(
            (int(image.shape[-2]), int(image.shape[-1])), opt.preprocess, opt.load_size, opt.crop_size,
            opt.no_flip, self.train, self.item_rng(index) if rng is None else rng, source=str(source),
        )

    def transform(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        """Resize, crop and flip a [0, 1] photo with params and map it to [-1, 1]."""
        opt = self.opt
        image = apply_transform(image, params, opt.preprocess, opt.load_size, opt.crop_size, "bicubic")
        return image * 2.0 - 1.0


def _channels(opt: Any) -> tuple[int, int]:
    """Channels of A and B: the reference reads A with output_nc when --direction BtoA."""
    if opt.direction not in ("AtoB", "BtoA"):
        raise OptionsError(f"unknown --direction {opt.direction!r}; use AtoB or BtoA")
    if opt.direction == "BtoA":
        return opt.output_nc, opt.input_nc
    return opt.input_nc, opt.output_nc


def _pair_key(path: Path, folder: Path) -> str:
    """The name two-folder pairs are matched by: the path below the folder without its suffix."""
    return path.relative_to(folder).with_suffix("").as_posix()


def _match_pairs(dir_a: Path, dir_b: Path) -> list[tuple[Path, Path]]:
    """Pair the images of dir_a and dir_b by file stem; DataError naming the files that have no partner."""
    sides = []
    for folder in (dir_a, dir_b):
        by_key: dict[str, Path] = {}
        for path in find_images(folder):
            key = _pair_key(path, folder)
            if key in by_key:
                raise DataError(
                    f"{by_key[key]} and {path} have the same name {key!r}, so pairs are ambiguous; "
                    f"rename or remove one of them"
                )
            by_key[key] = path
        sides.append(by_key)
    keys_a, keys_b = sides
    only_a = sorted(set(keys_a) - set(keys_b))
    only_b = sorted(set(keys_b) - set(keys_a))
    if only_a or only_b:
        raise DataError(
            f"{len(only_a)} images in {dir_a} have no partner in {dir_b} (first: "
            f"{', '.join(only_a[:_SHOW_NAMES]) or 'none'}) and {len(only_b)} images in {dir_b} have none "
            f"in {dir_a} (first: {', '.join(only_b[:_SHOW_NAMES]) or 'none'}); "
            f"give each pair the same file name or remove the unmatched images"
        )
    return [(keys_a[key], keys_b[key]) for key in sorted(keys_a)]


def _size_mismatch(path_a: Path, size_a: tuple[int, int], path_b: Path, size_b: tuple[int, int]) -> DataError:
    """The error for a two-folder pair whose images differ in size; sizes are (height, width)."""
    return DataError(f"{path_a} is {size_a[1]}x{size_a[0]} but its pair {path_b} is {size_b[1]}x{size_b[0]} "
                     f"pixels; resize them to the same size")


class AlignedDataset(ImageDataset):
    """Paired images: <dataroot>/<phase>/ with A|B side by side, or <dataroot>/<phase>A and <phase>B."""

    def __init__(self, opt: Any, train: bool) -> None:
        """Find the pairs in whichever layout exists; A|B images take precedence."""
        super().__init__(opt, train)
        self.channels_a, self.channels_b = _channels(opt)
        root = Path(opt.dataroot)
        combined = root / opt.phase
        dir_a, dir_b = root / f"{opt.phase}A", root / f"{opt.phase}B"
        limit = getattr(opt, "max_dataset_size", math.inf)
        if combined.is_dir():
            self.side_by_side = True
            self.pairs = [(path, path) for path in find_images(combined, limit)]
            for path, _ in self.pairs:  # headers only: bad files stop the run before training
                image_size(path)
        elif dir_a.is_dir() or dir_b.is_dir():
            self.side_by_side = False
            if not dir_b.is_dir() or not dir_a.is_dir():
                missing = dir_b if dir_a.is_dir() else dir_a
                raise DataError(
                    f"paired folder {missing} does not exist; add it next to "
                    f"{dir_a if missing == dir_b else dir_b} or check --dataroot/--phase"
                )
            pairs = _match_pairs(dir_a, dir_b)
            self.pairs = pairs[: int(min(limit, len(pairs)))]
            for path_a, path_b in self.pairs:  # headers only: bad files stop the run before training
                size_a, size_b = image_size(path_a), image_size(path_b)
                if size_a != size_b:
                    raise _size_mismatch(path_a, size_a, path_b, size_b)
        else:
            raise DataError(
                f"found neither {combined} (A|B side-by-side images) nor {dir_a} and {dir_b} "
                f"(paired folders); check --dataroot/--phase"
            )

    def __len__(self) -> int:
        """Number of pairs."""
        return len(self.pairs)

    def _read_pair(self, path_a: Path, path_b: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """A and B in [0, 1] at full size, split from one file or read from two."""
        if self.side_by_side:
            ab = read_image(path_a, self.channels_a)
            # Reread only when the two halves need different channel conversions.
            ab_b = ab if self.channels_b == self.channels_a else read_image(path_a, self.channels_b)
            half = ab.shape[-1] // 2
            if half == 0:
                raise DataError(
                    f"{path_a} is 1 pixel wide, too narrow to hold A|B; combine A and B side by side"
                )
            # An odd last column is dropped so A and B always have the same size.
            return ab[..., :half], ab_b[..., half:2 * half]
        image_a = read_image(path_a, self.channels_a)
        image_b = read_image(path_b, self.channels_b)
        if image_a.shape[-2:] != image_b.shape[-2:]:
            raise _size_mismatch(path_a, tuple(image_a.shape[-2:]), path_b, tuple(image_b.shape[-2:]))
        return image_a, image_b

    def __getitem__(self, index: int) -> dict:
        """{'A', 'B': C x H x W in [-1, 1], 'A_paths', 'B_paths': str}, with the same crop and flip."""
        path_a, path_b = self.pairs[index]
        image_a, image_b = self._read_pair(path_a, path_b)
        params = self.item_params(image_a, index, path_a)
        return {
            "A": self.transform(image_a, params),
            "B": self.transform(image_b, params),
            "A_paths": str(path_a),
            "B_paths": str(path_b),
        }


class SingleDataset(ImageDataset):
    """Unpaired images of one domain: every image under <dataroot> (recursive), or one image file."""

    def __init__(self, opt: Any, train: bool) -> None:
        """List the images; --dataroot may also name a single image file."""
        super().__init__(opt, train)
        _channels(opt)
        # These images go into the network (or, for a GAN, are its real samples, and the options
        # give such models input_nc = output_nc); the original read them with output_nc under
        # BtoA, which breaks when the two counts differ.
        self.channels = opt.input_nc
        root = Path(opt.dataroot)
        if root.is_file():
            if not is_image_file(root):
                raise DataError(
                    f"--dataroot {root} is a file but not an image ({root.suffix!r}); "
                    f"pass an image file or a folder of images"
                )
            self.paths = [root]
        else:
            self.paths = find_images(root, getattr(opt, "max_dataset_size", math.inf))
        for path in self.paths:  # headers only: bad files stop the run before training
            image_size(path)

    def __len__(self) -> int:
        """Number of images."""
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        """{'A': C x H x W in [-1, 1], 'A_paths': str}."""
        path = self.paths[index]
        image = read_image(path, self.channels)
        params = self.item_params(image, index, path)
        return {"A": self.transform(image, params), "A_paths": str(path)}


def _truth_paths(images: list[Path], sizes: list[tuple[int, int]], folder: Path, truth_dir: Path) -> list[Path] | None:
    """The file in truth_dir at each image's path below folder, None without truth_dir; DataError if one is missing."""
    if not truth_dir.is_dir():
        return None
    truths = [truth_dir / path.relative_to(folder) for path in images]
    missing = [truth.relative_to(truth_dir).as_posix() for truth in truths if not truth.is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} of the {len(images)} images in {folder} have no ground truth of the same name in "
            f"{truth_dir} (first: {', '.join(missing[:_SHOW_NAMES])}); add them or remove {truth_dir}"
        )
    for path, size, truth in zip(images, sizes, truths):  # headers only: bad files stop the run before training
        truth_size = image_size(truth)
        if truth_size != size:
            raise _size_mismatch(path, size, truth, truth_size)
    return truths


class UnalignedDataset(ImageDataset):
    """Unpaired images (CycleGAN): <dataroot>/<phase>A and <phase>B, each item one image of each.

    Item i has A = the (i mod |A|)-th A image and a B image drawn from item_rng(i) (or the
    (i mod |B|)-th with --serial_batches); each gets its own crop and flip, as in the reference.
    Channels follow _channels, as the reference does: under --direction BtoA the A folder is read
    with output_nc and the B folder with input_nc; the keys still name the folders and the model
    swaps them. At test time (train=False), when <dataroot>/truth/<phase>B exists it must hold an image of the same name (and
    size) for every A image, given as 'truth_B' with A's crop and flip and B's channels; likewise
    <dataroot>/truth/<phase>A gives 'truth_A' for every B image.
    """

    def __init__(self, opt: Any, train: bool) -> None:
        """List both folders and the truth folders that exist, reading every header."""
        super().__init__(opt, train)
        self.channels_a, self.channels_b = _channels(opt)
        root = Path(opt.dataroot)
        dir_a, dir_b = root / f"{opt.phase}A", root / f"{opt.phase}B"
        if not dir_a.is_dir() and not dir_b.is_dir():
            raise DataError(
                f"found neither {dir_a} nor {dir_b} (unpaired folders); check --dataroot/--phase"
            )
        if not dir_a.is_dir() or not dir_b.is_dir():
            missing, present = (dir_b, dir_a) if dir_a.is_dir() else (dir_a, dir_b)
            raise DataError(
                f"unpaired folder {missing} does not exist; add it next to {present} or check --dataroot/--phase"
            )
        limit = getattr(opt, "max_dataset_size", math.inf)
        self.paths_a, self.paths_b = find_images(dir_a, limit), find_images(dir_b, limit)
        sizes_a = [image_size(path) for path in self.paths_a]  # headers only: bad files stop the run early
        sizes_b = [image_size(path) for path in self.paths_b]
        # The kept-aside truth is for scoring; training never sees it (nor waits for it).
        self.truth_b = None if train else _truth_paths(self.paths_a, sizes_a, dir_a, root / "truth" / f"{opt.phase}B")
        self.truth_a = None if train else _truth_paths(self.paths_b, sizes_b, dir_b, root / "truth" / f"{opt.phase}A")

    def __len__(self) -> int:
        """The larger folder's image count, as in the reference."""
        return max(len(self.paths_a), len(self.paths_b))

    def _read_side(self, key: str, position: int, index: int, rng: np.random.Generator) -> dict:
        """Image `position` of folder key with its own crop and flip, and its ground truth (if any) with the same."""
        paths, truths = (self.paths_a, self.truth_b) if key == "A" else (self.paths_b, self.truth_a)
        other = "B" if key == "A" else "A"
        channels = {"A": self.channels_a, "B": self.channels_b}
        path = paths[position]
        image = read_image(path, channels[key])
        params = self.item_params(image, index, path, rng)
        side = {key: self.transform(image, params), f"{key}_paths": str(path)}
        if truths is not None:
            truth = read_image(truths[position], channels[other])
            if truth.shape[-2:] != image.shape[-2:]:
                raise _size_mismatch(path, tuple(image.shape[-2:]), truths[position], tuple(truth.shape[-2:]))
            side[f"truth_{other}"] = self.transform(truth, params)
            side[f"truth_{other}_paths"] = str(truths[position])
        return side

    def __getitem__(self, index: int) -> dict:
        """{'A', 'B': C x H x W in [-1, 1], 'A_paths', 'B_paths': str}, plus 'truth_B'/'truth_A' and their paths."""
        rng = self.item_rng(index)  # draws, in order: B's index, A's crop and flip, B's crop and flip
        count_b = len(self.paths_b)
        position_b = index % count_b if self.opt.serial_batches else int(rng.integers(count_b))
        item = self._read_side("A", index % len(self.paths_a), index, rng)
        item.update(self._read_side("B", position_b, index, rng))
        return item


DATASET_MODES: dict[str, type[ImageDataset]] = {
    "aligned": AlignedDataset,
    "unaligned": UnalignedDataset,
    "single": SingleDataset,
}


def make_dataset(opt: Any, train: bool) -> ImageDataset:
    """The data set --dataset_mode names, built from opt."""
    mode = getattr(opt, "dataset_mode", None)
    if mode not in DATASET_MODES:
        raise OptionsError(f"unknown --dataset_mode {mode!r}; use one of {', '.join(DATASET_MODES)}")
    return DATASET_MODES[mode](opt, train)


def _describe(items: list[dict], index: int, key: str) -> str:
    """A name for item index in errors: its '<key>_paths' entry, else any path, else its position."""
    item = items[index]
    name = item.get(f"{key}_paths")
    if name is None:
        name = next((value for k, value in item.items() if k.endswith("_paths")), None)
    return str(name) if name is not None else f"item {index} of the batch"


def collate_batch(items: list[dict]) -> dict:
    """Stack the tensors of a list of items into N x ... batches; other values become lists."""
    if not items:
        raise ValueError("cannot collate an empty list of items; check the data set is not empty")
    batch: dict = {}
    for key, first in items[0].items():
        values = [item[key] for item in items]
        if not isinstance(first, torch.Tensor):
            batch[key] = values
            continue
        for index, value in enumerate(values[1:], start=1):
            if value.shape != first.shape:
                raise DataError(
                    f"{_describe(items, 0, key)} gives {key} of size {tuple(first.shape)} but "
                    f"{_describe(items, index, key)} gives {tuple(value.shape)} in the same batch; "
                    f"pass --batch_size 1 or a cropping --preprocess such as resize_and_crop"
                )
        batch[key] = torch.stack(values)
    return batch
