"""Tests for pix2pixHD's networks: reference parameter counts and keys, sizes, instance pooling, VGG loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ganvas.errors import CheckpointError, DataError
from ganvas.nets import (
    Encoder,
    GlobalGenerator,
    LocalEnhancer,
    MultiscaleDiscriminator,
    NLayerDiscriminatorHD,
    VGG19Features,
    VGGLoss,
    feature_matching_loss,
    find_vgg19_weights,
    forward_padded,
    instance_edges,
    instance_means,
    load_vgg19_weights,
    one_hot_labels,
)

VGG19_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def shapes_of(net: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


# Reference-size networks are built on the meta device: shapes and counts without memory or init time.
@pytest.fixture(scope="module")
def global_g_reference() -> nn.Module:
    with torch.device("meta"):
        return GlobalGenerator(36, 3, ngf=64, n_downsampling=4, n_blocks=9)


@pytest.fixture(scope="module")
def local_g_reference() -> nn.Module:
    with torch.device("meta"):
        return LocalEnhancer(
            36, 3, ngf=32, n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3
        )


def reference_d(num_D: int, get_interm_feat: bool = True) -> nn.Module:
    with torch.device("meta"):
        return MultiscaleDiscriminator(39, ndf=64, n_layers=3, num_D=num_D, get_interm_feat=get_interm_feat)


# Published figures: the counts for pix2pixHD's Cityscapes networks (label_nc 35 + edge map).
def test_global_generator_has_reference_parameter_count(global_g_reference: nn.Module) -> None:
    assert parameter_count(global_g_reference) == 182_546_755


@pytest.mark.parametrize(("num_D", "count"), [(2, 5_603_202), (3, 8_404_803)])
def test_multiscale_discriminator_has_reference_parameter_count(num_D: int, count: int) -> None:
    assert parameter_count(reference_d(num_D)) == count


def test_global_generator_has_reference_keys(global_g_reference: nn.Module) -> None:
    shapes = shapes_of(global_g_reference)
    assert shapes["model.1.weight"] == (64, 36, 7, 7)
    assert shapes["model.1.bias"] == (64,)
    assert shapes["model.4.weight"] == (128, 64, 3, 3)  # first stride-2 conv
    assert shapes["model.16.conv_block.1.weight"] == (1024, 1024, 3, 3)  # first of 9 blocks after 4 downs
    assert shapes["model.24.conv_block.5.bias"] == (1024,)
    assert shapes["model.25.weight"] == (1024, 512, 3, 3)  # first transposed conv
    assert shapes["model.38.weight"] == (3, 64, 7, 7)  # final conv
    assert len(global_g_reference.model) == 40
    assert not [k for k in shapes if "running" in k]


def test_local_enhancer_has_reference_keys(local_g_reference: nn.Module) -> None:
    shapes = shapes_of(local_g_reference)
    # The global part is G1 at twice the width without its 7x7 head.
    assert len(local_g_reference.model) == 37
    assert shapes["model.1.weight"] == (64, 36, 7, 7)
    assert shapes["model.34.weight"] == (128, 64, 3, 3)
    assert "model.38.weight" not in shapes
    assert shapes["model1_1.1.weight"] == (32, 36, 7, 7)
    assert shapes["model1_1.4.weight"] == (64, 32, 3, 3)
    assert shapes["model1_2.0.conv_block.1.weight"] == (64, 64, 3, 3)
    assert shapes["model1_2.2.conv_block.5.weight"] == (64, 64, 3, 3)
    assert shapes["model1_2.3.weight"] == (64, 32, 3, 3)
    assert shapes["model1_2.7.weight"] == (3, 32, 7, 7)
    assert {k.split(".")[0] for k in shapes} == {"model", "model1_1", "model1_2"}


def test_multiscale_discriminator_with_features_has_reference_keys() -> None:
    shapes = shapes_of(reference_d(3))
    assert shapes["scale0_layer0.0.weight"] == (64, 39, 4, 4)
    assert shapes["scale1_layer3.0.weight"] == (512, 256, 4, 4)
    assert shapes["scale2_layer4.0.weight"] == (1, 512, 4, 4)
    assert shapes["scale2_layer4.0.bias"] == (1,)
    assert "scale0_layer5.0.weight" not in shapes
    assert len(shapes) == 3 * 5 * 2  # one conv (weight, bias) per stage; instance norm holds nothing


def test_multiscale_discriminator_without_features_has_reference_keys() -> None:
    shapes = shapes_of(reference_d(3, get_interm_feat=False))
    assert shapes["layer0.0.weight"] == (64, 39, 4, 4)
    assert shapes["layer1.2.weight"] == (128, 64, 4, 4)
    assert shapes["layer2.8.weight"] == (512, 256, 4, 4)
    assert shapes["layer2.11.weight"] == (1, 512, 4, 4)
    assert len(shapes) == 3 * 5 * 2


def test_discriminator_widths_cap_at_512_whatever_ndf() -> None:
    with torch.device("meta"):
        net = NLayerDiscriminatorHD(3, ndf=128, n_layers=4)
    assert [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)] == [128, 256, 512, 512, 512, 1]


def test_encoder_has_reference_keys() -> None:
    with torch.device("meta"):
        shapes = shapes_of(Encoder(3, 3, ngf=16, n_downsampling=4))
    assert shapes["model.1.weight"] == (16, 3, 7, 7)
    assert shapes["model.13.weight"] == (256, 128, 3, 3)  # the 4th down conv
    assert shapes["model.16.weight"] == (256, 128, 3, 3)  # the first transposed conv
    assert shapes["model.29.weight"] == (3, 16, 7, 7)


def test_global_generator_keeps_size() -> None:
    torch.manual_seed(0)
    net = GlobalGenerator(5, 3, ngf=8, n_downsampling=3, n_blocks=2)
    assert net.size_multiple == 8
    with torch.no_grad():
        out = net(torch.rand(2, 5, 64, 128))
    assert out.shape == (2, 3, 64, 128)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize("n_local_enhancers", [1, 2])
def test_local_enhancer_output_has_input_size(n_local_enhancers: int) -> None:
    torch.manual_seed(0)
    net = LocalEnhancer(
        5, 3, ngf=8, n_downsample_global=2, n_blocks_global=1, n_local_enhancers=n_local_enhancers, n_blocks_local=1
    )
    assert net.size_multiple == 2 ** (2 + n_local_enhancers)
    with torch.no_grad():
        assert net(torch.rand(1, 5, 64, 128)).shape == (1, 3, 64, 128)
        assert forward_padded(net, torch.rand(1, 5, 37, 53)).shape == (1, 3, 37, 53)


def test_multiscale_discriminator_returns_features_per_scale_finest_first() -> None:
    torch.manual_seed(0)
    net = MultiscaleDiscriminator(4, ndf=8, n_layers=3, num_D=2, get_interm_feat=True)
    result = net(torch.rand(2, 4, 64, 64))
    assert len(result) == 2 and all(len(features) == 3 + 2 for features in result)
    assert [f.shape[1] for f in result[0]] == [8, 16, 32, 64, 1]
    # 64 -> 33 -> 17 -> 9 (stride 2, pad 2) -> 10 -> 11 (stride 1); the second scale starts at 32.
    assert result[0][-1].shape == (2, 1, 11, 11)
    assert result[1][-1].shape == (2, 1, 7, 7)


def test_multiscale_discriminator_without_features_returns_one_prediction_per_scale() -> None:
    torch.manual_seed(0)
    with_features = MultiscaleDiscriminator(4, ndf=8, num_D=2, get_interm_feat=True)
    plain = MultiscaleDiscriminator(4, ndf=8, num_D=2, get_interm_feat=False)
    # The same weights under the two layouts: stage j of scale i is a slice of layer i.
    for i in range(2):
        stage_convs = [getattr(with_features, f"scale{i}_layer{j}")[0] for j in range(5)]
        plain_convs = [m for m in getattr(plain, f"layer{i}") if isinstance(m, nn.Conv2d)]
        for source, target in zip(stage_convs, plain_convs):
            target.load_state_dict(source.state_dict())
    x = torch.rand(1, 4, 64, 64)
    with torch.no_grad():
        full, single = with_features(x), plain(x)
    assert [len(s) for s in single] == [1, 1]
    for i in range(2):
        assert torch.allclose(single[i][0], full[i][-1], atol=1e-6)


def test_full_resolution_is_run_by_the_last_numbered_discriminator() -> None:
    torch.manual_seed(0)
    net = MultiscaleDiscriminator(3, ndf=8, num_D=2, get_interm_feat=False)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x)[0][0], net.layer1(x))
        assert torch.equal(net(x)[1][0], net.layer0(net.downsample(x)))


def test_two_scale_checkpoint_loads_into_three_scale_discriminator() -> None:
    torch.manual_seed(0)
    two = MultiscaleDiscriminator(6, ndf=8, num_D=2, get_interm_feat=True)
    three = MultiscaleDiscriminator(6, ndf=8, num_D=3, get_interm_feat=True)
    result = three.load_state_dict(two.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(k.startswith("scale2_") for k in result.missing_keys)
    loaded = three.state_dict()
    for key, value in two.state_dict().items():
        assert torch.equal(loaded[key], value)


def naive_instance_average(features: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
    """The original Encoder's loops: every instance's pixels replaced by their mean, per image and channel."""
    out = features.clone()
    for b in range(features.shape[0]):
        for value in torch.unique(inst[b]):
            mask = inst[b, 0] == value
            for c in range(features.shape[1]):
                out[b, c][mask] = features[b, c][mask].mean()
    return out


def two_image_instance_map() -> torch.Tensor:
    inst = torch.zeros(2, 1, 16, 16)
    inst[0, 0, :, 8:] = 26001
    inst[0, 0, 4:9, 2:5] = 7
    inst[1, 0, :8] = 26001  # the same id in the other image is a different instance
    inst[1, 0, 10:, 10:] = 33
    return inst


def test_encoder_pools_features_within_each_instance() -> None:
    torch.manual_seed(0)
    net = Encoder(3, 3, ngf=4, n_downsampling=2)
    x, inst = torch.rand(2, 3, 16, 16), two_image_instance_map()
    with torch.no_grad():
        raw = net.model(x)
        pooled = net(x, inst)
    assert pooled.shape == (2, 3, 16, 16)
    assert torch.allclose(pooled, naive_instance_average(raw, inst), atol=1e-6)
    for b in range(2):
        for value in torch.unique(inst[b]):
            region = pooled[b][:, inst[b, 0] == value]
            assert torch.allclose(region, region[:, :1].expand_as(region))


def test_encoder_pooling_passes_gradients_to_the_encoder() -> None:
    net = Encoder(3, 2, ngf=4, n_downsampling=1)
    net(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 8)).sum().backward()
    assert net.model[1].weight.grad is not None and net.model[1].weight.grad.abs().sum() > 0


def test_instance_means_gives_one_row_per_instance_of_each_image() -> None:
    torch.manual_seed(0)
    features, inst = torch.rand(2, 3, 16, 16), two_image_instance_map()
    stats = instance_means(features, inst)
    assert stats.batch.tolist() == [0, 0, 0, 1, 1, 1]
    assert stats.ids.tolist() == [0, 7, 26001, 0, 33, 26001]
    assert int(stats.counts.sum()) == 2 * 16 * 16
    for b, value, mean, count in zip(stats.batch, stats.ids, stats.means, stats.counts):
        mask = inst[b, 0] == value
        assert int(count) == int(mask.sum())
        assert torch.allclose(mean, features[b][:, mask].mean(dim=1), atol=1e-6)


def test_instance_average_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="does not match"):
        Encoder(3, 3, ngf=4, n_downsampling=1)(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 6))


def test_instance_edges_mark_both_sides_of_a_boundary() -> None:
    inst = torch.zeros(1, 1, 4, 5, dtype=torch.long)
    inst[0, 0, 1:3, 2:4] = 5
    expected = torch.tensor(
        [
            [0, 0, 1, 1, 0],
            [0, 1, 1, 1, 1],
            [0, 1, 1, 1, 1],
            [0, 0, 1, 1, 0],
        ],
        dtype=torch.float32,
    )
    edges = instance_edges(inst)
    assert edges.dtype == torch.float32 and edges.shape == (1, 1, 4, 5)
    assert torch.equal(edges[0, 0], expected)
    assert torch.equal(instance_edges(inst.float()), edges)


def test_one_hot_labels_sets_one_channel_per_pixel() -> None:
    label = torch.tensor([[[[0, 2], [1, 2]]]])
    one_hot = one_hot_labels(label, 3)
    assert one_hot.shape == (1, 3, 2, 2) and one_hot.dtype == torch.float32
    assert torch.equal(one_hot.argmax(1, keepdim=True), label)
    assert torch.equal(one_hot.sum(1), torch.ones(1, 2, 2))


@pytest.mark.parametrize(("value", "message"), [(35, "label 35 is >= label_nc=35; pass --label_nc 36"), (-1, "-1")])
def test_one_hot_labels_rejects_out_of_range_labels(value: int, message: str) -> None:
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    label[0, 0, 2, 3] = value
    with pytest.raises(DataError, match=message):
        one_hot_labels(label, 35)


def test_feature_matching_loss_matches_hand_computation() -> None:
    fake = [
        [torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 2, 2), torch.full((1, 1, 1, 1), 9.0)],
        [torch.full((1, 1, 2, 2), 3.0), torch.zeros(1, 1, 1, 1)],
    ]
    real = [
        [torch.zeros(1, 2, 2, 2), torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 1, 1, 1)],
        [torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 1, 1)],
    ]
    # L1 terms 1, 2 (scale 0) and 2 (scale 1); the predictions are left out.
    expected = (1 + 2 + 2) * (4 / (3 + 1)) * (1 / 2) * 10.0
    loss = feature_matching_loss(fake, real, num_D=2, n_layers_D=3, lambda_feat=10.0)
    assert loss.item() == pytest.approx(expected)


def test_feature_matching_loss_does_not_train_through_real_features() -> None:
    fake = [[torch.rand(1, 2, 4, 4, requires_grad=True), torch.rand(1, 1, 2, 2)]]
    real = [[torch.rand(1, 2, 4, 4, requires_grad=True), torch.rand(1, 1, 2, 2)]]
    feature_matching_loss(fake, real, num_D=1, n_layers_D=3, lambda_feat=10.0).backward()
    assert fake[0][0].grad is not None and real[0][0].grad is None


def test_vgg19_features_have_torchvision_keys() -> None:
    with torch.device("meta"):
        shapes = shapes_of(VGG19Features())
    expected = {f"features.{i}.{p}" for i in VGG19_CONV_INDICES for p in ("weight", "bias")}
    assert set(shapes) == expected
    assert shapes["features.0.weight"] == (64, 3, 3, 3)
    assert shapes["features.5.weight"] == (128, 64, 3, 3)
    assert shapes["features.19.weight"] == (512, 256, 3, 3)
    assert shapes["features.28.weight"] == (512, 512, 3, 3)


def test_vgg19_features_return_pix2pixhd_slices() -> None:
    net = VGG19Features(width=2)
    outputs = net(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outputs] == [(2, 32, 32), (4, 16, 16), (8, 8, 8), (16, 4, 4), (16, 2, 2)]
    assert not any(p.requires_grad for p in net.parameters())


def save_torchvision_like_vgg19(path: Path, width: int = 2) -> dict[str, torch.Tensor]:
    """Save a full torchvision-style vgg19 state dict (features past relu5_1 and a classifier too)."""
    torch.manual_seed(0)
    state = dict(VGG19Features(width=width).state_dict())
    for index in (30, 32, 34):
        state[f"features.{index}.weight"] = torch.rand(8 * width, 8 * width, 3, 3)
        state[f"features.{index}.bias"] = torch.rand(8 * width)
    state["classifier.0.weight"] = torch.rand(4, 8)
    state["classifier.6.bias"] = torch.rand(10)
    torch.save(state, path)
    return state


def test_load_vgg19_weights_reads_a_full_torchvision_file(tmp_path: Path) -> None:
    state = save_torchvision_like_vgg19(tmp_path / "vgg19.pth")
    net = load_vgg19_weights(tmp_path / "vgg19.pth")
    assert net.width == 2
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])
    assert not any(p.requires_grad for p in net.parameters())


@pytest.mark.parametrize("content", [None, b"not a torch file", "partial"])
def test_missing_or_broken_vgg19_weights_name_both_remedies(tmp_path: Path, content) -> None:
    path = tmp_path / "vgg19.pth"
    if content == "partial":
        state = save_torchvision_like_vgg19(path)
        del state["features.28.bias"]
        torch.save(state, path)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="--vgg_weights") as raised:
        load_vgg19_weights(path)
    assert "--no_vgg_loss" in str(raised.value) and str(path) in str(raised.value)


def test_find_vgg19_weights_prefers_explicit_path_then_torch_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert find_vgg19_weights(None) is None
    assert find_vgg19_weights(tmp_path / "mine.pth") == tmp_path / "mine.pth"
    cached = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    cached.parent.mkdir(parents=True)
    save_torchvision_like_vgg19(cached)
    assert find_vgg19_weights(None) == cached
    assert VGGLoss().vgg.width == 2


def test_vgg_loss_without_weights_names_both_remedies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="--vgg_weights FILE .*--no_vgg_loss"):
        VGGLoss()


def test_vgg_loss_is_zero_for_identical_images_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    loss = VGGLoss(vgg=VGG19Features(width=4))
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(y.clone(), y).item() == 0.0
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    value = loss(x, y)
    assert value.item() > 0
    value.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.vgg.parameters())


def test_vgg_loss_weights_the_five_slices_as_pix2pixhd() -> None:
    torch.manual_seed(0)
    vgg = VGG19Features(width=2)
    loss = VGGLoss(vgg=vgg, normalize_input=False)
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    weights = [1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0]
    expected = sum(w * F.l1_loss(a, b) for w, a, b in zip(weights, vgg(x), vgg(y)))
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-5)
