"""Load a network file (pix2pix / CycleGAN, CUT, pix2pixHD or ganvas) with no architecture flags.

A file ganvas wrote has a `.json` beside it (`latest_net_G.pth` and `latest_net_G.json`) that names the
network in the registry and its builder's arguments; that is built and nothing is guessed. The files of
the original code bases hold tensors only, but the module nesting and the tensor shapes still tell the
network. Each detector below (registered in `registry.LAYOUT_DETECTORS` under the network it proposes)
recognises one family by its key names, reads the hyperparameters that show in shapes (widths, depths,
channel counts) and proposes one candidate per choice that leaves no shape of its own (normalisation,
ResNet dropout and padding). The first candidate whose keys and shapes equal the file's is built; when
none does, the closest one names the keys that do not fit.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganvas.checkpoint import (
    Layout,
    Shape,
    clean_state_dict,
    compare_keys,
    network_spec_path,
    read_network_spec,
    read_state_dict,
    refuse_non_network,
    tensor_shapes,
)
from ganvas.errors import CheckpointError
from ganvas.registry import LAYOUT_DETECTORS, NETWORKS, build_network
from ganvas.speed import pick_device

# Tried in this order; where two leave the same keys the first wins. Instance first: it is the default
# of CycleGAN, CUT and pix2pixHD, and the one 'none' cannot be told from where every conv has a bias.
NORMS = ("instance", "batch", "none")
_BUILD_IT_YOURSELF = (
    "pass the architecture flags it was trained with (--netG, --ngf, --norm, ...) instead, or in "
    "Python build the network and load it with ganvas.checkpoint.load_weights(net, path)"
)


def network_arch(network: str, kwargs: Mapping[str, Any], net: nn.Module) -> dict[str, Any]:
    """The ganvas_arch of a registered network: family, kind, input_nc, output_nc, size_multiple, then its arguments.

    Where the builder has no input_nc / output_nc argument, the entry's metadata of that name says what it
    is: another argument's name (a DCGAN generator's nz) or the value itself (a discriminator's 1 logit).
    """
    meta = NETWORKS.entry(network).meta
    hyper = dict(kwargs)

    def channels(key: str) -> Any:
        source = meta.get(key, key)
        return hyper.get(source) if isinstance(source, str) else source

    input_nc, output_nc = channels("input_nc"), channels("output_nc")
    hyper.pop("input_nc", None)
    hyper.pop("output_nc", None)
    return _arch(
        meta.get("family", network),
        meta["kind"],
        getattr(net, "size_multiple", 1),
        input_nc=input_nc,
        output_nc=output_nc,
        **hyper,
    )


@dataclass(frozen=True)
class Guess:
    """A network a state_dict may come from: its registry name and the builder arguments read from the file."""

    network: str  # the NETWORKS name, e.g. "resnet"
    kwargs: dict[str, Any]

    def build(self) -> nn.Module:
        """The network, on torch's current default device, with its `ganvas_spec`."""
        return build_network(self.network, **self.kwargs)

    @functools.cached_property
    def skeleton(self) -> nn.Module:
        """The network built on the meta device (no memory, no init): its class, layout and size_multiple."""
        with torch.device("meta"):
            return self.build()

    @property
    def name(self) -> str:
        """The class, e.g. "ResnetGenerator"."""
        return type(self.skeleton).__name__

    @functools.cached_property
    def arch(self) -> dict[str, Any]:
        """Becomes net.ganvas_arch; see network_arch."""
        return network_arch(self.network, self.kwargs, self.skeleton)

    @property
    def description(self) -> str:
        """The class with the inferred hyperparameters, e.g. ResnetGenerator(input_nc=3, ..., norm='instance')."""
        shown = {k: v for k, v in self.arch.items() if k not in ("family", "kind", "size_multiple")}
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def _guess(network: str, **kwargs: Any) -> Guess:
    """A candidate: the registered network `network` built with kwargs (their order is the description's)."""
    return Guess(network, kwargs)


def _arch(family: str, kind: str, size_multiple: int, **hyper: Any) -> dict[str, Any]:
    """The ganvas_arch dict: family, kind, input_nc, output_nc, size_multiple, then the family's own."""
    return {
        "family": family,
        "kind": kind,
        "input_nc": hyper.pop("input_nc"),
        "output_nc": hyper.pop("output_nc"),
        "size_multiple": size_multiple,
        **hyper,
    }


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
    found = sorted(
        (int(m.group(1)), shape) for key, shape in layout.items() if (m := regex.match(key)) and len(shape) == 4
    )
    return [shape for _, shape in found]


def _has(layout: Layout, pattern: str) -> bool:
    regex = re.compile(pattern)
    return any(regex.match(key) for key in layout)


# ---------------------------------------------------------------------------------------------------
# Detectors: layout -> candidates (none when the family's key names are absent)


@LAYOUT_DETECTORS.register("unet")
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
        _guess(
            "unet",
            input_nc=input_nc,
            output_nc=output_nc,
            num_downs=num_downs,
            ngf=ngf,
            norm=norm,
            use_dropout=norm == "batch",
        )
        for norm in NORMS
    ]


