"""Automatic colourisation, as the original repository's `--model colorization`: pix2pix from the CIE L
channel (A = L / 50 - 1) to the ab channels (B = ab / 110), on `--dataset_mode colorization`.

Differences from the original, and why:
- Visuals and test pages convert every image of a batch back to RGB (the original converts the first),
  and are scored in RGB against the real photo.
- translate and the Python API read any RGB or grey file and take L from the image's own Lab (a grey
  pixel's L is not value / 255 * 100), predict the colour with the longer side at most --color_size
  (default --crop_size, the size the network was trained at) and join it with the input's own
  full-resolution L, so a 3000 x 2000 photo comes back at 3000 x 2000 with its own detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ganvas import color
from ganvas.errors import OptionsError
from ganvas.models.base import DemoRecipe, InferenceSpec, register_demo, register_model
from ganvas.models.pix2pix import DEMO_FLAGS, Pix2PixModel, Pix2PixOptions
from ganvas.nets import net_size
from ganvas.nets.colorization import LabOutputs, colour_at
from ganvas.options import option


def color_size_option() -> Any:
    """--color_size, shared by the colourisation models."""
    return option(
        0,
        "test and translate predict the colour with the longer side at most this many pixels, then join it "
        "with the input's full-resolution L (0: --crop_size)",
        minimum=0,
        commands=("test", "translate"),
        inherited=False,
    )


def check_colour_options(opt: Any, train: bool, model: str) -> None:
    """The channels and data layout every colourisation model needs, refused in one sentence otherwise."""
    if (opt.input_nc, opt.output_nc) != (1, 2):
        raise OptionsError(
            f"--model {model} maps L (1 channel) to ab (2 channels); drop --input_nc {opt.input_nc} "
            f"and --output_nc {opt.output_nc}"
        )
    if train and opt.dataset_mode != "colorization":
        raise OptionsError(
            f"--model {model} trains on --dataset_mode colorization (colour photos under <dataroot>/<phase>/), "
            f"not {opt.dataset_mode}"
        )


@dataclass(frozen=True)
class ColorizationOptions(Pix2PixOptions):
    """Colourisation's own options (pix2pix's too)."""

    color_size: int = color_size_option()


@register_model("colorization")
class ColorizationModel(Pix2PixModel):
    """pix2pix on L -> ab; visuals, pages and translate give RGB."""

    options_class = ColorizationOptions
    scored = (("fake_B", "real_B"),)

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        return {**super().option_defaults(chosen), "dataset_mode": "colorization", "input_nc": 1, "output_nc": 2}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        check_colour_options(opt, train, "colorization")
        if opt.netG == "dcgan":
            raise OptionsError("--model colorization translates images; use unet_256, unet_128 or resnet_9blocks")

    @property
    def color_size(self) -> int:
        return self.opt.color_size or self.opt.crop_size

    def inference_spec(self) -> InferenceSpec:
        # Images are read as RGB and given as their L; the output is RGB.
        return InferenceSpec(("image",), 1, 3, net_size(self.generator()), image_space="lab_l")

    def export_module(self) -> torch.nn.Module:
        return LabOutputs(self.generator())  # the colour at the input's size (no resizing in the graph)

    def run_generator(self, x: Tensor) -> Tensor:
        """One colourisation pass as translate runs it: L in, RGB out (bench times this)."""
        return LabOutputs(self.generator(), self.color_size)(x)

    def current_visuals(self) -> dict[str, Tensor]:
        if not self.visuals:
            return {}
        light = self.visuals["real_A"]
        return {
            "real_A": color.decode(light, torch.zeros_like(self.visuals["real_B"])),
            "fake_B": color.decode(light, self.visuals["fake_B"]),
            "real_B": color.decode(light, self.visuals["real_B"]),
        }

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        images = self.inputs(batch)
        light = images["real_A"]
        ab = colour_at(self.generator(), light, self.color_size)
        out = {"real_A": color.decode(light, torch.zeros_like(ab)), "fake_B": color.decode(light, ab)}
        if "real_B" in images:
            out["real_B"] = color.decode(light, images["real_B"])
        return out


# pix2pix's demo network on 64 px facade photos: the colour of walls, windows and doors from their lightness.
register_demo(
    "colorization",
    DemoRecipe(
        data="photos",
        flags={"model": "colorization", **DEMO_FLAGS},
        epochs=4,
        shows="Facade photos coloured from their lightness alone: the grey input, the colourised photo, the real one.",
    ),
)
