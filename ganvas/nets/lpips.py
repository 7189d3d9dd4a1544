"""LPIPS (Zhang et al. 2018), AlexNet version 0.1, from two local files and without torchvision.

The backbone is torchvision's AlexNet feature stack under its own layer names, so `alexnet-owt-7be5be79.pth`
loads as it is; the linear heads are the `lpips` package's `weights/v0.1/alex.pth` (`lin<k>.model.1.weight`).
The distance is the package's: inputs in [-1, 1] shifted and scaled per channel, each of the five ReLU outputs
normalised over channels, squared differences weighted by the heads, averaged over space and summed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ganvas.errors import CheckpointError
from ganvas.safe import load_torch

BACKBONE_FILE = "alexnet-owt-7be5be79.pth"
BACKBONE_URL = f"https://download.pytorch.org/models/{BACKBONE_FILE}"
BACKBONE_SHA256_PREFIX = "7be5be79"  # the hash prefix in the file's name
HEADS_FILE = "lpips_alex_v0.1.pth"
HEADS_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
TAPS = (1, 4, 7, 9, 11)  # the ReLUs after which LPIPS compares features
CHANNELS = (64, 192, 384, 256, 256)


def alexnet_features() -> nn.Sequential:
    """torchvision's AlexNet `features`, layer for layer (indices 0-12), with random weights."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


class _Head(nn.Module):
    """One linear head, named as the lpips package names it (model.1 is the 1 x 1 convolution)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """The LPIPS distance of two N x 3 x H x W images in [-1, 1]: an N-vector (0 for identical images)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = alexnet_features()
        for k, channels in enumerate(CHANNELS):
            self.add_module(f"lin{k}", _Head(channels))

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in TAPS:
                out.append(x / (x.square().sum(1, keepdim=True).sqrt() + 1e-10))
            if index == TAPS[-1]:
                break
        return out

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        taps_a = self._taps((a - self.shift) / self.scale)
        taps_b = self._taps((b - self.shift) / self.scale)
        total = 0
        for k, (fa, fb) in enumerate(zip(taps_a, taps_b)):
            total = total + getattr(self, f"lin{k}")((fa - fb).square()).mean((2, 3))
        return total.flatten()


def load_lpips(backbone: Path, heads: Path, device: torch.device | str = "cpu") -> LPIPS:
    """LPIPS with torchvision's AlexNet weights (`backbone`) and the lpips package's v0.1 heads, in eval mode."""
    net = LPIPS()
    for path, what, prefix, url in (
        (Path(backbone), "AlexNet's weights", "features.", BACKBONE_URL),
        (Path(heads), "LPIPS's linear heads", "lin", HEADS_URL),
    ):
        fix = f"download {url} and pass its path"
        state = load_torch(path, what, fix)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} holds no state_dict; {fix}")
        wanted = {k: v for k, v in net.state_dict().items() if k.startswith(prefix)}
        given = {k: v for k, v in state.items() if k.startswith(prefix)}
        if set(given) != set(wanted) or any(given[k].shape != wanted[k].shape for k in wanted):
            raise CheckpointError(f"{path} is not {what} ({len(set(wanted) - set(given))} tensors missing); {fix}")
        net.load_state_dict(given, strict=False)
    return net.to(device).eval().requires_grad_(False)
