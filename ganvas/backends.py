"""Inference backends: a model's inference networks run by PyTorch, ONNX Runtime or OpenVINO on the CPU.

`attach` wraps each inference network of a loaded model (or a bare network file) in a `GraphNet`.
On the CPU a GraphNet exports its network to ONNX on first use, with dynamic batch, height and
width, and keeps the graph next to the run (`<run>/export/<network>_<epoch>.onnx`) with a record of
the weights it was made from (`.json`): a graph whose weights, file or making changed is made again.
Each graph backend is checked against eager PyTorch on inputs of two sizes before it is used (largest
difference at most TOLERANCE); one that fails, or cannot run the network at all, is left out with one
line saying why, and torch runs instead. `auto` times every usable backend on the first input of each
size and keeps the fastest for that size, in memory and in `<run>/export/auto.json`, so a later run
reuses the choice. On a GPU, under autocast (bf16 / fp16), with gradients or with train-mode layers
(--paper_mode's batch statistics and seeded dropout, which a graph of eval-mode layers cannot
reproduce), torch runs the network.

`--num_threads_infer` threads (default: the CPUs this process may use) for every backend, torch too,
so the timings compare like with like.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import json
import logging
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ganvas.errors import DataError, OptionsError
from ganvas.files import atomic_write, atomic_write_text
from ganvas.nets import net_size
from ganvas.safe import load_json, read_verified

log = logging.getLogger("ganvas")

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
GRAPH_BACKENDS = ("onnxruntime", "openvino")
# The package each graph backend needs, and the extra that installs it.
PACKAGES = {"onnxruntime": ("onnxruntime", "export"), "openvino": ("openvino", "openvino")}
# Largest difference from eager PyTorch a graph backend may show on the check's inputs.
TOLERANCE = 1e-4
# Largest side the dynamic height and width may take, in pixels.
MAX_SIDE = 8192
# Bumped when the way graphs are made changes, so that older cached graphs are made again.
GRAPH_VERSION = 1
AUTO_FILE = "auto.json"

Runner = Callable[[list[np.ndarray]], np.ndarray]


# ---------------------------------------------------------------------------------------------------
# What is installed


def installed(backend: str) -> bool:
    """True when the backend's package can be imported (torch always)."""
    return backend == "torch" or importlib.util.find_spec(PACKAGES[backend][0]) is not None


def installed_backends() -> list[str]:
    """torch, then the graph backends whose packages are installed."""
    return ["torch"] + [b for b in GRAPH_BACKENDS if installed(b)]


def backend_version(backend: str) -> str:
    """The backend's package version, e.g. 'onnxruntime 1.32.0'."""
    module = torch if backend == "torch" else __import__(PACKAGES[backend][0])
    return f"{backend} {module.__version__.split('-')[0]}"


def check_backend(backend: str) -> None:
    """Refuse an unknown backend, or a graph backend whose package is missing, in one sentence."""
    if backend not in BACKENDS:
        raise OptionsError(f"--backend {backend} is not one of {', '.join(BACKENDS)}")
    if backend in GRAPH_BACKENDS and not installed(backend):
        package, extra = PACKAGES[backend]
        raise OptionsError(
            f"--backend {backend} needs the {package} package: pip install 'ganvas[{extra}]', or use "
            f"--backend auto (the fastest installed backend) or torch"
        )


def cpu_threads() -> int:
    """The CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch on `threads` intra-op threads, and put the previous number back."""
    before = torch.get_num_threads()
    if threads and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads and threads != before:
            torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------------
# ONNX export (also what `ganvas export` writes)


