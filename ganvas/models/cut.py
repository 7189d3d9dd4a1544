"""CUT and FastCUT (Park et al. 2020): one-sided unpaired translation with a patchwise contrastive loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.losses import GANLoss, PatchNCELoss
from ganvas.models.base import DemoRecipe, Model, register_demo, register_model, set_requires_grad
from ganvas.nets import ResnetGenerator, forward_padded, make_discriminator, make_generator, make_network
from ganvas.options import RUN, TRAIN, Options, option

# The published settings of each mode (the CUT repository's cut_model.py and train options).
CUT_MODES = {
    "cut": {"nce_idt": True, "lambda_NCE": 1.0, "flip_equivariance": False, "n_epochs": 200, "n_epochs_decay": 200},
    "fastcut": {"nce_idt": False, "lambda_NCE": 10.0, "flip_equivariance": True, "n_epochs": 150, "n_epochs_decay": 50},
}


@dataclass(frozen=True)
class AntialiasOptions(Options):
    """CUT's anti-aliased sampling (the test model takes them too, to run CUT's generators)."""

    no_antialias: bool = option(
        False, "strided convs instead of anti-aliased downsampling in G and D", optional_value=True, commands=RUN
    )
    no_antialias_up: bool = option(
        False, "transposed convs instead of anti-aliased upsampling in the generator", optional_value=True, commands=RUN
    )


@dataclass(frozen=True)
class CUTOptions(AntialiasOptions):
    """CUT's and FastCUT's own options."""

    CUT_mode: str = option(
        "CUT",
        "CUT or FastCUT: sets the published defaults of each",
        choices=("CUT", "cut", "FastCUT", "fastcut"),
        commands=TRAIN,
    )
    lambda_GAN: float = option(1.0, "weight of the GAN loss", minimum=0, commands=TRAIN)
    lambda_NCE: float = option(1.0, "weight of the PatchNCE loss (FastCUT: 10)", minimum=0, commands=TRAIN)
    nce_idt: bool = option(
        False,
        "PatchNCE identity loss on B images too (on for CUT, off for FastCUT)",
        optional_value=True,
        commands=TRAIN,
    )
    nce_layers: str = option(
        "0,4,8,12,16", "generator layers whose features the PatchNCE loss compares", commands=TRAIN
    )
    num_patches: int = option(256, "patches sampled per layer for the PatchNCE loss", minimum=0, commands=TRAIN)
    nce_T: float = option(0.07, "temperature of the PatchNCE loss", positive=True, commands=TRAIN)
    netF: str = option(
        "mlp_sample",
        "patch feature head: mlp_sample (2-layer MLP) or sample (none)",
        choices=("mlp_sample", "sample"),
        commands=TRAIN,
    )
    netF_nc: int = option(256, "output features of the patch MLP", minimum=1, commands=TRAIN)
    flip_equivariance: bool = option(
        False, "flip the input at random and the features back (on for FastCUT)", optional_value=True, commands=TRAIN
    )
    nce_includes_all_negatives_from_minibatch: bool = option(
        False,
        "draw negatives from every image of the batch, not only the same one",
        optional_value=True,
        commands=TRAIN,
    )


def antialiased_generator(opt: AntialiasOptions, input_nc: int, output_nc: int) -> torch.nn.Module:
    """--netG with CUT's blurred down- and upsampling unless --no_antialias / --no_antialias_up."""
    return make_generator(
        opt.netG,
        input_nc,
        output_nc,
        opt.ngf,
        opt.norm,
        not opt.no_dropout,
        opt.init_type,
        opt.init_gain,
        antialias=not opt.no_antialias,
        antialias_up=not opt.no_antialias_up,
    )


def parse_layers(text: str) -> list[int]:
    """--nce_layers '0,4,8' as sorted distinct layer indices."""
    try:
        layers = sorted({int(i) for i in str(text).split(",") if i.strip()})
    except ValueError:
        layers = []
    if not layers or layers[0] < 0:
        raise OptionsError(f"--nce_layers {text!r} is not a list of generator layer numbers, e.g. 0,4,8,12,16")
    return layers


