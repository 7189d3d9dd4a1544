"""Tests for ganvas.losses: GAN objectives on hand-computable inputs and the WGAN-GP penalty."""

from __future__ import annotations

import math

import pytest
import torch

from ganvas.errors import OptionsError
from ganvas.losses import GANLoss, gradient_penalty
from ganvas.nets import make_discriminator


def test_lsgan_zeros_against_real_is_one() -> None:
    assert GANLoss("lsgan")(torch.zeros(2, 1, 4, 4), True).item() == pytest.approx(1.0)


def test_lsgan_zeros_against_fake_is_zero() -> None:
    assert GANLoss("lsgan")(torch.zeros(2, 1, 4, 4), False).item() == pytest.approx(0.0)


@pytest.mark.parametrize("target_is_real", [True, False])
def test_vanilla_zero_logits_give_log_two(target_is_real: bool) -> None:
    loss = GANLoss("vanilla")(torch.zeros(3, 1, 2, 2), target_is_real)
    assert loss.item() == pytest.approx(math.log(2))


def test_vanilla_confident_logits() -> None:
    logits = torch.full((1, 1, 2, 2), 2.0)
    loss = GANLoss("vanilla")
    assert loss(logits, True).item() == pytest.approx(math.log1p(math.exp(-2.0)))
    assert loss(logits, False).item() == pytest.approx(math.log1p(math.exp(2.0)))


def test_hinge_discriminator_values() -> None:
    p = torch.tensor([0.5, 2.0, -1.0])
    loss = GANLoss("hinge")
    assert loss(p, True).item() == pytest.approx((0.5 + 0.0 + 2.0) / 3)  # mean(relu(1 - p))
    assert loss(p, False).item() == pytest.approx((1.5 + 3.0 + 0.0) / 3)  # mean(relu(1 + p))


def test_hinge_generator_is_negative_mean() -> None:
    p = torch.tensor([0.5, 2.0, -1.0])
    assert GANLoss("hinge")(p, True, for_discriminator=False).item() == pytest.approx(-0.5)


@pytest.mark.parametrize("gan_mode", ["hinge", "wgangp"])
def test_generator_loss_must_aim_for_real(gan_mode: str) -> None:
    with pytest.raises(ValueError, match="target_is_real"):
        GANLoss(gan_mode)(torch.zeros(2), False, for_discriminator=False)


def test_wgangp_values() -> None:
    p = torch.tensor([0.5, 2.0, -1.0])
    loss = GANLoss("wgangp")
    assert loss(p, True).item() == pytest.approx(-0.5)
    assert loss(p, False).item() == pytest.approx(0.5)
    assert loss(p, True, for_discriminator=False).item() == pytest.approx(-0.5)


def test_list_of_predictions_is_averaged_per_scale() -> None:
    # Per-scale means 1 and 0: the average is 0.5, not the pixel-weighted 4/20.
    scales = [torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 4, 4)]
    assert GANLoss("lsgan")(scales, True).item() == pytest.approx(0.5)


def test_list_of_feature_lists_uses_last_element() -> None:
    features = torch.full((1, 4, 8, 8), 100.0)
    scales = [[features, torch.zeros(1, 1, 2, 2)], [features, torch.ones(1, 1, 4, 4)]]
    assert GANLoss("lsgan")(scales, True).item() == pytest.approx(0.5)


def test_loss_is_fp32_for_half_predictions() -> None:
    loss = GANLoss("vanilla")(torch.zeros(2, 1, 4, 4, dtype=torch.bfloat16), True)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(math.log(2))


def test_loss_backpropagates_to_prediction() -> None:
    p = torch.zeros(4, requires_grad=True)
    GANLoss("lsgan")(p, True).backward()
    assert torch.allclose(p.grad, torch.full((4,), -0.5))  # d/dp mean((p - 1)^2) = 2(p - 1)/4


def test_unknown_gan_mode_raises_options_error() -> None:
    with pytest.raises(OptionsError, match="wgan-gp"):
        GANLoss("wgan-gp")


def test_empty_prediction_list_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        GANLoss("lsgan")([], True)


def linear_critic(w: torch.Tensor):
    """Return D(x) = sum(w * x) per sample, whose input gradient is w everywhere."""
    return lambda x: (x * w).flatten(1).sum(1)


def test_gradient_penalty_of_unit_norm_linear_critic_is_zero() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    w = w / w.norm()
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(0.0, abs=1e-8)


def test_gradient_penalty_of_linear_critic_is_lambda_times_norm_gap_squared() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    w = 3.0 * w / w.norm()
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    penalty = gradient_penalty(linear_critic(w), real, fake, lambda_gp=10.0)
    assert penalty.item() == pytest.approx(10.0 * (3.0 - 1.0) ** 2, rel=1e-5)
    shifted = gradient_penalty(linear_critic(w), real, fake, lambda_gp=2.0, constant=0.5)
    assert shifted.item() == pytest.approx(2.0 * (3.0 - 0.5) ** 2, rel=1e-5)


def test_gradient_penalty_is_differentiable_in_critic_weights() -> None:
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    w = (2.0 * w / w.norm()).requires_grad_(True)
    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4, requires_grad=True)
    gradient_penalty(linear_critic(w), real, fake, lambda_gp=10.0).backward()
    # d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||
    expected = 2 * 10.0 * (2.0 - 1.0) * w.detach() / 2.0
    assert torch.allclose(w.grad, expected, atol=1e-5)
    assert fake.grad is None  # the penalty trains only the critic


def test_gradient_penalty_reaches_patchgan_parameters() -> None:
    torch.manual_seed(0)
    netD = make_discriminator("basic", 3, ndf=4, norm="instance")
    penalty = gradient_penalty(netD, torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    penalty.backward()
    assert penalty.item() > 0
    # Biases do not change the input gradient, so only the weights receive a gradient.
    weights = [p for name, p in netD.named_parameters() if name.endswith("weight")]
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
