"""vid2vid's generators (Wang et al. 2018), state_dict-compatible with NVIDIA/vid2vid's `models/networks.py`.

`CompositeGenerator` (the original's netG0, `--netG composite`) encodes the current and previous
input frames (`model_down_seg`) and the previous outputs (`model_down_img`), sums them, and decodes
three heads: a hallucinated image (`model_final_img`), a flow to the last output (`model_final_flow`,
scaled by 20 as there) and an occlusion weight (`model_final_w`). The frame is
`weight * hallucinated + (1 - weight) * warp(previous output, flow)`. `CompositeLocalGenerator`
(netG1, netG2 ...) works at twice the resolution of the scale below it and adds that scale's image
and flow features, as pix2pixHD's local enhancer does. With `no_flow` only the image head exists.

Every forward returns one tensor, so graph backends and export can run it: channels
[frame (C), hallucinated (C), flow (2), weight (1)], then the image and flow features when the
model sets `gives_features` (what the next finer scale adds). A first frame made without previous
outputs (`--no_first_img`) takes the hallucinated image, as the original's use_raw_only.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import torch
import torch.nn as nn
from torch import Tensor

from ganvas.nets.flow import warp
from ganvas.nets.generators import ResnetBlock
from ganvas.nets.norm import NormFactory, get_norm_layer
from ganvas.nets.pix2pixhd import (
    _conv7_head,
    _conv7_stem,
    _downsample_pyramid_pool,
    _downsamplings,
    _upsamplings,
    instance_edges,
)
from ganvas.registry import NETWORKS

# The original's default normalisation (--norm batch).
_BATCH_NORM = get_norm_layer("batch")

# The original multiplies the flow head by 20 (x 2^scale for the finer scales).
FLOW_SCALE = 20.0


class Frame(NamedTuple):
    """One generated frame and its parts, unpacked from a generator's output."""

    image: Tensor  # the frame
    raw: Tensor  # the hallucinated image
    flow: Tensor  # N x 2 x H x W, to the previous output (zeros without flow)
    weight: Tensor  # N x 1 x H x W, share of the hallucinated image (ones without flow)
    img_feat: Tensor | None = None
    flow_feat: Tensor | None = None


def unpack(out: Tensor, output_nc: int, ngf: int = 0) -> Frame:
    """Split a generator's output tensor into its parts (features when it carries them)."""
    c = output_nc
    parts = [out[:, :c], out[:, c : 2 * c], out[:, 2 * c : 2 * c + 2], out[:, 2 * c + 2 : 2 * c + 3]]
    rest = out[:, 2 * c + 3 :]
    if rest.shape[1]:
        return Frame(*parts, rest[:, :ngf], rest[:, ngf : 2 * ngf] if rest.shape[1] > ngf else None)
    return Frame(*parts)


def _flow_heads(ngf: int) -> tuple[nn.Sequential, nn.Sequential]:
    """The flow head (7x7 conv to 2 channels) and the occlusion weight head (7x7 conv to 1, sigmoid)."""
    flow = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 2, kernel_size=7, padding=0))
    weight = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, 1, kernel_size=7, padding=0), nn.Sigmoid())
    return flow, weight


def _resnet_blocks(dim: int, n: int, norm_layer: NormFactory) -> list[nn.Module]:
    return [ResnetBlock(dim, "reflect", norm_layer, use_dropout=False, use_bias=True) for _ in range(n)]


class _Heads(nn.Module):
    """What both generators share: the three heads and how they make a frame."""

    no_flow: bool
    output_nc: int
    flow_scale: float

    # Set by a model whose finer scale adds this one's features (the output then carries them).
    gives_features: bool = False

    def _compose(self, img_feat: Tensor, flow_feat: Tensor | None, prev: Tensor) -> Tensor:
        raw = self.model_final_img(img_feat)
        n, _, h, w = raw.shape
        if self.no_flow:
            flow, weight, frame = raw.new_zeros(n, 2, h, w), raw.new_ones(n, 1, h, w), raw
        else:
            flow = self.model_final_flow(flow_feat) * self.flow_scale
            weight = self.model_final_w(flow_feat)
            warped = warp(prev[:, -self.output_nc :], flow)
            frame = raw * weight + warped * (1 - weight)
        parts = [frame, raw, flow, weight]
        if self.gives_features:
            parts += [img_feat] + ([flow_feat] if flow_feat is not None else [])
        return torch.cat(parts, 1)


