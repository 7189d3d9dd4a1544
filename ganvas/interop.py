"""Load a bare state_dict file (pix2pix / CycleGAN, CUT, pix2pixHD or ganvas) with no architecture flags.

Those files hold tensors only, but the module nesting and the tensor shapes still tell the network.
Each detector below recognises one family by its key names, reads the hyperparameters that show in
shapes (widths, depths, channel counts) and proposes one candidate per choice that leaves no shape of
its own (normalisation, ResNet dropout and padding). The first candidate whose keys and shapes equal
the file's is built; when none does, the closest one names the keys that do not fit.

Layouts no state_dict can tell apart, resolved towards the common case:
- a DCGAN discriminator for 32 or 64 px images has the keys of a PatchGAN with 2 or 3 layers (its
  'none' norm those of the PatchGAN's 'instance'); from 128 px its widths pass the PatchGAN's cap;
- norm 'none' in pix2pixHD and DCGAN networks (whose convs always carry a bias) looks like 'instance';
- a standalone pix2pixHD PatchGAN without intermediate features (padding 2; no model saves one) looks
  like a pix2pix or DCGAN discriminator unless its norm is 'batch';
- ResNet 'replicate' padding looks like 'reflect', and U-Net dropout (appended after every keyed
  layer) leaves no trace: U-Nets with batch norm get it (pix2pix's default), others not (eval-mode
  outputs are the same either way);
- a global generator or ResNet without residual blocks has the feature encoder's layout.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from ganvas.checkpoint import Layout, Shape, clean_state_dict, compare_keys, read_state_dict, tensor_shapes
from ganvas.errors import CheckpointError, OptionsError
from ganvas.nets.discriminators import DCGANDiscriminator, NLayerDiscriminator, PixelDiscriminator
from ganvas.nets.generators import DCGANGenerator, ResnetGenerator, UnetGenerator
from ganvas.nets.norm import get_norm_layer
from ganvas.nets.patch_nce import PatchSampleF
from ganvas.nets.pix2pixhd import (
    Encoder,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminatorHD,
)

# Tried in this order; where two leave the same keys the first wins. Instance first: it is the default
# of CycleGAN, CUT and pix2pixHD, and the one 'none' cannot be told from where every conv has a bias.
NORMS = ("instance", "batch", "none")
KNOWN_LAYOUTS = (
    "U-Net, ResNet (also CUT's anti-aliased), PatchGAN, pixel and DCGAN networks, pix2pixHD's global and "
    "local generators, multi-scale discriminator and feature encoder, CUT's patch sampler"
)
_BUILD_IT_YOURSELF = ("pass the architecture flags it was trained with (--netG, --ngf, --norm, ...) instead, or in "
                      "Python build the network and load it with ganvas.checkpoint.load_weights(net, path)")


@dataclass(frozen=True)
class Guess:
    """A network a state_dict may come from: how to build it and the hyperparameters read from the file."""

    name: str  # the class, e.g. "ResnetGenerator"
    build: Callable[[], nn.Module]
    arch: dict[str, Any]  # becomes net.ganvas_arch; see _arch

    @property
    def description(self) -> str:
        """The class with the inferred hyperparameters, e.g. ResnetGenerator(input_nc=3, ..., norm='instance')."""
        shown = {k: v for k, v in self.arch.items() if k not in ("family", "kind", "size_multiple")}
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _arch(family: str, kind: str, size_multiple: int, **hyper: Any) -> dict[str, Any]:
    """The ganvas_arch dict: family, kind, input_nc, output_nc, size_multiple, then the family's own."""
    return {"family": family, "kind": kind, "input_nc": hyper.pop("input_nc"),
            "output_nc": hyper.pop("output_nc"), "size_multiple": size_multiple, **hyper}


def parameter_layout(state: Mapping[str, Tensor]) -> Layout:
    """Key -> shape of a state_dict's tensors, wrapper prefixes stripped and running statistics dropped."""
    # Against a network with no slots clean_state_dict drops every running statistic: old files carry
    # them for instance norms too, so they tell nothing; batch norm still shows by its weight.
    return tensor_shapes(clean_state_dict(dict(state), nn.Module()))


# ---------------------------------------------------------------------------------------------------
# Reading shapes


