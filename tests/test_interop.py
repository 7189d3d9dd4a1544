"""Tests for ganvas.interop: bare state_dict files load into the network they came from, with no flags."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from torch import Tensor

import ganvas
from ganvas.checkpoint import read_state_dict
from ganvas.errors import CheckpointError, OptionsError
from ganvas.interop import guess_architecture, load_network
from ganvas.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    Encoder,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    NLayerDiscriminatorHD,
    PatchSampleF,
    PixelDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    get_norm_layer,
)

NORMS = ("batch", "instance", "none")
ARCH_KEYS = {"family", "kind", "input_nc", "output_nc", "size_multiple"}


def trained_looking(net: nn.Module, seed: int = 0) -> nn.Module:
    """Move every tensor off its initial value (as training would) and put net in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(17)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            else:
                tensor.add_(torch.randn(tensor.shape, generator=gen) * 0.05)
    return net.eval()


def flat_outputs(out: Any) -> list[Tensor]:
    """The tensors of a network's output, nested lists flattened."""
    if isinstance(out, Tensor):
        return [out]
    return [t for item in out for t in flat_outputs(item)]


def save_state(net: nn.Module, path: Path, prefix: str = "") -> Path:
    """Save net's state_dict as the original code bases did (with a DataParallel-style prefix if given)."""
    torch.save({prefix + k: v for k, v in net.state_dict().items()}, path)
    return path


def assert_round_trip(net: nn.Module, inputs: tuple[Tensor, ...], path: Path) -> nn.Module:
    """Load the file at path with no hint; same keys, same outputs, eval mode, ganvas_arch and size_multiple."""
    loaded = load_network(path)
    assert list(loaded.state_dict()) == list(net.state_dict())
    assert not any(m.training for m in loaded.modules())
    assert ARCH_KEYS <= loaded.ganvas_arch.keys()
    assert loaded.size_multiple == loaded.ganvas_arch["size_multiple"]
    with torch.no_grad():
        expected, got = flat_outputs(net(*inputs)), flat_outputs(loaded(*inputs))
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
    return loaded


def round_trip(net: nn.Module, inputs: tuple[Tensor, ...], tmp_path: Path) -> nn.Module:
    """Save a trained-looking net plainly and check it loads back exactly."""
    net = trained_looking(net)
    return assert_round_trip(net, inputs, save_state(net, tmp_path / "latest_net_G.pth"))


def image(channels: int, side: int, seed: int = 1) -> Tensor:
    return torch.rand(1, channels, side, side, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------------------------------------------
# Generators


@pytest.mark.parametrize("num_downs", [2, 5, 6, 8])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("use_dropout", [False, True])
def test_unet_of_any_depth_norm_and_dropout_loads(tmp_path, num_downs, norm, use_dropout) -> None:
    net = UnetGenerator(3, 3, num_downs, ngf=4, norm_layer=get_norm_layer(norm), use_dropout=use_dropout)
    loaded = round_trip(net, (image(3, 2**num_downs),), tmp_path)
    assert loaded.ganvas_arch == {
        "family": "unet",
        "kind": "generator",
        "input_nc": 3,
        "output_nc": 3,
        "size_multiple": 2**num_downs,
        "num_downs": num_downs,
        "ngf": 4,
        "norm": norm,
        "use_dropout": norm == "batch",
    }


@pytest.mark.parametrize("input_nc, output_nc", [(1, 3), (3, 3), (4, 1)])
def test_unet_channel_counts_are_read_from_the_file(tmp_path, input_nc, output_nc) -> None:
    net = UnetGenerator(input_nc, output_nc, 5, ngf=6, norm_layer=get_norm_layer("batch"))
    loaded = round_trip(net, (image(input_nc, 32),), tmp_path)
    assert (loaded.ganvas_arch["input_nc"], loaded.ganvas_arch["output_nc"]) == (input_nc, output_nc)


@pytest.mark.parametrize("n_blocks", [2, 6, 9])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("use_dropout", [False, True])
def test_resnet_of_any_block_count_norm_and_dropout_loads(tmp_path, n_blocks, norm, use_dropout) -> None:
    net = ResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer(norm), use_dropout=use_dropout, n_blocks=n_blocks)
    loaded = round_trip(net, (image(3, 16),), tmp_path)
    assert loaded.ganvas_arch == {
        "family": "resnet",
        "kind": "generator",
        "input_nc": 3,
        "output_nc": 3,
        "size_multiple": 4,
        "ngf": 4,
        "n_blocks": n_blocks,
        "norm": norm,
        "use_dropout": use_dropout,
        "padding_type": "reflect",
        "antialias": False,
        "antialias_up": False,
    }


