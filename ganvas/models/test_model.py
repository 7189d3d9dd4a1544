"""The test model: one saved generator of any run (G, G_A or G_B) on a folder of single images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganvas.checkpoint import network_path
from ganvas.errors import OptionsError
from ganvas.models.base import Model, register_model
from ganvas.models.cut import AntialiasOptions, antialiased_generator
from ganvas.nets import forward_padded
from ganvas.options import INFER, option


@dataclass(frozen=True)
class TestOptions(AntialiasOptions):
    """The test model's own options (and CUT's sampling flags, to run CUT's generators)."""

    __test__ = False  # not a pytest test class, despite the name
    model_suffix: str = option("", "which saved generator to run: '' for G, _A for G_A, _B for G_B", commands=INFER)


@register_model("test", trainable=False)
class TestModel(Model):
    """Runs `<epoch>_net_G<model_suffix>.pth` one way, e.g. a CycleGAN's G_A alone (--model_suffix _A).

    With _B, the options' input_nc and output_nc are those of G_B (inherit swaps a saved run's).
    """

    __test__ = False  # not a pytest test class, despite the name
    options_class = TestOptions

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        # As the original's test model: single images; generators of the ResNet family CycleGAN trains.
        return {
            "dataset_mode": "single",
            "norm": "instance",
            "netG": "resnet_9blocks",
            "no_antialias": True,
            "no_antialias_up": True,
        }

    @classmethod
    def inherit(cls, saved: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """A run of another model gives its architecture; G_B of a CycleGAN maps output_nc to input_nc."""
        out = dict(saved, dataset_mode="single")
        if saved.get("model") != "cut":  # only CUT's generators are anti-aliased
            out.update(no_antialias=True, no_antialias_up=True)
        backward = given.get("model_suffix") == "_B"
        if backward and "input_nc" in saved:
            out.update(input_nc=saved.get("output_nc"), output_nc=saved["input_nc"])
        if saved.get("dataset_mode") == "unaligned" and saved.get("dataroot"):
            # Without --dataroot: the generator's own side of the run's test split, not the whole tree.
            source = "A" if (saved.get("direction", "AtoB") == "AtoB") != backward else "B"
            out["dataroot"] = str(Path(saved["dataroot"]) / f"{given.get('phase', 'test')}{source}")
        return out

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {"netG": "resnet_2blocks"}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        if train:
            raise OptionsError(
                "the test model only runs a trained generator; train with --model cycle_gan, cut or "
                "pix2pix and test with --model test --model_suffix _A"
            )
        if opt.model_suffix not in ("", "_A", "_B"):
            raise OptionsError(
                f"--model_suffix {opt.model_suffix!r} names no generator; use '' (G), _A (G_A) or _B (G_B)"
            )
        wanted = network_path(opt.run_dir, opt.epoch, "G" + opt.model_suffix)
        others = [s for s in ("", "_A", "_B") if network_path(opt.run_dir, opt.epoch, "G" + s).is_file()]
        if not wanted.is_file() and others:
            raise OptionsError(
                f"{wanted} does not exist; this run has "
                f"{', '.join(f'G{s} (--model_suffix {s})' if s else 'G (no --model_suffix)' for s in others)}"
            )

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        self.key = "G" + opt.model_suffix
        self.inference_nets = (self.key,)
        self.nets[self.key] = antialiased_generator(opt, opt.input_nc, opt.output_nc).to(device)

    def generator(self) -> torch.nn.Module:
        return self.nets[self.key]

    def results_suffix(self) -> str:
        return self.opt.model_suffix or "_G"

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        raise OptionsError("the test model cannot be trained")

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        real = self.inputs({"A": batch["A"]})["real_A"]
        return {"real_A": real, "fake_B": forward_padded(self.nets[self.key], real)}
