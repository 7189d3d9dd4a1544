"""Differentiable optical-flow tools: backward warping, the forward-backward consistency check, flow resizing.

Convention everywhere in ganvas: the backward flow of frame t maps each pixel p of frame t to where that
point was in frame t-1, p + flow_t(p), so warp(frame_{t-1}, flow_t) reproduces frame t. Flows are in
pixels, channel 0 along x (right), channel 1 along y (down); tensors are N x 2 x H x W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_flow(flow: Tensor, name: str = "flow") -> None:
    """ValueError unless flow is an N x 2 x H x W tensor."""
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(
            f"{name} must be an N x 2 x H x W tensor (x and y displacements in pixels), got shape "
            f"{tuple(flow.shape)}; add the batch dimension with flow[None] or move channels first"
        )


def _work_dtype(*tensors: Tensor) -> torch.dtype:
    """float64 when any input is float64, else float32: sampling positions need more than half precision."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _pixel_scale(size: int) -> float:
    """Normalised units per pixel with align_corners=True (any value for a size of 1 samples its only pixel)."""
    return 2.0 / max(size - 1, 1)


def sampling_grid(flow: Tensor) -> Tensor:
    """The N x H x W x 2 grid_sample grid (align_corners=True) of the points p + flow(p), in float32 or float64."""
    points = sample_points(flow)
    _, _, height, width = flow.shape
    return torch.stack([points[:, 0] * _pixel_scale(width) - 1.0, points[:, 1] * _pixel_scale(height) - 1.0], dim=-1)


def sample_points(flow: Tensor) -> Tensor:
    """N x 2 x H x W pixel coordinates p + flow(p) (x, y), in float32 (float64 for a float64 flow)."""
    _check_flow(flow)
    _, _, height, width = flow.shape
    flow = flow.to(_work_dtype(flow))
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype)
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype)
    # The base grid is two 1-D ramps broadcast against the flow: nothing worth caching.
    return torch.stack([flow[:, 0] + xs[None, None, :], flow[:, 1] + ys[None, :, None]], dim=1)


def warp(x: Tensor, flow: Tensor) -> Tensor:
    """Sample x (N x C x H x W) at p + flow(p) for every pixel p: bilinear, edges repeated, differentiable in both.

    warp(frame_{t-1}, backward flow of frame t) ~ frame t. Positions are computed in float32 (float64 when
    an input is float64) also under autocast; the result has x's dtype.
    """
    _check_flow(flow)
    if x.ndim != 4 or x.shape[0] != flow.shape[0] or x.shape[-2:] != flow.shape[-2:]:
        raise ValueError(
            f"cannot warp an image of shape {tuple(x.shape)} by a flow of shape {tuple(flow.shape)}; both need "
            f"the same batch size, height and width (resize the flow with resize_flow)"
        )
    dtype = _work_dtype(x, flow)
    grid = sampling_grid(flow.to(dtype))
    out = F.grid_sample(x.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out.to(x.dtype)


def inside_mask(flow: Tensor) -> Tensor:
    """N x 1 x H x W bool: whether p + flow(p) lies inside the image (the pixel centres' hull)."""
    points = sample_points(flow)
    height, width = flow.shape[-2:]
    x, y = points[:, 0], points[:, 1]
    return ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1))[:, None]


def consistency_mask(flow_bwd: Tensor, flow_fwd: Tensor, alpha1: float = 0.01, alpha2: float = 0.5) -> Tensor:
    """N x 1 x H x W mask (1 valid, 0 not, flow_bwd's dtype) of the forward-backward check of frame t.

    flow_bwd is frame t's backward flow (t -> t-1), flow_fwd frame t-1's forward flow (t-1 -> t). A pixel is
    valid where |w_b + w_f'|^2 < alpha1 (|w_b|^2 + |w_f'|^2) + alpha2 with w_f' = warp(w_f, w_b) (Sundaram et
    al. 2010, as Lai et al. 2018 use it) and p + w_b(p) is inside frame t-1: occluded, newly uncovered and
    mismatched pixels are 0.
    """
    _check_flow(flow_bwd, "flow_bwd")
    _check_flow(flow_fwd, "flow_fwd")
    if flow_bwd.shape != flow_fwd.shape:
        raise ValueError(
            f"the backward flow {tuple(flow_bwd.shape)} and forward flow {tuple(flow_fwd.shape)} differ in shape; "
            f"pass the two flows of one frame pair"
        )
    with torch.no_grad():
        dtype = _work_dtype(flow_bwd, flow_fwd)
        backward, forward = flow_bwd.to(dtype), flow_fwd.to(dtype)
        returned = warp(forward, backward)
        mismatch = (backward + returned).square().sum(1, keepdim=True)
        magnitude = backward.square().sum(1, keepdim=True) + returned.square().sum(1, keepdim=True)
        valid = (mismatch < alpha1 * magnitude + alpha2) & inside_mask(backward)
    return valid.to(flow_bwd.dtype)


def resize_flow(flow: Tensor, size: tuple[int, int]) -> Tensor:
    """A flow (N x 2 x H x W) resized to size = (height, width), its vectors scaled with the image.

    Bilinear with pixel-area alignment (align_corners=False, antialiased when shrinking), as images are
    resized by Pillow and F.interpolate's default, so the x and y displacements scale by width / W and height / H.
    """
    _check_flow(flow)
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize a flow to {height} x {width}; give a size of at least 1 x 1")
    old_height, old_width = flow.shape[-2:]
    if (height, width) == (old_height, old_width):
        return flow
    dtype = _work_dtype(flow)
    shrink = height < old_height or width < old_width
    resized = F.interpolate(
        flow.to(dtype), size=(height, width), mode="bilinear", align_corners=False, antialias=shrink
    )
    scaled = torch.stack([resized[:, 0] * (width / old_width), resized[:, 1] * (height / old_height)], dim=1)
    return scaled.to(flow.dtype)
