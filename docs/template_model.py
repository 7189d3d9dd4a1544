"""A template model: a minimal paired translator, G trained with L1 + LSGAN against a PatchGAN D on B images.

Copy it to ganvas/models/<name>.py, rename the model and its options, and import the module in
ganvas/models/__init__.py; `--model <name>`, its help, `ganvas bench` and the contract test
(tests/test_contract.py) then find it through the registry. See docs/adding_a_model.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import Model, register_model, set_requires_grad
from ganvas.nets import make_discriminator, make_generator
from ganvas.options import TRAIN, Options, option


@dataclass(frozen=True)
class TemplateOptions(Options):
    """The template's own options: flat flag names (--lambda_rec), checked limits, the commands that take them."""

    lambda_rec: float = option(50.0, "weight of the L1 loss between fake_B and real_B", minimum=0, commands=TRAIN)


@register_model("template")  # trainable=True by default; run-only models pass trainable=False
class TemplateModel(Model):
    """G maps A to B; D judges B images alone (not pairs, unlike pix2pix); D step, then G step."""

    options_class = TemplateOptions
    monitor = "G_L1"  # the loss the plateau learning-rate policy watches
    scored = (("fake_B", "real_B"),)  # test scores fake_B against the paired real_B

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        # Only what differs from the shared defaults; `chosen` holds what was given, for defaults that depend on it.
        return {"netG": "resnet_6blocks", "norm": "instance", "dataset_mode": "aligned", "gan_mode": "lsgan"}

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"netG": "resnet_1blocks"}  # fast enough for the contract test on 32 px images

    @classmethod
    def check_options(cls, opt: Options, train: bool) -> None:
        # One sentence that says what is wrong and what to pass instead; raised before any work starts.
        if opt.netG == "dcgan":
            raise OptionsError(
                "template translates images and cannot use --netG dcgan (a generator from noise); "
                "use resnet_6blocks or unet_256"
            )
        if train and opt.dataset_mode != "aligned":
            raise OptionsError(f"template trains on pairs and needs --dataset_mode aligned, not {opt.dataset_mode}")

    def __init__(self, opt: TemplateOptions, device: torch.device, train: bool):
        super().__init__(opt, device, train)
        # Inference needs G only (inference_nets = ("G",)); D, losses and optimisers exist when training.
        self.nets["G"] = make_generator(
            opt.netG, opt.input_nc, opt.output_nc, opt.ngf, opt.norm, not opt.no_dropout, opt.init_type, opt.init_gain
        ).to(device)
        if train:
            self.nets["D"] = make_discriminator(
                opt.netD, opt.output_nc, opt.ndf, opt.n_layers_D, opt.norm, opt.init_type, opt.init_gain
            ).to(device)
            self.gan_loss = GANLoss(opt.gan_mode).to(device)
            self.optimizers = {"G": self.make_adam(self.nets["G"]), "D": self.make_adam(self.nets["D"])}

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        images = self.inputs(batch)  # real_A / real_B, swapped by --direction BtoA
        real_a, real_b = images["real_A"], images["real_B"]
        fake_b = self.run_generator(real_a)  # padded to G's size multiple and cropped back

        set_requires_grad(self.nets["D"], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d, losses = self.discriminator_loss(self.nets["D"], real_b, fake_b)  # detaches fake_b
        self.optimize(loss_d, "D")  # backward and step; under --amp fp16 through D's own gradient scaler

        set_requires_grad(self.nets["D"], False)  # no D gradients from the G step
        self.optimizers["G"].zero_grad(set_to_none=True)
        losses["G_GAN"] = self.gan_loss(self.nets["D"](fake_b), True, for_discriminator=False)
        losses["G_L1"] = torch.nn.functional.l1_loss(fake_b.float(), real_b.float()) * self.opt.lambda_rec
        self.optimize(losses["G_GAN"] + losses["G_L1"], "G")

        self.visuals = {"real_A": real_a, "fake_B": fake_b.detach(), "real_B": real_b}
        return {k: float(v.detach()) for k, v in losses.items()}  # floats: the trainer logs and averages them

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        images = self.inputs(batch)  # test passes pairs; translate, the Python API and export pass {"A": ...} alone
        return {"real_A": images["real_A"], "fake_B": self.run_generator(images["real_A"])} | (
            {"real_B": images["real_B"]} if "real_B" in images else {}
        )
