"""Unconditional GAN (DCGAN-style, Radford et al. 2016): G maps noise z to images, D tells real from fake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganvas.errors import OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import DemoRecipe, InferenceSpec, Model, register_demo, register_model, set_requires_grad
from ganvas.nets import make_discriminator, make_generator
from ganvas.options import RUN, Options, option
from ganvas.speed import unwrap

# Fixed latent vectors for the training-visuals grid, so successive grids are comparable.
PREVIEW_SAMPLES = 16


@dataclass(frozen=True)
class GANOptions(Options):
    """The unconditional GAN's own options."""

    nz: int = option(100, "length of the latent vector z", minimum=1, commands=RUN)


@register_model("gan")
class GANModel(Model):
    """G: z -> image; D: image -> real/fake; D step then G step."""

    options_class = GANOptions
    monitor = "G_GAN"
    conditional = False

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        return {
            "netG": "dcgan",
            "netD": "dcgan",
            "norm": "batch",
            "dataset_mode": "single",
            # The DCGAN paper's cross-entropy loss: with LSGAN these networks stay grey noise for hundreds of
            # steps on the built-in set, where cross-entropy draws facades (benchmarks/RESULTS.md).
            "gan_mode": "vanilla",
            "load_size": 64,
            "crop_size": 64,
            "num_test": 64,
        }

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"load_size": 32, "crop_size": 32, "nz": 8}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        square = opt.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop") or (
            opt.preprocess == "resize" and opt.load_size == opt.crop_size
        )
        if train and not square:
            raise OptionsError(
                f"the gan model trains on --crop_size squares, which --preprocess {opt.preprocess} "
                f"does not give; use resize_and_crop (the default) or crop"
            )

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        size = opt.crop_size
        self.nets["G"] = make_generator(
            opt.netG,
            opt.nz,
            opt.output_nc,
            opt.ngf,
            opt.norm,
            False,
            opt.init_type,
            opt.init_gain,
            nz=opt.nz,
            image_size=size,
        ).to(device)
        if train:
            self.nets["D"] = make_discriminator(
                opt.netD,
                opt.output_nc,
                opt.ndf,
                opt.n_layers_D,
                opt.norm,
                opt.init_type,
                opt.init_gain,
                image_size=size,
            ).to(device)
            self.gan_loss = GANLoss(opt.gan_mode).to(device)
            self.optimizers = {"G": self.make_adam(self.nets["G"]), "D": self.make_adam(self.nets["D"])}
            seed = torch.Generator().manual_seed(opt.seed or 0)
            self.preview_z = torch.randn(PREVIEW_SAMPLES, opt.nz, generator=seed).to(device)

    def inference_spec(self) -> InferenceSpec:
        return InferenceSpec(
            ("noise",),
            self.opt.nz,
            self.opt.output_nc,
            refusal=(
                f"the {self.name} run {self.opt.run_dir} generates from noise and has no input to translate; sample it "
                f"with `ganvas test --name {self.opt.name} --num_test N`"
            ),
        )

    def generator_input(self, batch: dict[str, Any]) -> Tensor:
        return self.noise(batch["A"].shape[0])

    def run_generator(self, x: Tensor) -> Tensor:
        return self.nets["G"](x)

    def example_batch(self, size: int, batch_size: int = 1, seed: int = 0) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(seed)
        real = torch.rand(batch_size, self.opt.output_nc, size, size, generator=gen) * 2 - 1
        return {"A": real.to(self.device), "A_paths": [f"example_{i}.png" for i in range(batch_size)]}

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latent vectors from N(0, I) on the model's device."""
        return torch.randn(n, self.opt.nz, generator=generator).to(self.device)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        real = batch["A"].to(self.device, non_blocking=True)
        fake = G(self.noise(real.shape[0]))

        set_requires_grad(D, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d, losses = self.discriminator_loss(D, real, fake)
        self.optimize(loss_d, "D")

        set_requires_grad(D, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_g = self.gan_loss(D(fake), True, for_discriminator=False)
        self.optimize(loss_g, "G")

        self.visuals = {"real": real}
        losses["G_GAN"] = loss_g
        return {k: float(v.detach()) for k, v in losses.items()}

    @torch.no_grad()
    def current_visuals(self) -> dict[str, Tensor]:
        # Train-mode batch norm updates its running statistics; restore them so the preview leaves
        # the weights (and eval-mode results) exactly as training made them. The plain network: only the
        # first of several training processes draws previews, so no DDP collective may run here.
        G = unwrap(self.nets["G"])
        saved = [b.clone() for b in G.buffers()]
        # Synchronised batch norm would wait for the processes that draw no preview: use its running statistics.
        synced = [m for m in G.modules() if isinstance(m, torch.nn.SyncBatchNorm) and m.training]
        for module in synced:
            module.eval()
        samples = G(self.preview_z)
        for module in synced:
            module.train()
        for buffer, value in zip(G.buffers(), saved):
            buffer.copy_(value)
        return {"samples": samples, **self.visuals}

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Samples for the latent vectors in batch['z'] (N x nz)."""
        return {"sample": self.nets["G"](batch["z"].to(self.device))}

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> Tensor:
        """n images from n latent vectors drawn with `seed`."""
        return self.translate({"z": self.noise(n, torch.Generator().manual_seed(seed))})["sample"]


# DCGAN at 32 px and half width on 2000 facade photos, batches of 32 as the DCGAN paper's large batches suggest: small
# batches of a small set collapse to a few samples.
register_demo(
    "gan",
    DemoRecipe(
        data="images",
        flags={"model": "gan", "load_size": 32, "crop_size": 32, "batch_size": 32, "ngf": 32, "ndf": 32},
        epochs=7,
        shows=(
            "Facade photos generated from noise alone: 256 samples, scored against held-out photos by the "
            "Fréchet distance of their thumbnails and by their diversity (a collapsed generator scores 0)."
        ),
        test_flags={"num_test": 256},
    ),
)
