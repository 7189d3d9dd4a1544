"""The colourisation generator as exported and translated: CIE L in, RGB out."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ganvas import color
from ganvas.nets.padding import forward_padded, net_size


def colour_at(generator: nn.Module, light: Tensor, size: int) -> Tensor:
    """The generator's ab for L (N x 1 x H x W, L / 50 - 1), predicted with the longer side at most `size`
    and resized back to H x W (bilinear), so a large photo keeps its own full-resolution L."""
    height, width = light.shape[-2:]
    if size <= 0 or max(height, width) <= size:
        return forward_padded(generator, light)
    scale = size / max(height, width)
    small = F.interpolate(light, size=(max(1, round(height * scale)), max(1, round(width * scale))), mode="area")
    ab = forward_padded(generator, small)
    return F.interpolate(ab, size=(height, width), mode="bilinear", align_corners=False)


class LabOutputs(nn.Module):
    """A generator from L to ab, giving RGB in [-1, 1]: the colour joined with the input's own L.

    Input: N x 1 x H x W, L / 50 - 1 (what `ganvas.color.encode` gives); `size`: as colour_at.
    """

    def __init__(self, generator: nn.Module, size: int = 0):
        super().__init__()
        self.generator, self.size = generator, size

    @property
    def size_multiple(self) -> int:
        return net_size(self.generator)

    @property
    def min_side(self) -> int:
        return net_size(self.generator, "min_side")

    def forward(self, light: Tensor) -> Tensor:
        return color.decode(light, colour_at(self.generator, light, self.size))