class CompositeGenerator(_Heads):
    """vid2vid's coarsest generator (netG0): current and previous input frames plus previous outputs to a frame."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        prev_output_nc: int,
        ngf: int = 128,
        n_downsampling: int = 3,
        n_blocks: int = 9,
        norm_layer: NormFactory = _BATCH_NORM,
        no_flow: bool = False,
    ) -> None:
        super().__init__()
        self.output_nc, self.no_flow, self.flow_scale = output_nc, no_flow, FLOW_SCALE
        mult = 2**n_downsampling
        down_seg = _conv7_stem(input_nc, ngf, norm_layer) + _downsamplings(ngf, n_downsampling, norm_layer)
        down_seg += _resnet_blocks(ngf * mult, n_blocks - n_blocks // 2, norm_layer)
        # The previous outputs get their own stem and copies of the rest (the original deep-copies it).
        down_img = _conv7_stem(prev_output_nc, ngf, norm_layer) + copy.deepcopy(down_seg[4:])
        res_img = _resnet_blocks(ngf * mult, n_blocks // 2, norm_layer)
        up_img = _upsamplings(ngf, n_downsampling, norm_layer)
        self.model_down_seg = nn.Sequential(*down_seg)
        self.model_down_img = nn.Sequential(*down_img)
        self.model_res_img = nn.Sequential(*res_img)
        self.model_up_img = nn.Sequential(*up_img)
        self.model_final_img = nn.Sequential(*_conv7_head(ngf, output_nc))
        if not no_flow:
            self.model_res_flow = nn.Sequential(*copy.deepcopy(res_img))
            self.model_up_flow = nn.Sequential(*copy.deepcopy(up_img))
            self.model_final_flow, self.model_final_w = _flow_heads(ngf)
        self.size_multiple = mult

    def forward(self, labels: Tensor, prev: Tensor) -> Tensor:
        """labels: N x (n_frames_G * input channels) x H x W; prev: N x ((n_frames_G - 1) * output_nc) x H x W."""
        down = self.model_down_seg(labels) + self.model_down_img(prev)
        img_feat = self.model_up_img(self.model_res_img(down))
        flow_feat = None if self.no_flow else self.model_up_flow(self.model_res_flow(down))
        return self._compose(img_feat, flow_feat, prev)


class CompositeLocalGenerator(_Heads):
    """vid2vid's finer generators (netG1, netG2 ...): twice the resolution of the scale below, adding its features."""

    def __init__(
        self,
        input_nc: int,
        output_nc: int,
        prev_output_nc: int,
        ngf: int = 64,
        n_blocks_local: int = 3,
        norm_layer: NormFactory = _BATCH_NORM,
        no_flow: bool = False,
        scale: int = 1,
    ) -> None:
        super().__init__()
        self.output_nc, self.no_flow, self.flow_scale = output_nc, no_flow, FLOW_SCALE * 2**scale
        self.model_down_seg = nn.Sequential(
            *_conv7_stem(input_nc, ngf, norm_layer), *_downsamplings(ngf, 1, norm_layer)
        )
        self.model_down_img = nn.Sequential(
            *_conv7_stem(prev_output_nc, ngf, norm_layer), *_downsamplings(ngf, 1, norm_layer)
        )
        up_img = _resnet_blocks(ngf * 2, n_blocks_local, norm_layer) + _upsamplings(ngf, 1, norm_layer)
        self.model_up_img = nn.Sequential(*up_img)
        self.model_final_img = nn.Sequential(*_conv7_head(ngf, output_nc))
        if not no_flow:
            self.model_up_flow = nn.Sequential(*copy.deepcopy(up_img))
            self.model_final_flow, self.model_final_w = _flow_heads(ngf)
        self.size_multiple = 2

    def forward(
        self,
        labels: Tensor,
        prev: Tensor,
        img_feat_coarse: Tensor,
        flow_feat_coarse: Tensor | None = None,
    ) -> Tensor:
        """As CompositeGenerator's, plus the image (and flow) features of the scale below (N x ngf * 2 x H/2 x W/2)."""
        down = self.model_down_seg(labels) + self.model_down_img(prev)
        img_feat = self.model_up_img(down + img_feat_coarse)
        flow_feat = None
        if not self.no_flow:
            flow_feat = self.model_up_flow(down + (flow_feat_coarse if flow_feat_coarse is not None else 0))
        return self._compose(img_feat, flow_feat, prev)


