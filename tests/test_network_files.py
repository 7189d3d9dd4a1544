"""Self-describing network files: the registry builds every network, checkpoints name it in a .json beside
the .pth, and load_network builds from that .json without guessing."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from torch import Tensor

import ganvas.interop as interop
from ganvas.checkpoint import atomic_write_many, network_writes, read_state_dict
from ganvas.errors import CheckpointError, OptionsError
from ganvas.interop import load_network
from ganvas.nets import (
    Encoder,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    PatchSampleF,
    get_norm_layer,
    init_weights,
    make_discriminator,
    make_generator,
    make_network,
)
from ganvas.registry import LAYOUT_DETECTORS, NETWORKS

ARCH_KEYS = {"family", "kind", "input_nc", "output_nc", "size_multiple"}


def image(channels: int, side: int, seed: int = 1) -> Tensor:
    return torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def instances(side: int) -> Tensor:
    return (torch.arange(side * side).reshape(1, 1, side, side) // 50).float()


# One small network per registry entry: builder arguments and the inputs of one forward pass. Choices that
# leave no trace in the shapes (norm 'none', DCGAN 32 px, ResNet 'replicate' padding) are picked on purpose:
# only the .json can tell them.
CASES: dict[str, tuple[dict[str, Any], Callable[[], tuple[Any, ...]]]] = {
    "unet": (
        {"input_nc": 3, "output_nc": 2, "num_downs": 5, "ngf": 4, "norm": "instance", "use_dropout": True},
        lambda: (image(3, 32),),
    ),
    "resnet": (
        {
            "input_nc": 3,
            "output_nc": 3,
            "ngf": 4,
            "norm": "instance",
            "use_dropout": False,
            "n_blocks": 2,
            "padding_type": "replicate",
            "antialias": True,
            "antialias_up": True,
        },
        lambda: (image(3, 16),),
    ),
    "dcgan_generator": (
        {"nz": 8, "output_nc": 3, "ngf": 4, "image_size": 16, "norm": "batch"},
        lambda: (torch.randn(2, 8, generator=torch.Generator().manual_seed(2)),),
    ),
    "patchgan": (
        {"input_nc": 6, "ndf": 4, "n_layers": 2, "norm": "batch", "antialias": False},
        lambda: (image(6, 32),),
    ),
    "pixel": ({"input_nc": 4, "ndf": 4, "norm": "none"}, lambda: (image(4, 16),)),
    "dcgan_discriminator": ({"input_nc": 3, "ndf": 4, "image_size": 32, "norm": "batch"}, lambda: (image(3, 32),)),
    "patch_sample": (
        {"channels": [3, 8], "use_mlp": True, "nc": 8},
        lambda: ([torch.randn(2, 3, 4, 4), torch.randn(2, 8, 4, 4)], 0),
    ),
    "global": (
        {"input_nc": 5, "output_nc": 3, "ngf": 4, "n_downsampling": 2, "n_blocks": 1, "norm": "none"},
        lambda: (image(5, 16),),
    ),
    "local": (
        {
            "input_nc": 5,
            "output_nc": 3,
            "ngf": 4,
            "n_downsample_global": 1,
            "n_blocks_global": 1,
            "n_local_enhancers": 2,
            "n_blocks_local": 1,
            "norm": "instance",
        },
        lambda: (image(5, 32),),
    ),
    "siggraph": (
        {"input_nc": 4, "output_nc": 2, "ngf": 4, "classes": 9, "norm": "instance"},
        lambda: (image(4, 16),),
    ),
    "composite": (
        {
            "input_nc": 6,
            "output_nc": 3,
            "prev_output_nc": 3,
            "ngf": 4,
            "n_downsampling": 2,
            "n_blocks": 3,
            "norm": "batch",
            "no_flow": False,
        },  # fmt: skip
        lambda: (image(6, 16), image(3, 16)),
    ),
    "composite_local": (
        {
            "input_nc": 6,
            "output_nc": 3,
            "prev_output_nc": 3,
            "ngf": 4,
            "n_blocks_local": 2,
            "norm": "instance",
            "no_flow": True,
            "scale": 1,
        },  # fmt: skip
        lambda: (image(6, 16), image(3, 16), image(8, 8)),
    ),
    "encoder": (
        {"input_nc": 3, "output_nc": 3, "ngf": 4, "n_downsampling": 2, "norm": "instance"},
        lambda: (image(3, 16), instances(16)),
    ),
    "patchgan_hd": (
        {"input_nc": 4, "ndf": 4, "n_layers": 2, "norm": "none", "get_interm_feat": True},
        lambda: (image(4, 32),),
    ),
    "multiscale": (
        {"input_nc": 4, "ndf": 4, "n_layers": 2, "num_D": 2, "get_interm_feat": True, "norm": "batch"},
        lambda: (image(4, 32),),
    ),
}


def trained_looking(net: nn.Module, seed: int = 0) -> nn.Module:
    """Move every tensor off its initial value (as training would) and put net in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(17)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif tensor.is_floating_point() and not name.endswith("filt"):
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return net.eval()