@pytest.mark.parametrize("input_nc, output_nc", [(1, 3), (3, 3), (4, 1)])
def test_resnet_channel_counts_are_read_from_the_file(tmp_path, input_nc, output_nc) -> None:
    net = ResnetGenerator(input_nc, output_nc, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=2)
    loaded = round_trip(net, (image(input_nc, 16),), tmp_path)
    assert (loaded.ganvas_arch["input_nc"], loaded.ganvas_arch["output_nc"]) == (input_nc, output_nc)


@pytest.mark.parametrize("use_dropout", [False, True])
def test_resnet_with_zero_padding_loads(tmp_path, use_dropout) -> None:
    net = ResnetGenerator(
        3, 3, ngf=4, norm_layer=get_norm_layer("instance"), use_dropout=use_dropout, n_blocks=2, padding_type="zero"
    )
    assert round_trip(net, (image(3, 16),), tmp_path).ganvas_arch["padding_type"] == "zero"


@pytest.mark.parametrize("antialias_up", [False, True])
@pytest.mark.parametrize("norm", NORMS)
def test_cut_antialiased_resnet_loads(tmp_path, antialias_up, norm) -> None:
    net = ResnetGenerator(
        3, 3, ngf=4, norm_layer=get_norm_layer(norm), n_blocks=3, antialias=True, antialias_up=antialias_up
    )
    arch = round_trip(net, (image(3, 16),), tmp_path).ganvas_arch
    assert (arch["antialias"], arch["antialias_up"]) == (True, antialias_up)


@pytest.mark.parametrize("image_size", [8, 32])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_dcgan_generator_loads_with_nz_and_image_size_from_shapes(tmp_path, image_size, norm) -> None:
    net = DCGANGenerator(nz=10, output_nc=3, ngf=4, image_size=image_size, norm_layer=get_norm_layer(norm))
    arch = round_trip(net, (torch.randn(2, 10),), tmp_path).ganvas_arch
    assert (arch["family"], arch["kind"], arch["nz"], arch["input_nc"], arch["image_size"]) == (
        "dcgan",
        "generator",
        10,
        10,
        image_size,
    )


@pytest.mark.parametrize("n_downsampling, n_blocks", [(1, 1), (3, 2)])
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_pix2pixhd_global_generator_loads(tmp_path, n_downsampling, n_blocks, norm) -> None:
    net = GlobalGenerator(
        5, 3, ngf=4, n_downsampling=n_downsampling, n_blocks=n_blocks, norm_layer=get_norm_layer(norm)
    )
    arch = round_trip(net, (image(5, 16),), tmp_path).ganvas_arch
    assert arch == {
        "family": "global",
        "kind": "generator",
        "input_nc": 5,
        "output_nc": 3,
        "size_multiple": 2**n_downsampling,
        "ngf": 4,
        "n_downsampling": n_downsampling,
        "n_blocks": n_blocks,
        "norm": norm,
    }