@NETWORKS.register("composite", kind="generator")
def composite(
    input_nc: int,
    output_nc: int,
    prev_output_nc: int,
    ngf: int = 128,
    n_downsampling: int = 3,
    n_blocks: int = 9,
    norm: str = "batch",
    no_flow: bool = False,
) -> CompositeGenerator:
    """vid2vid's sequential generator with flow, occlusion weight and hallucinated image (--netG composite)."""
    return CompositeGenerator(
        input_nc, output_nc, prev_output_nc, ngf, n_downsampling, n_blocks, get_norm_layer(norm), no_flow
    )


@NETWORKS.register("composite_local", kind="generator")
def composite_local(
    input_nc: int,
    output_nc: int,
    prev_output_nc: int,
    ngf: int = 64,
    n_blocks_local: int = 3,
    norm: str = "batch",
    no_flow: bool = False,
    scale: int = 1,
) -> CompositeLocalGenerator:
    """vid2vid's finer spatial scale s (netG<s>, at 2^s times the coarsest resolution)."""
    return CompositeLocalGenerator(
        input_nc, output_nc, prev_output_nc, ngf, n_blocks_local, get_norm_layer(norm), no_flow, scale
    )


def coarse_to_fine(
    generators: list[nn.Module],
    labels: list[Tensor],
    prevs: list[Tensor],
    output_nc: int,
    ngfs: list[int],
    no_flow: bool,
    raw_only: bool = False,
    detach_coarse: bool = False,
) -> tuple[list[Tensor], Frame]:
    """One frame through the generators, coarsest (G0) first, each adding the features of the one before.

    labels and prevs hold each pyramid level's input windows and previous frames, finest first; ngfs are the
    generators' widths. Returns each level's frame (finest first; the hallucinated image with raw_only, as a
    first frame from a blank past) and the finest generator's parts. detach_coarse keeps the gradients out
    of the coarser scales (--niter_fix_global).
    """
    scales = len(generators)
    frames: list[Tensor] = [torch.empty(0)] * scales
    feats: tuple[Tensor, ...] = ()
    parts = Frame(*[torch.empty(0)] * 4)
    for s, net in enumerate(generators):
        level = scales - 1 - s
        parts = unpack(net(labels[level], prevs[level], *feats), output_nc, ngfs[s])
        frames[level] = parts.raw if raw_only else parts.image
        if s < scales - 1:
            feats = (parts.img_feat,) + (() if no_flow else (parts.flow_feat,))
            if detach_coarse:
                feats = tuple(f.detach() for f in feats)
                frames[level] = frames[level].detach()
    return frames, parts


class FirstFrame(nn.Module):
    """A vid2vid run's one-frame path: the frame its generators make from one input frame and a blank past.

    This is what a `--no_first_img` run makes as the first frame of a video, and what export writes (the
    frames after it need the previous outputs, which the sequential loop in Python keeps). Label maps
    are one-hot encoded inside, as pix2pixHD's LabelInputs.
    """

    def __init__(
        self,
        generators: list[nn.Module],
        n_frames_G: int,
        output_nc: int,
        ngfs: list[int],
        no_flow: bool,
        label_nc: int = 0,
        instance: bool = False,
    ):
        super().__init__()
        self.generators = nn.ModuleList(generators)
        self.n_frames_G, self.output_nc, self.ngfs, self.no_flow = n_frames_G, output_nc, ngfs, no_flow
        self.label_nc, self.instance = label_nc, instance
        self.pool = _downsample_pyramid_pool()

    def forward(self, x: Tensor, inst: Tensor | None = None) -> Tensor:
        labels = x
        if self.label_nc:
            x = nn.functional.one_hot(x[:, 0].long(), self.label_nc).permute(0, 3, 1, 2).float()
        if self.instance:
            x = torch.cat([x, instance_edges(inst if inst is not None else labels)], 1)
        levels = [x]
        for _ in range(1, len(self.generators)):
            levels.append(self.pool(levels[-1]))
        prevs = [lv.new_zeros(lv.shape[0], (self.n_frames_G - 1) * self.output_nc, *lv.shape[2:]) for lv in levels]
        windows = [level.repeat(1, self.n_frames_G, 1, 1) for level in levels]
        frames, _ = coarse_to_fine(list(self.generators), windows, prevs, self.output_nc, self.ngfs, self.no_flow, True)
        return frames[0]