def _numbers(layout: Layout, pattern: str) -> list[int]:
    """The distinct integers the first group of pattern takes at the start of the keys, ascending."""
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for key in layout if (m := regex.match(key))})


def _convs(layout: Layout, prefix: str) -> list[Shape]:
    """Shapes of the 4-D weights directly in the Sequential at prefix (`<prefix><i>.weight`), by index."""
    regex = re.compile(re.escape(prefix) + r"(\d+)\.weight$")
    found = sorted((int(m.group(1)), shape) for key, shape in layout.items()
                   if (m := regex.match(key)) and len(shape) == 4)
    return [shape for _, shape in found]


def _has(layout: Layout, pattern: str) -> bool:
    regex = re.compile(pattern)
    return any(regex.match(key) for key in layout)


# ---------------------------------------------------------------------------------------------------
# Detectors: layout -> candidates (none when the family's key names are absent)


def _unet(layout: Layout) -> list[Guess]:
    """pix2pix's U-Net: levels nest as model.model.1.model.3.model.3...; the innermost has no model.3.model."""
    first, last = layout.get("model.model.0.weight"), layout.get("model.model.3.weight")
    if first is None or last is None or len(first) != 4 or len(last) != 4:
        return []
    num_downs, level = 2, "model.model.1."
    while _has(layout, re.escape(level + "model.3.model.")):
        level += "model.3."
        num_downs += 1
    ngf, input_nc, output_nc = first[0], first[1], last[1]
    # Dropout leaves no key: assume pix2pix's default (on) with batch norm, CycleGAN's (off) otherwise.
    # It only acts in train mode, as the original test scripts ran pix2pix.
    return [
        Guess("UnetGenerator",
              functools.partial(UnetGenerator, input_nc, output_nc, num_downs, ngf, norm_layer=get_norm_layer(norm),
                                use_dropout=norm == "batch"),
              _arch("unet", "generator", 2**num_downs, input_nc=input_nc, output_nc=output_nc,
                    num_downs=num_downs, ngf=ngf, norm=norm, use_dropout=norm == "batch"))
        for norm in NORMS
    ]


def _residual_trunk(layout: Layout) -> tuple[list[Shape], list[int]] | None:
    """(top-level conv shapes, residual block indices) of a 7x7-stem ResNet-style `model`, else None."""
    blocks = _numbers(layout, r"model\.(\d+)\.conv_block\.")
    convs = _convs(layout, "model.")
    if not blocks or len(convs) < 2 or convs[0][2:] != (7, 7) or _has(layout, r"model\d+_1\."):
        return None
    return convs, blocks


def _resnet(layout: Layout) -> list[Guess]:
    """CycleGAN's / CUT's ResNet generator; CUT's blurred resampling leaves `model.<i>.filt` buffers."""
    trunk = _residual_trunk(layout)
    if trunk is None:
        return []
    convs, blocks = trunk
    filters = _numbers(layout, r"model\.(\d+)\.filt$")
    antialias = any(i < blocks[0] for i in filters)
    antialias_up = any(i > blocks[-1] for i in filters)
    ngf, input_nc, output_nc, n_blocks = convs[0][0], convs[0][1], convs[-1][0], len(blocks)
    # Dropout shifts the second conv of each block by one index; 'zero' padding drops the pad layers.
    return [
        Guess("ResnetGenerator",
              functools.partial(ResnetGenerator, input_nc, output_nc, ngf, get_norm_layer(norm), dropout, n_blocks,
                                padding, antialias, antialias_up),
              _arch("resnet", "generator", 4, input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks,
                    norm=norm, use_dropout=dropout, padding_type=padding, antialias=antialias,
                    antialias_up=antialias_up))
        for norm, dropout, padding in itertools.product(NORMS, (False, True), ("reflect", "zero"))
    ]


def _global(layout: Layout) -> list[Guess]:
    """pix2pixHD's global generator: like the ResNet one, with any number of downsamplings and biased convs."""
    trunk = _residual_trunk(layout)
    if trunk is None or len(trunk[0]) % 2:
        return []
    convs, blocks = trunk
    n_down = (len(convs) - 2) // 2
    ngf, input_nc, output_nc = convs[0][0], convs[0][1], convs[-1][0]
    return [
        Guess("GlobalGenerator",
              functools.partial(GlobalGenerator, input_nc, output_nc, ngf, n_down, len(blocks), get_norm_layer(norm)),
              _arch("global", "generator", 2**n_down, input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                    n_downsampling=n_down, n_blocks=len(blocks), norm=norm))
        for norm in NORMS
    ]


