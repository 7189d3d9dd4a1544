"""Image-quality metrics: PSNR, SSIM and L1 against a target (images scaled to [0, 1]), and set figures for samples."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganvas.data.flow import PRESETS, dis_flow
from ganvas.data.io import tensor_to_uint8
from ganvas.nets.flow import warp


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


def thumbnail_fd(images: Tensor, reference: Tensor, side: int = 8) -> float:
    """Fréchet distance between the Gaussians fitted to `side` x `side` area-averaged thumbnails of two sets.

    FID's formula on pixels instead of Inception features: no weights needed, blind to fine texture, but it
    sees wrong colours, layouts and a collapsed or structureless set. Sets of N x C x H x W in [-1, 1].
    """
    a = F.adaptive_avg_pool2d(_unit_batch(images), side).flatten(1)
    b = F.adaptive_avg_pool2d(_unit_batch(reference), side).flatten(1)
    return max(0.0, frechet_distance(*feature_statistics(a), *feature_statistics(b)))


# ---------------------------------------------------------------------------------------------------
# Set figures on features (FID and KID on Inception features, as the reference code computes them)


def fid_resize(image: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 image as FID's 299 x 299 input, resized as clean-fid's "clean" mode does: each channel
    as a float image with PIL's bicubic filter (antialiased when shrinking), clipped to [0, 255], not quantised."""
    from PIL import Image

    from ganvas.nets.inception import INPUT_SIZE

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"FID takes H x W x 3 uint8 images, got {image.dtype} of shape {image.shape}")
    channels = [
        np.asarray(
            Image.fromarray(image[..., c].astype(np.float32), mode="F").resize(
                (INPUT_SIZE, INPUT_SIZE), resample=Image.Resampling.BICUBIC
            )
        ).clip(0, 255)
        for c in range(3)
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


@torch.no_grad()
def inception_features(images: Sequence[np.ndarray], net: torch.nn.Module, batch_size: int = 32) -> Tensor:
    """N x 2048 pool features of FID's Inception (ganvas.nets.inception.load_fid_inception) for H x W x 3 uint8
    images, each resized by fid_resize."""
    device = next(net.parameters()).device
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([fid_resize(image) for image in images[start : start + batch_size]])
        chunks.append(net(torch.from_numpy(batch).permute(0, 3, 1, 2).to(device)).double().cpu())
    return torch.cat(chunks) if chunks else torch.zeros(0, 2048, dtype=torch.float64)


def feature_statistics(features: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) in float64 of N x D features, the covariance with N - 1 as numpy.cov."""
    x = features.detach().cpu().double().numpy() if isinstance(features, Tensor) else np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"feature statistics need N x D features with N >= 2, got shape {x.shape}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance of two Gaussians: |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    The trace of the root is taken as the reference code (TTUR, torch-fidelity) does: the sum of the square
    roots of the eigenvalues of S1 S2, whose imaginary rounding noise is dropped.
    """
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    root_trace = np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128)).real.sum()
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * root_trace)


def kernel_distance(
    features1: Tensor | np.ndarray,
    features2: Tensor | np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
) -> tuple[float, float, int]:
    """KID (Bińkowski et al.): the unbiased MMD^2 with the kernel (x.y / D + 1)^3, mean and standard deviation
    over `subsets` random subsets drawn without replacement, as the reference code draws them; the subset size
    used is the smallest of `subset_size` and the two set sizes (returned third)."""
    x = features1.detach().cpu().double().numpy() if isinstance(features1, Tensor) else np.asarray(features1, float)
    y = features2.detach().cpu().double().numpy() if isinstance(features2, Tensor) else np.asarray(features2, float)
    size = min(subset_size, len(x), len(y))
    if size < 2:
        raise ValueError(f"KID needs at least 2 features per set, got {len(x)} and {len(y)}")
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for i in range(subsets):
        a = x[rng.choice(len(x), size, replace=False)]
        b = y[rng.choice(len(y), size, replace=False)]
        values[i] = _unbiased_mmd2(a, b)
    return float(values.mean()), float(values.std()), size


