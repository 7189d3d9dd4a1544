"""pix2pixHD's networks (state_dict-compatible with NVIDIA/pix2pixHD) and its tensor helpers.

The module nesting, attribute names and layer order follow the original `models/networks.py`, so
its `latest_net_G.pth`, `latest_net_D.pth` and `latest_net_E.pth` load with strict key matching.
Unlike this repository's pix2pix networks, every conv carries a bias whatever the normalisation,
and the discriminator's padding is 2 and its widths are capped at 512 (absolute), as there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ganvas.errors import DataError, OptionsError
from ganvas.nets.generators import ResnetBlock
from ganvas.nets.norm import NormFactory, get_norm_layer
from ganvas.registry import NETWORKS

# pix2pixHD's default normalisation: InstanceNorm2d without affine parameters or running stats.
_INSTANCE_NORM = get_norm_layer("instance")


def _downsample_pyramid_pool() -> nn.AvgPool2d:
    """Return the 3x3 stride-2 average pooling pix2pixHD uses for its image pyramids (H -> ceil(H / 2))."""
    return nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)


def _conv7_stem(input_nc: int, ngf: int, norm_layer: NormFactory) -> list[nn.Module]:
    """Return reflection-pad(3), 7x7 conv, norm, ReLU: the first layers of every pix2pixHD generator."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0), norm_layer(ngf), nn.ReLU(True)]


def _conv7_head(ngf: int, output_nc: int) -> list[nn.Module]:
    """Return reflection-pad(3), 7x7 conv, tanh: the last layers of every pix2pixHD generator."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]


def _downsamplings(ngf: int, n_downsampling: int, norm_layer: NormFactory) -> list[nn.Module]:
    """Return n_downsampling x [3x3 stride-2 conv doubling the width, norm, ReLU] starting at ngf."""
    layers: list[nn.Module] = []
    for i in range(n_downsampling):
        mult = 2**i
        layers += [
            nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1),
            norm_layer(ngf * mult * 2),
            nn.ReLU(True),
        ]
    return layers


def _upsamplings(ngf: int, n_downsampling: int, norm_layer: NormFactory) -> list[nn.Module]:
    """Return n_downsampling x [3x3 stride-2 transposed conv halving the width, norm, ReLU] back to ngf."""
    layers: list[nn.Module] = []
    for i in range(n_downsampling):
        mult = 2 ** (n_downsampling - i)
        layers += [
            nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1),
            norm_layer(ngf * mult // 2),
            nn.ReLU(True),
        ]
    return layers


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator G1: 7x7 stem, n_downsampling stride-2 convs, n_blocks residual blocks, back up."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 64,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        norm_layer: NormFactory = _INSTANCE_NORM,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if n_blocks < 0 or n_downsampling < 0:
            raise OptionsError(
                f"a global generator needs n_downsampling >= 0 and n_blocks >= 0, got {n_downsampling} and "
                f"{n_blocks}; pass --n_downsample_global 4 --n_blocks_global 9"
            )
        self.size_multiple = 2**n_downsampling
        self.min_side = 2 * self.size_multiple  # the residual blocks' reflection padding needs 2 x 2 maps
        width = ngf * 2**n_downsampling
        layers = [
            *_conv7_stem(input_nc, ngf, norm_layer),
            *_downsamplings(ngf, n_downsampling, norm_layer),
            *(ResnetBlock(width, padding_type, norm_layer, use_dropout=False, use_bias=True) for _ in range(n_blocks)),
            *_upsamplings(ngf, n_downsampling, norm_layer),
            *_conv7_head(ngf, output_nc),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Translate an N x input_nc x H x W map (H, W multiples of size_multiple) to output_nc channels."""
        return self.model(x)