def _local(layout: Layout) -> list[Guess]:
    """pix2pixHD's local enhancer: the headless global generator in `model`, enhancer n in model{n}_1 / model{n}_2."""
    enhancers = len(_numbers(layout, r"model(\d+)_1\."))
    trunk, head = _convs(layout, "model."), _convs(layout, f"model{enhancers}_2.")
    if not enhancers or not trunk or not head or len(trunk) % 2 == 0 or trunk[0][0] % 2**enhancers:
        return []
    ngf, input_nc, output_nc = trunk[0][0] // 2**enhancers, trunk[0][1], head[-1][0]
    n_down = (len(trunk) - 1) // 2  # stem, downsamplings, upsamplings: the global head is dropped
    n_blocks = len(_numbers(layout, r"model\.(\d+)\.conv_block\."))
    n_blocks_local = len(_numbers(layout, r"model1_2\.(\d+)\.conv_block\."))
    return [
        Guess("LocalEnhancer",
              functools.partial(LocalEnhancer, input_nc, output_nc, ngf, n_down, n_blocks, enhancers, n_blocks_local,
                                get_norm_layer(norm)),
              _arch("local", "generator", 2 ** (n_down + enhancers), input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                    n_downsample_global=n_down, n_blocks_global=n_blocks, n_local_enhancers=enhancers,
                    n_blocks_local=n_blocks_local, norm=norm))
        for norm in NORMS
    ]


def _encoder(layout: Layout) -> list[Guess]:
    """pix2pixHD's feature encoder: 7x7 stem, downsamplings, upsamplings, 7x7 head; no residual blocks."""
    convs = _convs(layout, "model.")
    if (len(convs) < 2 or len(convs) % 2 or convs[0][2:] != (7, 7) or convs[-1][2:] != (7, 7)
            or _has(layout, r"model\.(\d+)\.conv_block\.|model\.model\.|model\d+_1\.")):
        return []
    n_down = (len(convs) - 2) // 2
    ngf, input_nc, output_nc = convs[0][0], convs[0][1], convs[-1][0]
    return [
        Guess("Encoder", functools.partial(Encoder, input_nc, output_nc, ngf, n_down, get_norm_layer(norm)),
              _arch("encoder", "encoder", 2**n_down, input_nc=input_nc, output_nc=output_nc, ngf=ngf,
                    n_downsampling=n_down, norm=norm))
        for norm in NORMS
    ]


def _patch_convs(layout: Layout, prefix: str) -> list[Shape] | None:
    """The 4x4 convs of a patch discriminator's Sequential at prefix, ending in a 1-channel one, else None."""
    convs = _convs(layout, prefix)
    if len(convs) < 2 or any(shape[2:] != (4, 4) for shape in convs) or convs[-1][0] != 1:
        return None
    return convs


def _patchgan(layout: Layout) -> list[Guess]:
    """pix2pix's n-layer PatchGAN (CUT's anti-aliased one has `model.<i>.filt` buffers)."""
    convs = _patch_convs(layout, "model.")
    if convs is None or len(convs) < 3:
        return []
    ndf, input_nc, n_layers = convs[0][0], convs[0][1], len(convs) - 2
    antialias = _has(layout, r"model\.\d+\.filt$")
    return [
        Guess("NLayerDiscriminator",
              functools.partial(NLayerDiscriminator, input_nc, ndf, n_layers, get_norm_layer(norm), antialias),
              _arch("patchgan", "discriminator", 1, input_nc=input_nc, output_nc=1, ndf=ndf, n_layers=n_layers,
                    norm=norm, antialias=antialias))
        for norm in NORMS
    ]