@pytest.mark.parametrize("n_local_enhancers, n_blocks_local", [(1, 2), (2, 1)])
def test_pix2pixhd_local_enhancer_loads(tmp_path, n_local_enhancers, n_blocks_local) -> None:
    net = LocalEnhancer(
        6,
        3,
        ngf=4,
        n_downsample_global=2,
        n_blocks_global=2,
        n_local_enhancers=n_local_enhancers,
        n_blocks_local=n_blocks_local,
    )
    arch = round_trip(net, (image(6, 32),), tmp_path).ganvas_arch
    assert arch == {
        "family": "local",
        "kind": "generator",
        "input_nc": 6,
        "output_nc": 3,
        "size_multiple": 2 ** (2 + n_local_enhancers),
        "ngf": 4,
        "n_downsample_global": 2,
        "n_blocks_global": 2,
        "n_local_enhancers": n_local_enhancers,
        "n_blocks_local": n_blocks_local,
        "norm": "instance",
    }


@pytest.mark.parametrize("n_downsampling", [2, 4])
def test_pix2pixhd_encoder_loads(tmp_path, n_downsampling) -> None:
    net = Encoder(3, 3, ngf=4, n_downsampling=n_downsampling)
    inst = (torch.arange(32 * 32).reshape(1, 1, 32, 32) // 200).float()
    arch = round_trip(net, (image(3, 32), inst), tmp_path).ganvas_arch
    assert (arch["family"], arch["kind"], arch["n_downsampling"]) == ("encoder", "encoder", n_downsampling)


# ---------------------------------------------------------------------------------------------------
# Discriminators and CUT's sampler


@pytest.mark.parametrize("n_layers", [1, 3, 5])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("antialias", [False, True])
def test_patchgan_of_any_depth_norm_and_cut_antialias_loads(tmp_path, n_layers, norm, antialias) -> None:
    net = NLayerDiscriminator(6, ndf=4, n_layers=n_layers, norm_layer=get_norm_layer(norm), antialias=antialias)
    arch = round_trip(net, (image(6, 128),), tmp_path).ganvas_arch
    assert arch == {
        "family": "patchgan",
        "kind": "discriminator",
        "input_nc": 6,
        "output_nc": 1,
        "size_multiple": 1,
        "ndf": 4,
        "n_layers": n_layers,
        "norm": norm,
        "antialias": antialias,
    }


@pytest.mark.parametrize("norm", NORMS)
def test_pixel_discriminator_loads(tmp_path, norm) -> None:
    net = PixelDiscriminator(4, ndf=4, norm_layer=get_norm_layer(norm))
    assert round_trip(net, (image(4, 16),), tmp_path).ganvas_arch["family"] == "pixel"


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_dcgan_discriminator_for_128px_loads(tmp_path, norm) -> None:
    net = DCGANDiscriminator(3, ndf=4, image_size=128, norm_layer=get_norm_layer(norm))
    arch = round_trip(net, (image(3, 128),), tmp_path).ganvas_arch
    assert (arch["family"], arch["kind"], arch["image_size"]) == ("dcgan", "discriminator", 128)


def test_dcgan_discriminator_for_64px_reads_as_the_basic_patchgan_it_cannot_be_told_from(tmp_path) -> None:
    net = DCGANDiscriminator(3, ndf=4, image_size=64, norm_layer=get_norm_layer("batch"))
    path = save_state(net, tmp_path / "D.pth")
    assert guess_architecture(read_state_dict(path)).arch["family"] == "patchgan"


@pytest.mark.parametrize("num_D", [1, 2, 3])
@pytest.mark.parametrize("get_interm_feat", [False, True])
def test_multiscale_discriminator_loads(tmp_path, num_D, get_interm_feat) -> None:
    net = MultiscaleDiscriminator(7, ndf=4, n_layers=2, num_D=num_D, get_interm_feat=get_interm_feat)
    arch = round_trip(net, (image(7, 64),), tmp_path).ganvas_arch
    assert arch == {
        "family": "multiscale",
        "kind": "discriminator",
        "input_nc": 7,
        "output_nc": 1,
        "size_multiple": 1,
        "ndf": 4,
        "n_layers": 2,
        "num_D": num_D,
        "get_interm_feat": get_interm_feat,
        "norm": "instance",
    }


def test_multiscale_discriminator_with_batch_norm_and_more_layers_loads(tmp_path) -> None:
    net = MultiscaleDiscriminator(4, ndf=4, n_layers=4, norm_layer=get_norm_layer("batch"), num_D=2)
    assert round_trip(net, (image(4, 128),), tmp_path).ganvas_arch["n_layers"] == 4


@pytest.mark.parametrize("get_interm_feat", [False, True])
def test_standalone_pix2pixhd_patchgan_loads(tmp_path, get_interm_feat) -> None:
    # Batch norm: every pix2pixHD conv has a bias, which tells it from pix2pix's PatchGAN.
    net = NLayerDiscriminatorHD(
        4, ndf=4, n_layers=2, norm_layer=get_norm_layer("batch"), get_interm_feat=get_interm_feat
    )
    assert round_trip(net, (image(4, 64),), tmp_path).ganvas_arch["family"] == "patchgan_hd"


def test_cut_patch_sampler_loads(tmp_path) -> None:
    net = PatchSampleF([3, 8, 16], nc=8)
    feats = [torch.randn(2, c, 4, 4) for c in (3, 8, 16)]
    net = trained_looking(net)
    path = save_state(net, tmp_path / "latest_net_F.pth")
    loaded = load_network(path)
    assert loaded.ganvas_arch["channels"] == [3, 8, 16] and loaded.ganvas_arch["kind"] == "patch_sampler"
    with torch.no_grad():
        for a, b in zip(net(feats, num_patches=0)[0], loaded(feats, num_patches=0)[0]):
            assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------------
# How the file was saved


def resnet_instance() -> nn.Module:
    return trained_looking(ResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=2))


