"""Tests for ganvas.nets: reference parameter counts and keys, sizes, DCGAN shapes, initialisation."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from ganvas.errors import OptionsError
from ganvas.nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    ResnetBlock,
    forward_padded,
    get_norm_layer,
    init_weights,
    make_discriminator,
    make_generator,
    pad_to_multiple,
)
from ganvas.nets.pix2pixhd import GlobalGenerator, LocalEnhancer


def million_parameters(net: nn.Module) -> float:
    """Return the parameter count in millions, rounded as the reference prints it."""
    return round(sum(p.numel() for p in net.parameters()) / 1e6, 3)


@pytest.fixture(scope="module")
def unet256() -> nn.Module:
    torch.manual_seed(0)
    return make_generator("unet_256", 3, 3, ngf=64, norm="batch")


@pytest.fixture(scope="module")
def resnet9_instance() -> nn.Module:
    torch.manual_seed(0)
    return make_generator("resnet_9blocks", 3, 3, ngf=64, norm="instance")


# Published figures: the reference repository prints these totals for its default networks.
def test_unet256_has_reference_parameter_count(unet256: nn.Module) -> None:
    assert million_parameters(unet256) == 54.414


def test_resnet9_instance_has_reference_parameter_count(resnet9_instance: nn.Module) -> None:
    assert million_parameters(resnet9_instance) == 11.378


def test_basic_discriminator_batch_6ch_has_reference_parameter_count() -> None:
    assert million_parameters(make_discriminator("basic", 6, ndf=64, norm="batch")) == 2.769


def test_basic_discriminator_instance_3ch_has_reference_parameter_count() -> None:
    assert million_parameters(make_discriminator("basic", 3, ndf=64, norm="instance")) == 2.765


def test_unet256_has_reference_keys(unet256: nn.Module) -> None:
    shapes = {k: tuple(v.shape) for k, v in unet256.state_dict().items()}
    assert shapes["model.model.0.weight"] == (64, 3, 4, 4)
    assert "model.model.0.bias" not in shapes  # batch norm: no bias in the inner convs
    assert shapes["model.model.3.weight"] == (128, 3, 4, 4)  # outermost up-conv
    assert shapes["model.model.3.bias"] == (3,)
    assert shapes["model.model.1.model.1.weight"] == (128, 64, 4, 4)
    assert shapes["model.model.1.model.2.running_mean"] == (128,)
    assert shapes["model.model.1.model.5.weight"] == (256, 64, 4, 4)
    # Seven levels below the outermost, each nested at index 3 of its parent's Sequential.
    innermost = "model.model.1" + ".model.3" * 6 + ".model."
    assert shapes[innermost + "1.weight"] == (512, 512, 4, 4)
    assert shapes[innermost + "3.weight"] == (512, 512, 4, 4)
    assert shapes[innermost + "4.weight"] == (512,)
    assert innermost + "2.weight" not in shapes  # no norm after the innermost down-conv


def test_unet256_with_dropout_has_reference_dropout_layers() -> None:
    net = make_generator("unet_256", 3, 3, ngf=4, use_dropout=True)
    assert sum(isinstance(m, nn.Dropout) for m in net.modules()) == 3  # num_downs - 5 in the reference


def test_resnet9_has_reference_keys(resnet9_instance: nn.Module) -> None:
    shapes = {k: tuple(v.shape) for k, v in resnet9_instance.state_dict().items()}
    assert shapes["model.10.conv_block.5.weight"] == (256, 256, 3, 3)
    assert shapes["model.10.conv_block.5.bias"] == (256,)  # instance norm: convs keep a bias
    assert shapes["model.1.weight"] == (64, 3, 7, 7)
    assert shapes["model.26.weight"] == (3, 64, 7, 7)  # final conv, after 9 blocks and 2 up-convs
    assert sum(isinstance(m, ResnetBlock) for m in resnet9_instance.modules()) == 9


def test_basic_discriminator_has_reference_keys() -> None:
    shapes = {k: tuple(v.shape) for k, v in make_discriminator("basic", 6).state_dict().items()}
    assert shapes["model.0.weight"] == (64, 6, 4, 4)
    assert shapes["model.2.weight"] == (128, 64, 4, 4)
    assert shapes["model.3.weight"] == (128,)
    assert shapes["model.3.running_var"] == (128,)
    assert shapes["model.8.weight"] == (512, 256, 4, 4)
    assert shapes["model.11.weight"] == (1, 512, 4, 4)
    assert "model.12.weight" not in shapes


def test_pixel_discriminator_has_reference_keys() -> None:
    shapes = {k: tuple(v.shape) for k, v in make_discriminator("pixel", 6, norm="instance").state_dict().items()}
    assert shapes == {
        "net.0.weight": (64, 6, 1, 1),
        "net.0.bias": (64,),
        "net.2.weight": (128, 64, 1, 1),
        "net.2.bias": (128,),
        "net.5.weight": (1, 128, 1, 1),
        "net.5.bias": (1,),
    }


@pytest.mark.parametrize(
    "build",
    [
        lambda: make_generator("resnet_6blocks", 3, 3, ngf=8, norm="instance"),
        lambda: make_generator("unet_32", 3, 3, ngf=8, norm="instance"),
        lambda: make_discriminator("basic", 3, ndf=8, norm="instance"),
    ],
)
def test_instance_norm_nets_have_no_running_stats(build) -> None:
    keys = build().state_dict().keys()
    assert not [k for k in keys if "running" in k or "num_batches_tracked" in k]


@pytest.mark.parametrize("netG", ["unet_32", "unet_128", "resnet_6blocks"])
def test_forward_padded_keeps_odd_sizes(netG: str) -> None:
    torch.manual_seed(0)
    net = make_generator(netG, 3, 2, ngf=4, norm="batch").eval()
    x = torch.rand(1, 3, 37, 53) * 2 - 1
    with torch.no_grad():
        out = forward_padded(net, x)
    assert out.shape == (1, 2, 37, 53)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize(
    "build, side",
    [
        (lambda: make_generator("resnet_2blocks", 3, 2, ngf=4), 3),
        (lambda: GlobalGenerator(3, 2, ngf=4, n_downsampling=3, n_blocks=1), 5),
        (
            lambda: LocalEnhancer(
                3, 2, ngf=2, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=1, n_blocks_local=1
            ),
            5,
        ),
    ],
)
def test_forward_padded_runs_images_smaller_than_the_bottleneck_needs(build, side: int) -> None:
    # Padded to a multiple only, these would reach the residual blocks at 1 x 1, where reflection fails.
    torch.manual_seed(0)
    net = build().eval()
    x = torch.rand(1, 3, side, side + 2) * 2 - 1
    with torch.no_grad():
        with pytest.raises((RuntimeError, ValueError)):  # reflection or instance norm at 1 x 1
            net(pad_to_multiple(x, net.size_multiple))
        out = forward_padded(net, x)
    assert out.shape == (1, 2, side, side + 2) and torch.isfinite(out).all()


def test_pad_to_multiple_pads_up_to_a_least_side() -> None:
    x = torch.rand(1, 1, 3, 9)
    assert pad_to_multiple(x, 4, min_side=8).shape == (1, 1, 8, 12)
    assert pad_to_multiple(x, 4, min_side=6).shape == (1, 1, 8, 12)  # the least side rounds up to a multiple
    assert pad_to_multiple(torch.rand(1, 1, 16, 16), 4, min_side=8).shape == (1, 1, 16, 16)


def test_unet_without_padding_fails_on_odd_sizes() -> None:
    net = make_generator("unet_32", 3, 3, ngf=4).eval()
    assert net.size_multiple == 32
    with pytest.raises(RuntimeError):
        with torch.no_grad():
            net(torch.rand(1, 3, 37, 53))  # the skip concatenation fails without padding


def test_generator_size_multiples_follow_names() -> None:
    assert make_generator("unet_128", 3, 3, ngf=4).size_multiple == 128
    assert make_generator("unet_256", 3, 3, ngf=4).size_multiple == 256
    assert make_generator("resnet_2blocks", 3, 3, ngf=4).size_multiple == 4


def test_pad_to_multiple_returns_input_when_aligned() -> None:
    x = torch.rand(1, 3, 32, 64)
    assert pad_to_multiple(x, 32) is x


def test_pad_to_multiple_reflects_small_pads_and_replicates_large_ones() -> None:
    x = torch.arange(6.0).reshape(1, 1, 2, 3)
    small = pad_to_multiple(x, 4)  # pads 2 rows onto 2: too many to reflect
    assert small.shape == (1, 1, 4, 4)
    assert torch.equal(small[0, 0, 3, :3], x[0, 0, 1])
    y = torch.arange(30.0).reshape(1, 1, 5, 6)
    reflected = pad_to_multiple(y, 4)  # 3 rows and 2 columns: reflection fits
    assert reflected.shape == (1, 1, 8, 8)
    assert torch.equal(reflected[0, 0, 5, :6], y[0, 0, 3])
    assert torch.equal(reflected[0, 0, :5, 6], y[0, 0, :, 4])


@pytest.mark.parametrize("image_size", [32, 64])
def test_dcgan_generator_makes_images_in_range(image_size: int) -> None:
    torch.manual_seed(0)
    net = make_generator("dcgan", 0, 3, ngf=8, nz=16, image_size=image_size)
    out = net(torch.randn(4, 16))
    assert out.shape == (4, 3, image_size, image_size)
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert net(torch.randn(4, 16, 1, 1)).shape == out.shape


def test_dcgan_generator_widths_halve_from_ngf_times_2_to_the_depth() -> None:
    net = DCGANGenerator(nz=16, output_nc=3, ngf=8, image_size=64)
    widths = [m.out_channels for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [64, 32, 16, 8, 3]


@pytest.mark.parametrize("image_size", [32, 64])
def test_dcgan_discriminator_gives_one_logit_per_image(image_size: int) -> None:
    net = make_discriminator("dcgan", 3, ndf=8, image_size=image_size)
    assert net(torch.rand(4, 3, image_size, image_size)).shape == (4, 1, 1, 1)


def test_dcgan_discriminator_has_no_norm_on_first_layer() -> None:
    net = DCGANDiscriminator(3, ndf=8, image_size=64)
    assert isinstance(net.model[0], nn.Conv2d) and isinstance(net.model[1], nn.LeakyReLU)
    assert isinstance(net.model[3], nn.BatchNorm2d)


@pytest.mark.parametrize("image_size", [4, 48, 100])
def test_dcgan_rejects_bad_image_size(image_size: int) -> None:
    with pytest.raises(OptionsError, match=str(image_size)):
        make_generator("dcgan", 0, 3, image_size=image_size)
    with pytest.raises(OptionsError, match=str(image_size)):
        make_discriminator("dcgan", 3, image_size=image_size)


@pytest.mark.parametrize("name", ["unet_100", "unet_2", "resnet_0blocks", "resnet9", "pix2pix"])
def test_make_generator_rejects_unknown_name(name: str) -> None:
    with pytest.raises(OptionsError, match=name):
        make_generator(name, 3, 3)


@pytest.mark.parametrize("name", ["patch", "multiscale", ""])
def test_make_discriminator_rejects_unknown_name(name: str) -> None:
    with pytest.raises(OptionsError, match=f"'{name}'"):
        make_discriminator(name, 3)


def test_make_discriminator_n_layers_sets_depth() -> None:
    net = make_discriminator("n_layers", 3, ndf=8, n_layers_D=5)
    assert sum(isinstance(m, nn.Conv2d) for m in net.modules()) == 5 + 2


def test_get_norm_layer_rejects_unknown_type() -> None:
    with pytest.raises(OptionsError, match="group"):
        get_norm_layer("group")


def test_get_norm_layer_builds_reference_layers() -> None:
    batch = get_norm_layer("batch")(8)
    instance = get_norm_layer("instance")(8)
    assert isinstance(batch, nn.BatchNorm2d) and batch.affine and batch.track_running_stats
    assert isinstance(instance, nn.InstanceNorm2d) and not instance.affine and not instance.track_running_stats
    assert isinstance(get_norm_layer("none")(8), nn.Identity)


def test_normal_init_sets_batchnorm_near_one_and_conv_std_near_gain(unet256: nn.Module) -> None:
    bn_weights = torch.cat([m.weight.detach() for m in unet256.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(bn_weights.mean().item() - 1.0) < 0.01
    assert 0.015 < bn_weights.std().item() < 0.025
    bn_biases = torch.cat([m.bias.detach() for m in unet256.modules() if isinstance(m, nn.BatchNorm2d)])
    assert torch.all(bn_biases == 0)
    conv = unet256.model.model[1].model[1].weight.detach()
    assert abs(conv.std().item() - 0.02) < 0.001
    assert abs(conv.mean().item()) < 0.001


def test_init_sets_biases_to_zero() -> None:
    net = make_discriminator("basic", 3, ndf=8, norm="instance")
    biases = [m.bias for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert biases and all(torch.all(b == 0) for b in biases)


def test_orthogonal_init_gives_orthogonal_flattened_weights() -> None:
    torch.manual_seed(0)
    net = make_discriminator("basic", 3, ndf=8, init_type="orthogonal", init_gain=1.0)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            w = module.weight.detach().flatten(1)
            gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
            assert torch.allclose(gram, torch.eye(gram.shape[0]), atol=1e-5)


def test_init_weights_rejects_unknown_type() -> None:
    with pytest.raises(OptionsError, match="uniform"):
        init_weights(nn.Conv2d(1, 1, 1), "uniform")
