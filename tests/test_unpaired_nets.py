"""Tests for the unpaired-translation pieces: CUT's anti-aliased ResNet, patch sampler, PatchNCE loss, image pool."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn as nn

from ganvas.errors import DataError
from ganvas.losses import PatchNCELoss
from ganvas.nets import AntialiasDownsample, AntialiasUpsample, PatchSampleF, ResnetGenerator, make_generator
from ganvas.nets.norm import get_norm_layer
from ganvas.pool import ImagePool

CUT_NCE_LAYERS = [0, 4, 8, 12, 16]


def antialiased_resnet(n_blocks: int = 5, ngf: int = 4, norm: str = "instance") -> ResnetGenerator:
    torch.manual_seed(0)
    net = make_generator(f"resnet_{n_blocks}blocks", 3, 3, ngf=ngf, norm=norm, antialias=True, antialias_up=True)
    assert isinstance(net, ResnetGenerator)
    return net


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def expected_resnet_parameters(input_nc: int, output_nc: int, ngf: int, n_blocks: int) -> int:
    """Parameters of a ResNet generator with instance norm (convs carry biases, norms have none)."""
    g = ngf
    first = 7 * 7 * input_nc * g + g
    # Each resampling conv is 3x3 between c and 2c channels whether strided, transposed or stride 1.
    down = (3 * 3 * g * 2 * g + 2 * g) + (3 * 3 * 2 * g * 4 * g + 4 * g)
    blocks = n_blocks * 2 * (3 * 3 * 4 * g * 4 * g + 4 * g)
    up = (3 * 3 * 4 * g * 2 * g + 2 * g) + (3 * 3 * 2 * g * g + g)
    last = 7 * 7 * g * output_nc + output_nc
    return first + down + blocks + up + last


# --- anti-aliased ResNet generator -------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 64])
def test_antialiased_resnet_keeps_image_size(size: int) -> None:
    net = antialiased_resnet(n_blocks=2)
    with torch.no_grad():
        out = net(torch.rand(2, 3, size, size) * 2 - 1)
    assert out.shape == (2, 3, size, size)


@pytest.mark.parametrize("antialias, antialias_up", [(True, True), (True, False), (False, True)])
def test_antialiased_resnet_has_formula_parameter_count(antialias: bool, antialias_up: bool) -> None:
    net = ResnetGenerator(
        3, 2, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=3, antialias=antialias, antialias_up=antialias_up
    )
    assert parameter_count(net) == expected_resnet_parameters(3, 2, ngf=4, n_blocks=3)


def test_cut_resnet9_has_reference_parameter_count() -> None:
    net = ResnetGenerator(
        3, 3, ngf=64, norm_layer=get_norm_layer("instance"), n_blocks=9, antialias=True, antialias_up=True
    )
    assert round(parameter_count(net) / 1e6, 3) == 11.378


def test_antialiased_resnet_has_cut_keys_and_filters() -> None:
    n, g = 5, 4
    shapes = {k: tuple(v.shape) for k, v in antialiased_resnet(n_blocks=n, ngf=g).state_dict().items()}
    assert shapes["model.4.weight"] == (2 * g, g, 3, 3)  # stride-1 conv of the first downsampling block
    assert shapes["model.7.filt"] == (2 * g, 1, 3, 3)
    assert shapes["model.8.weight"] == (4 * g, 2 * g, 3, 3)
    assert shapes["model.11.filt"] == (4 * g, 1, 3, 3)
    assert shapes["model.12.conv_block.1.weight"] == (4 * g, 4 * g, 3, 3)  # first residual block
    assert shapes[f"model.{12 + n}.filt"] == (4 * g, 1, 4, 4)
    assert shapes[f"model.{13 + n}.weight"] == (2 * g, 4 * g, 3, 3)  # a Conv2d, not a ConvTranspose2d
    assert shapes[f"model.{16 + n}.filt"] == (2 * g, 1, 4, 4)
    assert shapes[f"model.{21 + n}.weight"] == (3, g, 7, 7)  # final conv
    assert sum(k.endswith("filt") for k in shapes) == 4


def test_antialias_filters_are_normalised_binomials() -> None:
    down, up = AntialiasDownsample(2), AntialiasUpsample(2)
    a3, a4 = torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 3.0, 3.0, 1.0])
    assert torch.allclose(down.filt[1, 0], torch.outer(a3, a3) / 16)
    assert torch.allclose(up.filt[1, 0], torch.outer(a4, a4) / 64 * 4)


def test_antialias_resampling_keeps_a_constant_image() -> None:
    x = torch.full((1, 3, 6, 10), 0.7)
    assert torch.allclose(AntialiasDownsample(3)(x), torch.full((1, 3, 3, 5), 0.7))
    assert torch.allclose(AntialiasUpsample(3)(x), torch.full((1, 3, 12, 20), 0.7))


@pytest.mark.parametrize("height, width", [(5, 7), (8, 8), (1, 3)])
def test_antialias_upsample_doubles_any_size(height: int, width: int) -> None:
    assert AntialiasUpsample(2)(torch.rand(1, 2, height, width)).shape == (1, 2, 2 * height, 2 * width)


def test_make_generator_without_antialias_keeps_strided_convs() -> None:
    net = make_generator("resnet_2blocks", 3, 3, ngf=4)
    assert not any(isinstance(m, (AntialiasDownsample, AntialiasUpsample)) for m in net.modules())
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in net.modules()) == 2


def test_make_generator_ignores_antialias_for_unets_as_cut() -> None:
    net = make_generator("unet_32", 3, 3, ngf=4, antialias=True, antialias_up=True)
    assert not any(isinstance(m, (AntialiasDownsample, AntialiasUpsample)) for m in net.modules())


def test_encode_returns_cut_layers_with_expected_shapes() -> None:
    net = antialiased_resnet(n_blocks=5, ngf=4).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        feats = net.encode(x, CUT_NCE_LAYERS)
    assert [tuple(f.shape) for f in feats] == [
        (2, 3, 38, 38),  # layer 0: the reflection-padded input
        (2, 8, 32, 32),  # stride-1 conv before the first blur-downsampling
        (2, 16, 16, 16),
        (2, 16, 8, 8),  # first residual block
        (2, 16, 8, 8),  # fifth residual block
    ]
    assert net.feature_channels(CUT_NCE_LAYERS) == [3, 8, 16, 16, 16]


def test_encode_last_feature_equals_running_the_first_modules() -> None:
    net = antialiased_resnet(n_blocks=5, ngf=4).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        last = net.encode(x, [4, 16])[-1]
        manual = x
        for module in list(net.model)[:17]:
            manual = module(manual)
    assert torch.equal(last, manual)


def test_encode_of_the_last_layer_is_the_output() -> None:
    net = antialiased_resnet(n_blocks=2).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net.encode(x, [len(net.model) - 1])[0], net(x))


@pytest.mark.parametrize("layers", [[4, 0], [0, 0], [], [100]])
def test_encode_rejects_bad_layer_lists(layers: list[int]) -> None:
    with pytest.raises(ValueError, match="layer"):
        antialiased_resnet(n_blocks=2).encode(torch.rand(1, 3, 32, 32), layers)


# --- PatchSampleF --------------------------------------------------------------------------------


def sample_feats() -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(2, 3, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4)]


def test_patch_sampler_has_cut_parameters_before_any_forward() -> None:
    torch.manual_seed(0)
    net = PatchSampleF([3, 8, 16], use_mlp=True, nc=32)
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert shapes == {
        "mlp_0.0.weight": (32, 3),
        "mlp_0.0.bias": (32,),
        "mlp_0.2.weight": (32, 32),
        "mlp_0.2.bias": (32,),
        "mlp_1.0.weight": (32, 8),
        "mlp_1.0.bias": (32,),
        "mlp_1.2.weight": (32, 32),
        "mlp_1.2.bias": (32,),
        "mlp_2.0.weight": (32, 16),
        "mlp_2.0.bias": (32,),
        "mlp_2.2.weight": (32, 32),
        "mlp_2.2.bias": (32,),
    }
    assert all(torch.all(p == 0) for k, p in net.named_parameters() if k.endswith("bias"))
    assert abs(net.mlp_1[2].weight.std().item() - 0.02) < 0.005


def test_patch_sampler_returns_unit_rows_per_patch() -> None:
    net = PatchSampleF([3, 8, 16], nc=32)
    out, ids = net(sample_feats(), num_patches=20)
    assert [tuple(o.shape) for o in out] == [(40, 32), (40, 32), (32, 32)]  # the 4x4 map has only 16 places
    assert [len(i) for i in ids] == [20, 20, 16]
    for o in out:  # CUT's 1e-7 added to the norm shows on the small outputs of a freshly initialised MLP
        assert torch.allclose(o.norm(dim=1), torch.ones(o.shape[0]), atol=1e-3)


def test_patch_sampler_reuses_given_patch_ids() -> None:
    net = PatchSampleF([3, 8, 16], nc=32)
    feats = sample_feats()
    first, ids = net(feats, num_patches=10)
    again, same_ids = net(feats, num_patches=10, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(torch.equal(a, b) for a, b in zip(ids, same_ids))


def test_patch_sampler_draws_locations_from_the_global_rng() -> None:
    net = PatchSampleF([3, 8, 16], nc=32)
    feats = sample_feats()
    torch.manual_seed(5)
    _, ids_a = net(feats, num_patches=10)
    torch.manual_seed(5)
    _, ids_b = net(feats, num_patches=10)
    assert all(torch.equal(a, b) for a, b in zip(ids_a, ids_b))


def test_patch_sampler_without_mlp_has_no_parameters_and_samples_raw_features() -> None:
    net = PatchSampleF([3, 8, 16], use_mlp=False)
    assert len(list(net.parameters())) == 0
    feats = sample_feats()
    out, ids = net(feats, num_patches=5)
    assert out[1].shape == (10, 8)
    # Row b * P + p is image b at location ids[p], normalised.
    location = ids[1][2]
    raw = feats[1][1].flatten(1)[:, location]
    assert torch.allclose(out[1][5 + 2], raw / raw.norm(), atol=1e-6)


def test_patch_sampler_with_zero_patches_returns_whole_maps() -> None:
    net = PatchSampleF([3, 8, 16], nc=32)
    out, ids = net(sample_feats(), num_patches=0)
    assert [tuple(o.shape) for o in out] == [(2, 32, 16, 16), (2, 32, 8, 8), (2, 32, 4, 4)]
    assert torch.allclose(out[1].norm(dim=1), torch.ones(2, 8, 8), atol=1e-3)
    assert all(i.numel() == 0 for i in ids)


def test_patch_sampler_gradient_is_finite_where_features_are_all_zero() -> None:
    # A narrow G (ngf 4) has locations whose ReLU features are all zero; with the MLP's zero biases the
    # projected row is exactly zero, where CUT's sqrt-of-sum norm has a NaN gradient.
    net = PatchSampleF([3, 8, 16], nc=32)
    feats = [f.clone().requires_grad_() for f in sample_feats()]
    with torch.no_grad():
        feats[1][:, :, 2, 3] = 0  # one location of the second map, in both images
    out, _ = net(feats, num_patches=0)
    assert torch.count_nonzero(out[1][:, :, 2, 3]) == 0
    loss = sum((o * torch.randn_like(o)).sum() for o in out)
    loss.backward()
    grads = [f.grad for f in feats] + [p.grad for p in net.parameters()]
    assert all(torch.isfinite(g).all() for g in grads)


def test_patch_sampler_rejects_other_channel_counts() -> None:
    with pytest.raises(ValueError, match="feature_channels"):
        PatchSampleF([3, 8, 8], nc=32)(sample_feats())


# --- PatchNCELoss --------------------------------------------------------------------------------


def random_unit_rows(n: int, dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    return x / x.norm(dim=1, keepdim=True)


def test_patch_nce_is_low_for_matching_keys_and_high_for_shuffled_ones() -> None:
    q = random_unit_rows(64, 128, seed=0)  # in 128 dimensions random rows are nearly orthogonal
    loss = PatchNCELoss(nce_T=0.07)
    matched = loss(q, q.clone()).mean().item()
    shuffled = loss(q, q[torch.roll(torch.arange(64), 1)]).mean().item()
    assert matched < 0.01
    assert shuffled > math.log(64)  # worse than a uniform guess among the 64 candidates


def test_patch_nce_equals_hand_computed_two_patch_loss() -> None:
    q = torch.tensor([[0.6, 0.8], [1.0, 0.0]])
    k = torch.tensor([[0.8, 0.6], [0.0, 1.0]])
    t = 0.5
    # Row i: -log softmax over [q_i.k_i, then q_i.k_j for j != i, with -10 in place of j == i].
    q1k1, q1k2, q2k1, q2k2 = 0.96, 0.8, 0.8, 0.0
    expected = [
        -math.log(math.exp(q1k1 / t) / (math.exp(q1k1 / t) + math.exp(-10 / t) + math.exp(q1k2 / t))),
        -math.log(math.exp(q2k2 / t) / (math.exp(q2k2 / t) + math.exp(q2k1 / t) + math.exp(-10 / t))),
    ]
    got = PatchNCELoss(nce_T=t)(q, k)
    assert got.shape == (2,)
    assert got.tolist() == pytest.approx(expected, rel=1e-5)


def test_patch_nce_takes_negatives_from_the_same_image_only() -> None:
    q, k = random_unit_rows(12, 16, seed=1), random_unit_rows(12, 16, seed=2)
    per_image = torch.cat([PatchNCELoss(0.1)(q[i * 4 : (i + 1) * 4], k[i * 4 : (i + 1) * 4]) for i in range(3)])
    assert torch.allclose(PatchNCELoss(0.1, batch_size=3)(q, k), per_image, atol=1e-6)
    assert torch.allclose(PatchNCELoss(0.1, batch_size=1)(q, k, batch_size=3), per_image, atol=1e-6)
    everything = PatchNCELoss(0.1, batch_size=3, include_all_negatives_from_minibatch=True)(q, k)
    assert torch.allclose(everything, PatchNCELoss(0.1, batch_size=1)(q, k), atol=1e-6)


def test_patch_nce_trains_only_the_query() -> None:
    q = random_unit_rows(8, 16, seed=3).requires_grad_(True)
    k = random_unit_rows(8, 16, seed=4).requires_grad_(True)
    PatchNCELoss()(q, k).mean().backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert k.grad is None


def test_patch_nce_rejects_rows_not_divisible_by_batch_size() -> None:
    with pytest.raises(ValueError, match="batch size 4"):
        PatchNCELoss(batch_size=4)(random_unit_rows(6, 8, 0), random_unit_rows(6, 8, 1))


# --- ImagePool -----------------------------------------------------------------------------------


def tagged(ids: range | list[int]) -> torch.Tensor:
    """A batch of 1 x 2 x 2 images, each filled with its id."""
    return torch.tensor([float(i) for i in ids]).reshape(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def tags(images: torch.Tensor) -> list[int]:
    return [int(v) for v in images[:, 0, 0, 0].tolist()]


def test_pool_returns_images_unchanged_while_filling() -> None:
    pool = ImagePool(5, seed=0)
    assert tags(pool.query(tagged([0, 1]))) == [0, 1]
    assert tags(pool.query(tagged([2, 3]))) == [2, 3]
    for seed in range(20):  # id 4 fills the last slot; id 5 may already be swapped
        fresh = ImagePool(5, seed=seed)
        fresh.query(tagged([0, 1, 2, 3]))
        assert tags(fresh.query(tagged([4, 5])))[0] == 4


def test_pool_size_zero_is_the_identity() -> None:
    pool = ImagePool(0)
    x = torch.rand(3, 3, 8, 8, requires_grad=True)
    assert pool.query(x) is x


def test_pool_returns_history_about_half_the_time() -> None:
    pool = ImagePool(10, seed=1)
    pool.query(tagged(range(10)))
    n = 1000
    history = sum(tags(pool.query(tagged([100 + i])))[0] != 100 + i for i in range(n))
    assert 0.4 * n < history < 0.6 * n  # binomial(1000, 0.5): sd ~16


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_pool_returns_only_stored_images_from_distinct_slots(batch: int) -> None:
    pool_size = 4
    pool = ImagePool(pool_size, seed=2)
    in_pool: set[int] = set()
    next_id = 0
    for _ in range(60):
        new = list(range(next_id, next_id + batch))
        next_id += batch
        out = tags(pool.query(tagged(new)))
        n_fill = min(batch, pool_size - len(in_pool))
        assert out[:n_fill] == new[:n_fill]
        in_pool |= set(new[:n_fill])
        swapped = [(o, n) for o, n in zip(out[n_fill:], new[n_fill:]) if o != n]
        returned = [o for o, _ in swapped]
        assert len(set(returned)) == len(returned) <= pool_size  # distinct slots
        assert set(returned) <= in_pool  # only images stored before them
        in_pool = (in_pool - set(returned)) | {n for _, n in swapped}
        assert sorted(tags(pool.images[: pool.count])) == sorted(in_pool)
    assert len(in_pool) == pool_size


def test_pool_returns_detached_images() -> None:
    pool = ImagePool(2, seed=0)
    out = pool.query(torch.rand(4, 3, 4, 4, requires_grad=True))
    assert not out.requires_grad and not pool.images.requires_grad


def test_pool_state_round_trip_reproduces_outputs() -> None:
    torch.manual_seed(0)
    batches = [torch.rand(2, 3, 4, 4) for _ in range(30)]
    pool = ImagePool(6, seed=3)
    for b in batches[:10]:
        pool.query(b)
    buffer = io.BytesIO()
    torch.save(pool.state_dict(), buffer)
    expected = [pool.query(b) for b in batches[10:]]
    buffer.seek(0)
    resumed = ImagePool(6, seed=99)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    got = [resumed.query(b) for b in batches[10:]]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))


def test_pool_rejects_a_different_image_size() -> None:
    pool = ImagePool(4)
    pool.query(torch.rand(2, 3, 8, 8))
    with pytest.raises(DataError, match="crop"):
        pool.query(torch.rand(2, 3, 8, 16))
