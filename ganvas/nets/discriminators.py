"""Discriminators: PatchGAN and pixel (state_dict-compatible with the reference repository) and DCGAN, and builders."""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.nets.generators import AntialiasDownsample, dcgan_depth
from ganvas.nets.norm import NormFactory, get_norm_layer, norm_needs_conv_bias
from ganvas.registry import NETWORKS


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator: n_layers stride-2 convs then two stride-1 convs to a 1-channel logit map.

    antialias: CUT's variant, each stride-2 conv a stride-1 conv followed by a blurred subsampling
    (same weights, CUT's module indices and `filt` buffers).
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: NormFactory = nn.BatchNorm2d,
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
                nn.Conv2d(
                    ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=stride, padding=padw, bias=use_bias
                ),
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


def _patchgan_depth(text: str) -> dict[str, int]:
    """--netD basic is the 70x70 PatchGAN (3 layers); --netD n_layers takes --n_layers_D."""
    return {"n_layers": 3} if text == "basic" else {}


# Builders: JSON-plain keyword arguments only; weights are initialised by nets.build's make_* helpers.
# A discriminator's ganvas_arch output_nc is its one logit channel (output_nc=1 below).


@NETWORKS.register(
    "patchgan",
    kind="discriminator",
    flag="--netD",
    pattern="basic|n_layers",
    form=("basic", "n_layers"),
    parse=_patchgan_depth,
    options={"n_layers": "n_layers_D"},
    output_nc=1,
)
def patchgan(
    input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch", antialias: bool = False
) -> NLayerDiscriminator:
    """pix2pix's PatchGAN (--netD basic or n_layers); antialias: CUT's variant."""
    return NLayerDiscriminator(input_nc, ndf, n_layers, get_norm_layer(norm), antialias)


@NETWORKS.register("pixel", kind="discriminator", flag="--netD", output_nc=1)
def pixel(input_nc: int, ndf: int = 64, norm: str = "batch") -> PixelDiscriminator:
    """pix2pix's 1x1 PatchGAN (--netD pixel)."""
    return PixelDiscriminator(input_nc, ndf, get_norm_layer(norm))


@NETWORKS.register(
    "dcgan_discriminator",
    kind="discriminator",
    family="dcgan",
    flag="--netD",
    pattern="dcgan",
    form="dcgan",
    output_nc=1,
)
def dcgan_discriminator(input_nc: int, ndf: int = 64, image_size: int = 64, norm: str = "batch") -> DCGANDiscriminator:
    """The DCGAN discriminator (--netD dcgan) for image_size x image_size images."""
    return DCGANDiscriminator(input_nc, ndf, image_size, get_norm_layer(norm))