def _unbiased_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    def kernel(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (u @ v.T / u.shape[1] + 1) ** 3

    m = len(a)
    k_aa, k_bb, k_ab = kernel(a, a), kernel(b, b), kernel(a, b)
    within = (k_aa.sum() - np.trace(k_aa) + k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within - 2 * k_ab.sum() / (m * m))


# ---------------------------------------------------------------------------------------------------
# Temporal consistency of videos: Lai et al.'s warping error and TecoGAN's tOF, whole or streamed


def _as_flow(flow: Tensor | np.ndarray) -> Tensor:
    """A backward flow as a 1 x 2 x H x W float64 CPU tensor (from a 2 x H x W tensor or an H x W x 2 array)."""
    if isinstance(flow, np.ndarray):
        flow = torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"expected a 2 x H x W flow tensor (or an H x W x 2 array), got shape {tuple(flow.shape)}")
    return flow.detach().cpu().double()[None]


def _as_valid(valid: Tensor | np.ndarray, size: tuple[int, int]) -> Tensor:
    """A validity mask (1 x H x W or H x W, tensor or array) as 1 x 1 x H x W float64 on the CPU."""
    mask = torch.as_tensor(np.asarray(valid)) if isinstance(valid, np.ndarray) else valid.detach().cpu()
    mask = mask.reshape(-1, *mask.shape[-2:])
    if mask.shape != (1, *size):
        raise ValueError(f"expected a 1 x {size[0]} x {size[1]} validity mask, got shape {tuple(valid.shape)}")
    return mask.bool().double()[None]


def frame_warping_error(previous: Tensor, current: Tensor, flow: Tensor, valid: Tensor | None = None) -> float:
    """Lai et al.'s (2018) warping error of one frame pair (C x H x W in [-1, 1]): the mean squared difference
    on [0, 1] images between current and previous warped by current's backward flow, over valid pixels and
    channels (all pixels when valid is None; 0 when none is valid, as their evaluate_WarpError.py counts it)."""
    a, b = _unit_batch(previous[None]), _unit_batch(current[None])
    flow = _as_flow(flow)
    mask = torch.ones_like(b[:, :1]) if valid is None else _as_valid(valid, tuple(b.shape[-2:]))
    squared = (warp(a, flow) - b).square() * mask
    count = float(mask.sum()) * b.shape[1]
    return float(squared.sum()) / count if count else 0.0


def frame_tof(
    previous_output: Tensor, output: Tensor, previous_reference: Tensor, reference: Tensor, preset: str
) -> float:
    """TecoGAN's tOF of one frame pair (C x H x W in [-1, 1]): the mean over pixels of the end-point distance
    |f_out - f_ref| between the optical flows (DIS, data.flow.dis_flow) of the output pair and the reference pair."""
    flow_out = dis_flow(tensor_to_uint8(previous_output), tensor_to_uint8(output), preset)
    flow_ref = dis_flow(tensor_to_uint8(previous_reference), tensor_to_uint8(reference), preset)
    return float(np.linalg.norm(flow_out.astype(np.float64) - flow_ref, axis=-1).mean())


