"""Running size-constrained networks on images of any size by padding and cropping."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ganvas.speed import unwrap


def pad_to_multiple(x: Tensor, multiple: int, min_side: int = 1) -> Tensor:
    """Pad an N x C x H x W tensor at the bottom and right so H and W are multiples of `multiple`, at least min_side."""
    if multiple < 1:
        raise ValueError(f"pad multiple must be >= 1, got {multiple}")
    height, width = x.shape[-2:]
    least = -(-min_side // multiple) * multiple
    pad_h = max(-height % multiple, least - height)
    pad_w = max(-width % multiple, least - width)
    if pad_h == 0 and pad_w == 0:
        return x
    # Reflection looks more natural at the border but cannot pad by as much as the side itself.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def net_size(net: nn.Module, name: str = "size_multiple") -> int:
    """net's size_multiple or min_side, looking through DDP and compile wrappers; 1 if none."""
    for candidate in (net, unwrap(net)):  # a wrapper's own value first
        value = getattr(candidate, name, None)
        if value is not None:
            return int(value)
    return 1


def forward_padded(net: nn.Module, x: Tensor, multiple: int | None = None) -> Tensor:
    """Run net on x padded to a multiple (default net.size_multiple) and crop back to x's H x W.

    Images smaller than net.min_side (generators whose bottleneck reflection-pads need it at least two
    pixels wide) are padded up to it.
    """
    if multiple is None:
        multiple = net_size(net, "size_multiple")
    height, width = x.shape[-2:]
    out = net(pad_to_multiple(x, multiple, net_size(net, "min_side")))
    return out[..., :height, :width]