class LocalEnhancer(nn.Module):
    """pix2pixHD's coarse-to-fine generator: a global generator at 1/2**n_local_enhancers, then enhancers.

    `model` is the global generator of width ngf * 2**n_local_enhancers without its 7x7 head;
    enhancer n (1 = coarsest) is `model{n}_1` (downsampling front end) and `model{n}_2` (residual
    blocks and upsampling; the finest one ends in the 7x7 head).
    """

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 32,
        n_downsample_global: int = 3,
        n_blocks_global: int = 9,
        n_local_enhancers: int = 1,
        n_blocks_local: int = 3,
        norm_layer: NormFactory = _INSTANCE_NORM,
        padding_type: str = "reflect",
    ) -> None:
        super().__init__()
        if n_local_enhancers < 1 or n_blocks_local < 0:
            raise OptionsError(
                f"a local enhancer needs n_local_enhancers >= 1 and n_blocks_local >= 0, got {n_local_enhancers} "
                f"and {n_blocks_local}; pass --n_local_enhancers 1 --n_blocks_local 3"
            )
        self.n_local_enhancers = n_local_enhancers
        self.size_multiple = 2 ** (n_downsample_global + n_local_enhancers)
        self.min_side = 2 * self.size_multiple  # the global part's residual blocks need 2 x 2 maps

        global_net = GlobalGenerator(
            input_nc,
            output_nc,
            ngf * 2**n_local_enhancers,
            n_downsample_global,
            n_blocks_global,
            norm_layer,
            padding_type,
        )
        # The original drops the head by rebuilding the Sequential from all but its last 3 layers.
        self.model = nn.Sequential(*list(global_net.model)[:-3])

        for n in range(1, n_local_enhancers + 1):
            ngf_level = ngf * 2 ** (n_local_enhancers - n)
            downsample = [
                *_conv7_stem(input_nc, ngf_level, norm_layer),
                *_downsamplings(ngf_level, 1, norm_layer),
            ]
            upsample: list[nn.Module] = [
                ResnetBlock(ngf_level * 2, padding_type, norm_layer, use_dropout=False, use_bias=True)
                for _ in range(n_blocks_local)
            ]
            upsample += _upsamplings(ngf_level, 1, norm_layer)
            if n == n_local_enhancers:
                upsample += _conv7_head(ngf, output_nc)
            setattr(self, f"model{n}_1", nn.Sequential(*downsample))
            setattr(self, f"model{n}_2", nn.Sequential(*upsample))

        self.downsample = _downsample_pyramid_pool()

    def forward(self, x: Tensor) -> Tensor:
        """Translate x (H, W multiples of size_multiple) coarse to fine; the output has x's size."""
        pyramid = [x]
        for _ in range(self.n_local_enhancers):
            pyramid.append(self.downsample(pyramid[-1]))
        out = self.model(pyramid[-1])
        for n in range(1, self.n_local_enhancers + 1):
            front = getattr(self, f"model{n}_1")
            back = getattr(self, f"model{n}_2")
            out = back(front(pyramid[self.n_local_enhancers - n]) + out)
        return out


class NLayerDiscriminatorHD(nn.Module):
    """pix2pixHD's PatchGAN: 4x4 convs with padding 2, widths doubling from ndf up to 512.

    With get_interm_feat each stage is its own Sequential `model0` .. `model{n_layers + 1}` and
    forward returns every stage's output (the prediction last); otherwise one Sequential `model`
    and forward returns the prediction.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: NormFactory = _INSTANCE_NORM,
        use_sigmoid: bool = False,
        get_interm_feat: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise OptionsError(f"a PatchGAN discriminator needs n_layers >= 1, got {n_layers}; pass --n_layers_D 3")
        self.get_interm_feat = get_interm_feat
        self.n_layers = n_layers
        kw = 4
        padw = math.ceil((kw - 1) / 2)
        stages: list[list[nn.Module]] = [
            [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        ]
        nf = ndf
        for _ in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stages.append(
                [
                    nn.Conv2d(nf_prev, nf, kernel_size=kw, stride=2, padding=padw),
                    norm_layer(nf),
                    nn.LeakyReLU(0.2, True),
                ]
            )
        nf_prev, nf = nf, min(nf * 2, 512)
        stages.append(
            [nn.Conv2d(nf_prev, nf, kernel_size=kw, stride=1, padding=padw), norm_layer(nf), nn.LeakyReLU(0.2, True)]
        )
        stages.append([nn.Conv2d(nf, 1, kernel_size=kw, stride=1, padding=padw)])
        # The original puts the sigmoid in a stage of its own that its intermediate-feature forward
        # never runs; here it ends the last stage, so it applies in both modes (no parameters, same keys).
        if use_sigmoid:
            stages[-1].append(nn.Sigmoid())

        if get_interm_feat:
            for n, stage in enumerate(stages):
                setattr(self, f"model{n}", nn.Sequential(*stage))
        else:
            self.model = nn.Sequential(*(layer for stage in stages for layer in stage))

    def stages(self) -> list[nn.Module]:
        """Return the n_layers + 2 stage Sequentials (intermediate-feature mode) or [model]."""
        if self.get_interm_feat:
            return [getattr(self, f"model{n}") for n in range(self.n_layers + 2)]
        return [self.model]

    def forward(self, x: Tensor) -> Tensor | list[Tensor]:
        """Return the prediction map, or with get_interm_feat the list of every stage's output."""
        if not self.get_interm_feat:
            return self.model(x)
        return _run_stages(self.stages(), x)


