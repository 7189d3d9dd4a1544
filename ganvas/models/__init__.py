"""Models: one file per method, each registered in `ganvas.registry.MODELS` when imported here.

A new model is one module in this package (plus its networks in nets/) that registers itself with
`@register_model(name)` and is imported below; generic code finds it through the registry.
"""

from __future__ import annotations

import torch

from ganvas.backends import attach
from ganvas.checkpoint import load_networks
from ganvas.models import (  # noqa: F401  (registers them)
    colorization,
    colorization_hints,
    cut,
    cycle_gan,
    gan,
    pix2pix,
    pix2pixhd,
    test_model,
    vid2vid,
)
from ganvas.models.base import InferenceSpec, Model, register_model, set_requires_grad
from ganvas.registry import MODELS
from ganvas.speed import select_device


def get_model_class(name: str) -> type[Model]:
    """The class registered for --model `name`."""
    return MODELS.get(name)


def create_model(opt, device, train: bool) -> Model:
    """Build the model named by opt.model on `device`, after its own check of the options."""
    model_class = get_model_class(opt.model)
    model_class.check_options(opt, train)
    return model_class(opt, device, train)


def load_for_inference(opt) -> Model:
    """The run's model with its --epoch weights, in eval mode (train-mode layers with --paper_mode, as the paper).

    Its inference networks run on --backend (graphs cached in <run>/export/) with --num_threads_infer threads.
    """
    torch.manual_seed(opt.seed if opt.seed is not None else 0)
    model = create_model(opt, select_device(opt.gpu_ids), train=False)
    load_networks({k: model.nets[k] for k in model.inference_nets}, opt.run_dir, opt.epoch)
    model.set_mode(opt.paper_mode)
    attach(model.nets, model.inference_nets, opt.backend, opt.run_dir / "export", opt.epoch, opt.num_threads_infer)
    return model


__all__ = [
    "InferenceSpec",
    "Model",
    "create_model",
    "get_model_class",
    "load_for_inference",
    "register_model",
    "set_requires_grad",
]
