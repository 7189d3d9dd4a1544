"""Export a translator's generator to ONNX or TorchScript with dynamic batch, height and width, and check it."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ganvas.api import Translator
from ganvas.backends import cpu_threads, export_onnx, installed, onnxruntime_runner, torch_copy
from ganvas.errors import ExportError, OptionsError
from ganvas.files import atomic_write
from ganvas.nets import net_size

log = logging.getLogger("ganvas")

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


@dataclass
class ExportResult:
    """What was written and how far the exported model's outputs are from the eager network's."""

    path: Path
    input_names: list[str]
    size_multiple: int
    max_abs_difference: float | None  # None when the check could not run (onnxruntime not installed)


# The exported graph's input names for each kind of input a translator declares.
INPUT_NAMES = {"image": "input", "label": "label", "instance": "instance", "style": "features"}


def _module(translator: Translator, fp16: bool) -> tuple[nn.Module, list[str]]:
    """The module to export, in eval mode (running batch-norm statistics, no dropout), and its input names."""
    net = torch_copy(translator.export_module).cpu().eval()  # the torch networks, whatever backend ran them
    return (net.half() if fp16 else net), [INPUT_NAMES[kind] for kind in translator.input_kinds]


def _size_multiple(translator: Translator) -> int:
    """The exported module's own multiple where it states one (vid2vid's spatial scales), else its generator's."""
    return max(net_size(translator.export_module), net_size(translator.network))


def example_inputs(
    translator: Translator, batch: int, height: int, width: int, fp16: bool, seed: int = 0
) -> tuple[Tensor, ...]:
    """Random inputs of the exported module's kinds: images in [-1, 1], label and instance ids, style maps."""
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float16 if fp16 else torch.float32
    inputs: list[Tensor] = []
    for kind in translator.input_kinds:
        if kind == "image":
            inputs.append((torch.rand(batch, translator.input_nc, height, width, generator=gen) * 2 - 1).to(dtype))
        elif kind == "label":
            inputs.append(torch.randint(0, translator.label_nc, (batch, 1, height, width), generator=gen))
        elif kind == "instance":  # Cityscapes-style ids, class * 1000 + k
            inputs.append(inputs[0] * 1000 + torch.randint(0, 2, (batch, 1, height, width), generator=gen))
        elif kind == "style":
            inputs.append(torch.randn(batch, translator.style_channels, height, width, generator=gen).to(dtype))
        else:
            raise ExportError(f"export cannot feed inputs of kind {kind!r}")
    return tuple(inputs)


def _export_torchscript(net: nn.Module, example: tuple[Tensor, ...], tmp: Path) -> None:
    with warnings.catch_warnings():
        # torch.jit is deprecated in favour of torch.export, and tracing notes shape-dependent Python
        # values; the export is checked at other sizes below instead.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, str(tmp))


def _run_exported(path: Path, fmt: str, names: list[str], inputs: tuple[Tensor, ...]) -> Tensor | None:
    """The exported file's output on inputs; None for ONNX without onnxruntime."""
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(path))
        with torch.no_grad():
            return loaded(*inputs)
    if not installed("onnxruntime"):
        log.warning(
            "onnxruntime is not installed, so the exported model was not checked (pip install 'ganvas[export]')"
        )
        return None
    run = onnxruntime_runner(path.read_bytes(), names, cpu_threads())
    return torch.from_numpy(np.asarray(run([t.numpy() for t in inputs])))


def check_export(
    path: Path, fmt: str, net: nn.Module, names: list[str], translator: Translator, fp16: bool
) -> float | None:
    """Largest absolute difference between the file and the eager net, on inputs of two sizes and batches."""
    multiple = _size_multiple(translator)
    worst: float | None = None
    for seed, (batch, h, w) in enumerate([(1, 3, 2), (2, 2, 4)]):
        inputs = example_inputs(translator, batch, h * multiple, w * multiple, fp16, seed=seed + 1)
        exported = _run_exported(path, fmt, names, inputs)
        if exported is None:
            return None
        with torch.no_grad():
            expected = net(*inputs)
        if exported.shape != expected.shape:
            raise ExportError(
                f"the exported {fmt} model gives shape {tuple(exported.shape)} for inputs of "
                f"{tuple(inputs[0].shape)}, the network {tuple(expected.shape)}"
            )
        diff = float((exported.float() - expected.float()).abs().max())
        worst = diff if worst is None else max(worst, diff)
    return worst


def export(
    translator: Translator,
    path: str | Path,
    fmt: str = "onnx",
    *,
    fp16: bool = False,
    opset: int | None = None,
    check: bool = True,
) -> ExportResult:
    """Write the translator's generator as ONNX or TorchScript (eval mode), with dynamic batch and sizes.

    Height and width may be any multiple of the network's stride (`size_multiple`, at least two
    strides); pad other sizes as `ganvas.load` does. The file is written atomically and, with
    `check`, run on inputs of two other sizes against the eager network (ONNX through onnxruntime).
    """
    if fmt not in FORMATS:
        raise OptionsError(f"--format {fmt} is not supported; use {' or '.join(FORMATS)}")
    path = Path(path)
    net, names = _module(translator, fp16)
    multiple = _size_multiple(translator)
    example = example_inputs(translator, 2, 3 * multiple, 2 * multiple, fp16)

    def write(tmp: Path) -> None:
        try:
            if fmt == "onnx":
                export_onnx(net, names, example, multiple, tmp, opset)
            else:
                _export_torchscript(net, example, tmp)
        except (OptionsError, OSError):
            raise
        except Exception as err:  # the exporters raise many types; name the first line of theirs
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(
                f"{fmt} export of {translator.description} failed ({first}); try the other "
                f"--format, or report it with the network's architecture"
            ) from err

    atomic_write(path, write)
    tolerance = 0.05 if fp16 else 1e-3
    try:
        difference = check_export(path, fmt, net, names, translator, fp16) if check else None
        if difference is not None and not difference <= tolerance:  # also NaN
            raise ExportError(
                f"the exported {fmt} model differs from the network by up to {difference} (more than {tolerance})"
            )
    except Exception as err:  # onnxruntime's errors are not RuntimeErrors; an unchecked file must not stay
        path.unlink(missing_ok=True)
        raise ExportError(
            f"{err}; {path} was removed; try the other --format, or report it with the network's architecture"
        ) from err
    return ExportResult(path, names, multiple, difference)
