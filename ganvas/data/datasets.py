"""Data sets in the reference layouts (aligned, unaligned, single folder, pix2pixHD) and batching."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ganvas import color, hints
from ganvas.data.io import find_images, image_size, is_image_file, label_map_size, read_image, read_label_map
from ganvas.data.transforms import apply_transform, check_preprocess, make_params
from ganvas.errors import DataError, OptionsError
from ganvas.registry import DATASETS

_SHOW_NAMES = 3  # how many unmatched file names an error lists per side


class ImageDataset(Dataset):
    """Shared parts: options, epoch-seeded per-item randomness and the photo transform."""

    def __init__(self, opt: Any, train: bool) -> None:
        """Keep the options; check --preprocess early so a typo fails before any file is read."""
        check_preprocess(opt.preprocess)
        self.opt = opt
        self.train = train
        self.epoch = 0
        self.size_rule = self.resize_rule(opt)
        # CUT's data set loads the decay epochs at --crop_size: see load_size.
        self.crop_size_in_decay = train and _model_says(opt, "decay_loads_at_crop_size")

    @property
    def load_size(self) -> int:
        """--load_size, or --crop_size in the decay epochs (epoch > --n_epochs) of a model that asks for it.

        CUT's unaligned data set drops the --load_size zoom once the learning rate decays: with
        resize_and_crop those epochs see each whole image resized to --crop_size, not a crop of a larger
        one (Model.decay_loads_at_crop_size).
        """
        opt = self.opt
        if self.crop_size_in_decay and self.epoch > getattr(opt, "n_epochs", math.inf):
            return opt.crop_size
        return opt.load_size

    @classmethod
    def resize_rule(cls, opt: Any) -> dict[str, Any]:
        """The `rule` and `multiple` of data.transforms for this layout: pytorch-CycleGAN-and-pix2pix's sizes."""
        return {"rule": "pix2pix", "multiple": 1}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and flips __getitem__ draws (call before iterating a DataLoader)."""
        self.epoch = int(epoch)

    def item_rng(self, index: int) -> np.random.Generator:
        """A generator that depends only on (seed, epoch, index): reproducible with workers and on resume."""
        seed = getattr(self.opt, "seed", 0) or 0
        return np.random.default_rng([int(seed), self.epoch, int(index)])

    def item_params(
        self, image: torch.Tensor, index: int, source: Path, rng: np.random.Generator | None = None
    ) -> dict:
        """Crop position and flip for one item, shared by all its images; rng defaults to item_rng(index).

        Pass one item_rng to several calls to draw independent crops and flips for the images of an
        unpaired item.
        """
        opt = self.opt
        return make_params(
            (int(image.shape[-2]), int(image.shape[-1])),
            opt.preprocess,
            self.load_size,
            opt.crop_size,
            opt.no_flip,
            self.train,
            self.item_rng(index) if rng is None else rng,
            source=str(source),
            **self.size_rule,
        )

    def transform(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        """Resize, crop and flip a [0, 1] photo with params and map it to [-1, 1]."""
        opt = self.opt
        image = apply_transform(
            image, params, opt.preprocess, self.load_size, opt.crop_size, "bicubic", **self.size_rule
        )
        return image * 2.0 - 1.0


def _model_says(opt: Any, flag: str) -> bool:
    """The class attribute `flag` of the model --model names (False for options of no registered model)."""
    from ganvas.registry import MODELS  # the models register themselves when ganvas.models is imported

    model = getattr(opt, "model", None)
    return bool(model in MODELS and getattr(MODELS.get(model), flag, False))


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
    return DataError(
        f"{path_a} is {size_a[1]}x{size_a[0]} but its pair {path_b} is {size_b[1]}x{size_b[0]} "
        f"pixels; resize them to the same size"
    )


@DATASETS.register("aligned")
class AlignedDataset(ImageDataset):
    """Paired images: <dataroot>/<phase>/ with A|B side by side, or <dataroot>/<phase>A and <phase>B (or
    <phase>_A and <phase>_B, where a vid2vid data set keeps its frames), paired by their path below the folder."""

    def __init__(self, opt: Any, train: bool) -> None:
        """Find the pairs in whichever layout exists; A|B images take precedence."""
        super().__init__(opt, train)
        self.channels_a, self.channels_b = _channels(opt)
        root = Path(opt.dataroot)
        combined = root / opt.phase
        dir_a, dir_b = root / f"{opt.phase}A", root / f"{opt.phase}B"
        if not (combined.is_dir() or dir_a.is_dir() or dir_b.is_dir()) and (root / f"{opt.phase}_A").is_dir():
            # vid2vid's and pix2pixHD's <phase>_A/<sequence>/ and <phase>_B/<sequence>/: every frame a pair
            dir_a, dir_b = root / f"{opt.phase}_A", root / f"{opt.phase}_B"
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
                raise DataError(f"{path_a} is 1 pixel wide, too narrow to hold A|B; combine A and B side by side")
            # An odd last column is dropped so A and B always have the same size.
            return ab[..., :half], ab_b[..., half : 2 * half]
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


@DATASETS.register("single")
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
        root = self.image_root(opt)
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

    @classmethod
    def image_root(cls, opt: Any) -> Path:
        """Where the images are: --dataroot."""
        return Path(opt.dataroot)

    def __getitem__(self, index: int) -> dict:
        """{'A': C x H x W in [-1, 1], 'A_paths': str}."""
        path = self.paths[index]
        image = read_image(path, self.channels)
        params = self.item_params(image, index, path)
        return {"A": self.transform(image, params), "A_paths": str(path)}


@DATASETS.register("colorization")
class ColorizationDataset(SingleDataset):
    """Colour photos under <dataroot>/<phase>/ (recursive), as CIE Lab: A = L / 50 - 1, B = ab / 110.

    The original repository's colourisation set: each photo is resized, cropped and flipped as RGB,
    then converted (ganvas.color, scikit-image's formulas). Grey files give ab = 0. For models that
    simulate hints (colorization_hints) a training item also has hint_B and mask_B, drawn from
    (seed, epoch, index) as the crops are.
    """

    def __init__(self, opt: Any, train: bool) -> None:
        if (opt.input_nc, opt.output_nc) != (1, 2) or opt.direction != "AtoB":
            raise OptionsError(
                f"--dataset_mode colorization gives L (1 channel) to colour (2 channels, ab), AtoB; got "
                f"--input_nc {opt.input_nc} --output_nc {opt.output_nc} --direction {opt.direction}: use "
                f"--model colorization, which sets them"
            )
        super().__init__(opt, train)

    @classmethod
    def image_root(cls, opt: Any) -> Path:
        """<dataroot>/<phase>/, as the original."""
        return Path(opt.dataroot) / opt.phase

    def __getitem__(self, index: int) -> dict:
        """{'A': 1 x H x W (L / 50 - 1), 'B': 2 x H x W (ab / 110), 'A_paths', 'B_paths'}."""
        path = self.paths[index]
        image = read_image(path, 3)
        rgb = self.transform(image, self.item_params(image, index, path))
        light, ab = color.encode(rgb[None])
        item = {"A": light[0], "B": ab[0], "A_paths": str(path), "B_paths": str(path)}
        if self.train and _model_says(self.opt, "simulates_hints"):  # user-guided colourisation
            opt = self.opt
            rng = np.random.default_rng([int(getattr(opt, "seed", 0) or 0), self.epoch, int(index), 1])
            sizes = hints.patch_sizes(opt.sample_Ps)
            item["hint_B"], item["mask_B"] = hints.simulate(ab[0], rng, opt.sample_p, sizes, opt.hint_loc)
        return item


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


@DATASETS.register("unaligned")
class UnalignedDataset(ImageDataset):
    """Unpaired images (CycleGAN): <dataroot>/<phase>A and <phase>B, each item one image of each.

    Item i has A = the (i mod |A|)-th A image and a B image drawn from item_rng(i) (or the
    (i mod |B|)-th with --serial_batches); each gets its own crop and flip, as in the reference.
    Channels follow _channels, as the reference does: under --direction BtoA the A folder is read
    with output_nc and the B folder with input_nc; the keys still name the folders and the model
    swaps them. At test time (train=False), when <dataroot>/truth/<phase>B exists it must hold an image of
    the same name (and size) for every A image, given as 'truth_B' with A's crop and flip and B's channels; likewise
    <dataroot>/truth/<phase>A gives 'truth_A' for every B image.
    """

    def __init__(self, opt: Any, train: bool) -> None:
        """List both folders and the truth folders that exist, reading every header."""
        super().__init__(opt, train)
        self.channels_a, self.channels_b = _channels(opt)
        root = Path(opt.dataroot)
        dir_a, dir_b = root / f"{opt.phase}A", root / f"{opt.phase}B"
        if not dir_a.is_dir() and not dir_b.is_dir():
            raise DataError(f"found neither {dir_a} nor {dir_b} (unpaired folders); check --dataroot/--phase")
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


# Name endings of the Cityscapes files (labels, instances, photos) dropped before pairing by name.
CITYSCAPES_SUFFIXES: tuple[str, ...] = (
    "_gtFine_labelIds",
    "_gtFine_instanceIds",
    "_gtCoarse_labelIds",
    "_gtCoarse_instanceIds",
    "_leftImg8bit",
)
_SHOW_UNPAIRED = 5  # how many unmatched file names a pix2pixHD pairing error lists per side


def label_channels(opt: Any) -> int:
    """Channels of the label input: label_nc (+1 with --contain_dontcare_label), or input_nc for photos."""
    label_nc = int(getattr(opt, "label_nc", 35))
    if label_nc == 0:
        return int(opt.input_nc)
    return label_nc + (1 if getattr(opt, "contain_dontcare_label", False) else 0)


def stem_key(path: Path, folder: Path) -> str:
    """The path below folder without its suffix and without a Cityscapes name ending."""
    key = _pair_key(path, folder)
    for ending in CITYSCAPES_SUFFIXES:
        if key.endswith(ending):
            return key[: -len(ending)]
    return key


def files_by_stem(folder: Path) -> dict[str, Path]:
    """The images of folder keyed by stem_key; DataError when two of them share a key."""
    by_key: dict[str, Path] = {}
    for path in find_images(folder):
        key = stem_key(path, folder)
        if key in by_key:
            raise DataError(
                f"{by_key[key]} and {path} both have the name {key!r} (Cityscapes endings ignored), so pairs "
                f"are ambiguous; rename or remove one of them"
            )
        by_key[key] = path
    return by_key


def _list_unpaired(keys: list[str], by_key: dict[str, Path], folder: Path) -> str:
    """The first _SHOW_UNPAIRED of keys as file names below folder, for a pairing error."""
    names = [by_key[key].relative_to(folder).as_posix() for key in keys[:_SHOW_UNPAIRED]]
    return (", ".join(names) + (", ..." if len(keys) > _SHOW_UNPAIRED else "")) or "none"


def _match_stems(folders: dict[str, Path]) -> list[dict[str, Path]]:
    """Group the files of several folders by stem_key, sorted; DataError naming the files without partners.

    The first folder is the reference: every other folder must hold exactly its names.
    """
    sides = {role: files_by_stem(folder) for role, folder in folders.items()}
    (first_role, first), *others = sides.items()
    first_dir = folders[first_role]
    for role, side in others:
        only_first = sorted(set(first) - set(side))
        only_other = sorted(set(side) - set(first))
        if only_first or only_other:
            raise DataError(
                f"{len(only_first)} files in {first_dir} have no partner in {folders[role]} "
                f"({_list_unpaired(only_first, first, first_dir)}) and {len(only_other)} files in {folders[role]} "
                f"have none in {first_dir} ({_list_unpaired(only_other, side, folders[role])}); give partners the "
                f"same file name (the endings {', '.join(CITYSCAPES_SUFFIXES)} are ignored) or remove the "
                f"unmatched files"
            )
    return [{role: side[key] for role, side in sides.items()} for key in sorted(first)]


def _label_range_error(value: int, path: Path | str, opt: Any, others: str = "") -> DataError:
    """The DataError for a class id that --label_nc (and --contain_dontcare_label) leaves no channel for."""
    label_nc = int(getattr(opt, "label_nc", 35))
    dontcare = bool(getattr(opt, "contain_dontcare_label", False))
    classes = label_nc + int(dontcare)
    fix = f"pass --label_nc {value + 1 - int(dontcare)}"
    if value == label_nc and not dontcare:
        fix += f", or --contain_dontcare_label if {value} is a don't-care label"
    else:
        fix += f" or remap the labels to ids below {classes}"
    given = f"label_nc={label_nc}" + (" with --contain_dontcare_label" if dontcare else "")
    return DataError(f"label {value} in {path}{others} is >= {classes}, the number of classes {given} gives; {fix}")


@DATASETS.register("pix2pixhd")
class Pix2PixHDDataset(ImageDataset):
    """pix2pixHD's layout: <phase>_label, _inst and _img (or <phase>_A and _B with --label_nc 0).

    Files are paired by name (Cityscapes endings ignored) rather than by sorted position as in the
    reference. Label and instance maps are integer ids read without scaling and resized with
    nearest neighbours; all maps and the photo of an item share one crop and flip. The photo
    folder may be missing at test time; the instance folder is not read with --no_instance.
    Sizes follow pix2pixHD's rule (see resize_rule).
    """

    @classmethod
    def resize_rule(cls, opt: Any) -> dict[str, Any]:
        """pix2pixHD's sizes: scale_width keeps the aspect ratio; none rounds to the generator's multiple.

        The multiple is the original's: 2 ** n_downsample_global, times 2 ** n_local_enhancers for --netG local
        (1 for options without a pix2pixHD generator's).
        """
        if getattr(opt, "n_downsample_global", None) is None:
            return {"rule": "pix2pixhd", "multiple": 1}
        multiple = 2 ** int(opt.n_downsample_global)
        if getattr(opt, "netG", "global") == "local":
            multiple *= 2 ** int(getattr(opt, "n_local_enhancers", 1))
        return {"rule": "pix2pixhd", "multiple": multiple}

    def __init__(self, opt: Any, train: bool) -> None:
        """Pair the folders and read every header, so missing partners and size mismatches fail before training."""
        super().__init__(opt, train)
        self.label_nc = int(getattr(opt, "label_nc", 35))
        self.classes = label_channels(opt)
        self.use_instance = not getattr(opt, "no_instance", False)
        root = Path(opt.dataroot)
        photo_input = self.label_nc == 0
        label_dir = root / (f"{opt.phase}_A" if photo_input else f"{opt.phase}_label")
        image_dir = root / (f"{opt.phase}_B" if photo_input else f"{opt.phase}_img")
        inst_dir = root / f"{opt.phase}_inst"
        if not label_dir.is_dir():
            if photo_input:
                raise DataError(
                    f"input photo folder {label_dir} does not exist; check --dataroot/--phase, or "
                    f"pass --label_nc N (the number of classes) if the inputs are label maps in "
                    f"{root / f'{opt.phase}_label'}"
                )
            raise DataError(
                f"label map folder {label_dir} does not exist; check --dataroot/--phase, or pass "
                f"--label_nc 0 if the inputs are photos in {root / f'{opt.phase}_A'}"
            )
        folders = {"label": label_dir}
        if self.use_instance:
            if not inst_dir.is_dir():
                raise DataError(f"instance map folder {inst_dir} does not exist; add it or pass --no_instance")
            folders["inst"] = inst_dir
        if image_dir.is_dir():
            folders["image"] = image_dir
        elif train:
            raise DataError(
                f"real image folder {image_dir} does not exist; training needs a photo for every "
                f"file in {label_dir}, so add it or check --dataroot/--phase"
            )
        items = _match_stems(folders)
        limit = getattr(opt, "max_dataset_size", math.inf)
        self.items = items[: int(min(limit, len(items)))]
        for item in self.items:  # headers only: bad files stop the run before training
            self._check_headers(item)

    def _check_headers(self, item: dict[str, Path]) -> None:
        """DataError for an unreadable file, a label map that is not integer ids, or files of different sizes."""
        size = image_size(item["label"]) if self.label_nc == 0 else label_map_size(item["label"])
        for role, path in item.items():
            if role == "label":
                continue
            other = label_map_size(path) if role == "inst" else image_size(path)
            if other != size:
                raise _size_mismatch(item["label"], size, path, other)

    def __len__(self) -> int:
        """Number of label maps (or A images)."""
        return len(self.items)

    def check_labels(self) -> int | None:
        """Read every label map once and return the largest class id; DataError if one is out of range.

        Items check their own labels when read; call this before training to fail at once rather
        than mid-epoch. Returns None with --label_nc 0 (the inputs are photos).
        """
        if self.label_nc == 0:
            return None
        largest, worst, too_large = -1, None, 0
        for item in self.items:
            ids = read_label_map(item["label"])
            value = int(ids.max()) if ids.size else -1
            too_large += int(value >= self.classes)
            if value > largest:
                largest, worst = value, item["label"]
        if largest >= self.classes:
            others = f" (and ids out of range in {too_large - 1} other files)" if too_large > 1 else ""
            raise _label_range_error(largest, worst, self.opt, others)
        return largest

    def _read_label(self, path: Path) -> torch.Tensor:
        """The full-size label input: 1 x H x W class ids, or a C x H x W photo in [0, 1] with --label_nc 0."""
        if self.label_nc == 0:
            return read_image(path, self.opt.input_nc)
        ids = read_label_map(path)
        if ids.size and int(ids.max()) >= self.classes:
            raise _label_range_error(int(ids.max()), path, self.opt)
        return torch.from_numpy(ids)[None]

    def _transform_ids(self, ids: torch.Tensor, params: dict) -> torch.Tensor:
        """Resize (nearest neighbours: no made-up ids), crop and flip a 1 x H x W id map with params."""
        opt = self.opt
        return apply_transform(ids, params, opt.preprocess, opt.load_size, opt.crop_size, "nearest", **self.size_rule)

    def __getitem__(self, index: int) -> dict:
        """{'label', 'inst', 'image', 'path', 'A_paths'} with one crop and flip.

        'label' is a 1 x H x W LongTensor of class ids (a C x H x W photo in [-1, 1] with --label_nc 0),
        'inst' a 1 x H x W LongTensor of instance ids (not with --no_instance), 'image' the real
        photo, output_nc x H x W in [-1, 1] (only when its folder exists); 'path' and 'A_paths'
        both name the label file.
        """
        files = self.items[index]
        label_path = files["label"]
        label = self._read_label(label_path)
        params = self.item_params(label, index, label_path)
        item: dict = {
            "label": self.transform(label, params) if self.label_nc == 0 else self._transform_ids(label, params),
        }
        for role, path in files.items():
            if role == "label":
                continue
            if role == "inst":
                data = torch.from_numpy(read_label_map(path))[None]
            else:
                data = read_image(path, self.opt.output_nc)
            if data.shape[-2:] != label.shape[-2:]:
                raise _size_mismatch(label_path, tuple(label.shape[-2:]), path, tuple(data.shape[-2:]))
            item[role] = self._transform_ids(data, params) if role == "inst" else self.transform(data, params)
        item["path"] = item["A_paths"] = str(label_path)
        return item


def make_dataset(opt: Any, train: bool) -> ImageDataset:
    """The data set --dataset_mode names (a layout registered in DATASETS), built from opt."""
    return DATASETS.get(getattr(opt, "dataset_mode", None))(opt, train)


def resize_rule(opt: Any) -> dict[str, Any]:
    """The `rule` and `multiple` of data.transforms that --dataset_mode's layout resizes with (for files read
    outside a data set, as translate reads them)."""
    layout = DATASETS.get(getattr(opt, "dataset_mode", None))
    return getattr(layout, "resize_rule", ImageDataset.resize_rule)(opt)


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
