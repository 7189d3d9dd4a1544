"""Colour hints for user-guided colourisation (Zhang*, Zhu* et al., SIGGRAPH 2017): simulated ones for
training and testing, a user's points, their encoding, and the quantised ab the classification head
predicts.

The network's input is (L - 50) / 100, hint ab / 110 and mask - 0.5, as the authors' code encodes it.
A hint is a square patch holding one ab value (the mean of the photo's ab there when simulated);
the mask is 1 on hints. Simulation follows the authors: hints are added while a draw stays below
1 - p (a geometric count: mean (1 - p) / p, no hint with probability p), each patch side drawn from
`patch_sizes`, its place normal around the centre (standard deviation a quarter of the side) or
uniform.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganvas import color
from ganvas.errors import DataError
from ganvas.safe import load_json

L_CENTRE, L_NORM, AB_NORM, MASK_CENTRE = 50.0, 100.0, 110.0, 0.5


def simulate(
    ab: Tensor,
    rng: np.random.Generator,
    p: float,
    patch_sizes: tuple[int, ...],
    loc: str = "normal",
    count: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(hint ab 2 x H x W, mask 1 x H x W) for a photo's ab (2 x H x W, ab / 110).

    `count` places exactly that many hints (test's --num_hints); else their number is geometric with p.
    """
    _, height, width = ab.shape
    hint, mask = torch.zeros_like(ab), torch.zeros(1, height, width)
    placed = 0
    while (placed < count) if count is not None else (rng.random() < 1 - p):
        size = int(rng.choice(patch_sizes))
        size = min(size, height, width)
        if loc == "uniform":
            top, left = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
        else:
            top = int(np.clip(rng.normal((height - size + 1) / 2, (height - size + 1) / 4), 0, height - size))
            left = int(np.clip(rng.normal((width - size + 1) / 2, (width - size + 1) / 4), 0, width - size))
        patch = (slice(top, top + size), slice(left, left + size))
        hint[:, patch[0], patch[1]] = ab[:, patch[0], patch[1]].mean(dim=(1, 2), keepdim=True)
        mask[:, patch[0], patch[1]] = 1
        placed += 1
    return hint, mask


def _ints(text: str, least: int, example: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in str(text).split(",") if v.strip())
    if not values or min(values) < least:
        raise ValueError(f"expected numbers such as {example}, not {text!r}")
    return values


def patch_sizes(text: str) -> tuple[int, ...]:
    """--sample_Ps ("1,2,...,9") as patch sides; ValueError for anything else."""
    return _ints(text, 1, "1,2,3")


def hint_counts(text: str) -> tuple[int, ...]:
    """--num_hints ("0,1,10,100") as hint counts; ValueError for anything else."""
    return _ints(text, 0, "0,1,10,100")


def network_input(light: Tensor, hint: Tensor, mask: Tensor) -> Tensor:
    """The 4-channel input from L / 50 - 1 (the colourisation data set's A), hint ab / 110 and the mask."""
    lightness = (light + 1) * color.L_SCALE
    return torch.cat([(lightness - L_CENTRE) / L_NORM, hint, mask - MASK_CENTRE], 1)


def bins(ab_max: float, ab_quant: float) -> int:
    """Quantised ab values per axis (23 for 110 and 10: 529 classes in all)."""
    return int(2 * ab_max / ab_quant) + 1


def quantise(ab: Tensor, ab_max: float, ab_quant: float) -> Tensor:
    """Class index (N x H x W, long) of ab (N x 2 x H x W, ab / 110): a's bin times bins + b's bin."""
    per_axis = bins(ab_max, ab_quant)
    index = torch.round((ab * AB_NORM + ab_max) / ab_quant).long().clamp(0, per_axis - 1)
    return index[:, 0] * per_axis + index[:, 1]


def bin_centres(ab_max: float, ab_quant: float) -> Tensor:
    """The ab (classes x 2, in ab units) of every class."""
    per_axis = bins(ab_max, ab_quant)
    axis = torch.arange(per_axis, dtype=torch.float32) * ab_quant - ab_max
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def in_gamut(lightness: float, ab: Tensor) -> Tensor:
    """ab (K x 2, ab units) scaled towards grey until each is an sRGB colour at `lightness` (0-100)."""
    lab = torch.cat([torch.full((len(ab), 1), float(lightness)), ab], 1)
    scale = torch.ones(len(ab))
    for _ in range(20):  # bisect on the chroma
        trial = lab.clone()
        trial[:, 1:] *= scale[:, None]
        rgb = _unclipped_rgb(trial)
        outside = ((rgb < -1e-3) | (rgb > 1 + 1e-3)).any(1)
        if not outside.any():
            break
        scale = torch.where(outside, scale * 0.9, scale)
    return ab * scale[:, None]


def _unclipped_rgb(lab: Tensor) -> Tensor:
    """sRGB of K x 3 Lab colours without clipping (to tell which lie outside the gamut)."""
    return color.lab_to_rgb(lab[:, :, None, None], clip=False)[:, :, 0, 0]