def with_old_instance_stats(net: nn.Module) -> dict[str, Tensor]:
    """net's state_dict as PyTorch < 0.4 saved it: running statistics for every instance norm too."""
    state = dict(net.state_dict())
    for name, module in net.named_modules():
        if isinstance(module, nn.InstanceNorm2d):
            state[f"{name}.running_mean"] = torch.zeros(module.num_features)
            state[f"{name}.running_var"] = torch.ones(module.num_features)
            state[f"{name}.num_batches_tracked"] = torch.tensor(5)
    return state


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_wrapper_prefixes_are_stripped(tmp_path, prefix) -> None:
    net = resnet_instance()
    assert_round_trip(net, (image(3, 16),), save_state(net, tmp_path / "G.pth", prefix))


def test_old_instance_norm_statistics_are_dropped(tmp_path) -> None:
    net = resnet_instance()
    torch.save({"module." + k: v for k, v in with_old_instance_stats(net).items()}, tmp_path / "G.pth")
    assert_round_trip(net, (image(3, 16),), tmp_path / "G.pth")


def test_old_batch_norm_file_without_step_counters_loads(tmp_path) -> None:
    net = trained_looking(UnetGenerator(3, 3, 5, ngf=4, norm_layer=get_norm_layer("batch")))
    torch.save({k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}, tmp_path / "G.pth")
    loaded = load_network(tmp_path / "G.pth")
    with torch.no_grad():
        assert torch.equal(net(image(3, 32)), loaded(image(3, 32)))