@register_model("cut")
class CUTModel(Model):
    """G maps A to B; D judges B images; PatchNCE ties each output patch to the input patch it came from."""

    options_class = CUTOptions
    monitor = "NCE"
    # CUT's data set drops the --load_size zoom in the decay epochs (its is_finetuning rule).
    decay_loads_at_crop_size = True

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        mode = str(chosen.get("CUT_mode", "CUT")).lower()
        return {
            "norm": "instance",
            "netG": "resnet_9blocks",
            "dataset_mode": "unaligned",
            "gan_mode": "lsgan",
            "no_dropout": True,
            "init_type": "xavier",
            **CUT_MODES.get(mode, CUT_MODES["cut"]),
        }

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"netG": "resnet_2blocks", "nce_layers": "0,2,4", "num_patches": 16, "netF_nc": 16}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        if not opt.netG.startswith("resnet_"):
            raise OptionsError(
                f"cut computes its PatchNCE loss on a ResNet generator's layers; --netG {opt.netG} "
                f"is not one: use resnet_9blocks (the default) or resnet_<n>blocks"
            )
        parse_layers(opt.nce_layers)
        if train and opt.lambda_GAN == 0 and opt.lambda_NCE == 0:
            raise OptionsError(
                "--lambda_GAN 0 and --lambda_NCE 0 leave the generator nothing to learn; "
                "give one of them a positive weight"
            )
        if train and opt.num_patches < 1 and opt.lambda_NCE > 0:
            raise OptionsError(
                f"--num_patches {opt.num_patches}: the PatchNCE loss needs at least one patch per "
                f"layer (the original uses 256)"
            )
        if train and opt.dataset_mode != "unaligned":
            raise OptionsError(
                f"cut trains on two folders of unpaired images and needs --dataset_mode unaligned "
                f"(<phase>A/ and <phase>B/), not {opt.dataset_mode}"
            )
        if train and opt.nce_idt and opt.input_nc != opt.output_nc:
            raise OptionsError(
                f"the identity PatchNCE loss runs G on B images and needs as many input as output "
                f"channels (--input_nc {opt.input_nc}, --output_nc {opt.output_nc}); "
                f"pass --nce_idt False"
            )

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        self.nets["G"] = antialiased_generator(opt, opt.input_nc, opt.output_nc).to(device)
        if not train:
            return
        self.layers = parse_layers(opt.nce_layers)
        if self.layers[-1] >= len(self.nets["G"].model):  # checked here, where the layer count is known
            raise OptionsError(
                f"--nce_layers {opt.nce_layers} names layer {self.layers[-1]}, but --netG {opt.netG} "
                f"has layers 0 to {len(self.nets['G'].model) - 1}"
            )
        self.nets["D"] = make_discriminator(
            opt.netD,
            opt.output_nc,
            opt.ndf,
            opt.n_layers_D,
            opt.norm,
            opt.init_type,
            opt.init_gain,
            antialias=not opt.no_antialias,
        ).to(device)
        # F's MLPs are built here, not on the first batch as in the original, so that optimisers,
        # checkpoints and resume see every parameter from the first step.
        G: ResnetGenerator = self.nets["G"]
        self.nets["F"] = make_network(
            "patch_sample",
            opt.init_type,
            opt.init_gain,
            channels=G.feature_channels(self.layers),
            use_mlp=opt.netF == "mlp_sample",
            nc=opt.netF_nc,
        ).to(device)
        self.gan_loss = GANLoss(opt.gan_mode).to(device)
        self.nce_loss = PatchNCELoss(opt.nce_T, opt.batch_size, opt.nce_includes_all_negatives_from_minibatch)
        self.optimizers = {"G": self.make_adam(self.nets["G"]), "D": self.make_adam(self.nets["D"])}
        if any(True for _ in self.nets["F"].parameters()):
            self.optimizers["F"] = self.make_adam(self.nets["F"])

    def nce(self, source: Tensor, target: Tensor, flipped: bool) -> Tensor:
        """Multilayer PatchNCE between G's features of the input and of its translation, averaged over layers."""
        G, F = self.nets["G"], self.nets["F"]
        feat_q = G.encode(target, self.layers)
        if flipped:  # the output came from the flipped input: flip its features back into line
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        feat_k = G.encode(source, self.layers)
        pooled_k, ids = F(feat_k, self.opt.num_patches, None)
        pooled_q, _ = F(feat_q, self.opt.num_patches, ids)
        total = sum(self.nce_loss(q, k, batch_size=len(source)).mean() for q, k in zip(pooled_q, pooled_k))
        return total * self.opt.lambda_NCE / len(self.layers)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        opt = self.opt
        G, D = self.nets["G"], self.nets["D"]
        images = self.inputs(batch)
        real_a, real_b = images["real_A"], images["real_B"]
        # A coin per step from torch's seeded generator, whose state every checkpoint saves.
        flipped = opt.flip_equivariance and bool(torch.rand(()) < 0.5)
        flip = (lambda x: torch.flip(x, [3])) if flipped else (lambda x: x)
        idt_b = None
        if opt.nce_idt and real_a.shape == real_b.shape:  # one pass over A and B, as the original
            fake = forward_padded(G, flip(torch.cat([real_a, real_b])))
            fake_b, idt_b = fake[: len(real_a)], fake[len(real_a) :]
        else:  # A and B of different sizes: two passes (instance norm makes them equivalent)
            fake_b = forward_padded(G, flip(real_a))
            if opt.nce_idt:
                idt_b = forward_padded(G, flip(real_b))

        set_requires_grad(D, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d, losses = self.discriminator_loss(D, real_b, fake_b)
        self.optimize(loss_d, "D")

        set_requires_grad(D, False)
        for key in ("G", "F"):
            if key in self.optimizers:
                self.optimizers[key].zero_grad(set_to_none=True)
        loss_g = torch.zeros((), device=self.device)
        if opt.lambda_GAN > 0:
            losses["G_GAN"] = self.gan_loss(D(fake_b), True, for_discriminator=False) * opt.lambda_GAN
            loss_g = loss_g + losses["G_GAN"]
        if opt.lambda_NCE > 0:
            losses["NCE"] = self.nce(real_a, fake_b, flipped)
            nce = losses["NCE"]
            if opt.nce_idt:
                losses["NCE_Y"] = self.nce(real_b, idt_b, flipped)  # idt_b is set whenever nce_idt is
                nce = 0.5 * (nce + losses["NCE_Y"])
            loss_g = loss_g + nce
        self.optimize(loss_g, *(key for key in ("G", "F") if key in self.optimizers))

        self.visuals = {"real_A": real_a, "fake_B": fake_b.detach(), "real_B": real_b}
        if idt_b is not None:
            self.visuals["idt_B"] = idt_b.detach()
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        images = self.inputs(batch)
        out = {"real_A": images["real_A"], "fake_B": forward_padded(self.nets["G"], images["real_A"])}
        return out | {k: v for k, v in images.items() if k in ("real_B", "truth_B")}


# CPU-sized CUT and FastCUT on 64 px day and night facades of different scenes, measured on 2 cores
# (benchmarks/RESULTS.md). Three changes from the published settings, each needed at this size:
# - the generator at a quarter of the width with three residual blocks (ngf = ndf = 16), and
#   2.5x the learning rate, so 2400 steps fit in a few minutes;
# - strided and transposed convolutions instead of the anti-aliased ones: the blur filters smear
#   64 px facades (CUT: 13.3 dB with them, 20.4 dB without, the mean night image scoring 15.6 dB);
# - the PatchNCE layers follow the original's choice for this generator's layout: the input, the two
#   downsampling convolutions and the first and last residual blocks (the published 0,4,8,12,16
#   would reach into the decoder of a three-block generator).
# FastCUT also takes --lambda_NCE 1 instead of its published 10: on these flat-coloured facades many
# patches are identical, the contrastive term dominates and the generator keeps day colours
# (9.5 dB); the original code fails the same way on this data. Its steps are the cheapest (no identity
# term), so it takes 3200: at 2400, one seed of three only tied the mean night image.
_DEMO_FLAGS = {
    "model": "cut",
    "netG": "resnet_3blocks",
    "ngf": 16,
    "ndf": 16,
    "lr": 0.0005,
    "no_antialias": True,
    "no_antialias_up": True,
    "nce_layers": "0,4,7,10,12",
    "load_size": 64,
    "crop_size": 64,
}
register_demo(
    "cut",
    DemoRecipe(
        data="unpaired",
        flags={**_DEMO_FLAGS, "CUT_mode": "CUT"},
        epochs=6,
        shows=(
            "Day facades turned into night ones by one generator, without paired examples: day input, CUT's "
            "night, the true night rendering of the same scene (never shown in training)."
        ),
    ),
)
register_demo(
    "fastcut",
    DemoRecipe(
        data="unpaired",
        flags={**_DEMO_FLAGS, "CUT_mode": "FastCUT", "lambda_NCE": 1.0},
        epochs=8,
        shows=(
            "Day facades turned into night ones by FastCUT (no identity term, flip equivariance; PatchNCE weight 1 "
            "as CUT's): day input, FastCUT's night, the true night rendering of the same scene (never shown in "
            "training)."
        ),
    ),
)