# ---------------------------------------------------------------------------------------------------
# A user's hints


@dataclass(frozen=True)
class Hint:
    """A point in the input image's pixels, its colour (RGB 0-255) and the side of its square patch."""

    x: int
    y: int
    rgb: tuple[int, int, int]
    patch: int = 1


MAX_PATCH = 64


def parse_hints(points: Any, width: int, height: int, source: str = "the hints") -> list[Hint]:
    """Hints from (x, y, rgb[, patch]) tuples, {"x", "y", "rgb", "patch"} dicts or Hints; DataError for a bad one."""
    if not isinstance(points, (list, tuple)):
        raise DataError(f"{source} must be a list of points (x, y, (r, g, b), patch), not a {type(points).__name__}")
    hints = []
    for i, point in enumerate(points):
        try:
            if isinstance(point, Hint):
                x, y, rgb, patch = point.x, point.y, point.rgb, point.patch
            elif isinstance(point, dict):
                x, y, rgb, patch = point["x"], point["y"], point["rgb"], point.get("patch", 1)
            else:
                x, y, rgb, *rest = point
                patch = rest[0] if rest else 1
        except (KeyError, TypeError, ValueError):
            raise DataError(
                f"point {i} of {source} is {point!r}; give x, y (pixels), rgb (three 0-255 values) and patch"
            ) from None
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (x, y, patch)):
            raise DataError(f"point {i} of {source} has x {x!r}, y {y!r}, patch {patch!r}; give numbers")
        if not (0 <= x < width and 0 <= y < height):
            raise DataError(f"point {i} of {source} at ({x}, {y}) is outside the {width} x {height} image")
        if not (
            isinstance(rgb, (list, tuple))
            and len(rgb) == 3
            and all(isinstance(c, (int, float)) and 0 <= c <= 255 for c in rgb)
        ):
            raise DataError(f"point {i} of {source} has colour {rgb!r}; give three values from 0 to 255 (R, G, B)")
        if not 1 <= patch <= MAX_PATCH:
            raise DataError(f"point {i} of {source} has patch {patch}; give a side from 1 to {MAX_PATCH} pixels")
        hints.append(Hint(int(x), int(y), tuple(int(round(c)) for c in rgb), int(patch)))
    return hints


def read_hints_file(path: Path, width: int, height: int) -> list[Hint]:
    """A hints.json: {"points": [{"x", "y", "rgb", "patch"}, ...]} in the input image's pixels."""
    document = load_json(path, "the hints file", 'write {"points": [{"x": 10, "y": 20, "rgb": [200, 30, 30]}]}')
    if not isinstance(document, dict) or "points" not in document:
        raise DataError(f'{path} must hold {{"points": [...]}}; each point {{"x", "y", "rgb", "patch"}}')
    return parse_hints(document["points"], width, height, str(path))


def hint_maps(hints: list[Hint], light: Tensor, out_height: int, out_width: int) -> tuple[Tensor, Tensor, list[str]]:
    """(hint ab 1 x 2 x h x w, mask 1 x 1 x h x w, notes) of user hints on a map of out_height x out_width.

    `light` is the input's L / 50 - 1 at full resolution (1 x 1 x H x W): each hint's ab is its colour's,
    snapped into the sRGB gamut at the L of its pixel (a note says so). Patches scale with the map.
    """
    height, width = light.shape[-2:]
    hint = torch.zeros(1, 2, out_height, out_width)
    mask = torch.zeros(1, 1, out_height, out_width)
    notes = []
    for i, h in enumerate(hints):
        rgb = torch.tensor(h.rgb, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1
        ab = color.encode(rgb)[1].view(1, 2) * AB_NORM
        lightness = float((light[0, 0, h.y, h.x] + 1) * color.L_SCALE)
        snapped = in_gamut(lightness, ab)
        if float((snapped - ab).abs().max()) > 1.0:
            notes.append(
                f"hint {i} at ({h.x}, {h.y}): {h.rgb} has no sRGB colour of that chroma at the pixel's lightness "
                f"{lightness:.0f}; used the nearest one towards grey"
            )
        sy, sx = out_height / height, out_width / width
        cy, cx = (h.y + 0.5) * sy, (h.x + 0.5) * sx
        half_h, half_w = max(h.patch * sy, 1) / 2, max(h.patch * sx, 1) / 2
        top, left = max(0, int(round(cy - half_h))), max(0, int(round(cx - half_w)))
        bottom, right = (
            min(out_height, max(top + 1, int(round(cy + half_h)))),
            min(out_width, max(left + 1, int(round(cx + half_w)))),
        )
        hint[0, :, top:bottom, left:right] = (snapped[0] / AB_NORM)[:, None, None]
        mask[0, 0, top:bottom, left:right] = 1
    return hint, mask, notes