def _run_stages(stages: Sequence[nn.Module], x: Tensor) -> list[Tensor]:
    """Run the stages in turn and return each one's output."""
    features = []
    for stage in stages:
        x = stage(x)
        features.append(x)
    return features


class MultiscaleDiscriminator(nn.Module):
    """pix2pixHD's num_D PatchGANs on an image pyramid; forward returns per scale a list of features.

    Scale i of the output (0 = full resolution) is run by the discriminator numbered num_D - 1 - i,
    as in the original. A checkpoint with fewer scales therefore loads (strict=False) into the
    lowest-numbered discriminators, which run on the coarsest levels of the larger pyramid.
    """

    def __init__(
        self,
        input_nc: int,
        ndf: int = 64,
        n_layers: int = 3,
        norm_layer: NormFactory = _INSTANCE_NORM,
        use_sigmoid: bool = False,
        num_D: int = 3,
        get_interm_feat: bool = False,
    ) -> None:
        super().__init__()
        if num_D < 1:
            raise OptionsError(f"a multiscale discriminator needs num_D >= 1, got {num_D}; pass --num_D 2")
        self.num_D = num_D
        self.n_layers = n_layers
        self.get_interm_feat = get_interm_feat
        for i in range(num_D):
            net = NLayerDiscriminatorHD(input_nc, ndf, n_layers, norm_layer, use_sigmoid, get_interm_feat)
            # The original keeps only the inner Sequentials, so the keys are scale{i}_layer{j}.* / layer{i}.*.
            if get_interm_feat:
                for j, stage in enumerate(net.stages()):
                    setattr(self, f"scale{i}_layer{j}", stage)
            else:
                setattr(self, f"layer{i}", net.model)
        self.downsample = _downsample_pyramid_pool()

    def _stages(self, index: int) -> list[nn.Module]:
        """Return the stage Sequentials of discriminator number index."""
        if self.get_interm_feat:
            return [getattr(self, f"scale{index}_layer{j}") for j in range(self.n_layers + 2)]
        return [getattr(self, f"layer{index}")]

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        """Return, finest scale first, each scale's features (prediction last; only it without get_interm_feat)."""
        result = []
        for i in range(self.num_D):
            stages = self._stages(self.num_D - 1 - i)
            features = _run_stages(stages, x)
            result.append(features if self.get_interm_feat else features[-1:])
            if i != self.num_D - 1:
                x = self.downsample(x)
        return result


class InstanceFeatures(NamedTuple):
    """Mean feature of every (image, instance) pair present in a batch, one row per pair."""

    batch: Tensor  # K, long: the image each row belongs to
    ids: Tensor  # K: the instance id (the instance map's value, its dtype)
    means: Tensor  # K x C: the mean feature over the instance's pixels in that image
    counts: Tensor  # K, long: the instance's pixel count in that image


class _InstanceGroups(NamedTuple):
    """Every pixel's (image, instance) group index, the group count and the distinct instance values."""

    group: Tensor  # N*H*W, long, in (n, h, w) order; group = n * len(values) + value index
    n_groups: int
    values: Tensor


def _instance_groups(inst: Tensor, feature_shape: torch.Size) -> _InstanceGroups:
    """Number the (image, instance id) pairs of an N x 1 x H x W instance map fitting features of feature_shape."""
    if inst.dim() != 4 or inst.shape[1] != 1:
        raise ValueError(f"instance map must be N x 1 x H x W, got {tuple(inst.shape)}")
    n, _, h, w = feature_shape
    if inst.shape[0] != n or inst.shape[-2:] != (h, w):
        raise ValueError(
            f"instance map {tuple(inst.shape)} does not match features {tuple(feature_shape)} in N, H or W"
        )
    # Ids from one unique() over the whole batch, offset by image, so one pass sums every instance.
    values, inverse = torch.unique(inst, return_inverse=True)
    batch = torch.arange(n, device=inst.device).view(n, 1, 1, 1)
    group = (batch * values.numel() + inverse).reshape(-1)
    return _InstanceGroups(group, n * values.numel(), values)


def _group_sums(features: Tensor, groups: _InstanceGroups) -> tuple[Tensor, Tensor]:
    """Return the per-group feature sums (G x C, fp32) and pixel counts (G, long)."""
    channels = features.shape[1]
    flat = features.permute(0, 2, 3, 1).reshape(-1, channels).float()
    sums = flat.new_zeros(groups.n_groups, channels).index_add(0, groups.group, flat)
    counts = torch.bincount(groups.group, minlength=groups.n_groups)
    return sums, counts