def flat_outputs(out: Any) -> list[Tensor]:
    """The tensors of a network's output, nested lists and tuples flattened."""
    if isinstance(out, Tensor):
        return [out]
    return [t for item in out for t in flat_outputs(item)]


def save(net: nn.Module, run_dir: Path, name: str = "X", tag: str = "latest") -> Path:
    """Write net as the trainer does; the .pth's path."""
    atomic_write_many(network_writes({name: net}, run_dir, tag))
    return run_dir / f"{tag}_net_{name}.pth"


def refuse_to_guess(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("load_network guessed the architecture of a file that has a .json")


def assert_same_outputs(a: nn.Module, b: nn.Module, inputs: tuple[Any, ...]) -> None:
    with torch.no_grad():
        expected, got = flat_outputs(a(*inputs)), flat_outputs(b(*inputs))
    assert len(expected) == len(got) > 0
    for x, y in zip(expected, got):
        assert torch.equal(x, y)


@pytest.fixture
def no_guessing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interop, "guess_architecture", refuse_to_guess)


def saved_unet(tmp_path: Path) -> tuple[nn.Module, Path]:
    kwargs, _ = CASES["unet"]
    net = trained_looking(make_network("unet", **kwargs))
    return net, save(net, tmp_path)


# ---------------------------------------------------------------------------------------------------
# The registry


def test_the_cases_cover_every_registered_network() -> None:
    assert set(CASES) == set(NETWORKS.names())


def test_every_network_has_a_layout_detector_in_the_order_that_resolves_look_alikes() -> None:
    names = LAYOUT_DETECTORS.names()
    assert set(names) == set(NETWORKS.names())
    assert names[:6] == ("unet", "resnet", "global", "local", "encoder", "patchgan")
    assert names.index("dcgan_discriminator") < names.index("patchgan_hd")


