"""pix2pix (Isola et al. 2017): conditional GAN on paired images, U-Net G, PatchGAN D, L1 + cGAN loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import DemoRecipe, Model, register_demo, register_model, set_requires_grad
from ganvas.nets import forward_padded, make_discriminator, make_generator
from ganvas.options import TRAIN, Options, option


@dataclass(frozen=True)
class Pix2PixOptions(Options):
    """pix2pix's own options."""

    lambda_L1: float = option(100.0, "weight of the L1 loss", minimum=0, commands=TRAIN)


@register_model("pix2pix")
class Pix2PixModel(Model):
    """G maps A to B; D judges (A, B) pairs; D step then G step, as in the paper."""

    options_class = Pix2PixOptions
    flag_hints = {
        "lambda_A": "pix2pix's L1 weight is --lambda_L1 (the old pix2pix README's --lambda_A; --lambda_A is "
        "CycleGAN's cycle weight)"
    }
    monitor = "G_L1"
    scored = (("fake_B", "real_B"),)

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        return {"norm": "batch", "netG": "unet_256", "dataset_mode": "aligned", "gan_mode": "vanilla"}

    @classmethod
    def bench_options(cls, size: int) -> dict[str, Any]:
        # The U-Net of the paper for this size (unet_256 at 256 px).
        return {"netG": f"unet_{size}"} if size >= 8 and size & (size - 1) == 0 else {}

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"netG": "unet_32"}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        if opt.netG == "dcgan":
            raise OptionsError(
                "pix2pix translates images and cannot use --netG dcgan (a generator from noise); "
                "use unet_256, unet_128 or resnet_9blocks"
            )
        if train and opt.dataset_mode != "aligned":
            raise OptionsError(
                f"pix2pix trains on pairs and needs --dataset_mode aligned (A|B images, or <phase>A/ "
                f"and <phase>B/ folders with matching names), not {opt.dataset_mode}"
            )

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        self.nets["G"] = make_generator(
            opt.netG, opt.input_nc, opt.output_nc, opt.ngf, opt.norm, not opt.no_dropout, opt.init_type, opt.init_gain
        ).to(device)
        if train:
            self.nets["D"] = make_discriminator(
                opt.netD, opt.input_nc + opt.output_nc, opt.ndf, opt.n_layers_D, opt.norm, opt.init_type, opt.init_gain
            ).to(device)
            self.gan_loss = GANLoss(opt.gan_mode).to(device)
            self.optimizers = {"G": self.make_adam(self.nets["G"]), "D": self.make_adam(self.nets["D"])}

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        G, D, opt = self.nets["G"], self.nets["D"], self.opt
        images = self.inputs(batch)
        real_a, real_b = images["real_A"], images["real_B"]
        fake_b = forward_padded(G, real_a)

        set_requires_grad(D, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        real_pair, fake_pair = torch.cat([real_a, real_b], 1), torch.cat([real_a, fake_b], 1)
        loss_d, losses = self.discriminator_loss(D, real_pair, fake_pair)
        self.optimize(loss_d, "D")

        set_requires_grad(D, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_g_gan = self.gan_loss(D(torch.cat([real_a, fake_b], 1)), True, for_discriminator=False)
        loss_g_l1 = torch.nn.functional.l1_loss(fake_b.float(), real_b.float()) * opt.lambda_L1
        self.optimize(loss_g_gan + loss_g_l1, "G")

        self.visuals = {"real_A": real_a.detach(), "fake_B": fake_b.detach(), "real_B": real_b}
        losses.update({"G_GAN": loss_g_gan, "G_L1": loss_g_l1})
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        images = self.inputs(batch)
        out = {"real_A": images["real_A"], "fake_B": forward_padded(self.nets["G"], images["real_A"])}
        if "real_B" in images and self.opt.dataset_mode == "aligned":  # the paired target
            out["real_B"] = images["real_B"]
        return out


# A U-Net as deep as the images allow (64 px -> 6 levels) at half the reference widths: the paper's
# recipe, scaled to a 2-core CPU.
DEMO_FLAGS = {"netG": "unet_64", "ngf": 32, "ndf": 32, "batch_size": 4, "load_size": 64, "crop_size": 64}
register_demo(
    "pix2pix",
    DemoRecipe(
        data="paired",
        flags={"model": "pix2pix", **DEMO_FLAGS},
        epochs=8,
        shows="Facade photos rendered from label maps: label map, pix2pix's photo, the real photo.",
    ),
)