class TemporalMeter:
    """Temporal consistency of one or more videos streamed frame by frame: warping error and tOF.

    add() each frame of a video in order (the output, and optionally its reference frame and the backward
    flow of the frame with its validity); end_sequence() between videos. result() gives the mean over
    videos of each video's mean over frame pairs, as Lai et al. and TecoGAN average, for the figures fed:
    "warping_error" (Lai et al.'s E_warp, MSE on [0, 1] images; papers often print it times 1e3) where
    flows were given, "tof" (TecoGAN's tOF with DIS flows) where references were, and "videos".
    """

    def __init__(self, preset: str = "medium") -> None:
        """A meter whose tOF uses the DIS preset given (data.flow.PRESETS)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(PRESETS)}")
        self.preset = preset
        self._previous: tuple[Tensor, Tensor | None] | None = None
        self._pairs: dict[str, list[float]] = {"warping_error": [], "tof": []}
        self._videos: dict[str, list[float]] = {"warping_error": [], "tof": []}

    def add(
        self,
        output: Tensor,
        reference: Tensor | None = None,
        flow: Tensor | np.ndarray | None = None,
        valid: Tensor | np.ndarray | None = None,
    ) -> None:
        """Feed the next frame (C x H x W in [-1, 1]); flow is its backward flow to the previous frame (2 x H x W,
        ignored for a video's first frame), valid its 1 x H x W mask (all pixels when None)."""
        output = output.detach().cpu()
        reference = None if reference is None else reference.detach().cpu()
        if self._previous is not None:
            previous_output, previous_reference = self._previous
            if flow is not None:
                self._pairs["warping_error"].append(frame_warping_error(previous_output, output, flow, valid))
            if reference is not None and previous_reference is not None:
                self._pairs["tof"].append(
                    frame_tof(previous_output, output, previous_reference, reference, self.preset)
                )
        self._previous = (output, reference)

    def end_sequence(self) -> None:
        """Close the current video: its frame pairs are averaged and the next add() starts a new video."""
        for key, pairs in self._pairs.items():
            if pairs:
                self._videos[key].append(sum(pairs) / len(pairs))
            pairs.clear()
        self._previous = None

    def result(self) -> dict[str, float]:
        """{"warping_error", "tof": mean over videos (the current one too), "videos": how many}; measured ones only."""
        figures: dict[str, float] = {}
        videos = 0
        for key, means in self._videos.items():
            pending = self._pairs[key]
            values = means + ([sum(pending) / len(pending)] if pending else [])
            if values:
                figures[key] = sum(values) / len(values)
                videos = max(videos, len(values))
        figures["videos"] = videos
        return figures


def _check_sequence(name: str, frames: Sequence, *others: tuple[str, Sequence]) -> None:
    """ValueError unless frames has at least two entries and every other sequence as many."""
    if len(frames) < 2:
        raise ValueError(f"{name} needs at least two frames, got {len(frames)}")
    for other, values in others:
        if len(values) != len(frames):
            raise ValueError(
                f"{len(frames)} frames but {len(values)} {other}; give one entry per frame (entry 0 unused)"
            )


def warping_error(
    frames: Sequence[Tensor], flows: Sequence[Tensor | np.ndarray], valid: Sequence[Tensor | np.ndarray | None]
) -> float:
    """Lai et al.'s (2018) warping error E_warp of one video: the mean over t >= 1 of the masked mean squared
    difference between frame t and frame t-1 warped by flows[t] (frame t's backward flow), on [0, 1] images.

    frames are C x H x W in [-1, 1]; flows[t] 2 x H x W tensors (or H x W x 2 arrays), valid[t] 1 x H x W
    masks; entry 0 of flows and valid is unused. Raw MSE (papers often print it times 1e3).
    """
    _check_sequence("warping_error", frames, ("flows", flows), ("validity masks", valid))
    meter = TemporalMeter()
    meter.add(frames[0])
    for t in range(1, len(frames)):
        meter.add(frames[t], flow=flows[t], valid=valid[t])
    return meter.result()["warping_error"]


def tof(outputs: Sequence[Tensor], references: Sequence[Tensor], preset: str = "medium") -> float:
    """TecoGAN's tOF (Chu et al. 2020) of one video: the mean over t >= 1 of the per-pixel end-point distance
    between the optical flow of (output t-1, output t) and that of (reference t-1, reference t).

    Frames are C x H x W in [-1, 1]; flows are DIS (data.flow.dis_flow, backward) instead of TecoGAN's
    Farneback, over the whole frame instead of their centre crop; needs OpenCV.
    """
    _check_sequence("tof", outputs, ("references", references))
    meter = TemporalMeter(preset)
    for output, reference in zip(outputs, references):
        meter.add(output, reference)
    return meter.result()["tof"]