def test_flag_names_come_from_the_registry() -> None:
    assert NETWORKS.forms(flag="--netG") == ("unet_<size>", "resnet_<blocks>blocks", "dcgan", "global", "local")
    assert NETWORKS.forms(flag="--netD") == ("basic", "n_layers", "pixel", "dcgan")
    with pytest.raises(OptionsError, match=r"unknown --netG 'unet'.*unet_<size>, resnet_<blocks>blocks"):
        make_generator("unet", 3, 3)
    with pytest.raises(OptionsError, match=r"unknown --netD 'multiscale'; choose one of basic, n_layers, pixel"):
        make_discriminator("multiscale", 3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_network_records_all_its_arguments_defaults_included(name: str) -> None:
    kwargs, _ = CASES[name]
    parameters = inspect.signature(NETWORKS.get(name)).parameters
    assert kwargs.keys() == parameters.keys()  # the cases give every argument
    required = {k: v for k, v in kwargs.items() if parameters[k].default is inspect.Parameter.empty}
    spec = make_network(name, **required).ganvas_spec
    assert spec["network"] == name and spec["kwargs"].keys() == parameters.keys()
    assert json.loads(json.dumps(spec)) == spec


@pytest.mark.parametrize(
    "netG, network, set_by_name",
    [
        ("unet_64", "unet", {"num_downs": 6}),
        ("resnet_3blocks", "resnet", {"n_blocks": 3, "antialias": True}),
        ("dcgan", "dcgan_generator", {"nz": 7}),
        ("global", "global", {"n_downsampling": 2, "n_blocks": 1}),
        ("local", "local", {"n_downsample_global": 2, "n_blocks_global": 1, "n_local_enhancers": 2}),
    ],
)
def test_make_generator_resolves_netG_and_passes_each_family_its_own_arguments(netG, network, set_by_name) -> None:
    net = make_generator(
        netG,
        5,
        3,
        ngf=4,
        norm="instance",
        nz=7,
        image_size=16,
        antialias=True,
        n_downsample_global=2,
        n_blocks_global=1,
        n_local_enhancers=2,
        n_blocks_local=1,
    )
    spec = net.ganvas_spec
    assert spec["network"] == network
    assert set_by_name.items() <= spec["kwargs"].items()
    assert "antialias" not in spec["kwargs"] or network == "resnet"
    assert "nz" not in spec["kwargs"] or network == "dcgan_generator"


def test_make_discriminator_basic_is_three_layers_and_n_layers_takes_n_layers_D() -> None:
    assert make_discriminator("basic", 3, ndf=4, n_layers_D=5).ganvas_spec["kwargs"]["n_layers"] == 3
    assert make_discriminator("n_layers", 3, ndf=4, n_layers_D=5).ganvas_spec["kwargs"]["n_layers"] == 5
    assert make_discriminator("pixel", 3, ndf=4, antialias=True).ganvas_spec["kwargs"] == {
        "input_nc": 3,
        "ndf": 4,
        "norm": "batch",
    }


def seeded(build: Callable[[], nn.Module]) -> tuple[dict[str, Tensor], Tensor]:
    """The weights build() makes from seed 5 and torch's RNG state after it."""
    torch.manual_seed(5)
    net = build()
    return net.state_dict(), torch.get_rng_state()


@pytest.mark.parametrize(
    "through_registry, by_hand",
    [
        (
            lambda: make_generator(
                "global",
                6,
                3,
                4,
                "instance",
                init_type="xavier",
                init_gain=0.1,
                n_downsample_global=2,
                n_blocks_global=2,
            ),
            lambda: GlobalGenerator(6, 3, 4, 2, 2, get_norm_layer("instance")),
        ),
        (
            lambda: make_generator(
                "local",
                6,
                3,
                4,
                "batch",
                init_type="xavier",
                init_gain=0.1,
                n_downsample_global=2,
                n_blocks_global=1,
                n_local_enhancers=1,
                n_blocks_local=2,
            ),
            lambda: LocalEnhancer(6, 3, 4, 2, 1, 1, 2, get_norm_layer("batch")),
        ),
        (
            lambda: make_network(
                "encoder", "xavier", 0.1, input_nc=3, output_nc=3, ngf=4, n_downsampling=2, norm="instance"
            ),
            lambda: Encoder(3, 3, 4, 2, get_norm_layer("instance")),
        ),
        (
            lambda: make_network(
                "multiscale",
                "xavier",
                0.1,
                input_nc=7,
                ndf=4,
                n_layers=2,
                num_D=2,
                get_interm_feat=True,
                norm="instance",
            ),
            lambda: MultiscaleDiscriminator(7, 4, 2, get_norm_layer("instance"), False, 2, True),
        ),
    ],
)
def test_pix2pixhd_networks_get_the_same_weights_and_random_draws_as_built_by_hand(through_registry, by_hand) -> None:
    def initialised() -> nn.Module:
        net = by_hand()
        init_weights(net, "xavier", 0.1)
        return net

    (ours, our_rng), (theirs, their_rng) = seeded(through_registry), seeded(initialised)
    assert torch.equal(our_rng, their_rng)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("use_mlp", [True, False])
def test_cuts_patch_sampler_gets_the_same_weights_and_random_draws_as_before(use_mlp: bool) -> None:
    ours, our_rng = seeded(
        lambda: make_network("patch_sample", "xavier", 0.02, channels=[3, 8, 16], use_mlp=use_mlp, nc=16)
    )
    theirs, their_rng = seeded(lambda: PatchSampleF([3, 8, 16], use_mlp, 16, init_type="xavier", init_gain=0.02))
    assert torch.equal(our_rng, their_rng)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


# ---------------------------------------------------------------------------------------------------
# Writing


def test_network_writes_puts_a_json_beside_each_pth_in_the_same_batch(tmp_path) -> None:
    G = make_generator("resnet_2blocks", 3, 3, ngf=4, norm="instance")
    D = make_discriminator("basic", 6, ndf=4)
    writes = network_writes({"G": G, "D": D}, tmp_path, "7")
    assert [p.name for p, _ in writes] == ["7_net_G.pth", "7_net_G.json", "7_net_D.pth", "7_net_D.json"]
    atomic_write_many(writes)
    spec = json.loads((tmp_path / "7_net_D.json").read_text())
    assert spec == {
        "format": "ganvas.network",
        "version": 1,
        "network": "patchgan",
        "kind": "discriminator",
        "kwargs": {"input_nc": 6, "ndf": 4, "n_layers": 3, "norm": "batch", "antialias": False},
    }
    assert (tmp_path / "7_net_G.json").read_text().startswith('{\n  "format": "ganvas.network",')


def test_the_pth_stays_a_bare_state_dict(tmp_path) -> None:
    net, path = saved_unet(tmp_path)
    state = torch.load(path, weights_only=True)
    assert type(state) is dict and list(state) == list(net.state_dict())
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())