def _patchgan_hd(layout: Layout) -> list[Guess]:
    """pix2pixHD's PatchGAN on its own: one Sequential `model`, or stages model0.. with intermediate features."""
    stages = _numbers(layout, r"model(\d+)\.")
    interm = bool(stages)
    if interm:
        first, last = layout.get("model0.0.weight"), layout.get(f"model{stages[-1]}.0.weight")
        if first is None or last is None or len(stages) < 3 or last[0] != 1:
            return []
        n_layers = len(stages) - 2
    else:
        convs = _patch_convs(layout, "model.")
        if convs is None or len(convs) < 3:
            return []
        first, n_layers = convs[0], len(convs) - 2
    ndf, input_nc = first[0], first[1]
    return [
        Guess("NLayerDiscriminatorHD",
              functools.partial(NLayerDiscriminatorHD, input_nc, ndf, n_layers, get_norm_layer(norm),
                                get_interm_feat=interm),
              _arch("patchgan_hd", "discriminator", 1, input_nc=input_nc, output_nc=1, ndf=ndf, n_layers=n_layers,
                    norm=norm, get_interm_feat=interm))
        for norm in NORMS
    ]


def _multiscale(layout: Layout) -> list[Guess]:
    """pix2pixHD's multi-scale discriminator: layer{i}.* or, with intermediate features, scale{i}_layer{j}.*."""
    interm = _numbers(layout, r"scale(\d+)_layer0\.")
    if interm:
        num_d, n_layers = len(interm), len(_numbers(layout, r"scale0_layer(\d+)\.")) - 2
        first = layout.get("scale0_layer0.0.weight")
    else:
        num_d, convs = len(_numbers(layout, r"layer(\d+)\.")), _patch_convs(layout, "layer0.")
        n_layers, first = (len(convs) - 2, convs[0]) if convs else (0, None)
    if not num_d or first is None or n_layers < 1:
        return []
    ndf, input_nc = first[0], first[1]
    return [
        Guess("MultiscaleDiscriminator",
              functools.partial(MultiscaleDiscriminator, input_nc, ndf, n_layers, get_norm_layer(norm), False,
                                num_d, bool(interm)),
              _arch("multiscale", "discriminator", 1, input_nc=input_nc, output_nc=1, ndf=ndf, n_layers=n_layers,
                    num_D=num_d, get_interm_feat=bool(interm), norm=norm))
        for norm in NORMS
    ]


def _pixel(layout: Layout) -> list[Guess]:
    """pix2pix's pixel discriminator: three 1x1 convs in `net`."""
    first = layout.get("net.0.weight")
    if first is None or len(first) != 4 or first[2:] != (1, 1):
        return []
    ndf, input_nc = first[0], first[1]
    return [
        Guess("PixelDiscriminator", functools.partial(PixelDiscriminator, input_nc, ndf, get_norm_layer(norm)),
              _arch("pixel", "discriminator", 1, input_nc=input_nc, output_nc=1, ndf=ndf, norm=norm))
        for norm in NORMS
    ]


def _dcgan_generator(layout: Layout) -> list[Guess]:
    """DCGAN generator: 4x4 transposed convs from nz x 1 x 1, halving the width while doubling the side."""
    convs = _convs(layout, "model.")
    if len(convs) < 2 or any(shape[2:] != (4, 4) for shape in convs):
        return []
    nz, ngf, output_nc = convs[0][0], convs[-1][0], convs[-1][1]
    image_size = 2 ** (len(convs) + 1)
    return [
        Guess("DCGANGenerator",
              functools.partial(DCGANGenerator, nz, output_nc, ngf, image_size, get_norm_layer(norm)),
              _arch("dcgan", "generator", 1, input_nc=nz, output_nc=output_nc, nz=nz, ngf=ngf,
                    image_size=image_size, norm=norm))
        for norm in NORMS
    ]


def _dcgan_discriminator(layout: Layout) -> list[Guess]:
    """DCGAN discriminator: 4x4 stride-2 convs doubling the width, then one 4x4 conv to a single logit."""
    convs = _patch_convs(layout, "model.")
    if convs is None:
        return []
    ndf, input_nc, image_size = convs[0][0], convs[0][1], 2 ** (len(convs) + 1)
    return [
        Guess("DCGANDiscriminator",
              functools.partial(DCGANDiscriminator, input_nc, ndf, image_size, get_norm_layer(norm)),
              _arch("dcgan", "discriminator", 1, input_nc=input_nc, output_nc=1, ndf=ndf, image_size=image_size,
                    norm=norm))
        for norm in NORMS
    ]


