"""Adversarial losses (vanilla, LSGAN, hinge, WGAN-GP), the WGAN-GP gradient penalty and CUT's PatchNCE loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ganvas.errors import OptionsError

GAN_MODES = ("vanilla", "lsgan", "hinge", "wgangp")

# A multi-scale discriminator returns one prediction per scale, or per scale the list of its
# intermediate features with the prediction last (pix2pixHD).
Prediction = Tensor | list[Tensor] | list[list[Tensor]]


def _final_predictions(prediction: Prediction) -> list[Tensor]:
    """Flatten a prediction, a list of them, or a list of feature lists into the final predictions."""
    if isinstance(prediction, Tensor):
        return [prediction]
    if len(prediction) == 0:
        raise ValueError("GAN loss got an empty list of discriminator predictions")
    return [p[-1] if isinstance(p, (list, tuple)) else p for p in prediction]


class GANLoss(nn.Module):
    """Adversarial loss for one of the GAN objectives, averaged over multi-scale predictions."""

    def __init__(self, gan_mode: str, target_real_label: float = 1.0, target_fake_label: float = 0.0) -> None:
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise OptionsError(f"unknown GAN loss {gan_mode!r}; pass --gan_mode one of {', '.join(GAN_MODES)}")
        self.gan_mode = gan_mode
        self.target_real_label = target_real_label
        self.target_fake_label = target_fake_label

    def _single(self, prediction: Tensor, target_is_real: bool, for_discriminator: bool) -> Tensor:
        """Return the loss for one prediction tensor, computed in fp32."""
        # fp32 keeps the log/exp in BCE and the squares in MSE accurate under autocast.
        p = prediction.float()
        if self.gan_mode in ("vanilla", "lsgan"):
            label = self.target_real_label if target_is_real else self.target_fake_label
            target = torch.full_like(p, label)
            if self.gan_mode == "vanilla":
                return F.binary_cross_entropy_with_logits(p, target)
            return F.mse_loss(p, target)
        if not for_discriminator:
            if not target_is_real:
                raise ValueError(f"the generator's {self.gan_mode} loss must be called with target_is_real=True")
            return -p.mean()
        if self.gan_mode == "hinge":
            return F.relu(1.0 - p).mean() if target_is_real else F.relu(1.0 + p).mean()
        return -p.mean() if target_is_real else p.mean()

    def forward(self, prediction: Prediction, target_is_real: bool, for_discriminator: bool = True) -> Tensor:
        """Return the scalar loss of the discriminator's prediction(s) against real or fake."""
        losses = [self._single(p, target_is_real, for_discriminator) for p in _final_predictions(prediction)]
        return torch.stack(losses).mean()


def gradient_penalty(
    netD: nn.Module | Callable[[Tensor], Prediction],
    real: Tensor,
    fake: Tensor,
    lambda_gp: float = 10.0,
    constant: float = 1.0,
) -> Tensor:
    """Return the WGAN-GP penalty lambda * mean((||grad D(x_hat)|| - constant)^2) on random interpolates."""
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient penalty needs real and fake of the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    # Detached so the penalty trains only the discriminator, never the generator that made fake.
    interpolates = (alpha * real.detach().float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
    # In fp32 even under mixed precision: the penalty's double backward underflows in fp16.
    with torch.autocast(real.device.type, enabled=False):
        outputs = [o.float() for o in _final_predictions(netD(interpolates))]
    grads = torch.autograd.grad(
        outputs=outputs,
        inputs=interpolates,
        grad_outputs=[torch.ones_like(o) for o in outputs],
        create_graph=True,
        retain_graph=True,
    )[0]
    # The tiny offset keeps the norm's gradient finite where the gradient is exactly zero (as the reference).
    grad_norm = (grads.float().flatten(1) + 1e-16).norm(2, dim=1)
    return lambda_gp * ((grad_norm - constant) ** 2).mean()


class PatchNCELoss(nn.Module):
    """CUT's PatchNCE loss: each query patch must pick its own key patch among the other patches."""

    def __init__(
        self, nce_T: float = 0.07, batch_size: int = 1, include_all_negatives_from_minibatch: bool = False
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"PatchNCELoss needs batch_size >= 1, got {batch_size}")
        self.nce_T = nce_T
        self.batch_size = batch_size
        self.include_all_negatives_from_minibatch = include_all_negatives_from_minibatch
        self.cross_entropy = nn.CrossEntropyLoss(reduction="none")

    def forward(self, feat_q: Tensor, feat_k: Tensor, batch_size: int | None = None) -> Tensor:
        """Return the loss of each of the (B * P) rows of feat_q against feat_k (rows grouped by image).

        batch_size, when given, overrides the constructor's (for a last batch that is smaller).
        """
        if feat_q.shape != feat_k.shape or feat_q.dim() != 2:
            raise ValueError(
                f"PatchNCELoss needs q and k of the same (B * P) x C shape, got {tuple(feat_q.shape)} "
                f"and {tuple(feat_k.shape)}"
            )
        num_rows, dim = feat_q.shape
        feat_k = feat_k.detach()
        l_pos = torch.bmm(feat_q.reshape(num_rows, 1, dim), feat_k.reshape(num_rows, dim, 1)).reshape(num_rows, 1)

        # CUT draws negatives from the same image only, except for single-image translation, where
        # the minibatch holds crops of one image and all of them serve.
        if self.include_all_negatives_from_minibatch:
            groups = 1
        else:
            groups = self.batch_size if batch_size is None else batch_size
        if num_rows % groups:
            raise ValueError(
                f"PatchNCELoss got {num_rows} patch rows, not a multiple of the batch size {groups}; pass the "
                "batch's real size as batch_size (the last batch may be smaller)"
            )
        q = feat_q.reshape(groups, -1, dim)
        k = feat_k.reshape(groups, -1, dim)
        npatches = q.shape[1]
        l_neg = torch.bmm(q, k.transpose(2, 1))
        # A patch against its own key is the positive, not a negative: CUT fills that logit with -10
        # (-10 / T after the temperature), which the softmax turns into practically zero.
        diagonal = torch.eye(npatches, device=feat_q.device, dtype=torch.bool)[None, :, :]
        l_neg = l_neg.masked_fill(diagonal, -10.0).reshape(-1, npatches)

        logits = torch.cat((l_pos, l_neg), dim=1) / self.nce_T
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=feat_q.device)
        return self.cross_entropy(logits.float(), target)