class Wrapper(nn.Module):
    """Stands in for DDP: the network in `.module`."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module


def test_a_wrapped_network_is_described_as_the_network_inside(tmp_path) -> None:
    net = make_discriminator("pixel", 3, ndf=4)
    save(Wrapper(net), tmp_path)
    assert json.loads((tmp_path / "latest_net_X.json").read_text())["network"] == "pixel"
    assert list(read_state_dict(tmp_path / "latest_net_X.pth")) == list(net.state_dict())


def test_a_network_built_without_the_registry_gets_no_json(tmp_path) -> None:
    save(GlobalGenerator(3, 3, ngf=4, n_downsampling=1, n_blocks=1), tmp_path)
    assert (tmp_path / "latest_net_X.pth").is_file() and not (tmp_path / "latest_net_X.json").exists()


def test_arguments_a_json_cannot_hold_are_refused_before_anything_is_written(tmp_path) -> None:
    net = make_network("patch_sample", channels=[3], nc=4)
    net.ganvas_spec["kwargs"]["channels"] = {3}  # a set: as if a builder had been called with one
    with pytest.raises(CheckpointError, match="'patch_sample'.*plain ints"):
        network_writes({"F": net}, tmp_path, "latest")
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------
# Loading


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_network_loads_from_its_json_without_guessing(tmp_path, no_guessing, name: str) -> None:
    kwargs, inputs = CASES[name]
    net = trained_looking(make_network(name, **kwargs))
    path = save(net, tmp_path)
    entry = NETWORKS.entry(name)
    assert json.loads((tmp_path / "latest_net_X.json").read_text()) == {
        "format": "ganvas.network",
        "version": 1,
        "network": name,
        "kind": entry.meta["kind"],
        "kwargs": kwargs,
    }
    loaded = load_network(path)
    assert type(loaded) is type(net) and loaded.ganvas_spec == net.ganvas_spec
    assert list(loaded.state_dict()) == list(net.state_dict())
    assert not any(m.training for m in loaded.modules())
    arch = loaded.ganvas_arch
    assert ARCH_KEYS <= arch.keys() and arch["kind"] == entry.meta["kind"]
    assert arch["family"] == entry.meta.get("family", name)
    assert loaded.size_multiple == arch["size_multiple"] == getattr(net, "size_multiple", 1)
    assert_same_outputs(net, loaded, inputs())


@pytest.mark.parametrize("name", sorted(CASES))
def test_json_and_inference_give_the_same_ganvas_arch_where_both_find_the_network(tmp_path, name: str) -> None:
    kwargs, _ = CASES[name]
    path = save(trained_looking(make_network(name, **kwargs)), tmp_path)
    described = load_network(path).ganvas_arch
    path.with_suffix(".json").unlink()
    inferred = load_network(path)
    if inferred.ganvas_spec["network"] == name and inferred.ganvas_spec["kwargs"] == kwargs:
        assert inferred.ganvas_arch.items() <= described.items()
    else:  # the look-alikes the CASES pick on purpose: the .json told what the shapes could not
        assert name in ("unet", "resnet", "pixel", "dcgan_discriminator", "global", "patchgan_hd")


@pytest.mark.parametrize(
    "make, inputs, family",
    [
        (lambda: make_discriminator("dcgan", 3, ndf=4, image_size=32), (image(3, 32),), "dcgan"),
        (
            lambda: make_network("patchgan_hd", input_nc=4, ndf=4, n_layers=2, norm="none"),
            (image(4, 32),),
            "patchgan_hd",
        ),
    ],
)
def test_the_json_tells_networks_that_shapes_cannot(tmp_path, make, inputs, family) -> None:
    net = trained_looking(make())
    path = save(net, tmp_path)
    loaded = load_network(path)
    assert loaded.ganvas_arch["family"] == family
    assert_same_outputs(net, loaded, inputs)
    path.with_suffix(".json").unlink()
    assert load_network(path).ganvas_arch["family"] != family


def test_a_dcgan_generator_round_trips_and_keeps_nz_as_its_input(tmp_path, no_guessing) -> None:
    net = trained_looking(make_generator("dcgan", 0, 3, ngf=4, nz=6, image_size=32, norm="instance"))
    loaded = load_network(save(net, tmp_path, "G"))
    arch = loaded.ganvas_arch
    assert (arch["family"], arch["kind"], arch["input_nc"], arch["nz"], arch["image_size"], arch["norm"]) == (
        "dcgan",
        "generator",
        6,
        6,
        32,
        "instance",
    )
    assert_same_outputs(net, loaded, (torch.randn(3, 6),))


def test_pix2pixhds_networks_round_trip_as_the_model_builds_them(tmp_path, no_guessing) -> None:
    G = make_generator(
        "local", 6, 3, 4, "instance", n_downsample_global=1, n_blocks_global=1, n_local_enhancers=1, n_blocks_local=1
    )
    E = make_network("encoder", input_nc=3, output_nc=3, ngf=4, n_downsampling=2, norm="instance")
    D = make_network("multiscale", input_nc=9, ndf=4, n_layers=2, num_D=2, get_interm_feat=True, norm="instance")
    nets = {"G": trained_looking(G), "E": trained_looking(E), "D": trained_looking(D)}
    atomic_write_many(network_writes(nets, tmp_path, "latest"))
    inputs = {"G": (image(6, 16),), "E": (image(3, 16), instances(16)), "D": (image(9, 32),)}
    for name, net in nets.items():
        loaded = load_network(tmp_path / f"latest_net_{name}.pth")
        assert loaded.ganvas_arch["family"] == {"G": "local", "E": "encoder", "D": "multiscale"}[name]
        assert_same_outputs(net, loaded, inputs[name])
    assert load_network(tmp_path / "latest_net_G.pth").ganvas_arch["n_local_enhancers"] == 1


def test_a_patch_sampler_without_mlps_loads_from_its_json_alone(tmp_path, no_guessing) -> None:
    # No parameters at all: nothing in the .pth says what it is.
    net = make_network("patch_sample", channels=[3, 8], use_mlp=False, nc=16)
    loaded = load_network(save(net, tmp_path, "F"))
    assert isinstance(loaded, PatchSampleF) and not loaded.use_mlp and loaded.channels == [3, 8]
    assert loaded.ganvas_arch["kind"] == "patch_sampler" and loaded.ganvas_arch["input_nc"] is None


def test_a_pth_without_json_still_loads_by_inference(tmp_path, monkeypatch) -> None:
    net, path = saved_unet(tmp_path)
    path.with_suffix(".json").unlink()
    calls = []
    guess = interop.guess_architecture
    monkeypatch.setattr(interop, "guess_architecture", lambda *a, **k: calls.append(1) or guess(*a, **k))
    loaded = load_network(path)
    assert calls == [1] and loaded.ganvas_arch["family"] == "unet"
    # Instance norm: inference assumes no dropout, which acts in train mode only; eval outputs agree.
    assert_same_outputs(net, loaded, (image(3, 32),))


def test_a_loaded_network_saved_again_describes_itself(tmp_path) -> None:
    net, path = saved_unet(tmp_path)
    path.with_suffix(".json").unlink()
    again = save(load_network(path), tmp_path / "again")
    assert json.loads(again.with_suffix(".json").read_text())["network"] == "unet"


def test_the_api_loads_a_described_file_unchanged(tmp_path, no_guessing) -> None:
    from ganvas.api import load

    kwargs, inputs = CASES["resnet"]
    net = trained_looking(make_network("resnet", **kwargs))
    translator = load(save(net, tmp_path, "G"), device="cpu", eval=True)
    assert translator.network.ganvas_arch["family"] == "resnet"
    assert_same_outputs(net, translator.network, inputs())


# ---------------------------------------------------------------------------------------------------
# Damaged descriptions: CheckpointError naming the .json and the fix


def damage(path: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """Edit the .json beside path; its path."""
    spec_path = path.with_suffix(".json")
    document = json.loads(spec_path.read_text())
    change(document)
    spec_path.write_text(json.dumps(document))
    return spec_path


def assert_names_the_json(spec_path: Path, weights: Path, *, also: str = "") -> None:
    with pytest.raises(CheckpointError) as err:
        load_network(weights)
    message = str(err.value)
    assert str(spec_path) in message and "delete" in message
    assert also in message


@pytest.mark.parametrize("name", ["nonexistent", "os.system", "ganvas.nets.generators.UnetGenerator", ""])
def test_an_unknown_network_name_is_refused_without_importing_anything(tmp_path, no_guessing, name: str) -> None:
    _, path = saved_unet(tmp_path)
    spec_path = damage(path, lambda d: d.update(network=name))
    assert_names_the_json(spec_path, path, also=f"names network {name!r}, which ganvas does not have")


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"input_nc": 3, "output_nc": 2, "num_downs": 5, "ngf": 4, "norm": "instance", "bogus": 1}, "bogus"),
        ({"input_nc": 3, "output_nc": 2, "ngf": 4}, "num_downs"),
        ({"input_nc": 3, "output_nc": 2, "num_downs": "five", "ngf": 4}, "five"),
        ({"input_nc": 3, "output_nc": 2, "num_downs": 5, "ngf": 4, "norm": "fancy"}, "fancy"),
    ],
)
def test_arguments_the_builder_rejects_are_refused(tmp_path, no_guessing, kwargs, says) -> None:
    _, path = saved_unet(tmp_path)
    spec_path = damage(path, lambda d: d.update(kwargs=kwargs))
    assert_names_the_json(spec_path, path, also=says)


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["kwargs"].update(ngf=8),
        lambda d: d["kwargs"].update(num_downs=6),
        lambda d: d["kwargs"].update(norm="batch"),
        lambda d: d.update(
            network="resnet", kind="generator", kwargs={"input_nc": 3, "output_nc": 2, "ngf": 4, "norm": "instance"}
        ),
    ],
)
def test_arguments_that_do_not_fit_the_weights_are_refused(tmp_path, no_guessing, change) -> None:
    _, path = saved_unet(tmp_path)
    spec_path = damage(path, change)
    assert_names_the_json(spec_path, path, also=f"{path} does not fit the network {spec_path} describes")


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "cannot read the network description"),
        ("[1, 2]", "not a ganvas network description"),
        ('{"format": "other"}', "not a ganvas network description"),
        ('{"format": "ganvas.network", "version": "1", "network": "unet", "kwargs": {}}', "version"),
        ('{"format": "ganvas.network", "version": 2, "network": "unet", "kwargs": {}}', "newer than this ganvas"),
        ('{"format": "ganvas.network", "version": 1, "network": "unet", "kwargs": [1]}', '"kwargs" object'),
        (
            '{"format": "ganvas.network", "version": 1, "network": "unet", "kind": "discriminator", "kwargs": {}}',
            "but it is a generator",
        ),
    ],
)
def test_a_broken_json_is_refused(tmp_path, no_guessing, text: str, says: str) -> None:
    _, path = saved_unet(tmp_path)
    spec_path = path.with_suffix(".json")
    spec_path.write_text(text)
    assert_names_the_json(spec_path, path, also=says)


def test_a_json_that_is_not_utf8_is_refused(tmp_path, no_guessing) -> None:
    _, path = saved_unet(tmp_path)
    spec_path = path.with_suffix(".json")
    spec_path.write_bytes(b"\xff\xfe\x00{")
    assert_names_the_json(spec_path, path, also="cannot read")


def test_deleting_a_broken_json_lets_inference_load_the_file(tmp_path) -> None:
    net, path = saved_unet(tmp_path)
    spec_path = damage(path, lambda d: d["kwargs"].update(ngf=8))
    with pytest.raises(CheckpointError, match=re.escape(str(spec_path))):
        load_network(path)
    spec_path.unlink()
    assert_same_outputs(net, load_network(path), (image(3, 32),))
