"""Discriminators: PatchGAN and pixel (state_dict-compatible with the reference repository) and DCGAN."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.nets.generators import AntialiasDownsample, dcgan_depth
from ganvas.nets.norm import NormFactory, get_norm_layer, init_weights, norm_needs_conv_bias

DISCRIMINATOR_NAMES = ("basic", "n_layers", "pixel", "dcgan")


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator: n_layers stride-2 convs then two stride-1 convs to a 1-channel logit map.

    antialias: CUT's variant, each stride-2 conv a stride-1 conv followed by a blurred subsampling
    (same weights, CUT's module indices and `filt` buffers).
    """

    def __init__(
        self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm_layer: NormFactory = nn.BatchNorm2d,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise OptionsError(f"a PatchGAN discriminator needs n_layers >= 1, got {n_layers}; pass --n_layers_D 3")
        use_bias = norm_needs_conv_bias(norm_layer)
        kw, padw = 4, 1
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=stride, padding=padw),
            nn.LeakyReLU(0.2, True),
            *([AntialiasDownsample(ndf)] if antialias else []),
        ]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=stride, padding=padw,
                          bias=use_bias),
                norm_layer(ndf * nf_mult),
                nn.LeakyReLU(0.2, True),
                *([AntialiasDownsample(ndf * nf_mult)] if antialias else []),
            ]
        nf_mult_prev, nf_mult = nf_mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw, bias=use_bias),
            norm_layer(ndf * nf_mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Return per-patch logits of shape N x 1 x H' x W'."""
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: classifies every pixel independently."""

    def __init__(self, input_nc: int, ndf: int = 64, norm_layer: NormFactory = nn.BatchNorm2d) -> None:
        super().__init__()
        use_bias = norm_needs_conv_bias(norm_layer)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=use_bias),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return per-pixel logits of shape N x 1 x H x W."""
        return self.net(x)


class DCGANDiscriminator(nn.Module):
    """DCGAN discriminator: image_size x image_size image -> one logit per image (N x 1 x 1 x 1)."""

    def __init__(
        self, input_nc: int, ndf: int = 64, image_size: int = 64, norm_layer: NormFactory = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        depth = dcgan_depth(image_size)
        self.image_size = image_size
        use_bias = not isinstance(norm_layer(1), nn.BatchNorm2d)
        # No normalisation on the first layer, as in the DCGAN paper.
        layers: list[nn.Module] = [
            nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        channels = ndf
        for _ in range(depth - 3):
            layers += [
                nn.Conv2d(channels, channels * 2, kernel_size=4, stride=2, padding=1, bias=use_bias),
                norm_layer(channels * 2),
                nn.LeakyReLU(0.2, True),
            ]
            channels *= 2
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=0))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Return logits of shape N x 1 x 1 x 1 for images of side image_size."""
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"DCGAN discriminator built for {self.image_size}x{self.image_size} images got "
                f"{x.shape[-2]}x{x.shape[-1]}; resize the images or rebuild it with that image_size"
            )
        return self.model(x)


def make_discriminator(
    netD: str,
    input_nc: int,
    ndf: int = 64,
    n_layers_D: int = 3,
    norm: str = "batch",
    init_type: str = "normal",
    init_gain: float = 0.02,
    image_size: int = 64,
    antialias: bool = False,
) -> nn.Module:
    """Build and initialise the discriminator named netD on the CPU (antialias: CUT's PatchGANs)."""
    norm_layer = get_norm_layer(norm)
    net: nn.Module
    if netD == "basic":
        net = NLayerDiscriminator(input_nc, ndf, n_layers=3, norm_layer=norm_layer, antialias=antialias)
    elif netD == "n_layers":
        net = NLayerDiscriminator(input_nc, ndf, n_layers=n_layers_D, norm_layer=norm_layer, antialias=antialias)
    elif netD == "pixel":
        net = PixelDiscriminator(input_nc, ndf, norm_layer=norm_layer)
    elif netD == "dcgan":
        net = DCGANDiscriminator(input_nc, ndf, image_size=image_size, norm_layer=norm_layer)
    else:
        raise OptionsError(f"unknown discriminator {netD!r}; pass --netD one of {', '.join(DISCRIMINATOR_NAMES)}")
    init_weights(net, init_type, init_gain)
    return net
