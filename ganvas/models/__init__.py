"""Model registry: --model names to classes."""

from __future__ import annotations

from ganvas.errors import OptionsError
from ganvas.models.base import Model, select_device, set_requires_grad


def _registry() -> dict[str, type[Model]]:
    from ganvas.models.cut import CUTModel
    from ganvas.models.cycle_gan import CycleGANModel
    from ganvas.models.gan import GANModel
    from ganvas.models.pix2pix import Pix2PixModel
    from ganvas.models.pix2pixhd import Pix2PixHDModel
    from ganvas.models.test_model import TestModel

    return {cls.name: cls for cls in (Pix2PixModel, CycleGANModel, CUTModel, Pix2PixHDModel, GANModel, TestModel)}


def get_model_class(name: str) -> type[Model]:
    """The class registered for --model `name`."""
    models = _registry()
    if name not in models:
        raise OptionsError(f"unknown --model {name!r}; choose one of {', '.join(sorted(models))}")
    return models[name]


def create_model(opt, device, train: bool) -> Model:
    """Build the model named by opt.model on `device`, after its own check of the options."""
    model_class = get_model_class(opt.model)
    model_class.check_options(opt, train)
    return model_class(opt, device, train)


__all__ = ["Model", "create_model", "get_model_class", "select_device", "set_requires_grad"]
