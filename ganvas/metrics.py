"""Image-quality metrics: PSNR, SSIM and L1 against a target (images scaled to [0, 1]), and set figures for samples."""

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


def _unit_batch(images: Tensor) -> Tensor:
    """N x C x H x W in [-1, 1] as float64 in [0, 1]."""
    return ((images.detach().cpu().double() + 1) / 2).clamp(0, 1)


def sample_diversity(images: Tensor) -> float:
    """Mean L1 distance between two different images of a set (N x C x H x W in [-1, 1], N >= 2); 0 when collapsed."""
    x = _unit_batch(images).flatten(1)
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"diversity needs at least two images, got {n}")
    distances = torch.cdist(x, x, p=1) / x.shape[1]
    return float(distances.sum() / (n * (n - 1)))


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def thumbnail_fd(images: Tensor, reference: Tensor, side: int = 8) -> float:
    """Fréchet distance between the Gaussians fitted to `side` x `side` area-averaged thumbnails of two sets.

    FID's formula on pixels instead of Inception features: no weights needed, blind to fine texture, but it
    sees wrong colours, layouts and a collapsed or structureless set. Sets of N x C x H x W in [-1, 1].
    """
    a = F.adaptive_avg_pool2d(_unit_batch(images), side).flatten(1)
    b = F.adaptive_avg_pool2d(_unit_batch(reference), side).flatten(1)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    distance = (a.mean(0) - b.mean(0)).square().sum() + torch.trace(cov_a + cov_b - 2 * cross)
    return float(distance.clamp(min=0))