def dynamic_shapes(example: Sequence[Tensor], multiple: int) -> tuple[dict[int, Any], ...]:
    """Batch free; height and width of every map input any multiple of the stride, from two strides up.

    Inputs whose height and width are 1 (a latent vector) keep them.
    """
    dim = torch.export.Dim
    batch = dim("batch", min=1, max=4096)
    top = max(2, MAX_SIDE // multiple)
    if multiple > 1:
        height, width = multiple * dim("height_steps", min=2, max=top), multiple * dim("width_steps", min=2, max=top)
    else:
        height, width = dim("height", min=2, max=MAX_SIDE), dim("width", min=2, max=MAX_SIDE)
    shapes = []
    for t in example:
        shape: dict[int, Any] = {0: batch}
        if _is_map(t):
            shape.update({2: height, 3: width})
        shapes.append(shape)
    return tuple(shapes)


def _is_map(x: Tensor) -> bool:
    """True for N x C x H x W inputs with a height and width (not a latent vector, N x nz or N x nz x 1 x 1)."""
    return x.dim() == 4 and x.shape[-1] * x.shape[-2] > 1


def export_onnx(
    net: nn.Module, names: list[str], example: tuple[Tensor, ...], multiple: int, path: Path, opset: int | None
) -> None:
    """Write net as an ONNX graph (torch.export) with dynamic batch and sizes; the exporter's chatter is muted."""
    if importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None:
        raise OptionsError("ONNX export needs the onnx and onnxscript packages: pip install 'ganvas[export]'")
    # The exporter's notes (renamed axes, skipped torchvision ops, optimiser passes) are not for users.
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quiet]
    try:
        for logger in quiet:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                example,
                dynamo=True,
                dynamic_shapes=dynamic_shapes(example, multiple),
                input_names=names,
                output_names=["output"],
                opset_version=opset,
                verbose=False,
            )
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    program.save(str(path))


def first_line(err: BaseException) -> str:
    """The first line of the message of an exception's root cause (exporters wrap theirs and write pages)."""
    while err.__cause__ is not None:
        err = err.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # no terminal colours
    return text.splitlines()[0][:300] if text else type(err).__name__


# ---------------------------------------------------------------------------------------------------
# Runners: a graph (ONNX bytes) as a function of NumPy arrays


def onnxruntime_runner(graph: bytes, names: list[str], threads: int, precision: str = "fp32") -> Runner:
    """An ONNX Runtime session on the CPU with `threads` threads (no spinning between runs); fp32 only."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Idle threads sleep instead of spinning, so torch work between runs gets the CPUs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        return session.run(None, dict(zip(names, arrays)))[0]

    return run


_OPENVINO_CORE: Any = None


def openvino_runner(graph: bytes, names: list[str], threads: int, precision: str = "fp32") -> Runner:
    """OpenVINO on the CPU in fp32 or bf16 (`precision`), compiled once with the graph's dynamic shapes
    (as fast as static ones here, measured, and no compile per new size)."""
    import openvino

    global _OPENVINO_CORE
    if _OPENVINO_CORE is None:
        _OPENVINO_CORE = openvino.Core()
    # f32 for fp32: CPUs with bf16 units would otherwise run in bf16 and miss the tolerance.
    config = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    request = _OPENVINO_CORE.compile_model(_OPENVINO_CORE.read_model(graph), "CPU", config).create_infer_request()

    def run(arrays: list[np.ndarray]) -> np.ndarray:
        request.infer(dict(zip(names, arrays)))
        return np.array(request.get_output_tensor(0).data, copy=True)  # the request reuses its buffer

    return run


RUNNERS: dict[str, Callable[[bytes, list[str], int, str], Runner]] = {
    "onnxruntime": onnxruntime_runner,
    "openvino": openvino_runner,
}
# The number formats each graph backend runs (--precision; torch's autocast around the call says which).
PRECISIONS = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}
# bf16 outputs are checked against fp32 eager: at most this, or twice torch's own bf16 difference.
BF16_TOLERANCE = 0.1


# ---------------------------------------------------------------------------------------------------
# The wrapped network


def fingerprint(net: nn.Module) -> str:
    """SHA-256 of a network's weights and buffers (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _train_mode_layers(net: nn.Module) -> bool:
    kinds = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    return any(isinstance(m, kinds) and m.training for m in net.modules())


