"""The Model contract: a model owns its networks, losses, optimisers and one optimisation step."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

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

    def __init__(self, opt: Options, device: torch.device, train: bool):
        self.opt = opt
        self.device = device
        self.is_train = train
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.visuals: dict[str, Tensor] = {}

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Options this model changes from the base defaults (the original repos' per-model defaults)."""
        return {}

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

    def set_mode(self, train: bool) -> None:
        """Put every network in train or eval mode."""
        for net in self.nets.values():
            net.train(train)

    def extra_state(self) -> dict[str, Any]:
        """Model state beyond networks and optimisers that a resume needs (e.g. an image pool)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what extra_state() returned."""

    def make_adam(self, *nets: nn.Module) -> torch.optim.Adam:
        """Adam over the given networks with the run's lr and beta1."""
        params = [p for net in nets for p in net.parameters()]
        return torch.optim.Adam(params, lr=self.opt.lr, betas=(self.opt.beta1, 0.999))