def test_safetensors_file_loads(tmp_path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    net = resnet_instance()
    path = tmp_path / "G.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    assert_round_trip(net, (image(3, 16),), path)


def test_safetensors_without_the_package_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    path = tmp_path / "G.safetensors"
    path.write_bytes(b"\0" * 16)
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(CheckpointError, match="pip install safetensors"):
        load_network(path)


def test_pickled_objects_are_refused_without_running_their_code(tmp_path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
            return (open, (str(marker), "w"))

    torch.save({"model.1.weight": torch.zeros(1), "extra": Payload()}, tmp_path / "G.pth")
    with pytest.raises(
        CheckpointError, match=r"network file .*G\.pth was not loaded: .*io\.open.*would run code"
    ) as err:
        load_network(tmp_path / "G.pth")
    assert not marker.exists() and "weights_only" not in str(err.value)


def test_network_is_returned_in_eval_mode_on_the_cpu_by_default(tmp_path) -> None:
    net = resnet_instance()
    loaded = load_network(save_state(net, tmp_path / "G.pth"))
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}
    assert all(p.requires_grad and isinstance(p, nn.Parameter) for p in loaded.parameters())
    assert not loaded.training


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_a_gpu_says_so(tmp_path) -> None:
    with pytest.raises(OptionsError, match="device='cpu'"):
        load_network(save_state(resnet_instance(), tmp_path / "G.pth"), device="cuda")


def test_load_network_is_exported_lazily_from_the_package() -> None:
    assert ganvas.load_network is load_network
    code = "import sys, ganvas; assert 'torch' not in sys.modules; print(ganvas.__version__)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


# ---------------------------------------------------------------------------------------------------
# Files that do not fit


def test_missing_key_names_the_guess_and_the_key(tmp_path) -> None:
    state = dict(resnet_instance().state_dict())
    del state["model.11.conv_block.5.weight"]
    torch.save(state, tmp_path / "G.pth")
    with pytest.raises(CheckpointError) as err:
        load_network(tmp_path / "G.pth")
    message = str(err.value)
    assert "looks like ResnetGenerator(input_nc=3, output_nc=3, ngf=4, n_blocks=2, norm='instance'" in message
    assert "1 missing from the file (model.11.conv_block.5.weight)" in message
    assert str(tmp_path / "G.pth") in message


def test_wrong_shape_names_both_shapes(tmp_path) -> None:
    state = dict(resnet_instance().state_dict())
    state["model.10.conv_block.1.weight"] = torch.zeros(16, 16, 5, 5)
    torch.save(state, tmp_path / "G.pth")
    with pytest.raises(CheckpointError) as err:
        load_network(tmp_path / "G.pth")
    message = str(err.value)
    assert "ResnetGenerator(" in message and "n_blocks=2" in message
    assert (
        "1 of another shape (model.10.conv_block.1.weight: (16, 16, 5, 5) in the file, (16, 16, 3, 3) in the network)"
    ) in message


def test_missing_batch_norm_statistics_are_reported(tmp_path) -> None:
    state = dict(UnetGenerator(3, 3, 5, ngf=4, norm_layer=get_norm_layer("batch")).state_dict())
    del state["model.model.1.model.2.running_var"]
    torch.save(state, tmp_path / "G.pth")
    with pytest.raises(
        CheckpointError,
        match=r"UnetGenerator\(.*num_downs=5.*norm='batch'.*1 missing from the file "
        r"\(model\.model\.1\.model\.2\.running_var\)",
    ):
        load_network(tmp_path / "G.pth")


def test_unknown_layout_lists_the_first_keys(tmp_path) -> None:
    torch.save(
        {"encoder.conv.weight": torch.zeros(8, 3, 3, 3), "encoder.conv.bias": torch.zeros(8)}, tmp_path / "other.pth"
    )
    with pytest.raises(CheckpointError) as err:
        load_network(tmp_path / "other.pth")
    message = str(err.value)
    assert "matches no network layout ganvas knows" in message
    assert "its 2 keys begin encoder.conv.weight (8, 3, 3, 3), encoder.conv.bias (8,)" in message


def test_full_training_checkpoint_is_refused_with_the_fix(tmp_path) -> None:
    torch.save({"state_dict": {"model.1.weight": torch.zeros(1)}, "epoch": 3}, tmp_path / "ckpt.pth")
    fix = r"entry 'state_dict' holds a dict.*torch.save\(checkpoint\['state_dict'\]"
    with pytest.raises(CheckpointError, match=fix):
        load_network(tmp_path / "ckpt.pth")