def instance_average(features: Tensor, inst: Tensor) -> Tensor:
    """Replace each pixel's features by the mean over its instance in the same image (pix2pixHD's Encoder)."""
    groups = _instance_groups(inst, features.shape)
    sums, counts = _group_sums(features, groups)
    means = sums / counts.clamp(min=1).unsqueeze(1)
    n, c, h, w = features.shape
    return means[groups.group].reshape(n, h, w, c).permute(0, 3, 1, 2).to(features.dtype)


def instance_means(features: Tensor, inst: Tensor) -> InstanceFeatures:
    """Return one mean feature vector per (image, instance) present, for `encode-features`' clustering.

    features: N x C x H x W; inst: N x 1 x H x W instance ids (any dtype; equal values are one
    instance). Rows are ordered by image, then by instance id. pix2pixHD's encode_features read one
    pixel of the Encoder's already pooled output, which is this mean; it also stored the instance's
    area as counts / (H * W // 32), which the counts here give.
    """
    groups = _instance_groups(inst, features.shape)
    sums, counts = _group_sums(features, groups)
    present = torch.nonzero(counts, as_tuple=True)[0]
    n_values = groups.values.numel()
    return InstanceFeatures(
        batch=present // n_values,
        ids=groups.values[present % n_values],
        means=(sums[present] / counts[present].unsqueeze(1)).to(features.dtype),
        counts=counts[present],
    )