def _size_key(inputs: Sequence[Tensor]) -> str:
    """'256x256' for the first input's height and width (what a backend's speed depends on besides the net).

    Inputs without a height and width (latent vectors) give their other sides, e.g. '100x1x1'.
    """
    x = inputs[0]
    return "x".join(str(int(n)) for n in (x.shape[-2:] if _is_map(x) else x.shape[1:]))


def _precision() -> str:
    """The number format the caller asked for: bf16 under CPU autocast to bf16, else fp32."""
    return "bf16" if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16 else "fp32"


def _area(key: str) -> float:
    """The number of pixels of a size key ('256x512'), 0 for keys without one."""
    try:
        return float(np.prod([int(n) for n in key.split(" ")[0].split("x")]))
    except ValueError:
        return 0.0


class GraphNet(nn.Module):
    """A network run by the chosen backend on the CPU; torch runs it wherever a graph cannot.

    `module` is the torch network (what checkpoints, export and `speed.unwrap` see). `name` names
    the cached graph (`G_latest`); `cache_dir` is where graphs and auto choices are kept (None: a
    temporary folder). After a call, `used` maps each input size ('256x256') to the backend that ran
    it, `seconds` holds auto's timings and `reasons` why a backend was left out.
    """

    def __init__(self, module: nn.Module, name: str, backend: str, cache_dir: Path | None, threads: int = 0):
        super().__init__()
        check_backend(backend)
        self.module = module
        self.name = name
        self.requested = backend
        self.cache_dir = cache_dir
        self.threads = threads or cpu_threads()
        # torch keeps its own thread count only when it was asked for without a count.
        self._torch_threads = bool(threads) or backend != "torch"
        self.size_multiple = net_size(module)
        self.min_side = net_size(module, "min_side")
        self.used: dict[str, str] = {}
        self.seconds: dict[str, dict[str, float]] = {}
        self.reasons: dict[str, str] = {}
        self._runners: dict[str, Runner | None] = {}  # by "<backend> <precision>"
        self._tolerance: dict[str, float] = {}  # bf16's, from the check
        self._graph: tuple[bytes, list[str]] | None = None
        self._from_cache = False  # whether self._graph was read from the cache (a failing one is made again)
        self._fingerprint: str | None = None

    def extra_repr(self) -> str:
        return f"name={self.name!r}, backend={self.requested!r}, threads={self.threads}"

    # --- running ----------------------------------------------------------------------------------
    def forward(self, *inputs: Tensor) -> Tensor:
        if self.requested == "torch" or not self._graph_can_run(inputs):
            return self._torch(inputs)
        precision = _precision()
        key = _size_key(inputs) + ("" if precision == "fp32" else f" {precision}")
        backend = self.used.get(key)
        if backend is None:
            backend, out = self._choose(key, inputs, precision)
            self.used[key] = backend
            if out is not None:
                return out
        if backend == "torch":
            return self._torch(inputs)
        return self._run(backend, inputs, precision)

    def _torch(self, inputs: Sequence[Tensor]) -> Tensor:
        on_cpu = inputs[0].device.type == "cpu"
        with torch_threads(self.threads if on_cpu and self._torch_threads else 0):
            return self.module(*inputs)

    def _run(self, backend: str, inputs: Sequence[Tensor], precision: str) -> Tensor:
        runner = self._runners[f"{backend} {precision}"]
        assert runner is not None
        arrays = [x.detach().contiguous().numpy() for x in inputs]
        return torch.from_numpy(np.ascontiguousarray(runner(arrays)))

    def _say_once(self, backend: str, reason: str) -> None:
        """Say why `backend` ("all": every graph backend) does not run this network, once per network and backend.

        A warning when a graph backend was asked for; a note (info) when auto chose around it.
        """
        if self.reasons.get(backend) == reason:
            return
        self.reasons[backend] = reason
        who = "the graph backends" if backend == "all" else backend
        if self.requested == "auto":
            log.info("%s runs on torch, not %s: %s", self.name, who, reason)
        else:
            log.warning("%s runs on torch, not %s: %s", self.name, who, reason)

    def _graph_can_run(self, inputs: Sequence[Tensor]) -> bool:
        """False (with the reason said once when a graph backend was asked for) where torch must run."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.module.parameters()):
            return False  # training or gradients through the network: only torch has them
        if inputs[0].device.type != "cpu":
            if self.requested != "auto":  # auto means torch on GPUs
                self._say_once("all", f"the graph backends run on the CPU and this network is on {inputs[0].device}")
            return False
        reason = ""
        if torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") != torch.bfloat16:
            reason = f"the graph backends do not run {torch.get_autocast_dtype('cpu')} on the CPU"
        elif any(x.dtype != torch.float32 for x in inputs):
            reason = f"it takes {', '.join(sorted({str(x.dtype) for x in inputs}))} inputs; graphs are made for fp32"
        elif _train_mode_layers(self.module):
            reason = (
                "its batch norm or dropout runs in train mode (--paper_mode: statistics of each image and "
                "dropout drawn from torch's seeded generator), which a graph of eval-mode layers does not reproduce"
            )
        if reason:
            self._say_once("all", reason)
            return False
        return True

    def _choose(self, key: str, inputs: Sequence[Tensor], precision: str) -> tuple[str, Tensor | None]:
        """The backend for inputs of this size and precision: the one asked for, or auto's fastest (with
        the output it made)."""
        if self.requested != "auto":
            usable = self._runner(self.requested, inputs, precision) is not None
            return (self.requested, None) if usable else ("torch", None)
        candidates = [b for b in installed_backends()[1:] if precision in PRECISIONS[b]]
        if not candidates:
            return "torch", None
        saved = self._saved_choice(key) or self._similar_choice(key)
        if saved == "torch" or (saved in candidates and self._runner(saved, inputs, precision) is not None):
            return saved, None
        usable = [b for b in candidates if self._runner(b, inputs, precision) is not None]
        if not usable:
            return "torch", None
        return self._measure(key, inputs, usable, precision)

    def _similar_choice(self, key: str) -> str | None:
        """The backend measured at a size of this network within half to twice this size's area, if any.

        Folders of photos come in many sizes; the fastest backend changes little between near sizes, so
        auto measures again only for sizes unlike any measured so far.
        """
        area, precision = _area(key), key.partition(" ")[2]
        near = [
            (abs(np.log(_area(k) / area)), k)
            for k in self.seconds
            if area and k.partition(" ")[2] == precision and 0.5 <= _area(k) / area <= 2
        ]
        if not near:
            return None
        measured = self.seconds[min(near)[1]]
        return min(measured, key=measured.get) if measured else None

    def _measure(self, key: str, inputs: Sequence[Tensor], usable: list[str], precision: str) -> tuple[str, Tensor]:
        """Time torch and each usable backend on these inputs (best of two after a warm-up); keep the fastest."""
        outputs: dict[str, Tensor] = {}
        seconds: dict[str, float] = {}
        for backend in ["torch", *usable]:
            run = (
                (lambda: self._torch(inputs))
                if backend == "torch"
                else (lambda b=backend: self._run(b, inputs, precision))
            )
            outputs[backend] = run()
            times = []
            for _ in range(2):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            seconds[backend] = min(times)
        tolerance = TOLERANCE if precision == "fp32" else 2 * self._tolerance[precision]
        for backend in usable:  # the check on the real input too (bf16: against torch's bf16, so twice)
            diff = float((outputs[backend].float() - outputs["torch"].float()).abs().max())
            if not diff <= tolerance:
                self._say_once(backend, f"its output differs from torch's by {diff:.2g} at {key}")
                del seconds[backend]
        best = min(seconds, key=seconds.get)
        self.seconds[key] = seconds
        log.info(
            "auto: %s at %s runs on %s (%s per call)",
            self.name,
            key,
            best,
            ", ".join(f"{b} {s:.4f} s" for b, s in seconds.items()),
        )
        self._save_choice(key, best, seconds)
        return best, outputs[best]

    # --- graphs and their checks ------------------------------------------------------------------
    def _runner(self, backend: str, inputs: Sequence[Tensor], precision: str) -> Runner | None:
        """The checked runner of `backend` in `precision`, made once; None (reason said) when it cannot run
        this network."""
        slot = f"{backend} {precision}"
        if slot in self._runners:
            return self._runners[slot]
        if precision not in PRECISIONS[backend]:
            self._say_once(backend, f"it runs {' and '.join(PRECISIONS[backend])} only, not {precision}")
            self._runners[slot] = None
            return None
        runner: Runner | None = None
        for attempt in range(2):  # a cached graph that fails is made again once
            graph = self._graph_bytes(inputs, rebuild=attempt > 0)
            if graph is None:
                break
            data, names = graph
            try:
                runner = RUNNERS[backend](data, names, self.threads, precision)
                diff, tolerance = self._check(runner, inputs, precision)
            except Exception as err:  # the runtimes raise their own types for graphs they cannot run
                reason, runner = f"it cannot run the graph ({first_line(err)})", None
            else:
                if diff <= tolerance:
                    break
                # A graph made again from the same weights would differ the same way: no second attempt.
                self._say_once(backend, f"its output differs from torch's by {diff:.2g} (more than {tolerance:.2g})")
                runner = None
                break
            if not self._from_cache:
                self._say_once(backend, reason)
                break
            log.info("the cached graph of %s failed with %s (%s); making it again", self.name, backend, reason)
        self._runners[slot] = runner
        return runner

    def _check(self, runner: Runner, inputs: Sequence[Tensor], precision: str) -> tuple[float, float]:
        """Largest difference between runner and fp32 eager torch on random inputs of two sizes and batches,
        and the tolerance: TOLERANCE for fp32; for bf16 BF16_TOLERANCE or twice torch's own bf16 difference.

        Sizes other than the export's, one side a single stride where that is 64 px or more (below the
        export's range, so the check shows the graph is not tied to it), at least 64 px a side: on
        smaller maps the deepest instance norms see a few pixels and magnify rounding differences.
        """
        worst, own = 0.0, 0.0
        side = self._round(max(64, self.min_side))
        for seed, (batch, height, width) in enumerate([(1, side, 2 * side), (2, 2 * side, side)]):
            example = self._example(inputs, batch, height, width, seed + 1)
            got = torch.from_numpy(np.asarray(runner([x.numpy() for x in example]))).float()
            with torch.no_grad(), torch_threads(self.threads):
                with torch.autocast("cpu", enabled=False):
                    expected = self.module(*example)
                if precision == "bf16":
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        own = max(own, float((self.module(*example).float() - expected).abs().max()))
            if got.shape != expected.shape:
                return float("inf"), 0.0
            worst = max(worst, float((got - expected).abs().max()))
        if precision == "fp32":
            return worst, TOLERANCE
        self._tolerance[precision] = max(BF16_TOLERANCE, 2 * own)
        return worst, self._tolerance[precision]

    def _round(self, pixels: int) -> int:
        """pixels rounded up to the network's multiple."""
        return -(-pixels // self.size_multiple) * self.size_multiple

    def _example(self, inputs: Sequence[Tensor], batch: int, height: int, width: int, seed: int) -> tuple:
        """Random inputs like `inputs` in [-1, 1], maps of height x width."""
        gen = torch.Generator().manual_seed(seed)
        return tuple(
            torch.rand(batch, *((x.shape[1], height, width) if _is_map(x) else x.shape[1:]), generator=gen) * 2 - 1
            for x in inputs
        )

    def _files(self) -> tuple[Path, Path]:
        if self.cache_dir is None:
            self.cache_dir = Path(tempfile.mkdtemp(prefix="ganvas-graphs-"))
        return self.cache_dir / f"{self.name}.onnx", self.cache_dir / f"{self.name}.json"

    def _record(self, inputs: Sequence[Tensor]) -> dict[str, Any]:
        """What a cached graph must have been made from to be used."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.module)
        return {
            "weights_sha256": self._fingerprint,
            "inputs": [list(x.shape[1:]) if not _is_map(x) else [int(x.shape[1]), "H", "W"] for x in inputs],
            "graph_version": GRAPH_VERSION,
            "torch": torch.__version__,
        }

    def _graph_bytes(self, inputs: Sequence[Tensor], rebuild: bool = False) -> tuple[bytes, list[str]] | None:
        """The ONNX graph of the network (cached beside the run), made when missing, stale or damaged."""
        if self._graph is not None and not rebuild:
            return self._graph
        names = ["input"] + [f"input_{i}" for i in range(1, len(inputs))]
        graph_file, record_file = self._files()
        wanted = self._record(inputs)
        self._from_cache = False
        if not rebuild and graph_file.is_file() and record_file.is_file():
            try:
                record = load_json(record_file, "the cached graph's record", "it is made again")
                if isinstance(record, dict) and {k: record.get(k) for k in wanted} == wanted:
                    self._graph = (read_verified(graph_file, record.get("graph_sha256", ""), "cached graph"), names)
                    self._from_cache = True
                    return self._graph
                log.info("the cached graph %s was made from other weights or settings; making it again", graph_file)
            except (DataError, OSError, ValueError) as err:
                log.info("%s; making it again", first_line(err))
        return self._make_graph(graph_file, record_file, wanted, names, inputs)

    def _make_graph(
        self, graph_file: Path, record_file: Path, record: dict, names: list[str], inputs: Sequence[Tensor]
    ) -> tuple[bytes, list[str]] | None:
        m = self.size_multiple  # at least two strides a side, the export's range (one would be specialised)
        example = self._example(
            inputs, 2, max(3 * m, self._round(self.min_side)), max(2 * m, self._round(self.min_side)), 0
        )
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "graph.onnx"
                # An fp32 graph, also when called under autocast (bf16 is the runtime's choice).
                with torch_threads(self.threads), torch.autocast("cpu", enabled=False):
                    export_onnx(self.module, names, example, self.size_multiple, path, None)
                data = path.read_bytes()
        except OptionsError as err:  # onnx / onnxscript missing
            self._say_once("all", str(err))
            return None
        except Exception as err:  # the exporter raises many types
            self._say_once("all", f"it could not be exported to ONNX ({first_line(err)})")
            return None
        self._graph = (data, names)
        log.info("made the ONNX graph of %s in %.1f s", self.name, time.perf_counter() - start)
        try:
            atomic_write(graph_file, lambda tmp: tmp.write_bytes(data))
            record = {**record, "graph_sha256": hashlib.sha256(data).hexdigest()}
            atomic_write_text(record_file, json.dumps(record, indent=2))
        except Exception as err:  # a read-only run folder (WriteError): keep it in memory
            log.info("could not keep the graph of %s in %s (%s); made again next time", self.name, graph_file, err)
        return self._graph

    # --- auto's choices, kept beside the graphs ----------------------------------------------------
    def _choice_key(self, key: str) -> str:
        return f"{key}|{self.threads} threads"

    def _saved_choice(self, key: str) -> str | None:
        """The backend an earlier run measured fastest for these weights, threads and size (all its sizes
        are taken into `seconds`, for _similar_choice)."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.module)
        path = self._files()[0].parent / AUTO_FILE
        if not path.is_file():
            return None
        suffix = self._choice_key("")
        try:
            saved = load_json(path, "the auto choices", "they are measured again")
            entry = saved.get(self.name, {}) if isinstance(saved, dict) else {}
            if entry.get("weights_sha256") != self._fingerprint:
                return None
            for name, choice in entry.get("choices", {}).items():
                if name.endswith(suffix) and name[: -len(suffix)] not in self.seconds:
                    self.seconds[name[: -len(suffix)]] = {str(b): float(t) for b, t in choice["seconds"].items()}
        except (DataError, OSError, ValueError, AttributeError, TypeError, KeyError):
            return None
        measured = self.seconds.get(key)
        return min(measured, key=measured.get) if measured else None

    def _save_choice(self, key: str, backend: str, seconds: dict[str, float]) -> None:
        path = self._files()[0].parent / AUTO_FILE
        try:
            saved = load_json(path, "the auto choices", "they are measured again") if path.is_file() else {}
        except DataError:
            saved = {}
        saved = saved if isinstance(saved, dict) else {}
        entry = saved.get(self.name) if isinstance(saved.get(self.name), dict) else {}
        if entry.get("weights_sha256") != self._fingerprint:
            entry = {"weights_sha256": self._fingerprint, "choices": {}}
        entry.setdefault("choices", {})[self._choice_key(key)] = {"backend": backend, "seconds": seconds}
        saved[self.name] = entry
        with contextlib.suppress(Exception):  # a read-only folder: measured again next time
            atomic_write_text(path, json.dumps(saved, indent=2))


# ---------------------------------------------------------------------------------------------------
# Attaching and reporting


def attach(
    nets: dict[str, nn.Module], keys: Sequence[str], backend: str, cache_dir: Path | None, epoch: str, threads: int
) -> None:
    """Wrap nets[k] for each k in keys in a GraphNet named <k>_<epoch> (<k> without an epoch).

    Nothing is wrapped for torch with its own thread count.
    """
    check_backend(backend)
    if backend == "torch" and not threads:
        return
    for key in keys:
        if not isinstance(nets[key], GraphNet):
            nets[key] = GraphNet(nets[key], f"{key}_{epoch}" if epoch else key, backend, cache_dir, threads)


def torch_copy(net: nn.Module) -> nn.Module:
    """A deep copy of net with every GraphNet in it (or net itself) replaced by a copy of its torch module."""
    memo: dict[int, Any] = {id(m): copy.deepcopy(m.module) for m in net.modules() if isinstance(m, GraphNet)}
    return copy.deepcopy(net, memo)


def graph_nets(nets: dict[str, nn.Module]) -> dict[str, GraphNet]:
    return {k: n for k, n in nets.items() if isinstance(n, GraphNet)}


def backend_name(nets: dict[str, nn.Module]) -> str:
    """The backend that ran these networks: one name, or 'G_A: onnxruntime, G_B: torch' where they differ.

    Before anything ran, the backend asked for ('auto'); without GraphNets, 'torch'.
    """
    wrapped = graph_nets(nets)
    if not wrapped:
        return "torch"
    runs = {(k, size): b for k, net in wrapped.items() for size, b in net.used.items()}
    if not runs:
        return next(iter(wrapped.values())).requested
    names = list(dict.fromkeys(runs.values()))
    if len(names) == 1:
        return names[0]
    return ", ".join(f"{k} at {size}: {b}" for (k, size), b in runs.items())


def backend_sentences(nets: dict[str, nn.Module]) -> list[str]:
    """Plain sentences for a results page: which backend ran each network, how auto chose, and why not others."""
    wrapped = graph_nets(nets)
    if not wrapped:
        return [f"Inference backend: torch {torch.__version__.split('+')[0]} (eager PyTorch)."]
    sentences = []
    for key, net in wrapped.items():
        runs = ", ".join(f"{backend_version(b)} at {size}" for size, b in net.used.items()) or "torch"
        text = f"Inference backend of {key}: {runs}, {net.threads} CPU threads (--backend {net.requested})."
        for size in net.used:
            if size in net.seconds:
                seconds = net.seconds[size]
                text += f" Auto measured at {size}: " + ", ".join(f"{b} {s:.4f} s" for b, s in seconds.items()) + "."
        for backend, reason in net.reasons.items():
            who = "the graph backends" if backend == "all" else backend
            text += f" Not on {who}: {reason}."
        sentences.append(text)
    return sentences


def backend_summary(nets: dict[str, nn.Module]) -> dict[str, Any]:
    """The same for metrics.json."""
    wrapped = graph_nets(nets)
    return {
        "backend": backend_name(nets),
        "networks": {
            k: {
                "requested": n.requested,
                "threads": n.threads,
                "used": dict(n.used),
                "seconds": {size: t for size, t in n.seconds.items() if size in n.used},
                "not_used_because": dict(n.reasons),
            }
            for k, n in wrapped.items()
        },
    }
