"""User-guided colourisation (Zhang*, Zhu* et al., "Real-Time User-Guided Image Colorization with Learned
Deep Priors", SIGGRAPH 2017): L, hint ab and a hint mask in; ab out, from a regression head (full
resolution) and a classification head over quantised ab (1/4 resolution). No hints is automatic
colourisation, so one model serves both.

As the authors' code (richzhang/colorization-pytorch): the input encoding, the simulated hints (a
geometric number with --sample_p, patch sides from --sample_Ps, places normal around the centre or
uniform, the mean ab of the patch; nearly grey photos left out of a batch with --ab_thresh), 529 ab
classes (--ab_quant 10, --ab_max 110), cross-entropy at 1/4 resolution on every fourth pixel's class,
and --classification choosing which head trains the trunk (their two stages: classification first,
then regression). Differences, and why:
- It runs on CPUs and GPUs alike, at any width (--ngf; the authors' is 64) and any image size
  (padded to a multiple of 8); hints are simulated per item from the run's seed, so resume is exact.
- The loss is lambda_CE * cross-entropy + lambda_reg * (L1 or Huber) (+ an optional conditional GAN
  term, --lambda_GAN, off as in the paper); the authors fix the weights at 1 and 10.
- A user's hint colours are snapped into the sRGB gamut at their pixel's lightness (said in a note).
- Test writes one column per --num_hints count and metrics per count (the paper's PSNR against the
  number of hints); translate and the API take hints in the input image's pixels.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ganvas import color, hints
from ganvas.errors import OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import DemoRecipe, InferenceSpec, Model, register_demo, register_model, set_requires_grad
from ganvas.models.colorization import check_colour_options, color_size_option
from ganvas.nets import forward_padded, make_discriminator, make_network
from ganvas.options import RUN, TEST, TRAIN, Options, option
from ganvas.speed import unwrap

log = logging.getLogger("ganvas")


@dataclass(frozen=True)
class ColorizationHintsOptions(Options):
    """The user-guided colouriser's own options."""

    sample_p: float = option(
        0.125, "simulated hints: keep adding one while a draw is below 1 - p (0.125: about 7; 1: none)", commands=TRAIN
    )
    sample_Ps: str = option("1,2,3,4,5,6,7,8,9", "simulated hints: the patch sides drawn from", commands=TRAIN)
    hint_loc: str = option(
        "normal", "simulated hints: places normal around the centre, or uniform", choices=("normal", "uniform")
    )
    ab_thresh: float = option(
        5.0, "leave out of a batch photos whose ab spans less than this (nearly grey; 0: keep all)", commands=TRAIN
    )
    ab_quant: float = option(10.0, "side of the ab classes", positive=True, commands=RUN)
    ab_max: float = option(110.0, "largest |a| and |b| of the classes", positive=True, commands=RUN)
    classification: bool = option(
        False,
        "the classification head trains the trunk (the authors' first stage); else the regression head",
        commands=TRAIN,
    )
    reg_loss: str = option("l1", "regression loss", choices=("l1", "huber"), commands=TRAIN)
    lambda_reg: float = option(10.0, "weight of the regression loss", minimum=0, commands=TRAIN)
    lambda_CE: float = option(1.0, "weight of the classification cross-entropy", minimum=0, commands=TRAIN)
    lambda_GAN: float = option(
        0.0, "weight of a conditional GAN loss (0: none, as the paper)", minimum=0, commands=TRAIN
    )
    num_hints: str = option(
        "0,1,10,100", "test: one column (and PSNR) per number of simulated hints", commands=TEST, inherited=False
    )
    color_size: int = color_size_option()


