"""Normalisation layer factories and weight initialisation, as in the reference repository."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

import torch.nn as nn
from torch.nn import init

from ganvas.errors import OptionsError

logger = logging.getLogger(__name__)

NormFactory = Callable[[int], nn.Module]

# syncbatch is batch norm whose statistics are synchronised across training processes (DDP); in
# one process, and in saved files, it is batch norm.
NORM_TYPES = ("batch", "syncbatch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")

_WEIGHTED_LAYERS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def _identity_norm(num_features: int) -> nn.Module:
    """Return a no-op layer standing in for a normalisation over num_features channels."""
    return nn.Identity()


def get_norm_layer(norm_type: str) -> NormFactory:
    """Return a factory mapping a channel count to a normalisation layer of the given type."""
    if norm_type in ("batch", "syncbatch"):
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm_type == "none":
        return _identity_norm
    raise OptionsError(f"unknown normalisation {norm_type!r}; pass --norm one of {', '.join(NORM_TYPES)}")


def norm_needs_conv_bias(norm_layer: NormFactory) -> bool:
    """Whether a conv followed by this normalisation carries a bias, by the reference rule."""
    # The reference gives such convs a bias only before InstanceNorm; even with norm 'none' they
    # have none. Kept as is so that reference checkpoints load with strict key matching.
    return isinstance(norm_layer(1), nn.InstanceNorm2d)


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> None:
    """Initialise conv/linear weights (bias 0) and batch-norm scales ~ N(1, gain) in place."""
    if init_type not in INIT_TYPES:
        raise OptionsError(f"unknown initialisation {init_type!r}; pass --init_type one of {', '.join(INIT_TYPES)}")

    def init_module(module: nn.Module) -> None:
        if isinstance(module, _WEIGHTED_LAYERS):
            if init_type == "normal":
                init.normal_(module.weight, 0.0, init_gain)
            elif init_type == "xavier":
                init.xavier_normal_(module.weight, gain=init_gain)
            elif init_type == "kaiming":
                # The reference ignores the gain here.
                init.kaiming_normal_(module.weight, a=0, mode="fan_in")
            else:
                init.orthogonal_(module.weight, gain=init_gain)
            if module.bias is not None:
                init.constant_(module.bias, 0.0)
        elif isinstance(module, _BATCH_NORMS) and module.weight is not None:
            init.normal_(module.weight, 1.0, init_gain)
            init.constant_(module.bias, 0.0)

    logger.debug("initialising %s with %s (gain %g)", type(net).__name__, init_type, init_gain)
    net.apply(init_module)
