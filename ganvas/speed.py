"""Mixed precision, memory layout and compilation, shared by the trainer and `ganvas bench`."""

from __future__ import annotations

import contextlib
import functools
import logging
from typing import Any

import torch

from ganvas.errors import OptionsError

log = logging.getLogger("ganvas")

# The number formats of --precision (inference) and --amp (training; "off" is fp32).
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def amp_dtype(amp: str) -> torch.dtype:
    """The dtype of an --amp value."""
    return PRECISIONS["fp32" if amp == "off" else amp]


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to bf16/fp16 on device (losses cast their inputs to fp32 themselves); nothing for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()


def cpu_lacks_native(dtype: torch.dtype, device: torch.device) -> bool:
    """True when dtype on this CPU would take PyTorch's slow fallback convolutions.

    Without AVX512-BF16 / AMX (AVX512-FP16 for fp16) oneDNN has no half-precision kernels and
    convolutions run in a reference loop, 10 to 100 times slower than fp32.
    """
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return False
    check = (
        torch.ops.mkldnn._is_mkldnn_bf16_supported
        if dtype == torch.bfloat16
        else torch.ops.mkldnn._is_mkldnn_fp16_supported
    )
    return not check()


def warn_if_slow(dtype: torch.dtype, device: torch.device, flag: str) -> None:
    """Log once why a half-precision flag will be slow on this CPU."""
    if cpu_lacks_native(dtype, device):
        log.warning(
            "%s: this CPU (%s) has no native %s arithmetic, so PyTorch runs half-precision convolutions in "
            "a slow fallback, usually far slower than fp32; use fp32 here, or a GPU or a CPU with "
            "AVX512-BF16/AMX",
            flag,
            torch.backends.cpu.get_cpu_capability(),
            str(dtype).split(".")[-1],
        )


def accelerate(model: Any, opt: Any) -> None:
    """Apply --amp's gradient scaling, --channels_last and --compile to a freshly built model."""
    model.grad_scaling = opt.amp == "fp16"
    warn_if_slow(amp_dtype(opt.amp), model.device, f"--amp {opt.amp}")
    if opt.channels_last:
        for net in model.nets.values():
            net.to(memory_format=torch.channels_last)
    if opt.compile:
        # G and D apart, each with static shapes: a step switches D's gradients off and on, which
        # recompiles once per state and then reuses both graphs.
        for name, net in model.nets.items():
            if name[0] in "GD":
                model.nets[name] = torch.compile(net, dynamic=False)


def scaler_state(model: Any) -> dict[str, Any]:
    """The gradient scalers' states, for the run state."""
    return {name: scaler.state_dict() for name, scaler in model.scalers.items()}


def load_scaler_state(model: Any, state: dict[str, Any]) -> None:
    """Restore scalers saved by scaler_state (a run resumed without --amp fp16 leaves them unused)."""
    if not model.grad_scaling:
        return
    for name, saved in state.items():
        scaler = model.scalers.setdefault(name, torch.amp.GradScaler(model.device.type))
        scaler.load_state_dict(saved)


def parse_gpu_ids(gpu_ids: str) -> list[int]:
    """The GPU numbers of --gpu_ids ('0', '0,1'; '-1' for the CPU)."""
    try:
        return [int(i) for i in str(gpu_ids).split(",") if i.strip()]
    except ValueError:
        raise OptionsError(
            f"--gpu_ids {gpu_ids} is not a list of GPU numbers; pass e.g. 0 or 0,1, or -1 for the CPU"
        ) from None


def select_device(gpu_ids: str) -> torch.device:
    """The first GPU in --gpu_ids, or the CPU for -1 or when no GPU is present."""
    ids = parse_gpu_ids(gpu_ids)
    if not ids or ids[0] < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        _say_no_cuda()
        return torch.device("cpu")
    return torch.device("cuda", ids[0])


@functools.cache  # once per process: a command looks its device up several times (loading, translating ...)
def _say_no_cuda() -> None:
    log.info("no CUDA device found; running on the CPU (pass --gpu_ids -1 to say so)")


def pick_device(device: str | torch.device | None, default: str = "cpu") -> torch.device:
    """The device asked for (default when None); OptionsError for a GPU on a machine without one."""
    device = torch.device(default if device is None else device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OptionsError(
            f"device {str(device)!r} is not available (torch.cuda.is_available() is False); pass device='cpu' or None"
        )
    return device


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DataParallel, DDP or torch.compile wrappers."""
    while True:
        # `is None`, not `or`: bool() of a compiled module calls its len(), which most networks lack.
        inner = getattr(net, "module", None)
        if inner is None:
            inner = getattr(net, "_orig_mod", None)
        if inner is None:
            return net
        net = inner
