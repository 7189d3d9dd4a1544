"""The Model contract: a model owns its options, networks, losses, optimisers and one optimisation step,
and declares what it takes and gives at inference, so that generic code never tests a model's name."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ganvas.losses import gradient_penalty
from ganvas.nets import forward_padded, net_size
from ganvas.options import Options
from ganvas.registry import DEMOS, MODELS

log = logging.getLogger("ganvas")

# Kinds of input a model's inference takes, in the order its exported graph takes them.
INPUT_KINDS = ("image", "label", "instance", "style", "noise")


def register_model(name: str, **meta: Any) -> Any:
    """Class decorator: register a Model subclass as --model `name` (meta: trainable=False for run-only models)."""

    def add(cls: type[Model]) -> type[Model]:
        cls.name = name
        return MODELS.register(name, **{"trainable": True, **meta})(cls)

    return add


@dataclass(frozen=True)
class DemoRecipe:
    """A CPU-sized run of a model on a built-in data set that shows it doing its task (`ganvas demo --model`).

    `data` names the built-in set (paired, unpaired, street, images; see ganvas.demo.BUILTIN_SETS),
    written with `data_args`; `flags` are the training options (the model included); training runs
    `epochs` epochs at the full learning rate and as many again decaying to zero. `shows` says in
    plain words what the results page shows. `prepare` are steps the demo runs on the trained run
    before testing, each called with the test's options (pix2pixHD: encode_features, what `ganvas
    encode-features` runs); `test_flags` are the options its test adds.
    """

    data: str
    flags: dict[str, Any]
    epochs: int
    shows: str
    data_args: dict[str, Any] = field(default_factory=dict)
    test_flags: dict[str, Any] = field(default_factory=dict)
    prepare: tuple[Callable[[Any], Any], ...] = ()


def register_demo(name: str, recipe: DemoRecipe) -> None:
    """Offer `recipe` as `ganvas demo --model name`."""
    DEMOS.register(name, recipe=recipe)(recipe)


@dataclass(frozen=True)
class InferenceSpec:
    """What a built model takes and gives at inference (translate, the Python API, export, bench).

    `inputs` are kinds from INPUT_KINDS: ("image",) for image translators, ("label", "instance",
    "style") for pix2pixHD, ("noise",) for generators from noise. `refusal`, when set, is the sentence
    translate and export give because they cannot feed this run's inputs. `image_space` says how
    image files become the input tensor: "" (their pixels, input_nc channels in [-1, 1]) or "lab_l"
    (read as RGB and given as CIE L / 50 - 1, one channel: the colourisation models).
    """

    inputs: tuple[str, ...]
    input_nc: int
    output_nc: int
    size_multiple: int = 1
    label_nc: int = 0
    style_channels: int = 0
    refusal: str = ""
    image_space: str = ""
    takes_hints: bool = False  # translate takes colour hints (x, y, rgb, patch) with each image
    # Frames depend on the frames before them (vid2vid): a batch may name each item's "stream" and "frame"
    # index, the model keeps each stream's past, and an item without them is a stream's first frame.
    sequential: bool = False
    # How many first frames of each stream a sequential run copies from the real frames (--use_real_img): test
    # scores the frames after them.
    given_frames: int = 0


def set_requires_grad(nets: nn.Module | list[nn.Module], flag: bool) -> None:
    """Switch gradients of whole networks on or off (D is frozen during the G step)."""
    for net in nets if isinstance(nets, list) else [nets]:
        for p in net.parameters():
            p.requires_grad_(flag)


class Model(ABC):
    """Base class: subclasses build `nets` (and, when training, `optimizers`) in __init__."""

    name: ClassVar[str] = ""
    # The options this model adds to the shared ones (a frozen dataclass extending Options).
    options_class: ClassVar[type[Options]] = Options
    # Flags of other models that old scripts of this one pass with another meaning: flag -> what to use.
    flag_hints: ClassVar[dict[str, str]] = {}
    # Loss that the plateau learning-rate policy watches (epoch mean).
    monitor: ClassVar[str] = ""
    # Networks needed at inference; the rest are built only for training.
    inference_nets: ClassVar[tuple[str, ...]] = ("G",)
    # False for models that generate from noise rather than translate an input image.
    conditional: ClassVar[bool] = True
    # True when a trained run translates both ways (test/translate may flip --direction).
    reversible: ClassVar[bool] = False
    # True when training loads the decay epochs (epoch > --n_epochs) at --crop_size instead of --load_size,
    # as CUT's unaligned data set does (read by data.datasets.ImageDataset.load_size).
    decay_loads_at_crop_size: ClassVar[bool] = False
    # (output visual, target visual) pairs that test scores when both are present.
    scored: ClassVar[tuple[tuple[str, str], ...]] = (("fake_B", "truth_B"), ("fake_A", "truth_A"))

    def __init__(self, opt: Options, device: torch.device, train: bool):
        self.opt = opt
        self.device = device
        self.is_train = train
        self.nets: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.visuals: dict[str, Tensor] = {}
        # Optimisers whose learning rate is a multiple of the run's (vid2vid's --TTUR: G at half, D at twice).
        self.lr_factors: dict[str, float] = {}
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

    def test_notes(self) -> list[str]:
        """Sentences the test page and metrics.json give about how this run's outputs were made."""
        return []

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

    # --- declared inference contract -------------------------------------------------------------
    def inference_spec(self) -> InferenceSpec:
        """What inference takes and gives (default: images of the run's input side to its output side)."""
        return InferenceSpec(("image",), self.input_channels, self.opt.output_nc, net_size(self.generator()))

    def export_module(self) -> nn.Module:
        """The module `ganvas export` writes; it takes the inputs of inference_spec() in their order."""
        return self.generator()

    def generator_input(self, batch: dict[str, Any]) -> Tensor:
        """The tensor the generator takes for a batch (bench times one generator pass on it)."""
        return self.inputs(batch)["real_A"]

    def run_generator(self, x: Tensor) -> Tensor:
        """One generator pass as translate runs it: padded to the generator's multiple and cropped back."""
        return forward_padded(self.generator(), x)

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        """Options that make a small, fast instance of this model on 32 px images (the contract test, tries)."""
        return {}

    @classmethod
    def bench_options(cls, size: int) -> dict[str, Any]:
        """Options `ganvas bench` adds for this model at `size` px (the published network for that size)."""
        return {}

    def example_batch(self, size: int, batch_size: int = 1, seed: int = 0) -> dict[str, Any]:
        """Random inputs of the kinds this model's data set yields at `size` px (bench, export and tests)."""
        gen = torch.Generator().manual_seed(seed)

        def image(channels: int) -> Tensor:
            return (torch.rand(batch_size, channels, size, size, generator=gen) * 2 - 1).to(self.device)

        return {
            "A": image(self.opt.input_nc),
            "B": image(self.opt.output_nc),
            "A_paths": [f"example_{i}.png" for i in range(batch_size)],
            "B_paths": [f"example_{i}.png" for i in range(batch_size)],
        }

    def results_suffix(self) -> str:
        """What the results folder's name adds for this model's way of running (the test model's generator)."""
        return ""

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

    def discriminator_loss(
        self, D: nn.Module, real: Tensor, fake: Tensor, name: str = "D"
    ) -> tuple[Tensor, dict[str, Tensor]]:
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
