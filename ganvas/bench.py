"""`ganvas bench`: seconds per training step (or inference), images per second and peak memory.

Synthetic tensors of the model's input kinds, so data loading is not measured (the trainer logs
data time apart); warm-up steps first (compilation happens there), then the median of timed steps.
"""

from __future__ import annotations

import gc
import math
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganvas.backends import GraphNet, cpu_threads, torch_threads
from ganvas.errors import OptionsError
from ganvas.models import Model, create_model
from ganvas.options import resolve_options
from ganvas.registry import MODELS
from ganvas.speed import PRECISIONS, accelerate, amp_dtype, autocast, select_device


def bench_models() -> tuple[str, ...]:
    """The models bench can time: every registered model that trains."""
    return MODELS.names(trainable=True)


@dataclass
class BenchResult:
    """One configuration's figures."""

    label: str
    seconds: float  # median per step (or per batch at inference)
    images_per_second: float
    peak_mb: float
    memory_kind: str  # "CUDA allocated" or "process RSS"


def timed(fn: Callable[[], Any], warmup: int, steps: int, device: torch.device) -> float:
    """Median wall seconds of fn() after warm-up (synchronising CUDA around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets the peak resident set size (VmHWM) of this process
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # elsewhere the peak is the process's since it started


def _peak_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "CUDA allocated"
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024, "process RSS"
    except OSError:
        pass
    divisor = 2**20 if sys.platform == "darwin" else 2**10  # ru_maxrss: bytes on macOS, KB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / divisor, "process RSS since start"


def bench_options(model: str, size: int, batch_size: int, gpu_ids: str, **speed: Any) -> Any:
    """The model's published settings at `size` px, with what the model adds for bench (pix2pix: unet_<size>)."""
    given: dict[str, Any] = {
        "model": model,
        "seed": 0,
        "gpu_ids": gpu_ids,
        "batch_size": batch_size,
        "crop_size": size,
        "load_size": size,
    }
    given.update(MODELS.get(model).bench_options(size))
    given.update(speed)
    return resolve_options(given, "train")


def _inference(model: Model, batch: dict[str, Any]) -> Callable[[], Tensor]:
    """One generator pass on the batch's input, as translate runs it."""
    x = model.generator_input(batch)
    return lambda: model.run_generator(x)


def bench_one(
    model_name: str,
    size: int,
    batch_size: int,
    gpu_ids: str,
    infer: bool,
    steps: int,
    warmup: int,
    label: str,
    **speed: Any,
) -> BenchResult:
    """Build the model with `speed` options (amp, compile, channels_last) and time it."""
    opt = bench_options(model_name, size, batch_size, gpu_ids, **speed)
    device = select_device(opt.gpu_ids)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if opt.compile:
        torch._dynamo.reset()  # a fresh cache per configuration: earlier models' graphs count towards its limit
    torch.manual_seed(0)
    model = create_model(opt, device, train=not infer)  # inference needs no D, losses or optimisers
    accelerate(model, opt)
    batch = model.example_batch(size, batch_size)
    _reset_peak(device)
    if infer:
        model.set_mode(False)
        run = _inference(model, batch)

        def step() -> None:
            with torch.no_grad(), autocast(device, amp_dtype(opt.amp)):
                run()
    else:
        model.set_mode(True)

        def step() -> None:
            with autocast(device, amp_dtype(opt.amp)):
                model.train_step(batch)

    seconds = timed(step, warmup, steps, device)
    peak, kind = _peak_mb(device)
    return BenchResult(label, seconds, batch_size / seconds, peak, kind)


def run_bench(
    model: str,
    size: int,
    batch_size: int = 1,
    *,
    amp: str = "off",
    compile: bool = False,
    channels_last: bool = False,
    baseline: bool = False,
    infer: bool = False,
    steps: int = 10,
    warmup: int = 3,
    gpu_ids: str = "0",
    **options: Any,
) -> list[BenchResult]:
    """The configuration asked for, after plain fp32 eager in the same process when `baseline`."""
    if model not in bench_models():
        raise OptionsError(MODELS.unknown(model, bench_models()))
    speed = {"amp": amp, "compile": compile, "channels_last": channels_last, **options}
    label = (
        "+".join(
            [
                amp if amp != "off" else "fp32",
                *(["channels_last"] if channels_last else []),
                *(["compile"] if compile else []),
            ]
        )
        or "fp32"
    )
    results = []
    if baseline:
        results.append(
            bench_one(
                model,
                size,
                batch_size,
                gpu_ids,
                infer,
                steps,
                warmup,
                "fp32 eager (baseline)",
                **{**speed, "amp": "off", "compile": False, "channels_last": False},
            )
        )
    results.append(bench_one(model, size, batch_size, gpu_ids, infer, steps, warmup, label, **speed))
    return results


