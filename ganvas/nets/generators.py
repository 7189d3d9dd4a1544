"""Generators: U-Net and ResNet (state_dict-compatible with the reference repository) and DCGAN, and their builders."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.nets.norm import NormFactory, get_norm_layer, norm_needs_conv_bias
from ganvas.registry import NETWORKS

PADDING_TYPES = ("reflect", "replicate", "zero")


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: downsample, run the inner submodule, upsample, and concatenate the skip."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm_layer: NormFactory = nn.BatchNorm2d,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        if not innermost and submodule is None:
            raise ValueError("a U-Net block that is not innermost needs a submodule")
        self.outermost = outermost
        use_bias = norm_needs_conv_bias(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)

        # The layer order (and so every index in the state_dict keys) follows the reference.
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, uprelu, upconv, norm_layer(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            layers = [downrelu, downconv, norm_layer(inner_nc), submodule, uprelu, upconv, norm_layer(outer_nc)]
            if use_dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Return the block output, with the input concatenated on channels below the outermost level."""
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net generator whose bottleneck is 1x1 for inputs of side 2**num_downs."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        num_downs: int,
        ngf: int = 64,
        norm_layer: NormFactory = nn.BatchNorm2d,
        use_dropout: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise OptionsError(f"a U-Net needs num_downs >= 2, got {num_downs}; use e.g. unet_128 (7) or unet_256 (8)")
        self.size_multiple = 2**num_downs

        # Level d (0 = outermost) works at ngf * min(2**d, 8) channels; for num_downs >= 5 this is
        # exactly the reference's layout, including dropout only on the ngf*8 -> ngf*8 middle levels.
        # The reference always builds 5 levels; smaller U-Nets (unet_4 .. unet_16) are our extension.
        def width(level: int) -> int:
            return ngf * min(2**level, 8)

        block = UnetSkipConnectionBlock(
            width(num_downs - 2), width(num_downs - 1), innermost=True, norm_layer=norm_layer
        )
        for level in range(num_downs - 2, 0, -1):
            block = UnetSkipConnectionBlock(
                width(level - 1),
                width(level),
                submodule=block,
                norm_layer=norm_layer,
                use_dropout=use_dropout and level >= 4,
            )
        self.model = UnetSkipConnectionBlock(
            output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, norm_layer=norm_layer
        )

    def forward(self, x: Tensor) -> Tensor:
        """Translate an N x input_nc x H x W image (H, W multiples of size_multiple) to output_nc channels."""
        return self.model(x)