class Encoder(nn.Module):
    """pix2pixHD's feature encoder E: an hourglass whose output is averaged within each instance."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        ngf: int = 32,
        n_downsampling: int = 4,
        norm_layer: NormFactory = _INSTANCE_NORM,
    ) -> None:
        super().__init__()
        self.output_nc = output_nc
        self.size_multiple = 2**n_downsampling
        layers = [
            *_conv7_stem(input_nc, ngf, norm_layer),
            *_downsamplings(ngf, n_downsampling, norm_layer),
            *_upsamplings(ngf, n_downsampling, norm_layer),
            *_conv7_head(ngf, output_nc),
        ]
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor, inst: Tensor) -> Tensor:
        """Return the N x output_nc x H x W features, constant (the instance's mean) within each instance."""
        return instance_average(self.model(x), inst)


# Builders: JSON-plain keyword arguments only; weights are initialised by nets.build's make_* helpers. Their
# arguments are the ones interop reads from a file's shapes (the ganvas_arch keys), so padding_type and use_sigmoid,
# which pix2pixHD never changes, stay at the classes' defaults.


@NETWORKS.register(
    "global",
    kind="generator",
    flag="--netG",
    options={"n_downsampling": "n_downsample_global", "n_blocks": "n_blocks_global"},
)
def global_generator(
    input_nc: int, output_nc: int, ngf: int = 64, n_downsampling: int = 3, n_blocks: int = 9, norm: str = "instance"
) -> GlobalGenerator:
    """pix2pixHD's global generator (--netG global)."""
    return GlobalGenerator(input_nc, output_nc, ngf, n_downsampling, n_blocks, get_norm_layer(norm))


@NETWORKS.register("local", kind="generator", flag="--netG")
def local_enhancer(
    input_nc: int,
    output_nc: int,
    ngf: int = 32,
    n_downsample_global: int = 3,
    n_blocks_global: int = 9,
    n_local_enhancers: int = 1,
    n_blocks_local: int = 3,
    norm: str = "instance",
) -> LocalEnhancer:
    """pix2pixHD's coarse-to-fine generator (--netG local)."""
    return LocalEnhancer(
        input_nc,
        output_nc,
        ngf,
        n_downsample_global,
        n_blocks_global,
        n_local_enhancers,
        n_blocks_local,
        get_norm_layer(norm),
    )


@NETWORKS.register("encoder", kind="encoder")
def encoder(input_nc: int, output_nc: int, ngf: int = 32, n_downsampling: int = 4, norm: str = "instance") -> Encoder:
    """pix2pixHD's instance-wise feature encoder E."""
    return Encoder(input_nc, output_nc, ngf, n_downsampling, get_norm_layer(norm))


@NETWORKS.register("patchgan_hd", kind="discriminator", output_nc=1)
def patchgan_hd(
    input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "instance", get_interm_feat: bool = False
) -> NLayerDiscriminatorHD:
    """One of pix2pixHD's PatchGANs on its own."""
    return NLayerDiscriminatorHD(input_nc, ndf, n_layers, get_norm_layer(norm), get_interm_feat=get_interm_feat)


@NETWORKS.register("multiscale", kind="discriminator", output_nc=1)
def multiscale(
    input_nc: int,
    ndf: int = 64,
    n_layers: int = 3,
    num_D: int = 3,
    get_interm_feat: bool = False,
    norm: str = "instance",
) -> MultiscaleDiscriminator:
    """pix2pixHD's multi-scale discriminator D."""
    return MultiscaleDiscriminator(input_nc, ndf, n_layers, get_norm_layer(norm), False, num_D, get_interm_feat)


def feature_matching_loss(
    pred_fake: Sequence[Sequence[Tensor]],
    pred_real: Sequence[Sequence[Tensor]],
    num_D: int,
    n_layers_D: int,
    lambda_feat: float,
) -> Tensor:
    """Return pix2pixHD's discriminator feature-matching loss (L1 over every scale's intermediate features)."""
    if len(pred_fake) != num_D or len(pred_real) != num_D:
        raise ValueError(
            f"feature matching needs {num_D} scales of predictions, got {len(pred_fake)} fake and {len(pred_real)} real"
        )
    feat_weight = 4.0 / (n_layers_D + 1)
    d_weight = 1.0 / num_D
    terms = [
        F.l1_loss(fake, real.detach())
        for fakes, reals in zip(pred_fake, pred_real)
        for fake, real in zip(fakes[:-1], reals[:-1])  # the last entry is the prediction, not a feature
    ]
    if not terms:
        raise ValueError("feature matching needs intermediate features; build the discriminator with get_interm_feat")
    return torch.stack([t.float() for t in terms]).sum() * (d_weight * feat_weight * lambda_feat)


def instance_edges(inst: Tensor) -> Tensor:
    """Return 1.0 where an N x 1 x H x W instance map differs from a 4-neighbour, else 0.0 (pix2pixHD's get_edges)."""
    if inst.dim() != 4:
        raise ValueError(f"instance map must be N x 1 x H x W, got {tuple(inst.shape)}")
    edge = torch.zeros(inst.shape, dtype=torch.bool, device=inst.device)
    horizontal = inst[..., :, 1:] != inst[..., :, :-1]
    vertical = inst[..., 1:, :] != inst[..., :-1, :]
    # Both pixels of a differing pair are edges, as the original's four |= on shifted slices.
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge.float()


def one_hot_labels(label: Tensor, label_nc: int) -> Tensor:
    """Return the N x label_nc x H x W float one-hot encoding of an N x 1 x H x W integer label map."""
    if label.dim() != 4 or label.shape[1] != 1:
        raise ValueError(f"label map must be N x 1 x H x W, got {tuple(label.shape)}")
    if label.is_floating_point():
        if not torch.equal(label, label.round()):
            raise DataError(
                "label map has non-integer values; read label images without scaling them to [0, 1] or [-1, 1]"
            )
        label = label.long()
    elif label.dtype != torch.long:
        label = label.long()
    high, low = int(label.max()), int(label.min())
    if high >= label_nc:
        raise DataError(f"label {high} is >= label_nc={label_nc}; pass --label_nc {high + 1} or remap the labels")
    if low < 0:
        raise DataError(f"label {low} is negative; labels must lie in 0..{label_nc - 1}")
    one_hot = torch.zeros(label.shape[0], label_nc, *label.shape[2:], device=label.device)
    return one_hot.scatter_(1, label, 1.0)


class LabelInputs(nn.Module):
    """pix2pixHD's generator taking integer label maps (and instance maps, style maps) as in ganvas.

    Inputs: label N x 1 x H x W int64; instance N x 1 x H x W int64 when the generator uses instance
    boundaries; features N x F x H x W float when it takes styles. One-hot encoding and boundaries
    happen inside the graph, so a deployment feeds the maps as they are read from the files.
    """

    def __init__(self, generator: nn.Module, label_nc: int, uses_instances: bool, style_channels: int):
        super().__init__()
        self.generator, self.label_nc = generator, label_nc
        self.uses_instances, self.style_channels = uses_instances, style_channels

    def forward(self, label: Tensor, instance: Tensor | None = None, features: Tensor | None = None) -> Tensor:
        if features is None and not self.uses_instances:
            instance, features = None, instance  # the second input is the style map
        dtype = next(self.generator.parameters()).dtype
        parts = [nn.functional.one_hot(label[:, 0], self.label_nc).permute(0, 3, 1, 2).to(dtype)]
        if instance is not None:
            parts.append(instance_edges(instance).to(dtype))
        if features is not None:
            parts.append(features.to(dtype))
        return self.generator(torch.cat(parts, 1))