def format_table(results: list[BenchResult], what: str) -> str:
    """A plain-text table, with each row's speed-up over the first when there is more than one."""
    header = f"{'configuration':<28} {what + ' s':>10} {'images/s':>9} {'peak MB':>9}" + (
        f" {'speed-up':>9}" if len(results) > 1 else ""
    )
    lines = [header]
    for r in results:
        line = f"{r.label:<28} {r.seconds:>10.4f} {r.images_per_second:>9.2f} {r.peak_mb:>9.0f}"
        if len(results) > 1:
            line += f" {results[0].seconds / r.seconds:>8.2f}x"
        lines.append(line)
    lines.append(f"(peak memory: {results[0].memory_kind})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------
# Inference backends: torch eager against ONNX Runtime and OpenVINO on the CPU


@dataclass
class BackendRow:
    """One model's generator at one size on one backend."""

    model: str
    size: str  # "256x256"
    backend: str
    seconds: float  # median per image (batch 1)
    speedup: float  # torch eager's seconds / these
    max_difference: float  # largest absolute difference from torch eager's output
    note: str = ""  # why the backend did not run (then torch ran and the row says so)


def backend_bench(
    models: list[str],
    sizes: list[int],
    backends: list[str],
    steps: int = 5,
    warmup: int = 1,
    threads: int = 0,
    precision: str = "fp32",
) -> list[BackendRow]:
    """Seconds per image of each model's inference generator, published settings, at each size, on each backend.

    Every backend runs with the same number of threads (`threads`, default the CPUs this process may
    use); torch eager runs first in the same process and the ratio and difference are against it.
    `precision` bf16 runs every backend in bf16 (torch under autocast) and compares with fp32 eager.
    """
    threads = threads or cpu_threads()
    rows: list[BackendRow] = []
    for name in models:
        for size in sizes:
            rows.extend(_backend_rows(name, size, backends, steps, warmup, threads, precision))
            gc.collect()
    return rows


def _backend_rows(
    name: str, size: int, backends: list[str], steps: int, warmup: int, threads: int, precision: str
) -> list[BackendRow]:
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    model = create_model(bench_options(name, size, 1, "-1"), cpu, train=False)
    model.set_mode(False)
    x = model.generator_input(model.example_batch(size, 1))
    net = model.generator()
    key = next(k for k, n in model.nets.items() if n is net)
    label = "x".join(str(s) for s in x.shape[-2:]) if x.dim() == 4 and x.shape[-1] > 1 else f"{size} px (from noise)"
    dtype = PRECISIONS[precision]
    with torch.no_grad(), torch_threads(threads):
        expected = model.run_generator(x)  # fp32
        with autocast(cpu, dtype):
            own = float((model.run_generator(x).float() - expected).abs().max())
            base = timed(lambda: model.run_generator(x), warmup, steps, cpu)
    rows = [BackendRow(name, label, "torch", base, 1.0, own)]
    # One graph, made once, for every backend.
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), autocast(cpu, dtype):
        for backend in backends:
            if backend == "torch":
                continue
            graph = GraphNet(net, f"{name}_{size}", backend, Path(tmp), threads)
            model.nets[key] = graph  # the model's own generator pass (padding, latent shapes) on the graph
            out = model.run_generator(x)
            if backend not in graph.used.values():
                why = "; ".join(graph.reasons.values())
                rows.append(BackendRow(name, label, backend, math.nan, math.nan, math.nan, why))
                continue
            seconds = timed(lambda: model.run_generator(x), warmup, steps, cpu)
            diff = float((out.float() - expected).abs().max())
            rows.append(BackendRow(name, label, backend, seconds, base / seconds, diff))
    return rows


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform says."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def format_backend_table(rows: list[BackendRow]) -> str:
    """A Markdown table of backend_bench's rows."""
    lines = [
        "| model | size | backend | s / image | vs torch | max difference from fp32 torch |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        if r.note:
            lines.append(f"| {r.model} | {r.size} | {r.backend} | - | - | did not run: {r.note} |")
        else:
            lines.append(
                f"| {r.model} | {r.size} | {r.backend} | {r.seconds:.4f} | {r.speedup:.2f}x | {r.max_difference:.1e} |"
            )
    return "\n".join(lines)
