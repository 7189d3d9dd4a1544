"""Generator, discriminator and patch-sampling networks, their initialisation and size handling."""

from ganvas.nets.discriminators import (
    DCGANDiscriminator,
    NLayerDiscriminator,
    PixelDiscriminator,
    make_discriminator,
)
from ganvas.nets.generators import (
    AntialiasDownsample,
    AntialiasUpsample,
    DCGANGenerator,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
    make_generator,
)
from ganvas.nets.norm import get_norm_layer, init_weights
from ganvas.nets.padding import forward_padded, pad_to_multiple
from ganvas.nets.patch_nce import PatchSampleF

__all__ = [
    "AntialiasDownsample",
    "AntialiasUpsample",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "NLayerDiscriminator",
    "PatchSampleF",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "forward_padded",
    "get_norm_layer",
    "init_weights",
    "make_discriminator",
    "make_generator",
    "pad_to_multiple",
]
