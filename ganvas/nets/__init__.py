"""Generator, discriminator, patch-sampling and VGG networks, their initialisation and size handling."""

from ganvas.nets.build import make_discriminator, make_generator, make_network
from ganvas.nets.discriminators import (
    DCGANDiscriminator,
    NLayerDiscriminator,
    PixelDiscriminator,
)
from ganvas.nets.generators import (
    AntialiasDownsample,
    AntialiasUpsample,
    DCGANGenerator,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    UnetSkipConnectionBlock,
)
from ganvas.nets.norm import get_norm_layer, init_weights
from ganvas.nets.padding import forward_padded, net_size, pad_to_multiple
from ganvas.nets.patch_nce import PatchSampleF
from ganvas.nets.pix2pixhd import (
    Encoder,
    GlobalGenerator,
    InstanceFeatures,
    LabelInputs,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminatorHD,
    feature_matching_loss,
    instance_average,
    instance_edges,
    instance_means,
    one_hot_labels,
)
from ganvas.nets.siggraph import SIGGRAPHGenerator
from ganvas.nets.vgg import VGG19Features, VGGLoss, find_vgg19_weights, load_vgg19_weights
from ganvas.nets.vid2vid import CompositeGenerator, CompositeLocalGenerator

__all__ = [
    "CompositeGenerator",
    "CompositeLocalGenerator",
    "AntialiasDownsample",
    "AntialiasUpsample",
    "DCGANDiscriminator",
    "DCGANGenerator",
    "Encoder",
    "GlobalGenerator",
    "InstanceFeatures",
    "LabelInputs",
    "LocalEnhancer",
    "MultiscaleDiscriminator",
    "NLayerDiscriminator",
    "NLayerDiscriminatorHD",
    "PatchSampleF",
    "PixelDiscriminator",
    "ResnetBlock",
    "ResnetGenerator",
    "SIGGRAPHGenerator",
    "UnetGenerator",
    "UnetSkipConnectionBlock",
    "VGG19Features",
    "VGGLoss",
    "feature_matching_loss",
    "find_vgg19_weights",
    "forward_padded",
    "get_norm_layer",
    "init_weights",
    "instance_average",
    "instance_edges",
    "instance_means",
    "load_vgg19_weights",
    "make_discriminator",
    "make_generator",
    "make_network",
    "net_size",
    "one_hot_labels",
    "pad_to_multiple",
]
