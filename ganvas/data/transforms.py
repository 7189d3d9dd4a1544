"""Resize, crop and flip with one set of random parameters per item, shared by A, B and label maps."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ganvas.errors import DataError, OptionsError

PREPROCESS_MODES: tuple[str, ...] = (
    "resize_and_crop",
    "crop",
    "scale_width",
    "scale_width_and_crop",
    "resize",
    "none",
)

# 'nearest-exact' picks the same source pixels as Pillow's NEAREST and keeps label ids exact.
_INTERPOLATION = {"bicubic": "bicubic", "bilinear": "bilinear", "nearest": "nearest-exact"}


# How sizes are made, after the two code bases' data/base_dataset.py: "pix2pix" is
# junyanz/pytorch-CycleGAN-and-pix2pix's (pix2pix, CycleGAN, CUT), "pix2pixhd" NVIDIA/pix2pixHD's.
SIZE_RULES: tuple[str, ...] = ("pix2pix", "pix2pixhd")


def check_preprocess(preprocess: str) -> None:
    """Raise OptionsError unless preprocess is one of PREPROCESS_MODES."""
    if preprocess not in PREPROCESS_MODES:
        raise OptionsError(f"unknown --preprocess {preprocess!r}; use one of {', '.join(PREPROCESS_MODES)}")


def _check_rule(rule: str, multiple: int) -> None:
    """ValueError unless rule is one of SIZE_RULES and multiple is positive."""
    if rule not in SIZE_RULES:
        raise ValueError(f"unknown size rule {rule!r}; use one of {', '.join(SIZE_RULES)}")
    if multiple < 1:
        raise ValueError(f"size multiple {multiple} must be at least 1")


def round_to_multiple(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    """(height, width) rounded to the nearest multiple, as pix2pixHD's __make_power_2 (Python's round, ties to even).

    A side shorter than half the multiple becomes one multiple, where the original would make it 0.
    """
    return tuple(max(1, round(side / multiple)) * multiple for side in size)  # type: ignore[return-value]


def resized_size(
    size: tuple[int, int],
    preprocess: str,
    load_size: int,
    crop_size: int,
    *,
    rule: str = "pix2pix",
    multiple: int = 1,
) -> tuple[int, int]:
    """(height, width) an image of size (height, width) has after the resize step of preprocess.

    rule "pix2pix": scale_width gives the width load_size and the height load_size * h / w, but at
    least crop_size; none keeps the size. rule "pix2pixhd": scale_width keeps the aspect ratio
    exactly (no minimum); none rounds each side to the generator's `multiple`.
    """
    check_preprocess(preprocess)
    _check_rule(rule, multiple)
    height, width = size
    if preprocess.startswith("resize"):
        return load_size, load_size
    if preprocess.startswith("scale_width"):
        if rule == "pix2pixhd":
            if width == load_size:
                return height, width
            return int(load_size * height / width), load_size
        if width == load_size and height >= crop_size:
            return height, width
        # The reference keeps the height at least crop_size so a square crop always fits.
        return max(int(load_size * height / width), crop_size), load_size
    if preprocess == "none" and rule == "pix2pixhd":
        return round_to_multiple(size, multiple)
    return height, width


def _crops(resized: tuple[int, int], crop_size: int, rule: str) -> bool:
    """Whether the crop step cuts an image of the resized size.

    pix2pixHD's __crop leaves an image alone unless a side is longer than crop_size.
    """
    return rule != "pix2pixhd" or resized[0] > crop_size or resized[1] > crop_size


def crop_applies(resized: tuple[int, int], preprocess: str, crop_size: int, rule: str = "pix2pix") -> bool:
    """Whether preprocess crops an image of size `resized` (after its resize step) to crop_size."""
    return "crop" in preprocess and _crops(resized, crop_size, rule)


def _crop_error(
    size: tuple[int, int],
    resized: tuple[int, int],
    crop_size: int,
    preprocess: str,
    source: str | None,
    rule: str = "pix2pix",
) -> DataError:
    """The DataError for a crop that does not fit the (resized) image."""
    origin = f" from {source}" if source else ""
    if rule == "pix2pixhd":
        # The original pads the short side with black here; a run should not learn black bands.
        fix = (
            f"pass a --crop_size of at most {min(resized)} (pix2pixHD would pad the short side with black), "
            f"or --preprocess scale_width"
        )
    else:
        fix = "pass --load_size >= --crop_size or --preprocess none"
    return DataError(
        f"--crop_size {crop_size} is larger than the {size[1]}x{size[0]} image{origin} "
        f"({resized[1]}x{resized[0]} after --preprocess {preprocess}); {fix}"
    )


def make_params(
    size: tuple[int, int],
    preprocess: str,
    load_size: int,
    crop_size: int,
    no_flip: bool,
    train: bool,
    rng: np.random.Generator,
    *,
    source: str | None = None,
    rule: str = "pix2pix",
    multiple: int = 1,
) -> dict:
    """Draw the crop position and flip for one item of size (height, width) = image.shape[-2:].

    Call once per item and pass the result to apply_transform for every image of the item, so
    A, B and label maps get the same crop and flip. With train=False the crop is centred and
    nothing is flipped. `source` (a file name) makes errors name the file. `rule` and `multiple`
    as for resized_size.
    """
    resized = resized_size(size, preprocess, load_size, crop_size, rule=rule, multiple=multiple)
    x = y = 0
    if "crop" in preprocess and _crops(resized, crop_size, rule):
        if crop_size < 1:
            raise OptionsError(f"--crop_size {crop_size} must be at least 1; pass e.g. --crop_size 256")
        spare_h, spare_w = resized[0] - crop_size, resized[1] - crop_size
        if spare_h < 0 or spare_w < 0:
            raise _crop_error(size, resized, crop_size, preprocess, source, rule)
        if train:
            x, y = int(rng.integers(0, spare_w + 1)), int(rng.integers(0, spare_h + 1))
        else:
            x, y = spare_w // 2, spare_h // 2
    flip = bool(train and not no_flip and rng.random() < 0.5)
    return {"crop_pos": (x, y), "flip": flip}


def _resize(image: torch.Tensor, size: tuple[int, int], method: str) -> torch.Tensor:
    """Resize (..., H, W) to size with bicubic/bilinear (antialiased, clamped to [0, 1]) or nearest."""
    if method not in _INTERPOLATION:
        raise ValueError(f"unknown resize method {method!r}; use one of {', '.join(_INTERPOLATION)}")
    lead = image.shape[:-2]
    batch = image.reshape(1, -1, *image.shape[-2:])
    dtype = image.dtype
    if not batch.is_floating_point():
        batch = batch.to(torch.float32)  # label ids stay exact: float32 holds integers up to 2**24
    mode = _INTERPOLATION[method]
    if mode == "nearest-exact":
        out = F.interpolate(batch, size=size, mode=mode)
    else:
        out = F.interpolate(batch, size=size, mode=mode, align_corners=False, antialias=True).clamp_(0.0, 1.0)
    return out.to(dtype).reshape(*lead, *size)


def apply_transform(
    image: torch.Tensor,
    params: dict,
    preprocess: str,
    load_size: int,
    crop_size: int,
    method: str = "bicubic",
    *,
    rule: str = "pix2pix",
    multiple: int = 1,
) -> torch.Tensor:
    """Resize, crop and flip a (C x) H x W image as preprocess and params say.

    Photos use 'bicubic' and must lie in [0, 1]; label and instance maps use 'nearest'. `rule` and
    `multiple` as for resized_size ('none' keeps the size, or rounds it to the multiple for pix2pixHD).
    """
    size = (int(image.shape[-2]), int(image.shape[-1]))
    resized = resized_size(size, preprocess, load_size, crop_size, rule=rule, multiple=multiple)
    if resized != size:
        image = _resize(image, resized, method)
    if "crop" in preprocess and _crops(resized, crop_size, rule):
        x, y = params["crop_pos"]
        if y + crop_size > resized[0] or x + crop_size > resized[1]:
            raise _crop_error(size, resized, crop_size, preprocess, None, rule)
        image = image[..., y : y + crop_size, x : x + crop_size]
    if params.get("flip", False):
        image = image.flip(-1)
    return image.contiguous()