def _residual_trunk(layout: Layout) -> tuple[list[Shape], list[int]] | None:
    """(top-level conv shapes, residual block indices) of a 7x7-stem ResNet-style `model`, else None."""
    blocks = _numbers(layout, r"model\.(\d+)\.conv_block\.")
    convs = _convs(layout, "model.")
    if not blocks or len(convs) < 2 or convs[0][2:] != (7, 7) or _has(layout, r"model\d+_1\."):
        return None
    return convs, blocks


@LAYOUT_DETECTORS.register("resnet")
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
        _guess(
            "resnet",
            input_nc=input_nc,
            output_nc=output_nc,
            ngf=ngf,
            n_blocks=n_blocks,
            norm=norm,
            use_dropout=dropout,
            padding_type=padding,
            antialias=antialias,
            antialias_up=antialias_up,
        )
        for norm, dropout, padding in itertools.product(NORMS, (False, True), ("reflect", "zero"))
    ]


@LAYOUT_DETECTORS.register("global")
def _global(layout: Layout) -> list[Guess]:
    """pix2pixHD's global generator: like the ResNet one, with any number of downsamplings and biased convs."""
    trunk = _residual_trunk(layout)
    if trunk is None or len(trunk[0]) % 2:
        return []
    convs, blocks = trunk
    n_down = (len(convs) - 2) // 2
    ngf, input_nc, output_nc = convs[0][0], convs[0][1], convs[-1][0]
    return [
        _guess(
            "global",
            input_nc=input_nc,
            output_nc=output_nc,
            ngf=ngf,
            n_downsampling=n_down,
            n_blocks=len(blocks),
            norm=norm,
        )
        for norm in NORMS
    ]


@LAYOUT_DETECTORS.register("local")
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
        _guess(
            "local",
            input_nc=input_nc,
            output_nc=output_nc,
            ngf=ngf,
            n_downsample_global=n_down,
            n_blocks_global=n_blocks,
            n_local_enhancers=enhancers,
            n_blocks_local=n_blocks_local,
            norm=norm,
        )
        for norm in NORMS
    ]


@LAYOUT_DETECTORS.register("encoder")
def _encoder(layout: Layout) -> list[Guess]:
    """pix2pixHD's feature encoder: 7x7 stem, downsamplings, upsamplings, 7x7 head; no residual blocks."""
    convs = _convs(layout, "model.")
    if (
        len(convs) < 2
        or len(convs) % 2
        or convs[0][2:] != (7, 7)
        or convs[-1][2:] != (7, 7)
        or _has(layout, r"model\.(\d+)\.conv_block\.|model\.model\.|model\d+_1\.")
    ):
        return []
    n_down = (len(convs) - 2) // 2
    ngf, input_nc, output_nc = convs[0][0], convs[0][1], convs[-1][0]
    return [
        _guess("encoder", input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_downsampling=n_down, norm=norm)
        for norm in NORMS
    ]