@register_model("colorization_hints")
class ColorizationHintsModel(Model):
    """The SIGGRAPH 2017 network on L + hints; visuals, pages and translate give RGB."""

    options_class = ColorizationHintsOptions
    monitor = "G_reg"
    simulates_hints: ClassVar[bool] = True  # the colourisation data set adds hint_B and mask_B to each item

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        return {"dataset_mode": "colorization", "input_nc": 1, "output_nc": 2, "norm": "batch", "gan_mode": "vanilla"}

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"ab_thresh": 0.0}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        check_colour_options(opt, train, "colorization_hints")
        for name, parse in (("sample_Ps", hints.patch_sizes), ("num_hints", hints.hint_counts)):
            try:
                parse(getattr(opt, name))
            except ValueError as err:
                raise OptionsError(f"--{name}: {err}") from None
        if not 0 < opt.sample_p <= 1:
            raise OptionsError(f"--sample_p is a probability in (0, 1], not {opt.sample_p}")

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        self.classes = hints.bins(opt.ab_max, opt.ab_quant) ** 2
        self.nets["G"] = make_network(
            "siggraph", opt.init_type, opt.init_gain, input_nc=4, output_nc=2, ngf=opt.ngf, classes=self.classes,
            norm=opt.norm,
        ).to(device)  # fmt: skip
        unwrap(self.nets["G"]).classification = opt.classification
        # Test scores the output of each hint count against the real photo.
        self.counts = hints.hint_counts(opt.num_hints)
        self.scored = tuple((f"fake_B_{n}", "real_B") for n in self.counts)
        if not train:
            return
        if opt.lambda_GAN > 0:
            self.nets["D"] = make_discriminator(
                opt.netD, 3, opt.ndf, opt.n_layers_D, opt.norm, opt.init_type, opt.init_gain
            ).to(device)
            self.gan_loss = GANLoss(opt.gan_mode).to(device)
            self.optimizers["D"] = self.make_adam(self.nets["D"])
        self.optimizers["G"] = self.make_adam(self.nets["G"])

    # --- the contract ------------------------------------------------------------------------------
    @property
    def color_size(self) -> int:
        return self.opt.color_size or self.opt.crop_size

    def inference_spec(self) -> InferenceSpec:
        return InferenceSpec(("image",), 1, 3, 8, image_space="lab_l", takes_hints=True)

    def export_module(self) -> torch.nn.Module:
        return NoHints(self.generator())  # automatic colourisation: the graph takes L alone

    def run_generator(self, x: Tensor) -> Tensor:
        return NoHints(self.generator())(x)

    def example_batch(self, size: int, batch_size: int = 1, seed: int = 0) -> dict[str, Any]:
        batch = super().example_batch(size, batch_size, seed)
        rng = np.random.default_rng(seed)
        made = [hints.simulate(ab, rng, 0.3, (1, 2, 3)) for ab in batch["B"].cpu()]
        batch["hint_B"] = torch.stack([h for h, _ in made]).to(self.device)
        batch["mask_B"] = torch.stack([m for _, m in made]).to(self.device)
        return batch

    # --- training ----------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        opt, G = self.opt, self.nets["G"]
        light, real = batch["A"].to(self.device), batch["B"].to(self.device)
        hint, mask = batch["hint_B"].to(self.device), batch["mask_B"].to(self.device)
        if opt.ab_thresh > 0:  # nearly grey photos teach nothing about colour (the authors drop them)
            span = (real.amax(dim=(2, 3)) - real.amin(dim=(2, 3))).sum(1) * hints.AB_NORM
            keep = span >= opt.ab_thresh
            if keep.any():
                light, real, hint, mask = light[keep], real[keep], hint[keep], mask[keep]
        x, size = _pad8(hints.network_input(light, hint, mask))
        logits, fake = _crop(G(x, both=True), size)  # through G itself, so DDP and compile see the call
        target = hints.quantise(real[:, :, ::4, ::4], opt.ab_max, opt.ab_quant)
        loss_ce = F.cross_entropy(logits.float()[:, :, : target.shape[1], : target.shape[2]], target)
        if opt.reg_loss == "huber":
            loss_reg = F.smooth_l1_loss(fake.float(), real.float(), beta=1 / hints.AB_NORM)
        else:
            loss_reg = F.l1_loss(fake.float(), real.float())
        losses: dict[str, Tensor] = {}
        if opt.lambda_GAN > 0:
            D = self.nets["D"]
            set_requires_grad(D, True)
            self.optimizers["D"].zero_grad(set_to_none=True)
            loss_d, losses = self.discriminator_loss(D, torch.cat([light, real], 1), torch.cat([light, fake], 1))
            self.optimize(loss_d, "D")
            set_requires_grad(D, False)
            losses["G_GAN"] = self.gan_loss(D(torch.cat([light, fake], 1)), True, for_discriminator=False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        total = opt.lambda_CE * loss_ce + opt.lambda_reg * loss_reg
        if "G_GAN" in losses:
            total = total + opt.lambda_GAN * losses["G_GAN"]
        self.optimize(total, "G")
        self.visuals = {
            "real_A": color.decode(light, torch.zeros_like(real)),
            "hints": hint_picture(light, hint, mask),
            "fake_B": color.decode(light, fake.detach()),
            "real_B": color.decode(light, real),
        }
        losses.update({"G_CE": loss_ce, "G_reg": loss_reg})
        return {k: float(v.detach()) for k, v in losses.items()}

    # --- inference ---------------------------------------------------------------------------------
    def colourise(self, light: Tensor, hint: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """ab for L (N x 1 x H x W) and hint maps made at prediction size (None: no hints), at H x W."""
        small = _predict_size(light, self.color_size)
        light_small = F.interpolate(light, size=small, mode="area") if small != tuple(light.shape[-2:]) else light
        if hint is None:
            hint = torch.zeros(light.shape[0], 2, *small, device=light.device)
            mask = torch.zeros(light.shape[0], 1, *small, device=light.device)
        ab = forward_padded(self.generator(), hints.network_input(light_small, hint, mask))
        if small != tuple(light.shape[-2:]):
            ab = F.interpolate(ab, size=light.shape[-2:], mode="bilinear", align_corners=False)
        return ab

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        light = batch["A"].to(self.device)
        out = {"real_A": color.decode(light, torch.zeros(light.shape[0], 2, *light.shape[-2:], device=light.device))}
        if "B" not in batch:  # a user's photo: their hints, if any
            small = _predict_size(light, self.color_size)
            given = batch.get("hints") or [[] for _ in range(light.shape[0])]
            maps = [hints.hint_maps(h, light[i : i + 1].cpu(), *small) for i, h in enumerate(given)]
            for note in (note for _, _, notes in maps for note in notes):
                log.warning(note)
            hint = torch.cat([m[0] for m in maps]).to(light.device)
            mask = torch.cat([m[1] for m in maps]).to(light.device)
            out["hints"] = hint_picture(light, _resize(hint, light), _resize(mask, light))
            out["fake_B"] = color.decode(light, self.colourise(light, hint, mask))
            return out
        real = batch["B"].to(self.device)
        small = _predict_size(light, self.color_size)
        real_small = F.interpolate(real, size=small, mode="area") if small != tuple(real.shape[-2:]) else real
        paths = batch.get("A_paths") or ["input"] * light.shape[0]
        for n in self.counts:
            made = [
                hints.simulate(
                    real_small[i].cpu(),
                    np.random.default_rng([self.opt.seed or 0, zlib.crc32(Path(str(paths[i])).name.encode()), n]),
                    self.opt.sample_p,
                    hints.patch_sizes(self.opt.sample_Ps),
                    self.opt.hint_loc,
                    count=n,
                )
                for i in range(light.shape[0])
            ]
            hint = torch.stack([h for h, _ in made]).to(light.device)
            mask = torch.stack([m for _, m in made]).to(light.device)
            out[f"hints_{n}"] = hint_picture(light, _resize(hint, light), _resize(mask, light))
            out[f"fake_B_{n}"] = color.decode(light, self.colourise(light, hint, mask))
        out["real_B"] = color.decode(light, real)
        return out

    def test_notes(self) -> list[str]:
        counts = ", ".join(str(n) for n in self.counts)
        return [
            f"Each row: the grey input, then for {counts} hints simulated from the real photo (the hint patches "
            f"on the grey input, and the output), then the real photo; metrics per hint count."
        ]

    @torch.no_grad()
    def suggest(self, light: Tensor, x: int, y: int, k: int = 9, given: list[hints.Hint] | None = None) -> list:
        """The k most likely distinct colours at pixel (x, y) of L (1 x 1 x H x W), from the classification
        head's distribution there (with the hints given), each snapped into the sRGB gamut at the pixel's
        lightness: [(rgb, probability), ...], most likely first."""
        small = _predict_size(light, self.color_size)
        light_small = F.interpolate(light, size=small, mode="area") if small != tuple(light.shape[-2:]) else light
        hint, mask, _ = hints.hint_maps(given or [], light.cpu(), *small)
        x_in = hints.network_input(light_small, hint.to(light.device), mask.to(light.device))
        logits = unwrap(self.generator())(_pad8(x_in)[0], both=True)[0]
        row = min(int(y * small[0] / light.shape[-2]) // 4, logits.shape[2] - 1)
        col = min(int(x * small[1] / light.shape[-1]) // 4, logits.shape[3] - 1)
        probs = torch.softmax(logits[0, :, row, col].float(), 0).cpu()
        centres = hints.bin_centres(self.opt.ab_max, self.opt.ab_quant)
        lightness = float((light[0, 0, y, x] + 1) * color.L_SCALE)
        found: dict[tuple[int, int, int], float] = {}
        for index in torch.argsort(probs, descending=True)[: 4 * k]:
            ab = hints.in_gamut(lightness, centres[index][None])
            lab = torch.cat([torch.tensor([[lightness]]), ab], 1).view(1, 3, 1, 1)
            rgb = tuple(int(v) for v in (color.lab_to_rgb(lab)[0, :, 0, 0] * 255).round())
            found[rgb] = found.get(rgb, 0.0) + float(probs[index])
            if len(found) == k:
                break
        return sorted(found.items(), key=lambda item: -item[1])


class NoHints(torch.nn.Module):
    """The colouriser with no hints: L / 50 - 1 in (N x 1 x H x W), RGB in [-1, 1] out."""

    def __init__(self, generator: torch.nn.Module):
        super().__init__()
        self.generator = generator

    @property
    def size_multiple(self) -> int:
        return 8

    def forward(self, light: Tensor) -> Tensor:
        zeros = torch.zeros_like(light)
        x = hints.network_input(light, torch.cat([zeros, zeros], 1), zeros)
        return color.decode(light, forward_padded(self.generator, x))


def _predict_size(light: Tensor, size: int) -> tuple[int, int]:
    height, width = light.shape[-2:]
    if size <= 0 or max(height, width) <= size:
        return int(height), int(width)
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(maps: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(maps, size=like.shape[-2:], mode="nearest")


def _pad8(x: Tensor) -> tuple[Tensor, tuple[int, int]]:
    height, width = x.shape[-2:]
    return F.pad(x, (0, -width % 8, 0, -height % 8), mode="replicate"), (height, width)


def _crop(outputs: tuple[Tensor, Tensor], size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    logits, ab = outputs
    height, width = size
    return logits[..., : -(-height // 4), : -(-width // 4)], ab[..., :height, :width]


def hint_picture(light: Tensor, hint: Tensor, mask: Tensor) -> Tensor:
    """The grey input with the hint patches painted in their colours (RGB in [-1, 1])."""
    return color.decode(light, hint * mask)


# Quarter-width network on 64 px shapes whose colours only hints can tell, 2000 steps of 4 (at batch 8 and 1000
# steps hints had not yet learnt to spread over their shapes); tested with 10 hints (the headline) and with none.
register_demo(
    "colorization_hints",
    DemoRecipe(
        data="color",
        flags={
            "model": "colorization_hints",
            "ngf": 16,
            "batch_size": 4,
            "load_size": 64,
            "crop_size": 64,
            "lr": 0.0005,
        },
        epochs=10,
        shows=(
            "Shapes of one lightness whose colours only hints can tell: the grey input, 10 hints simulated from "
            "the real photo, the output with them, the output with no hints, the real photo."
        ),
        test_flags={"num_hints": "10,0"},
    ),
)
