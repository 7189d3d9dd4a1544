"""CIE Lab (sRGB, D65, 2-degree observer) in torch, as scikit-image computes it, and the encoding the
colourisation models use: A = L / 50 - 1 (the network's input), B = ab / 110 (its output), as the
original pix2pix repository's colourisation data set and model.

Plain tensor operations (no NumPy round trip), so conversions run on the model's device, batch at a
time, and inside exported graphs. `tests/test_color.py` checks them against scikit-image.
"""

from __future__ import annotations

import torch
from torch import Tensor

# scikit-image's sRGB -> XYZ matrix (color.colorconv.xyz_from_rgb) and the D65 white point (2 degrees).
_XYZ_FROM_RGB = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
    dtype=torch.float64,
)
_RGB_FROM_XYZ = torch.linalg.inv(_XYZ_FROM_RGB)
_WHITE = (0.95047, 1.0, 1.08883)
L_SCALE, AB_SCALE = 50.0, 110.0


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    """matrix (3 x 3) applied to the channels of N x 3 x H x W."""
    return torch.einsum("ij,njhw->nihw", matrix.to(x.dtype).to(x.device), x)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """N x 3 x H x W sRGB in [0, 1] to Lab (L in [0, 100], a and b about [-110, 110])."""
    linear = torch.where(rgb > 0.04045, ((rgb.clamp(min=0) + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = _mix(_XYZ_FROM_RGB, linear)
    white = torch.tensor(_WHITE, dtype=xyz.dtype, device=xyz.device).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(t > 0.008856, t.clamp(min=1e-12) ** (1 / 3), 7.787 * t + 16 / 116)
    fx, fy, fz = f[:, 0:1], f[:, 1:2], f[:, 2:3]
    return torch.cat([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lab_to_rgb(lab: Tensor, clip: bool = True) -> Tensor:
    """N x 3 x H x W Lab to sRGB in [0, 1], colours outside the gamut clipped as scikit-image's lab2rgb clips
    them; with clip=False they come back outside [0, 1] (how the hints tell which are)."""
    fy = (lab[:, 0:1] + 16) / 116
    fx = lab[:, 1:2] / 500 + fy
    fz = fy - lab[:, 2:3] / 200
    fz = fz.clamp(min=0) if clip else fz
    f = torch.cat([fx, fy, fz], 1)
    t = torch.where(f > 0.2068966, f**3, (f - 16 / 116) / 7.787)
    white = torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    linear = _mix(_RGB_FROM_XYZ, t * white)
    rgb = torch.where(linear > 0.0031308, 1.055 * linear.clamp(min=0) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return rgb.clamp(0, 1) if clip else rgb


def encode(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """RGB in [-1, 1] (N x 3 x H x W) to the colourisation encoding: (L / 50 - 1, ab / 110)."""
    lab = rgb_to_lab((rgb.float() + 1) / 2)
    return lab[:, :1] / L_SCALE - 1, lab[:, 1:] / AB_SCALE


def decode(light: Tensor, ab: Tensor) -> Tensor:
    """The encoding's L (N x 1) and ab (N x 2) back to RGB in [-1, 1]."""
    lab = torch.cat([(light.float() + 1) * L_SCALE, ab.float() * AB_SCALE], 1)
    return lab_to_rgb(lab) * 2 - 1