def _patch_convs(layout: Layout, prefix: str) -> list[Shape] | None:
    """The 4x4 convs of a patch discriminator's Sequential at prefix, ending in a 1-channel one, else None."""
    convs = _convs(layout, prefix)
    if len(convs) < 2 or any(shape[2:] != (4, 4) for shape in convs) or convs[-1][0] != 1:
        return None
    return convs


@LAYOUT_DETECTORS.register("patchgan")
def _patchgan(layout: Layout) -> list[Guess]:
    """pix2pix's n-layer PatchGAN (CUT's anti-aliased one has `model.<i>.filt` buffers)."""
    convs = _patch_convs(layout, "model.")
    if convs is None or len(convs) < 3:
        return []
    ndf, input_nc, n_layers = convs[0][0], convs[0][1], len(convs) - 2
    antialias = _has(layout, r"model\.\d+\.filt$")
    return [
        _guess("patchgan", input_nc=input_nc, ndf=ndf, n_layers=n_layers, norm=norm, antialias=antialias)
        for norm in NORMS
    ]


# Before pix2pixHD's PatchGAN: a 32 / 64 px DCGAN discriminator file is the likelier of the two.
@LAYOUT_DETECTORS.register("dcgan_discriminator")
def _dcgan_discriminator(layout: Layout) -> list[Guess]:
    """DCGAN discriminator: 4x4 stride-2 convs doubling the width, then one 4x4 conv to a single logit."""
    convs = _patch_convs(layout, "model.")
    if convs is None:
        return []
    ndf, input_nc, image_size = convs[0][0], convs[0][1], 2 ** (len(convs) + 1)
    return [
        _guess("dcgan_discriminator", input_nc=input_nc, ndf=ndf, image_size=image_size, norm=norm) for norm in NORMS
    ]


@LAYOUT_DETECTORS.register("patchgan_hd")
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
        _guess("patchgan_hd", input_nc=input_nc, ndf=ndf, n_layers=n_layers, norm=norm, get_interm_feat=interm)
        for norm in NORMS
    ]


@LAYOUT_DETECTORS.register("multiscale")
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
        _guess(
            "multiscale",
            input_nc=input_nc,
            ndf=ndf,
            n_layers=n_layers,
            num_D=num_d,
            get_interm_feat=bool(interm),
            norm=norm,
        )
        for norm in NORMS
    ]


@LAYOUT_DETECTORS.register("pixel")
def _pixel(layout: Layout) -> list[Guess]:
    """pix2pix's pixel discriminator: three 1x1 convs in `net`."""
    first = layout.get("net.0.weight")
    if first is None or len(first) != 4 or first[2:] != (1, 1):
        return []
    ndf, input_nc = first[0], first[1]
    return [_guess("pixel", input_nc=input_nc, ndf=ndf, norm=norm) for norm in NORMS]


@LAYOUT_DETECTORS.register("dcgan_generator")
def _dcgan_generator(layout: Layout) -> list[Guess]:
    """DCGAN generator: 4x4 transposed convs from nz x 1 x 1, halving the width while doubling the side."""
    convs = _convs(layout, "model.")
    if len(convs) < 2 or any(shape[2:] != (4, 4) for shape in convs):
        return []
    nz, ngf, output_nc = convs[0][0], convs[-1][0], convs[-1][1]
    image_size = 2 ** (len(convs) + 1)
    return [
        _guess("dcgan_generator", nz=nz, output_nc=output_nc, ngf=ngf, image_size=image_size, norm=norm)
        for norm in NORMS
    ]


@LAYOUT_DETECTORS.register("patch_sample")
def _patch_sample(layout: Layout) -> list[Guess]:
    """CUT's patch sampler F: one Linear-ReLU-Linear `mlp_<i>` per feature layer."""
    count = len(_numbers(layout, r"mlp_(\d+)\."))
    firsts = [layout.get(f"mlp_{i}.0.weight") for i in range(count)]
    if not count or any(shape is None or len(shape) != 2 for shape in firsts):
        return []
    return [_guess("patch_sample", channels=[shape[1] for shape in firsts], nc=firsts[0][0])]


