"""Image-quality metrics against a target: PSNR, SSIM and L1, on images scaled to [0, 1]."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(output: Tensor, target: Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two [0, 1] images (C x H x W); inf when identical."""
    mse = F.mse_loss(output.double(), target.double()).item()
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(output: Tensor, target: Tensor) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) of two
    [0, 1] images (C x H x W), averaged over channels and the valid (unpadded) window positions."""
    c = output.shape[0]
    x, y = output.double()[None], target.double()[None]
    size = min(11, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # the window must be odd and fit inside the image
    window = _gaussian_window(size).expand(c, 1, size, size)

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean().item()


def l1(output: Tensor, target: Tensor) -> float:
    """Mean absolute difference of two [0, 1] images."""
    return (output.double() - target.double()).abs().mean().item()


def image_metrics(output: Tensor, target: Tensor) -> dict[str, float]:
    """PSNR, SSIM and L1 of one output against its target, both C x H x W in [-1, 1]."""
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    a = ((output.detach().cpu().float() + 1) / 2).clamp(0, 1)
    b = ((target.detach().cpu().float() + 1) / 2).clamp(0, 1)
    return {"psnr": psnr(a, b), "ssim": ssim(a, b), "l1": l1(a, b)}
