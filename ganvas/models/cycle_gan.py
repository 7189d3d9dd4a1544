"""CycleGAN (Zhu et al. 2017): unpaired translation with two generators and cycle consistency."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.nn.functional import l1_loss

from ganvas.errors import OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import DemoRecipe, InferenceSpec, Model, register_demo, register_model, set_requires_grad
from ganvas.nets import forward_padded, make_discriminator, make_generator
from ganvas.options import OPT_FILE, TRAIN, Options, load_saved_options, option
from ganvas.pool import ImagePool


@dataclass(frozen=True)
class CycleGANOptions(Options):
    """CycleGAN's own options."""

    lambda_A: float = option(10.0, "weight of the cycle loss A -> B -> A", minimum=0, commands=TRAIN)
    lambda_B: float = option(10.0, "weight of the cycle loss B -> A -> B", minimum=0, commands=TRAIN)
    lambda_identity: float = option(
        0.5,
        "weight of the identity loss, relative to lambda_A and lambda_B (0 turns it off)",
        minimum=0,
        commands=TRAIN,
    )
    pool_size: int = option(
        50, "generated images kept in the history that D also sees (0 keeps none)", minimum=0, commands=TRAIN
    )


def trained_direction(opt) -> str:
    """The --direction the run was trained with (test and translate may ask for the other one)."""
    path = opt.run_dir / OPT_FILE
    return load_saved_options(path).get("direction", opt.direction) if path.is_file() else opt.direction


