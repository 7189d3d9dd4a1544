"""Running size-constrained networks on images of any size by padding and cropping."""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Pad an N x C x H x W tensor at the bottom and right so H and W are multiples of multiple."""
    if multiple < 1:
        raise ValueError(f"pad multiple must be >= 1, got {multiple}")
    height, width = x.shape[-2:]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    # Reflection looks more natural at the border but cannot pad by as much as the side itself.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _size_multiple(net: nn.Module) -> int:
    """Return the side multiple net needs, looking through DataParallel-style wrappers; 1 if none."""
    for candidate in (net, getattr(net, "module", None), getattr(net, "_orig_mod", None)):
        multiple = getattr(candidate, "size_multiple", None)
        if multiple is not None:
            return int(multiple)
    return 1


def forward_padded(net: nn.Module, x: Tensor, multiple: int | None = None) -> Tensor:
    """Run net on x padded to a multiple (default net.size_multiple) and crop back to x's H x W."""
    if multiple is None:
        multiple = _size_multiple(net)
    height, width = x.shape[-2:]
    out = net(pad_to_multiple(x, multiple))
    return out[..., :height, :width]
