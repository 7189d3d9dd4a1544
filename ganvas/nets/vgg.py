"""VGG19 features for pix2pixHD's perceptual loss, loading torchvision's ImageNet weights without torchvision.

The layers are torchvision's `vgg19().features` up to relu5_1 (indices 0-29) under the same names,
so the `features.<i>.weight/bias` entries of `vgg19-dcbb9e9d.pth` load directly; the classifier
and the layers after relu5_1 are not built.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ganvas.errors import CheckpointError

logger = logging.getLogger(__name__)

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"
VGG_REMEDY = f"pass --vgg_weights FILE (download {VGG19_URL}) or train without the perceptual loss with --no_vgg_loss"

# torchvision's VGG19 configuration ("E") up to conv5_1: widths in units of the first conv's, "M" a max-pool.
_VGG19_LAYOUT = (1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8)
# pix2pixHD's slices end after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.
_SLICE_ENDS = (2, 7, 12, 21, 30)
# ImageNet statistics the torchvision weights were trained with (inputs in [0, 1]).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
PERCEPTUAL_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)


class VGG19Features(nn.Module):
    """torchvision's VGG19 feature layers 0-29, returning relu1_1, relu2_1, relu3_1, relu4_1, relu5_1.

    width is the first conv's channel count (64 for the ImageNet weights); tests use a small one.
    The network is built with random weights and frozen; use load_vgg19_weights for ImageNet's.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG19_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out = width * int(item)
                layers += [nn.Conv2d(channels, out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = out
        self.features = nn.Sequential(*layers)
        self.width = width
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the five relu outputs of an N x 3 x H x W ImageNet-normalised image, shallowest first."""
        outputs = []
        start = 0
        for end in _SLICE_ENDS:
            for index in range(start, end):
                x = self.features[index](x)
            outputs.append(x)
            start = end
        return outputs


def find_vgg19_weights(explicit_path: str | Path | None = None) -> Path | None:
    """Return explicit_path if given, else torch hub's cached vgg19-dcbb9e9d.pth if present, else None."""
    if explicit_path is not None:
        return Path(explicit_path)
    # torch.hub.get_dir() honours $TORCH_HOME and $XDG_CACHE_HOME as torchvision's download does.
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME
    return cached if cached.is_file() else None


def load_vgg19_weights(path: str | Path) -> VGG19Features:
    """Return a frozen VGG19Features holding the feature weights of torchvision's vgg19 state dict at path."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"VGG19 weights {path} not found; {VGG_REMEDY}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"cannot read VGG19 weights {path} ({reason}); the file is damaged or not a PyTorch file; {VGG_REMEDY}"
        ) from error
    if not isinstance(state, dict):
        raise CheckpointError(f"VGG19 weights {path} hold a {type(state).__name__}, not a state dict; {VGG_REMEDY}")
    first = state.get("features.0.weight")
    if not isinstance(first, Tensor) or first.dim() != 4:
        raise CheckpointError(
            f"VGG19 weights {path} have no features.0.weight; expected torchvision's vgg19 state dict; {VGG_REMEDY}"
        )
    # The width comes from the file (64 for ImageNet's) so that tests can save small random ones.
    net = VGG19Features(width=first.shape[0])
    expected = net.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise CheckpointError(
            f"VGG19 weights {path} lack {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}; "
            f"expected torchvision's vgg19 state dict; {VGG_REMEDY}"
        )
    wrong = [key for key in expected if tuple(state[key].shape) != tuple(expected[key].shape)]
    if wrong:
        key = wrong[0]
        raise CheckpointError(
            f"VGG19 weights {path} have {key} of shape {tuple(state[key].shape)}, expected "
            f"{tuple(expected[key].shape)} (not torchvision's vgg19?); {VGG_REMEDY}"
        )
    # The file's classifier and feature layers past relu5_1 are not part of this network.
    net.load_state_dict({key: state[key] for key in expected}, strict=True)
    logger.debug("loaded VGG19 features from %s", path)
    return net


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss: weighted L1 between VGG19 relu features of x and of y (detached).

    Images in [-1, 1] are mapped to [0, 1] and normalised with ImageNet's mean and std, the input the
    torchvision weights expect; the original pix2pixHD fed [-1, 1] images unnormalised
    (normalize_input=False reproduces that). vgg: an already built VGG19Features (tests pass a small
    random one); otherwise the weights come from find_vgg19_weights(weights_path).
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        vgg: VGG19Features | None = None,
        normalize_input: bool = True,
    ) -> None:
        super().__init__()
        if vgg is None:
            found = find_vgg19_weights(weights_path)
            if found is None:
                cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME
                raise CheckpointError(f"no VGG19 weights given and none cached at {cached}; {VGG_REMEDY}")
            vgg = load_vgg19_weights(found)
        self.vgg = vgg.requires_grad_(False).eval()
        self.weights = PERCEPTUAL_WEIGHTS
        self.normalize_input = normalize_input
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGGLoss:
        """Switch modes like any module, but keep the frozen VGG in eval mode."""
        super().train(mode)
        self.vgg.eval()
        return self

    def _prepare(self, image: Tensor) -> Tensor:
        """Map a [-1, 1] RGB batch to the ImageNet-normalised input (or leave it, as the original)."""
        if image.shape[1] != 3:
            raise ValueError(f"the VGG loss needs 3-channel images, got {image.shape[1]} channels")
        if not self.normalize_input:
            return image
        return ((image + 1) / 2 - self.mean.to(image.dtype)) / self.std.to(image.dtype)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Return sum_i weight_i * L1(vgg_i(x), vgg_i(y)); gradients flow into x only."""
        x_features = self.vgg(self._prepare(x))
        with torch.no_grad():
            y_features = self.vgg(self._prepare(y))
        terms = [w * F.l1_loss(fx, fy) for w, fx, fy in zip(self.weights, x_features, y_features)]
        return torch.stack([t.float() for t in terms]).sum()