class ResnetBlock(nn.Module):
    """Residual block of two 3x3 convs with normalisation, padded by padding_type."""

    def __init__(self, dim: int, padding_type: str, norm_layer: NormFactory, use_dropout: bool, use_bias: bool) -> None:
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias)

    @staticmethod
    def _padding(padding_type: str) -> tuple[list[nn.Module], int]:
        """Return the explicit padding layers and the conv's own padding for padding_type."""
        if padding_type == "reflect":
            return [nn.ReflectionPad2d(1)], 0
        if padding_type == "replicate":
            return [nn.ReplicationPad2d(1)], 0
        if padding_type == "zero":
            return [], 1
        raise OptionsError(f"unknown padding {padding_type!r}; use one of {', '.join(PADDING_TYPES)}")

    def build_conv_block(
        self, dim: int, padding_type: str, norm_layer: NormFactory, use_dropout: bool, use_bias: bool
    ) -> nn.Sequential:
        """Build pad-conv-norm-relu-[dropout]-pad-conv-norm in the reference's order."""
        pad, p = self._padding(padding_type)
        layers: list[nn.Module] = [
            *pad,
            nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
            norm_layer(dim),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        pad, p = self._padding(padding_type)
        layers += [*pad, nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Return x plus the residual."""
        return x + self.conv_block(x)


def binomial_filter(size: int) -> Tensor:
    """Return the size x size outer product of binomial coefficients, normalised to sum 1."""
    if size < 2:
        raise ValueError(f"a blur filter needs size >= 2, got {size}")
    taps = torch.tensor([float(math.comb(size - 1, k)) for k in range(size)])
    filt = taps[:, None] * taps[None, :]
    return filt / filt.sum()


class AntialiasDownsample(nn.Module):
    """Blur with a binomial filter, then subsample by stride (CUT's Downsample, after Zhang 2019)."""

    def __init__(self, channels: int, filt_size: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        before, after = (filt_size - 1) // 2, filt_size // 2
        self.pad = nn.ReflectionPad2d((before, after, before, after))
        # A buffer, as in CUT, so that CUT checkpoints (which hold it as '<index>.filt') load strictly.
        self.register_buffer("filt", binomial_filter(filt_size)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Return x blurred per channel and subsampled: ceil(H / stride) x ceil(W / stride) for filt_size 3."""
        return F.conv2d(self.pad(x), self.filt, stride=self.stride, groups=x.shape[1])


class AntialiasUpsample(nn.Module):
    """Upsample by stride with a transposed binomial filter (CUT's Upsample): H x W -> 2H x 2W."""

    def __init__(self, channels: int, filt_size: int = 4, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.filt_odd = filt_size % 2 == 1
        self.pad_size = (filt_size - 1) // 2
        self.pad = nn.ReplicationPad2d(1)
        # Scaled by stride**2 so that each output phase sums to 1 and a constant image stays constant.
        filt = binomial_filter(filt_size) * stride**2
        self.register_buffer("filt", filt[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Return x upsampled per channel; CUT's padding and cropping arithmetic, kept exactly."""
        out = F.conv_transpose2d(
            self.pad(x), self.filt, stride=self.stride, padding=1 + self.pad_size, groups=x.shape[1]
        )[:, :, 1:, 1:]
        return out if self.filt_odd else out[:, :, :-1, :-1]


class ResnetGenerator(nn.Module):
    """ResNet generator (Johnson et al.): two stride-2 downsamplings, n_blocks residual blocks, two upsamplings.

    With antialias / antialias_up the down- and upsamplings are CUT's blurred ones; the module indices
    then match CUT's, so its nce_layers (0,4,8,12,16 by default) address the same layers.
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        norm_layer: NormFactory = nn.BatchNorm2d,
        use_dropout: bool = False,
        n_blocks: int = 6,
        padding_type: str = "reflect",
        antialias: bool = False,
        antialias_up: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise OptionsError(f"a ResNet generator needs n_blocks >= 0, got {n_blocks}")
        self.size_multiple = 4
        self.min_side = 8  # the residual blocks' reflection padding needs 2 x 2 maps
        self.input_nc = input_nc
        use_bias = norm_needs_conv_bias(norm_layer)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2**i
            if antialias:
                layers += [
                    nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=1, padding=1, bias=use_bias),
                    norm_layer(ngf * mult * 2),
                    nn.ReLU(True),
                    AntialiasDownsample(ngf * mult * 2),
                ]
            else:
                layers += [
                    nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                    norm_layer(ngf * mult * 2),
                    nn.ReLU(True),
                ]
        mult = 2**n_downsampling
        for _ in range(n_blocks):
            layers.append(ResnetBlock(ngf * mult, padding_type, norm_layer, use_dropout, use_bias))
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            if antialias_up:
                layers += [
                    AntialiasUpsample(ngf * mult),
                    nn.Conv2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=1, padding=1, bias=use_bias),
                    norm_layer(ngf * mult // 2),
                    nn.ReLU(True),
                ]
            else:
                layers += [
                    nn.ConvTranspose2d(
                        ngf * mult,
                        ngf * mult // 2,
                        kernel_size=3,
                        stride=2,
                        padding=1,
                        output_padding=1,
                        bias=use_bias,
                    ),
                    norm_layer(ngf * mult // 2),
                    nn.ReLU(True),
                ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Translate an N x input_nc x H x W image (H, W multiples of 4) to output_nc channels."""
        return self.model(x)

    def _check_layers(self, layers: Sequence[int]) -> list[int]:
        """Return layers as a list, or raise if they are not increasing indices into self.model."""
        layers = [int(i) for i in layers]
        if not layers:
            raise ValueError("encode needs at least one layer index, e.g. [0, 4, 8, 12, 16]")
        if any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 or layers[-1] >= len(self.model):
            raise ValueError(f"layer indices {layers} must be strictly increasing and within 0..{len(self.model) - 1}")
        return layers

    def encode(self, x: Tensor, layers: Sequence[int]) -> list[Tensor]:
        """Return the outputs of the modules at the given increasing indices, stopping after the last."""
        # CUT's forward(input, layers, encode_only=True): index 0 is the reflection-padded input.
        layers = self._check_layers(layers)
        wanted = set(layers)
        feats = []
        for index, module in enumerate(self.model):
            x = module(x)
            if index in wanted:
                feats.append(x)
            if index == layers[-1]:
                break
        return feats

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Return the channel count of encode's output at each of the given layers, without running the net."""
        layers = self._check_layers(layers)
        channels, found = self.input_nc, []
        for index, module in enumerate(self.model):
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                channels = module.out_channels
            if index in layers:
                found.append(channels)
        return found


def dcgan_depth(image_size: int) -> int:
    """Return log2(image_size) for a DCGAN image size, which must be a power of two >= 8."""
    if image_size < 8 or image_size & (image_size - 1):
        raise OptionsError(
            f"DCGAN image size {image_size} is not a power of two >= 8; pass --crop_size 64 (or 32, 128)"
        )
    return image_size.bit_length() - 1


class DCGANGenerator(nn.Module):
    """DCGAN generator (Radford et al.): latent z -> N x output_nc x image_size x image_size in [-1, 1]."""

    def __init__(
        self,
        nz: int,
        output_nc: int,
        ngf: int = 64,
        image_size: int = 64,
        norm_layer: NormFactory = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        depth = dcgan_depth(image_size)
        self.nz = nz
        self.image_size = image_size
        # A bias just before batch norm is cancelled by its mean subtraction, so only other norms get one.
        use_bias = not isinstance(norm_layer(1), nn.BatchNorm2d)
        channels = ngf * 2 ** (depth - 3)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, channels, kernel_size=4, stride=1, padding=0, bias=use_bias),
            norm_layer(channels),
            nn.ReLU(True),
        ]
        for _ in range(depth - 3):
            layers += [
                nn.ConvTranspose2d(channels, channels // 2, kernel_size=4, stride=2, padding=1, bias=use_bias),
                norm_layer(channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [nn.ConvTranspose2d(channels, output_nc, kernel_size=4, stride=2, padding=1), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Map z of shape N x nz (or N x nz x 1 x 1) to images."""
        if z.dim() == 2:
            z = z[:, :, None, None]
        if z.dim() != 4 or z.shape[1:] != (self.nz, 1, 1):
            raise ValueError(f"DCGAN generator expects z of shape N x {self.nz} (x 1 x 1), got {tuple(z.shape)}")
        return self.model(z)


def _unet_depth(text: str, size: str) -> dict[str, int]:
    """--netG unet_<size>: the U-Net whose bottleneck is 1x1 at size x size, so size must be a power of two >= 4."""
    side = int(size)
    if side < 4 or side & (side - 1):
        raise OptionsError(
            f"unknown generator {text!r}: {side} is not a power of two >= 4; pass --netG unet_<size> "
            f"with such a size, e.g. unet_128 or unet_256"
        )
    return {"num_downs": side.bit_length() - 1}


def _resnet_blocks(text: str, blocks: str) -> dict[str, int]:
    """--netG resnet_<blocks>blocks: at least one residual block."""
    if int(blocks) < 1:
        raise OptionsError(
            f"unknown generator {text!r}: needs at least 1 block; pass --netG resnet_<blocks>blocks "
            f"with blocks >= 1, e.g. resnet_6blocks or resnet_9blocks"
        )
    return {"n_blocks": int(blocks)}


# Builders: JSON-plain keyword arguments only (a checkpoint's .json holds them); weights are initialised by
# nets.build's make_* helpers, not here, so that loading a file builds no random weights it throws away.


@NETWORKS.register(
    "unet", kind="generator", flag="--netG", pattern=r"unet_(?P<size>\d+)", form="unet_<size>", parse=_unet_depth
)
def unet(
    input_nc: int, output_nc: int, num_downs: int, ngf: int = 64, norm: str = "batch", use_dropout: bool = False
) -> UnetGenerator:
    """pix2pix's U-Net with num_downs levels (--netG unet_<2**num_downs>)."""
    return UnetGenerator(input_nc, output_nc, num_downs, ngf, norm_layer=get_norm_layer(norm), use_dropout=use_dropout)


@NETWORKS.register(
    "resnet",
    kind="generator",
    flag="--netG",
    pattern=r"resnet_(?P<blocks>\d+)blocks",
    form="resnet_<blocks>blocks",
    parse=_resnet_blocks,
)
def resnet(
    input_nc: int,
    output_nc: int,
    ngf: int = 64,
    norm: str = "batch",
    use_dropout: bool = False,
    n_blocks: int = 6,
    padding_type: str = "reflect",
    antialias: bool = False,
    antialias_up: bool = False,
) -> ResnetGenerator:
    """CycleGAN's ResNet generator (--netG resnet_<n_blocks>blocks); antialias / antialias_up: CUT's variant."""
    return ResnetGenerator(
        input_nc, output_nc, ngf, get_norm_layer(norm), use_dropout, n_blocks, padding_type, antialias, antialias_up
    )


# Registered apart from the DCGAN discriminator (one name per network), both of family "dcgan" as interop names them.
@NETWORKS.register(
    "dcgan_generator", kind="generator", family="dcgan", flag="--netG", pattern="dcgan", form="dcgan", input_nc="nz"
)
def dcgan_generator(
    nz: int, output_nc: int, ngf: int = 64, image_size: int = 64, norm: str = "batch"
) -> DCGANGenerator:
    """The DCGAN generator (--netG dcgan): nz-dimensional noise to image_size x image_size images."""
    return DCGANGenerator(nz, output_nc, ngf, image_size, get_norm_layer(norm))