@LAYOUT_DETECTORS.register("siggraph")
def _siggraph(layout: Layout) -> list[Guess]:
    """The SIGGRAPH 2017 colourisation network: model1 ... model10, model_class and model_out."""
    first, head, out = layout.get("model1.0.weight"), layout.get("model_class.weight"), layout.get("model_out.0.weight")
    if first is None or head is None or out is None:
        return []
    return [
        _guess("siggraph", input_nc=first[1], output_nc=out[0], ngf=first[0], classes=head[0], norm=norm)
        for norm in NORMS
    ]


def _blocks(layout: Layout, prefix: str) -> int:
    """Residual blocks (`<prefix><i>.conv_block.`) directly in the Sequential at prefix."""
    return len(_numbers(layout, re.escape(prefix) + r"(\d+)\.conv_block\."))


@LAYOUT_DETECTORS.register("composite")
def _composite(layout: Layout) -> list[Guess]:
    """vid2vid's coarsest generator (netG0): model_down_seg / model_down_img encoders, image, flow and weight heads."""
    seg, img = layout.get("model_down_seg.1.weight"), layout.get("model_down_img.1.weight")
    out = layout.get("model_final_img.1.weight")
    if seg is None or img is None or out is None or not _has(layout, r"model_res_img\."):
        return []
    strided = [shape for shape in _convs(layout, "model_down_seg.")[1:] if shape[2:] == (3, 3)]
    kwargs = {
        "input_nc": seg[1],
        "output_nc": out[0],
        "prev_output_nc": img[1],
        "ngf": seg[0],
        "n_downsampling": len(strided),
        "n_blocks": _blocks(layout, "model_down_seg.") + _blocks(layout, "model_res_img."),
        "no_flow": "model_final_flow.1.weight" not in layout,
    }
    return [_guess("composite", **kwargs, norm=norm) for norm in NORMS]


@LAYOUT_DETECTORS.register("composite_local")
def _composite_local(layout: Layout) -> list[Guess]:
    """vid2vid's finer generators (netG1 ...): one stride-2 conv per encoder, blocks then one upsampling.

    The flow's scale (20 x 2^scale) leaves no trace in the weights: a bare file is read as scale 1 (netG1);
    ganvas's own files say their scale in the .json beside them.
    """
    seg, img = layout.get("model_down_seg.1.weight"), layout.get("model_down_img.1.weight")
    out = layout.get("model_final_img.1.weight")
    if seg is None or img is None or out is None or _has(layout, r"model_res_img\."):
        return []
    kwargs = {
        "input_nc": seg[1],
        "output_nc": out[0],
        "prev_output_nc": img[1],
        "ngf": seg[0],
        "n_blocks_local": _blocks(layout, "model_up_img."),
        "no_flow": "model_final_flow.1.weight" not in layout,
        "scale": 1,
    }
    return [_guess("composite_local", **kwargs, norm=norm) for norm in NORMS]


def guess_architecture(state: Mapping[str, Tensor], source: str = "the state_dict") -> Guess:
    """The network a state_dict fits exactly, else the closest candidate of a family its keys name.

    Raises CheckpointError when no family's key names appear at all.
    """
    layout = parameter_layout(state)
    best: tuple[int, Guess] | None = None
    for detector in LAYOUT_DETECTORS:
        for guess in detector.obj(layout):
            distance = len(compare_keys(layout, parameter_layout(guess.skeleton.state_dict())))
            if distance == 0:
                return guess
            if best is None or distance < best[0]:
                best = (distance, guess)
    if best is None:
        first = ", ".join(f"{k} {tuple(v.shape)}" for k, v in itertools.islice(state.items(), 5))
        held = f"its {len(state)} keys begin {first}" if state else "it holds no tensors"
        raise CheckpointError(
            f"{source} matches no network layout ganvas knows ({', '.join(LAYOUT_DETECTORS.names())}); {held}; "
            f"{_BUILD_IT_YOURSELF}"
        )
    return best[1]


# ---------------------------------------------------------------------------------------------------
# Files


