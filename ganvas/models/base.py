"""The Model contract: a model owns its networks, losses, optimisers and one optimisation step."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ganvas.losses import gradient_penalty
from ganvas.options import Options, parse_gpu_ids

log = logging.getLogger("ganvas")


def select_device(gpu_ids: str) -> torch.device:
    """The first GPU in --gpu_ids, or the CPU for -1 or when no GPU is present."""
    ids = parse_gpu_ids(gpu_ids)
    if not ids or ids[0] < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        log.info("no CUDA device found; running on the CPU (pass --gpu_ids -1 to say so)")
        return torch.device("cpu")
    return torch.device("cuda", ids[0])


def set_requires_grad(nets: nn.Module | list[nn.Module], flag: bool) -> None:
    """Switch gradients of whole networks on or off (D is frozen during the G step)."""
    for net in nets if isinstance(nets, list) else [nets]:
        for p in net.parameters():
            p.requires_grad_(flag)


class Model(ABC):
    """Base class: subclasses build `nets` (and, when training, `optimizers`) in __init__."""

    name: ClassVar[str] = ""
    # Loss that the plateau learning-rate policy watches (epoch mean).
    monitor: ClassVar[str] = ""
    # Networks needed at inference; the rest are built only for training.
    inference_nets: ClassVar[tuple[str, ...]] = ("G",)
    # False for models that generate from noise rather than translate an input image.
    conditional: ClassVar[bool] = True
    # True when a trained run translates both ways (test/translate may flip --direction).
    reversible: ClassVar[bool] = False
    # (output visual, target visual) pairs that test scores when both are present.
    scored: ClassVar[tuple[tuple[str, str], ...]] = (("fake_B", "truth_B"), ("fake_A", "truth_A"))

    def __init__(self, opt: Options, device: torch.device, train: bool):
        self.opt = opt
        self.device = device
        self.is_train = train
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.visuals: dict[str, Tensor] = {}
        # fp16 training (grad_scaling, set by the trainer): one gradient scaler per optimisation step
        # ("G", "D"), so that an overflow in one network's step never skips the other's.
        self.grad_scaling = False
        self.scalers: dict[str, torch.amp.GradScaler] = {}

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        """Options this model changes from the base defaults (the original repos' per-model defaults).

        `chosen` holds the options given or saved so far, for defaults that depend on them.
        """
        return {}

    @classmethod
    def inherit(cls, saved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """The saved options of the run being tested or resumed, adapted to this model (default: as saved)."""
        return saved

    @abstractmethod
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        """One optimisation step on a batch; returns the losses as floats."""

    @abstractmethod
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """Inference visuals for a batch, e.g. {'real_A', 'fake_B', 'real_B'}, in [-1, 1]."""

    @classmethod
    def check_options(cls, opt: Options, train: bool) -> None:
        """Raise OptionsError for options this model cannot run with."""

    def current_visuals(self) -> dict[str, Tensor]:
        """Images of the last training step for the training-visuals page, in [-1, 1]."""
        return self.visuals

    @classmethod
    def test_overrides(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """Options test and translate set for this model over the general ones (full-size images, no flips)."""
        return {}

    @property
    def input_channels(self) -> int:
        """Channels of the images translate() takes ({'A': x}): the run's input side."""
        return self.opt.input_nc

    @property
    def partly_frozen(self) -> tuple[str, ...]:
        """Networks of which only some parameters train at times (pix2pixHD's local G with --niter_fix_global)."""
        return ()

    def generator(self) -> nn.Module:
        """The network that translates real_A into fake_B (what translate and export run)."""
        return self.nets["G"]

    def set_mode(self, train: bool) -> None:
        """Put every network in train or eval mode."""
        for net in self.nets.values():
            net.train(train)

    def start_epoch(self, epoch: int) -> None:
        """Called before each epoch runs (also the one a resume continues), e.g. to unfreeze layers."""

    def extra_state(self) -> dict[str, Any]:
        """Model state beyond networks and optimisers that a resume needs (e.g. an image pool)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what extra_state() returned."""

    def inputs(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The batch's images on the device under model names: real_A is what G translates.

        --direction BtoA swaps the sides (also of the kept-aside truth images); a batch of single
        images has only real_A.
        """
        a, b = ("A", "B") if self.opt.direction == "AtoB" or "B" not in batch else ("B", "A")
        names = {a: "real_A", b: "real_B", f"truth_{b}": "truth_B", f"truth_{a}": "truth_A"}
        return {name: batch[key].to(self.device, non_blocking=True) for key, name in names.items() if key in batch}

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor, name: str = "D") -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss on real and (detached) fake images: half the sum, plus wgangp's gradient penalty.

        Returns the total and its terms by name ({name}_fake, {name}_real, {name}_GP). Uses the
        model's `gan_loss`; fakes go through D first, as in the original pix2pix and CUT.
        """
        losses = {f"{name}_fake": self.gan_loss(D(fake.detach()), False), f"{name}_real": self.gan_loss(D(real), True)}
        total = 0.5 * (losses[f"{name}_fake"] + losses[f"{name}_real"])
        if self.opt.gan_mode == "wgangp":
            losses[f"{name}_GP"] = gradient_penalty(D, real, fake, self.opt.lambda_gp)
            total = total + losses[f"{name}_GP"]
        return total, losses

    def optimize(self, loss: Tensor, *names: str) -> None:
        """Backpropagate loss and step the named optimisers (through the first name's scaler under fp16)."""
        if not self.grad_scaling:
            loss.backward()
            for name in names:
                self.optimizers[name].step()
            return
        scaler = self.scalers.setdefault(names[0], torch.amp.GradScaler(self.device.type))
        scaler.scale(loss).backward()
        for name in names:
            scaler.step(self.optimizers[name])
        scaler.update()

    def make_adam(self, *nets: nn.Module) -> torch.optim.Adam:
        """Adam over the given networks with the run's lr and beta1."""
        params = [p for net in nets for p in net.parameters()]
        return torch.optim.Adam(params, lr=self.opt.lr, betas=(self.opt.beta1, 0.999))