def _patch_sample(layout: Layout) -> list[Guess]:
    """CUT's patch sampler F: one Linear-ReLU-Linear `mlp_<i>` per feature layer."""
    count = len(_numbers(layout, r"mlp_(\d+)\."))
    firsts = [layout.get(f"mlp_{i}.0.weight") for i in range(count)]
    if not count or any(shape is None or len(shape) != 2 for shape in firsts):
        return []
    channels, nc = [shape[1] for shape in firsts], firsts[0][0]
    # Its inputs are several feature maps (see channels), so input_nc does not apply.
    return [Guess("PatchSampleF", functools.partial(PatchSampleF, channels, True, nc),
                  _arch("patch_sample", "patch_sampler", 1, input_nc=None, output_nc=nc, channels=channels, nc=nc))]


# Where two detectors' candidates both fit exactly the earlier one wins (see the module docstring).
DETECTORS: tuple[Callable[[Layout], list[Guess]], ...] = (
    _unet,
    _resnet,
    _global,
    _local,
    _encoder,
    _patchgan,
    _dcgan_discriminator,
    _patchgan_hd,
    _multiscale,
    _pixel,
    _dcgan_generator,
    _patch_sample,
)


def _meta_layout(guess: Guess) -> Layout:
    """The parameter layout of the guessed network, built on the meta device (no memory, no init)."""
    with torch.device("meta"):
        return parameter_layout(guess.build().state_dict())


def guess_architecture(state: Mapping[str, Tensor], source: str = "the state_dict") -> Guess:
    """The network a state_dict fits exactly, else the closest candidate of a family its keys name.

    Raises CheckpointError when no family's key names appear at all.
    """
    layout = parameter_layout(state)
    best: tuple[int, Guess] | None = None
    for detect in DETECTORS:
        for guess in detect(layout):
            distance = len(compare_keys(layout, _meta_layout(guess)))
            if distance == 0:
                return guess
            if best is None or distance < best[0]:
                best = (distance, guess)
    if best is None:
        first = ", ".join(f"{k} {tuple(v.shape)}" for k, v in itertools.islice(state.items(), 5))
        held = f"its {len(state)} keys begin {first}" if state else "it holds no tensors"
        raise CheckpointError(
            f"{source} matches no network layout ganvas knows ({KNOWN_LAYOUTS}); {held}; {_BUILD_IT_YOURSELF}"
        )
    return best[1]


# ---------------------------------------------------------------------------------------------------
# Files


def pick_device(device: str | torch.device | None, default: str = "cpu") -> torch.device:
    """The device asked for (default when None); OptionsError for a GPU on a machine without one."""
    device = torch.device(default if device is None else device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionsError(f"device {str(device)!r} is not available (torch.cuda.is_available() is False); "
                           f"pass device='cpu' or None")
    return device


def load_network(path: str | PathLike[str], device: str | torch.device | None = None) -> nn.Module:
    """Build the network a bare state_dict file holds, load it strictly and return it in eval mode on device.

    The returned module carries `ganvas_arch` (the inferred hyperparameters: family, kind, input_nc,
    output_nc, size_multiple and the family's own) and `size_multiple`.
    """
    path = Path(path)
    target = pick_device(device)
    raw = read_state_dict(path)
    guess = guess_architecture(raw, source=str(path))
    with torch.device("meta"):
        net = guess.build()
    state = clean_state_dict(raw, net)
    expected = net.state_dict()
    # Files from PyTorch < 0.4.1 have no batch-norm step counters; torch fills them in too.
    for key in expected:
        if key not in state and key.endswith(".num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
    mismatch = compare_keys(tensor_shapes(state), tensor_shapes(expected))
    if mismatch:
        raise CheckpointError(
            f"{path} looks like {guess.description} but its keys do not all fit: {mismatch.describe()}; the file is "
            f"damaged or holds a variant ganvas cannot infer: {_BUILD_IT_YOURSELF}"
        )
    # assign=True puts the file's tensors in place of the meta ones (float32, as a copy into a fresh net would).
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, assign=True)
    left = [name for name, t in itertools.chain(net.named_parameters(), net.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(f"{guess.name} holds tensors no state_dict fills ({', '.join(left)}); load_network "
                           f"cannot build it on the meta device")
    net.ganvas_arch = dict(guess.arch)
    if getattr(net, "size_multiple", None) is None:
        net.size_multiple = guess.arch["size_multiple"]
    return net.to(target).eval()
