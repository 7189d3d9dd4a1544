"""Networks by name: --netG / --netD names resolved through the registry, built, then initialised.

Every network is built by a NETWORKS builder (registered beside its class) through `build_network`, so it
carries `ganvas_spec` and its checkpoint describes it. Entry metadata these helpers read:

- kind: generator, discriminator, encoder, patch_sampler; flag: --netG / --netD when a flag names it;
- pattern / form: how the flag writes it; parse(text, **groups): the builder arguments the name sets
  (and the error for a name that matches the pattern but is no network, as unet_100);
- options: builder argument -> make_* argument that sets it where the names differ (n_layers <- n_layers_D).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from ganvas.nets.norm import init_weights
from ganvas.registry import NETWORKS, build_network


def make_network(name: str, init_type: str = "normal", init_gain: float = 0.02, **kwargs: Any) -> nn.Module:
    """Build the network registered as `name` from JSON-plain keyword arguments on the CPU and initialise it."""
    net = build_network(name, **kwargs)
    init_weights(net, init_type, init_gain)
    return net


def resolve_flag(text: str, kind: str, flag: str, given: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registry name and builder arguments for a --netG / --netD name, taking the rest from `given`.

    `given` holds a make_* helper's arguments; each builder gets those it takes (others are ignored, as
    antialias is for U-Nets), then the ones the name itself sets (a ResNet's block count).
    """
    entry, groups = NETWORKS.match(text, what=flag, kind=kind, flag=flag)
    sources = entry.meta.get("options", {})
    kwargs = {
        arg: given[sources.get(arg, arg)]
        for arg in inspect.signature(entry.obj).parameters
        if sources.get(arg, arg) in given
    }
    parse = entry.meta.get("parse")
    if parse is not None:
        kwargs.update(parse(text, **groups))
    return entry.name, kwargs


def make_generator(
    netG: str,
    input_nc: int,
    output_nc: int,
    ngf: int = 64,
    norm: str = "batch",
    use_dropout: bool = False,
    init_type: str = "normal",
    init_gain: float = 0.02,
    nz: int = 100,
    image_size: int = 64,
    antialias: bool = False,
    antialias_up: bool = False,
    n_downsample_global: int = 4,
    n_blocks_global: int = 9,
    n_local_enhancers: int = 1,
    n_blocks_local: int = 3,
) -> nn.Module:
    """Build and initialise the generator --netG names on the CPU.

    Each family takes the arguments it has: nz and image_size the DCGAN generator, antialias / antialias_up
    (CUT's blurred resampling) the ResNet one, n_downsample_global .. n_blocks_local pix2pixHD's global and
    local generators; as in the original code bases the others ignore them.
    """
    given = {
        "input_nc": input_nc,
        "output_nc": output_nc,
        "ngf": ngf,
        "norm": norm,
        "use_dropout": use_dropout,
        "nz": nz,
        "image_size": image_size,
        "antialias": antialias,
        "antialias_up": antialias_up,
        "n_downsample_global": n_downsample_global,
        "n_blocks_global": n_blocks_global,
        "n_local_enhancers": n_local_enhancers,
        "n_blocks_local": n_blocks_local,
    }
    name, kwargs = resolve_flag(netG, "generator", "--netG", given)
    return make_network(name, init_type, init_gain, **kwargs)


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
    """Build and initialise the discriminator --netD names on the CPU (antialias: CUT's PatchGANs)."""
    given = {
        "input_nc": input_nc,
        "ndf": ndf,
        "n_layers_D": n_layers_D,
        "norm": norm,
        "image_size": image_size,
        "antialias": antialias,
    }
    name, kwargs = resolve_flag(netD, "discriminator", "--netD", given)
    return make_network(name, init_type, init_gain, **kwargs)