@register_model("cycle_gan")
class CycleGANModel(Model):
    """G_A: A -> B and G_B: B -> A; D_A judges B images, D_B judges A images; G step, then D step."""

    options_class = CycleGANOptions
    monitor = "cycle_A"
    inference_nets = ("G_A", "G_B")
    reversible = True

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        # The original's cycle_gan defaults: ResNet-9 G without dropout, instance norm, LSGAN.
        return {
            "norm": "instance",
            "netG": "resnet_9blocks",
            "dataset_mode": "unaligned",
            "gan_mode": "lsgan",
            "no_dropout": True,
        }

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"netG": "resnet_2blocks"}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        if opt.netG == "dcgan":
            raise OptionsError(
                "cycle_gan translates images and cannot use --netG dcgan (a generator from noise); "
                "use resnet_9blocks, resnet_6blocks or unet_256"
            )
        if train and opt.dataset_mode != "unaligned":
            raise OptionsError(
                f"cycle_gan trains on two folders of unpaired images and needs --dataset_mode "
                f"unaligned (<phase>A/ and <phase>B/), not {opt.dataset_mode}"
            )
        if train and opt.lambda_identity > 0 and opt.input_nc != opt.output_nc:
            raise OptionsError(
                f"the identity loss needs as many input as output channels (--input_nc "
                f"{opt.input_nc}, --output_nc {opt.output_nc}); pass --lambda_identity 0"
            )
        if not train and trained_direction(opt) != opt.direction and opt.input_nc != opt.output_nc:
            raise OptionsError(
                f"the run translates {opt.input_nc}-channel A images to {opt.output_nc}-channel B "
                f"images; to run its other direction use --model test --model_suffix _B"
            )

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)

        def generator(input_nc: int, output_nc: int):
            return make_generator(
                opt.netG, input_nc, output_nc, opt.ngf, opt.norm, not opt.no_dropout, opt.init_type, opt.init_gain
            ).to(device)

        def discriminator(channels: int):
            return make_discriminator(
                opt.netD, channels, opt.ndf, opt.n_layers_D, opt.norm, opt.init_type, opt.init_gain
            ).to(device)

        self.nets["G_A"] = generator(opt.input_nc, opt.output_nc)
        self.nets["G_B"] = generator(opt.output_nc, opt.input_nc)
        # Test and translate may run the trained mapping backwards (--direction opposite to training).
        self.reversed = not train and trained_direction(opt) != opt.direction
        if train:
            self.nets["D_A"] = discriminator(opt.output_nc)
            self.nets["D_B"] = discriminator(opt.input_nc)
            self.gan_loss = GANLoss(opt.gan_mode).to(device)
            seed = opt.seed or 0
            self.pool_A = ImagePool(opt.pool_size, seed=seed)  # fake A images, for D_B
            self.pool_B = ImagePool(opt.pool_size, seed=seed + 1)  # fake B images, for D_A
            self.optimizers = {
                "G": self.make_adam(self.nets["G_A"], self.nets["G_B"]),
                "D": self.make_adam(self.nets["D_A"], self.nets["D_B"]),
            }

    @property
    def input_channels(self) -> int:
        return self.opt.output_nc if self.reversed else self.opt.input_nc

    def generator(self) -> torch.nn.Module:
        return self.nets["G_B" if self.reversed else "G_A"]

    def inference_spec(self) -> InferenceSpec:
        # Run against its direction, G_B maps output_nc channels back to input_nc.
        return replace(super().inference_spec(), output_nc=self.opt.input_nc if self.reversed else self.opt.output_nc)

    def results_suffix(self) -> str:
        return f"_{self.opt.direction}" if self.reversed else ""

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        opt = self.opt
        G_A, G_B, D_A, D_B = (self.nets[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        images = self.inputs(batch)
        real_a, real_b = images["real_A"], images["real_B"]

        # G step: D_A and D_B are frozen.
        set_requires_grad([D_A, D_B], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        fake_b = forward_padded(G_A, real_a)
        rec_a = forward_padded(G_B, fake_b)
        fake_a = forward_padded(G_B, real_b)
        rec_b = forward_padded(G_A, fake_a)
        losses: dict[str, Tensor] = {}
        visuals = {}
        if opt.lambda_identity > 0:
            # G_A should leave B images alone and G_B A images (keeps colours in painting <-> photo).
            idt_a, idt_b = forward_padded(G_A, real_b), forward_padded(G_B, real_a)
            losses["idt_A"] = l1_loss(idt_a.float(), real_b.float()) * opt.lambda_B * opt.lambda_identity
            losses["idt_B"] = l1_loss(idt_b.float(), real_a.float()) * opt.lambda_A * opt.lambda_identity
            visuals = {"idt_A": idt_a.detach(), "idt_B": idt_b.detach()}
        losses["G_A"] = self.gan_loss(D_A(fake_b), True, for_discriminator=False)
        losses["G_B"] = self.gan_loss(D_B(fake_a), True, for_discriminator=False)
        losses["cycle_A"] = l1_loss(rec_a.float(), real_a.float()) * opt.lambda_A
        losses["cycle_B"] = l1_loss(rec_b.float(), real_b.float()) * opt.lambda_B
        self.optimize(sum(losses.values()), "G")

        # D step on the current fakes or, half of the time, on older ones from the history pools.
        set_requires_grad([D_A, D_B], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        # (Each D's loss is halved, as in the original, which slows D relative to G.)
        loss_d_a, d_losses = self.discriminator_loss(D_A, real_b, self.pool_B.query(fake_b.detach()), "D_A")
        loss_d_b, d_losses_b = self.discriminator_loss(D_B, real_a, self.pool_A.query(fake_a.detach()), "D_B")
        self.optimize(loss_d_a + loss_d_b, "D")
        d_losses.update(d_losses_b)

        self.visuals = {
            "real_A": real_a,
            "fake_B": fake_b.detach(),
            "rec_A": rec_a.detach(),
            "real_B": real_b,
            "fake_A": fake_a.detach(),
            "rec_B": rec_b.detach(),
            **visuals,
        }
        return {k: float(v.detach()) for k, v in {**d_losses, **losses}.items()}

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Both directions when the batch has both sides: real_A, fake_B, rec_A, real_B, fake_A, rec_B."""
        forward, backward = (
            (self.nets["G_A"], self.nets["G_B"]) if not self.reversed else (self.nets["G_B"], self.nets["G_A"])
        )
        images = self.inputs(batch)
        out = {"real_A": images["real_A"]}
        out["fake_B"] = forward_padded(forward, out["real_A"])
        out["rec_A"] = forward_padded(backward, out["fake_B"])
        if "real_B" in images:
            out["real_B"] = images["real_B"]
            out["fake_A"] = forward_padded(backward, out["real_B"])
            out["rec_B"] = forward_padded(forward, out["fake_A"])
        return out | {k: v for k, v in images.items() if k.startswith("truth_")}

    def extra_state(self) -> dict[str, Any]:
        return {"pool_A": self.pool_A.state_dict(), "pool_B": self.pool_B.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "pool_A" in state:
            self.pool_A.load_state_dict(state["pool_A"])
            self.pool_B.load_state_dict(state["pool_B"])


# A CPU-sized CycleGAN on 64 px day and night facades of different scenes: the paper's networks at a
# quarter of the width (ngf = ndf = 16) with three residual blocks, 2.5x the paper's learning rate and
# no identity loss (the paper used it only for paintings <-> photos). Measured on 2 cores
# (benchmarks/RESULTS.md): the published widths (resnet_6blocks, ngf 32) at lr 2e-4 only tied the mean
# night image after 800 steps; this recipe takes 2400 steps in the same minutes and beats it by ~5 dB.
register_demo(
    "cycle_gan",
    DemoRecipe(
        data="unpaired",
        flags={
            "model": "cycle_gan",
            "netG": "resnet_3blocks",
            "ngf": 16,
            "ndf": 16,
            "lr": 0.0005,
            "load_size": 64,
            "crop_size": 64,
            "lambda_identity": 0.0,
        },
        epochs=6,
        shows=(
            "Day facades turned into night ones without a single paired example: day input, CycleGAN's night, "
            "the true night rendering of the same scene (never shown in training), and the way back."
        ),
    ),
)