def _load_into(net: nn.Module, raw: dict[str, Tensor], misfit: Callable[[str], str]) -> None:
    """Load a file's tensors into a network built on the meta device, strictly; misfit(keys) words the error."""
    state = clean_state_dict(raw, net)
    expected = net.state_dict()
    # Files from PyTorch < 0.4.1 have no batch-norm step counters; torch fills them in too.
    for key in expected:
        if key not in state and key.endswith(".num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
    mismatch = compare_keys(tensor_shapes(state), tensor_shapes(expected))
    if mismatch:
        raise CheckpointError(misfit(mismatch.describe()))
    # assign=True puts the file's tensors in place of the meta ones (float32, as a copy into a fresh net would).
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, assign=True)
    left = [name for name, t in itertools.chain(net.named_parameters(), net.named_buffers()) if t.is_meta]
    if left:
        raise RuntimeError(
            f"{type(net).__name__} holds tensors no state_dict fills ({', '.join(left)}); "
            f"load_network cannot build it on the meta device"
        )


def _described_network(spec_path: Path, weights: Path) -> nn.Module:
    """The network a .json describes, built on the meta device; CheckpointError naming the .json if it cannot be."""
    document = read_network_spec(spec_path)
    name, kwargs = document["network"], document["kwargs"]
    fix = f"correct it, or delete {spec_path} to let ganvas infer the architecture from {weights.name}"
    # Only registered builders are looked up by name: nothing the file says is imported or run.
    if name not in NETWORKS:
        raise CheckpointError(
            f"{spec_path} names network {name!r}, which ganvas does not have (it has "
            f"{', '.join(NETWORKS.names())}); {fix}"
        )
    kind = NETWORKS.entry(name).meta["kind"]
    if document.get("kind", kind) != kind:
        raise CheckpointError(f"{spec_path} calls network {name!r} a {document['kind']}, but it is a {kind}; {fix}")
    try:
        with torch.device("meta"):
            return build_network(name, **kwargs)
    except Exception as err:  # the arguments come from a file: whatever a builder rejects, the file is wrong
        raise CheckpointError(
            f"{spec_path} does not describe a network ganvas can build: {name} with {kwargs} fails ({err}); {fix}"
        ) from None


def load_network(path: str | PathLike[str], device: str | torch.device | None = None) -> nn.Module:
    """Build the network a state_dict file holds, load it strictly and return it in eval mode on device.

    The architecture is the one the `.json` beside the file names (ganvas writes one with every network)
    or, for a file without one, the one its keys and shapes fit. The returned module carries `ganvas_arch`
    (family, kind, input_nc, output_nc, size_multiple and the family's own hyperparameters),
    `ganvas_spec` and `size_multiple`.
    """
    path = Path(path)
    target = pick_device(device)
    refuse_non_network(path)  # before its .json is looked for: the path may be that .json, or an opt.yaml
    spec_path = network_spec_path(path)
    if spec_path.is_file():
        net = _described_network(spec_path, path)
        raw = read_state_dict(path)
        spec = net.ganvas_spec
        _load_into(
            net,
            raw,
            lambda keys: (
                f"{path} does not fit the network {spec_path} describes ({type(net).__name__} {spec['kwargs']}): "
                f"{keys}; "
                f"the two files do not belong together: restore the right .json, or delete it to let ganvas infer the "
                f"architecture from the weights"
            ),
        )
        arch = network_arch(spec["network"], spec["kwargs"], net)
    else:
        raw = read_state_dict(path)
        guess = guess_architecture(raw, source=str(path))
        with torch.device("meta"):
            net = guess.build()
        _load_into(
            net,
            raw,
            lambda keys: (
                f"{path} looks like {guess.description} but its keys do not all fit: {keys}; the file is damaged or "
                f"holds a variant ganvas cannot infer: {_BUILD_IT_YOURSELF}"
            ),
        )
        arch = guess.arch
    net.ganvas_arch = dict(arch)
    if getattr(net, "size_multiple", None) is None:
        net.size_multiple = arch["size_multiple"]
    return net.to(target).eval()
