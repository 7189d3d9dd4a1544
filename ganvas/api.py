"""ganvas.load(): a trained run or a bare generator file as a translator of paths, PIL images, arrays and tensors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ganvas import color
from ganvas.backends import attach, backend_name, backend_summary, check_backend
from ganvas.data.io import check_label_mode, decode_image, read_image_alpha, read_label_map, tensor_to_uint8, uses_alpha
from ganvas.errors import CheckpointError, DataError, OptionsError
from ganvas.interop import load_network
from ganvas.models import load_for_inference
from ganvas.nets import LabelInputs, forward_padded, instance_edges, one_hot_labels
from ganvas.nets.colorization import LabOutputs
from ganvas.options import OPT_FILE, Options, paper_mode_from, resolve_options
from ganvas.speed import PRECISIONS, autocast, pick_device, select_device, warn_if_slow

log = logging.getLogger("ganvas")

# dtype= may be a name, a torch dtype or None (fp32).
DTYPES = {None: torch.float32, **PRECISIONS, **{d: d for d in PRECISIONS.values()}}
PRECISION_NAMES = {d: name for name, d in PRECISIONS.items()}

# What a batch of model inputs is turned into: N x C x H x W in [-1, 1] on the device.
Forward = Callable[[dict[str, Any]], Tensor]


def inference_dtype(dtype: Any, device: torch.device) -> torch.dtype:
    """The torch dtype of dtype= / --precision, refused where it cannot run."""
    if dtype not in DTYPES:
        raise OptionsError(
            f"dtype {dtype!r} is not supported; use torch.float32, torch.bfloat16 or torch.float16 "
            f"('fp32', 'bf16', 'fp16')"
        )
    chosen = DTYPES[dtype]
    if chosen == torch.float16 and device.type == "cpu":
        raise OptionsError("fp16 inference runs on GPUs; on the CPU use dtype=torch.bfloat16 or float32")
    warn_if_slow(chosen, device, "bf16 inference")
    return chosen


# ---------------------------------------------------------------------------------------------------
# Inputs and outputs


@dataclass
class _Item:
    """One input, decoded: the model-space tensor (1 x C x H x W) and how to give the result back."""

    tensor: Tensor
    kind: str  # "path", "pil", "array", "tensor"
    like: Any = None  # the input's dtype, device or layout details
    name: str = "input"
    alpha_dropped: bool = False  # the input had transparent pixels and the model takes no alpha channel
    hints: list = field(default_factory=list)  # colour hints (ganvas.hints.Hint) of a user-guided colouriser
    stream: tuple[str, int] | None = None  # (video, frame index) of a frame for a sequential run


def warn_alpha_dropped(names: Sequence[str], channels: int) -> None:
    """Say once, for all the inputs of one call or run, that their transparency was dropped."""
    if not names:
        return
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    log.warning(
        "%d input%s had transparent pixels (%s): this model takes %s, so the alpha channel was dropped and the "
        "colours stored under transparent pixels were translated as they are; flatten the images onto a "
        "background first to choose those colours",
        len(names),
        "s" if len(names) != 1 else "",
        shown,
        "RGB" if channels == 3 else "gray images",
    )


def _array_to_unit(array: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float array to float32 in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype.kind == "f":
        low, high = float(np.min(array)), float(np.max(array))
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
            raise DataError(
                f"float image arrays must hold values in [0, 1], this one holds {low} to {high}; divide "
                f"by its maximum (255 for 8-bit data), or pass a uint8 or uint16 array"
            )
        return array.astype(np.float32)
    raise DataError(
        f"image arrays must be uint8, uint16 or float, not {array.dtype}; convert it with array.astype(np.uint8)"
    )


def _image_item(x: Any, channels: int) -> _Item:
    """Decode one image input (path, PIL image, H x W [x C] array, [1 x] C x H x W tensor) for the model."""
    if isinstance(x, (str, PathLike)):
        image, dropped = read_image_alpha(Path(x), channels)
        return _Item(image[None] * 2 - 1, "path", name=str(x), alpha_dropped=dropped)
    if isinstance(x, Image.Image):
        unit = decode_image(x, channels, "the PIL image")
        dropped = channels != 4 and uses_alpha(x)
        return _Item(torch.from_numpy(unit)[None] * 2 - 1, "pil", x.mode, alpha_dropped=dropped)
    if isinstance(x, np.ndarray):
        if x.ndim == 2:
            x3, alpha = x[..., None], False
        elif x.ndim == 3 and x.shape[-1] in (1, 2, 3, 4):
            x3, alpha = x, x.shape[-1] in (2, 4)
        else:
            raise DataError(
                f"image arrays must be H x W or H x W x C with 1 to 4 channels, got shape {x.shape}; "
                f"for a batch pass a list of arrays"
            )
        x3 = _array_to_unit(x3)
        unit = decode_image(x3, channels, "the array", has_alpha=alpha)
        dropped = alpha and channels != 4 and bool(x3[..., -1].min() < 1)
        return _Item(torch.from_numpy(unit)[None] * 2 - 1, "array", (x.dtype, x.ndim), alpha_dropped=dropped)
    if isinstance(x, Tensor):
        batch = x[None] if x.dim() == 3 else x
        if batch.dim() != 4 or batch.shape[1] != channels or not batch.is_floating_point():
            raise DataError(
                f"image tensors must be float N x {channels} x H x W (or {channels} x H x W) in [-1, 1] "
                f"for this model, got {x.dtype} of shape {tuple(x.shape)}"
            )
        return _Item(batch.detach().float(), "tensor", (x.dtype, x.device, x.dim()))
    raise DataError(f"cannot translate a {type(x).__name__}; pass a path, a PIL image, a NumPy array or a tensor")


def _label_item(x: Any) -> _Item:
    """Decode one label or instance map (path, PIL image, H x W integer array, [N x 1 x] H x W tensor)."""
    if isinstance(x, (str, PathLike)):
        return _Item(torch.from_numpy(read_label_map(Path(x)))[None, None], "path", name=str(x))
    if isinstance(x, Image.Image):
        check_label_mode(x.mode, "the PIL label map")
        return _Item(torch.from_numpy(np.asarray(x).astype(np.int64))[None, None], "pil", x.mode)
    if isinstance(x, np.ndarray):
        if x.ndim != 2 or x.dtype.kind not in "iu":
            raise DataError(f"label and instance arrays must be H x W integer ids, got {x.dtype} of shape {x.shape}")
        return _Item(torch.from_numpy(x.astype(np.int64))[None, None], "array", (np.dtype(np.uint8), 3))
    if isinstance(x, Tensor):
        batch = x.reshape(1, 1, *x.shape) if x.dim() == 2 else x[:, None] if x.dim() == 3 else x
        if batch.dim() != 4 or batch.shape[1] != 1 or batch.is_floating_point():
            raise DataError(
                f"label and instance tensors must hold integer ids, N x 1 x H x W or H x W, got "
                f"{x.dtype} of shape {tuple(x.shape)}"
            )
        return _Item(batch.long(), "tensor", (torch.float32, x.device, 4))
    raise DataError(
        f"cannot read a label map from a {type(x).__name__}; pass a path, a PIL image, an integer "
        f"array or an integer tensor"
    )


def _give_back(out: Tensor, item: _Item) -> Any:
    """The translated N x C x H x W tensor in [-1, 1] as the kind of thing the input was."""
    if item.kind == "tensor":
        dtype, device, dim = item.like
        result = out.to(device=device, dtype=dtype if dtype.is_floating_point else torch.float32)
        return result[0] if dim == 3 else result
    image = tensor_to_uint8(out[0])  # H x W x C uint8
    if item.kind in ("path", "pil"):
        return Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    dtype, ndim = item.like
    unit = (out[0].float().cpu().clamp(-1, 1).numpy().transpose(1, 2, 0) + 1) / 2
    if dtype == np.uint8:
        array = image
    elif dtype == np.uint16:
        array = np.rint(unit * 65535).astype(np.uint16)
    else:
        array = unit.astype(dtype)
    return array[..., 0] if ndim == 2 and array.shape[-1] == 1 else array


# ---------------------------------------------------------------------------------------------------
# The translator


class Translator:
    """A trained generator that takes images (or label maps) of any size and kind and returns the same kind.

    Build one with `ganvas.load`. `translate(x)` takes a path (returns a PIL image), a PIL image, a
    NumPy array (H x W x C; uint8, uint16 or float in [0, 1]; returned in the same dtype), a tensor
    (N x C x H x W in [-1, 1]; returned likewise) or a list of them (returned as a list, same-sized
    items batched). Label translators (pix2pixHD) take label maps and optional instance maps.
    """

    def __init__(
        self,
        forward: Forward,
        *,
        input_nc: int,
        output_nc: int,
        device: torch.device,
        dtype: torch.dtype,
        network: nn.Module,
        export_module: nn.Module | None = None,
        label_nc: int = 0,
        uses_instances: bool = False,
        style_channels: int = 0,
        one_at_a_time: bool = False,
        seed: int = 0,
        batch_size: int = 8,
        description: str = "",
        model: Any = None,
        nets: dict[str, nn.Module] | None = None,
        image_space: str = "",
    ):
        self._forward = forward
        # The generator itself: it takes the encoded input (pix2pixHD: one-hot labels, then the
        # instance boundary map, then style_channels of style features).
        self.network = network
        # What export writes: the generator, or a module taking the inputs as translate takes them
        # (pix2pixHD's integer label and instance maps, encoded inside the graph).
        self.export_module = export_module if export_module is not None else network
        self.style_channels = style_channels
        self.input_nc, self.output_nc = input_nc, output_nc
        self.device, self.dtype = device, dtype
        self.label_nc, self.uses_instances = label_nc, uses_instances
        # Batch-norm layers in train mode (the paper's test setting) mix the images of a batch.
        self.one_at_a_time = one_at_a_time
        self.seed, self.batch_size = seed, batch_size
        self.description = description
        # The run's model (None for a bare network file): what editor() edits scenes with.
        self.model = model
        # The networks inference runs, by name, some wrapped in backends.GraphNet (what `backend` reports).
        self.nets = nets if nets is not None else {"G": network}
        # How image files become the input: "" (their pixels) or "lab_l" (RGB read, CIE L given).
        self.image_space = image_space

    @property
    def read_channels(self) -> int:
        """Channels image files are read with: 3 when the input is their CIE L, else input_nc."""
        return 3 if self.image_space == "lab_l" else self.input_nc

    def from_pixels(self, pixels: Tensor) -> Tensor:
        """N x read_channels x H x W pixels in [-1, 1] as the model's input (their L for colourisation)."""
        return color.encode(pixels)[0] if self.image_space == "lab_l" else pixels

    @property
    def backend(self) -> str:
        """What ran the networks: 'torch', 'onnxruntime' or 'openvino' ('auto' until something ran).

        Where networks or sizes ran on different backends, each is named ('G_A at 256x256: onnxruntime, ...').
        """
        return backend_name(self.nets)

    def backend_report(self) -> dict[str, Any]:
        """Per network: the backend asked for, the one used at each size, auto's timings and why others were not."""
        return backend_summary(self.nets)

    @property
    def takes_labels(self) -> bool:
        """True when translate() takes label maps (pix2pixHD with --label_nc > 0), not images."""
        return self.label_nc > 0

    @property
    def input_kinds(self) -> tuple[str, ...]:
        """The inputs of export_module, in order: ("image",) or ("label", ["instance"], ["style"])."""
        if not self.takes_labels:
            return ("image",)
        return ("label",) + (("instance",) if self.uses_instances else ()) + (("style",) if self.style_channels else ())

    def editor(self, label: Any, instance: Any = None, seed: int = 0) -> Any:
        """A ganvas.edit.SceneEditor of one scene, rendered by this run (pix2pixHD runs on label maps).

        `label` and `instance` are maps as translate() takes them (path, PIL, array, tensor), or
        `label` is a folder that SceneEditor.save wrote (its maps, styles and seed are used).
        """
        from ganvas.edit import SceneEditor

        if self.model is None or not self.takes_labels:
            what = "a bare network file" if self.model is None else "a run that translates images"
            raise OptionsError(
                f"the scene editor needs a pix2pixHD run on label maps, and this translator is {what}; "
                f"load the run folder: ganvas.load('checkpoints/<name>')"
            )
        if isinstance(label, (str, PathLike)) and Path(label).is_dir():
            return SceneEditor.open(self.model, label)
        maps = [_label_item(x).tensor for x in (label, instance) if x is not None]
        if any(m.shape[0] != 1 for m in maps):
            raise DataError(f"the editor edits one scene; got a batch of {maps[0].shape[0]} maps")
        return SceneEditor(self.model, maps[0][0, 0], maps[1][0, 0] if len(maps) > 1 else None, seed=seed)

    def __repr__(self) -> str:
        return f"Translator({self.description}, device={self.device}, dtype={self.dtype}, backend={self.backend})"

    def __call__(self, x: Any, instance: Any = None) -> Any:
        return self.translate(x, instance)

    def translate(
        self,
        x: Any,
        instance: Any = None,
        *,
        name: str | None = None,
        hints: Any = None,
        stream: tuple[str, int] | None = None,
    ) -> Any:
        """Translate one input or a list of inputs; see the class docstring for the kinds accepted.

        `name` names a non-path input: pix2pixHD style runs draw each instance's style from
        (cluster_seed, the file name, the instance id), and paths are named by their file.
        `hints` (user-guided colourisers): points (x, y, (r, g, b), patch) in the input's pixels, or
        {"x", "y", "rgb", "patch"} dicts; for a list of inputs, one list of points per input.
        `stream` = (video name, frame index): x is that frame of a video, for sequential runs (vid2vid),
        which make each frame from the frames before it; frame 0 (or a new name) starts the video anew.
        Without it a sequential run makes every input as the first frame of its own video.
        """
        many = isinstance(x, (list, tuple))
        inputs = list(x) if many else [x]
        if instance is not None and not self.takes_labels:
            raise OptionsError("instance maps go with label maps; this translator takes images")
        instances = (list(instance) if many else [instance]) if instance is not None else [None] * len(inputs)
        if len(instances) != len(inputs):
            raise DataError(f"{len(inputs)} inputs but {len(instances)} instance maps; give one per label map")
        items = [self._decode(a, b) for a, b in zip(inputs, instances)]
        if hints is not None:
            self._add_hints(items, hints if many else [hints])
        unnamed = {"pil": "a PIL image", "array": "an array"}
        dropped = [unnamed.get(item.kind, item.name) for item, _ in items if item.alpha_dropped]
        warn_alpha_dropped(dropped, self.input_nc)
        if name is not None:
            for item, _ in items:
                item.name = name
        if stream is not None:
            if many or items[0][0].tensor.shape[0] != 1:
                raise DataError("a video's frames go one at a time with stream=(name, index); pass one frame")
            items[0][0].stream = (str(stream[0]), int(stream[1]))
        results = self._run(items)
        return results if many else results[0]

    def suggest(self, image: Any, x: int, y: int, k: int = 9, hints: Any = None) -> list:
        """The k most likely colours at pixel (x, y) of an image, [((r, g, b), probability), ...], from a
        user-guided colouriser's colour distribution there (with `hints` given so far), each in the sRGB
        gamut at that pixel's lightness."""
        from ganvas.hints import parse_hints

        if not self.takes_hints:
            raise OptionsError(f"{self.description} suggests no colours; that takes a --model colorization_hints run")
        item, _ = self._decode(image, None)
        height, width = item.tensor.shape[-2:]
        if not (0 <= x < width and 0 <= y < height):
            raise DataError(f"({x}, {y}) is outside the {width} x {height} image")
        given = parse_hints(hints or [], width, height)
        with self._context():
            return self.model.suggest(item.tensor[:1].to(self.device), int(x), int(y), k, given)

    @property
    def takes_hints(self) -> bool:
        """True for user-guided colourisers: translate takes hints= and suggest() offers colours."""
        return self.model is not None and self.model.inference_spec().takes_hints

    # --- internals ---------------------------------------------------------------------------
    def _add_hints(self, items: list[tuple[_Item, Tensor | None]], given: list) -> None:
        from ganvas.hints import parse_hints

        if not self.takes_hints:
            raise OptionsError(f"{self.description} takes no colour hints; that takes a --model colorization_hints run")
        if len(given) != len(items):
            raise DataError(f"{len(items)} inputs but {len(given)} lists of hints; give one list per input")
        for (item, _), points in zip(items, given):
            if item.tensor.shape[0] != 1:
                raise DataError("hints go with one image at a time; pass a list of images and a list of hint lists")
            item.hints = parse_hints(points, item.tensor.shape[-1], item.tensor.shape[-2])

    def _decode(self, x: Any, instance: Any) -> tuple[_Item, Tensor | None]:
        if not self.takes_labels:
            # Paths, PIL images and arrays are read as pixels; tensors are taken as the model's input.
            pixels = not isinstance(x, Tensor)
            item = _image_item(x, self.read_channels if pixels else self.input_nc)
            if pixels:
                item.tensor = self.from_pixels(item.tensor)
            return item, None
        label = _label_item(x)
        inst = _label_item(instance).tensor if instance is not None else None
        if inst is not None and (inst.shape[0], *inst.shape[-2:]) != (label.tensor.shape[0], *label.tensor.shape[-2:]):
            raise DataError(
                f"the instance map is {tuple(inst.shape)} and the label map {tuple(label.tensor.shape)} "
                f"(N x 1 x H x W); give one instance map of the same size per label map"
            )
        return label, inst

    def _run(self, items: list[tuple[_Item, Tensor | None]]) -> list[Any]:
        """Run every image of every item, same sizes together, and give each item back as its own kind."""
        # Units of one image each: (item, image) in the item's batch.
        units = [(i, n) for i, (item, _) in enumerate(items) for n in range(item.tensor.shape[0])]
        outputs: dict[tuple[int, int], Tensor] = {}
        for group in self._groups(units, items):
            batch = self._batch(group, items)
            with self._context():
                out = self._forward(batch).float()
            for k, unit in enumerate(group):
                outputs[unit] = out[k : k + 1]
        return [
            _give_back(torch.cat([outputs[(i, n)] for n in range(item.tensor.shape[0])]), item)
            for i, (item, _) in enumerate(items)
        ]

    def _groups(
        self, units: list[tuple[int, int]], items: list[tuple[_Item, Tensor | None]]
    ) -> Iterator[list[tuple[int, int]]]:
        """Units to run together: same size, at most batch_size, one when layers mix or draw per batch."""
        limit = 1 if self.one_at_a_time else self.batch_size
        by_size: dict[tuple[int, ...], list[tuple[int, int]]] = {}
        for unit in units:
            by_size.setdefault(tuple(items[unit[0]][0].tensor.shape[-2:]), []).append(unit)
        for same in by_size.values():
            for start in range(0, len(same), limit):
                yield same[start : start + limit]

    def _batch(self, group: list[tuple[int, int]], items: list[tuple[_Item, Tensor | None]]) -> dict[str, Any]:
        batch = self._inputs(group, items)
        streams = [items[i][0].stream for i, _ in group]
        if any(streams):
            batch["stream"] = [s[0] if s else None for s in streams]
            batch["frame"] = [s[1] if s else 0 for s in streams]
        return batch

    def _inputs(self, group: list[tuple[int, int]], items: list[tuple[_Item, Tensor | None]]) -> dict[str, Any]:
        images = torch.cat([items[i][0].tensor[n : n + 1].to(self.device) for i, n in group])
        names = [items[i][0].name for i, _ in group]
        if not self.takes_labels:
            if any(items[i][0].hints for i, _ in group):
                return {"A": images, "path": names, "hints": [items[i][0].hints for i, _ in group]}
            return {"A": images, "path": names}
        # Without an instance map the class regions stand for the instances (boundaries between classes).
        insts = torch.cat(
            [
                (items[i][1] if items[i][1] is not None else items[i][0].tensor)[n : n + 1].to(self.device)
                for i, n in group
            ]
        )
        return {"label": images, "inst": insts, "path": names}

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        """No autograd, autocast for bf16/fp16, and the seed for train-mode dropout, set anew for every batch."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices), autocast(self.device, self.dtype):
            torch.manual_seed(self.seed)
            yield


# ---------------------------------------------------------------------------------------------------
# Building translators


def _layers_depend_on_the_batch(nets: Sequence[nn.Module]) -> bool:
    """True when train-mode batch norm (statistics) or dropout (random draws) would tie images to their batch."""
    kinds = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    return any(isinstance(m, kinds) and m.training for net in nets for m in net.modules())


def run_translator(opt: Any, seed: int = 0, batch_size: int = 8) -> Translator:
    """A translator for resolved run options: the model's own inference path (styles, both CycleGAN directions)."""
    device = select_device(opt.gpu_ids)
    dtype = inference_dtype(opt.precision, device)
    model = load_for_inference(opt)
    spec = model.inference_spec()
    if spec.refusal:
        raise OptionsError(spec.refusal)

    def forward(batch: dict[str, Any]) -> Tensor:
        return model.translate(batch)["fake_B"]

    nets = [model.nets[k] for k in model.inference_nets]
    return Translator(
        forward,
        input_nc=spec.input_nc,
        output_nc=spec.output_nc,
        device=device,
        dtype=dtype,
        network=model.generator(),
        export_module=model.export_module(),
        label_nc=spec.label_nc,
        style_channels=spec.style_channels,
        uses_instances="instance" in spec.inputs,
        one_at_a_time=_layers_depend_on_the_batch(nets) or spec.style_channels > 0,
        seed=seed,
        batch_size=batch_size,
        description=f"{opt.model} run {opt.run_dir}, epoch {opt.epoch}, {opt.direction}",
        model=model,
        nets={k: model.nets[k] for k in model.inference_nets},
        image_space=spec.image_space,
    )


def _from_file(
    path: Path,
    device: torch.device,
    dtype: torch.dtype,
    paper_mode: bool,
    seed: int,
    batch_size: int,
    label_nc: int | None,
    instance: bool | None,
    backend: str,
    threads: int,
) -> Translator:
    """A translator for a bare generator file: the architecture from its keys, labels for pix2pixHD ones.

    The network runs on `backend`, its graphs cached in an export/ folder beside the file.
    """
    loaded = load_network(path, device)
    arch = loaded.ganvas_arch
    if arch["kind"] != "generator":
        raise CheckpointError(
            f"{path} holds a {arch['kind']} ({arch['family']}), not a generator; load the run's "
            f"latest_net_G.pth (or G_A / G_B)"
        )
    if arch["family"] == "siggraph":
        raise OptionsError(
            f"{path} is a user-guided colouriser, which takes hints as well as photos; load its run folder "
            f"(ganvas.load('checkpoints/<name>')), whose options say how its hints are encoded"
        )
    if arch["family"] == "dcgan":
        raise OptionsError(f"{path} is a DCGAN generator, which maps noise to images and has no input to translate")
    if arch["family"] in ("composite", "composite_local"):
        raise OptionsError(
            f"{path} is a vid2vid generator, which makes each frame from the frames before it; load its run folder "
            f"(ganvas.load('checkpoints/<name>'), ganvas video translate --name <name>), whose options say how"
        )
    loaded.train(paper_mode)
    holder: dict[str, nn.Module] = {path.stem: loaded}
    attach(holder, [path.stem], backend, path.parent / "export", "", threads)
    net = holder[path.stem]
    input_nc = arch["input_nc"]
    # A global generator with two downsamplings has the layout of CycleGAN's ResNet: both may take labels.
    labels = arch["family"] in ("global", "local", "resnet") and (
        label_nc is not None or instance is not None or input_nc not in (1, 3, 4)
    )
    # L to ab (1 -> 2 channels) is the original repository's colourisation generator: RGB files in, RGB out.
    colours = (input_nc, arch["output_nc"]) == (1, 2)
    if colours:
        net = LabOutputs(net)
    if not labels:

        def forward(batch: dict[str, Any]) -> Tensor:
            return forward_padded(net, batch["A"])

        return Translator(
            forward,
            input_nc=input_nc,
            output_nc=3 if colours else arch["output_nc"],
            image_space="lab_l" if colours else "",
            device=device,
            dtype=dtype,
            network=net,
            one_at_a_time=_layers_depend_on_the_batch([net]),
            seed=seed,
            batch_size=batch_size,
            description=f"{path} ({arch['family']})",
            nets=holder,
        )
    # pix2pixHD's inputs: one-hot labels, then (the original's default) the instance boundary map.
    use_inst = instance if instance is not None else (label_nc is None or label_nc < input_nc)
    classes = label_nc if label_nc is not None else input_nc - int(use_inst)
    if classes + int(use_inst) != input_nc:
        raise OptionsError(
            f"{path} takes {input_nc} input channels, not {classes} classes "
            f"{'+ 1 instance boundary map ' if use_inst else ''}({classes + int(use_inst)}); pass "
            f"label_nc={input_nc - int(use_inst)}, or instance={not use_inst}"
        )

    def forward_labels(batch: dict[str, Any]) -> Tensor:
        g_input = one_hot_labels(batch["label"], classes)
        if use_inst:
            g_input = torch.cat([g_input, instance_edges(batch["inst"])], 1)
        return forward_padded(net, g_input)

    return Translator(
        forward_labels,
        input_nc=input_nc,
        output_nc=arch["output_nc"],
        device=device,
        dtype=dtype,
        network=net,
        export_module=LabelInputs(net, classes, use_inst, 0),
        label_nc=classes,
        uses_instances=use_inst,
        seed=seed,
        batch_size=batch_size,
        one_at_a_time=_layers_depend_on_the_batch([net]),
        description=f"{path} ({arch['family']}, {classes} classes{' + instance boundaries' if use_inst else ''})",
        nets=holder,
    )


def load(
    source: str | PathLike[str],
    *,
    epoch: str | int = "latest",
    direction: str | None = None,
    device: str | torch.device | None = None,
    dtype: Any = None,
    paper_mode: bool = False,
    eval: bool | None = None,
    seed: int = 0,
    batch_size: int = 8,
    label_nc: int | None = None,
    instance: bool | None = None,
    backend: str | None = None,
    num_threads_infer: int = 0,
    **options: Any,
) -> Translator:
    """A translator for a run folder (checkpoints/<name>, with opt.yaml) or a bare generator file.

    - A run folder brings every option: the model's own inference path, `epoch`, `direction`
      ("BtoA" runs a CycleGAN's G_B) and pix2pixHD styles (options such as `cluster_seed=3`).
    - A file (`latest_net_G.pth`, `.safetensors`) from ganvas or the original code bases needs no
      architecture: it is read from the key names and shapes. pix2pixHD generators take label
      maps: `label_nc` classes plus, unless `instance=False`, an instance boundary channel.
    - `device`: default the first GPU when there is one. `dtype`: torch.bfloat16 / torch.float16
      for autocast inference. `batch_size`: images per forward pass.
    - Layers run in eval mode (running batch-norm statistics, no dropout), as `ganvas test`,
      `translate` and exported files run them. `paper_mode=True` runs them as the pix2pix paper and
      the original test scripts did (batch statistics, dropout seeded by `seed`); each image is then
      translated on its own, and gives the same result alone or in a batch. `eval=True` (the
      default) and `eval=False` (paper_mode) are the older spelling.
    - `backend`: what runs the networks on the CPU: "auto" (the default: the fastest installed
      backend, timed on the first input of each size and remembered beside the run), "torch",
      "onnxruntime" or "openvino"; `translator.backend` says which ran. Graphs are made on first use
      and kept in <run>/export/ (beside a bare file: export/). `num_threads_infer`: CPU threads for
      every backend (0: the CPUs this process may use). GPUs run torch.
    """
    paper_mode = paper_mode_from(eval, paper_mode or None)
    path = Path(source)
    target = pick_device(device, default="cuda" if torch.cuda.is_available() else "cpu")
    chosen = inference_dtype(dtype, target)
    if path.is_dir():
        if not (path / OPT_FILE).is_file():
            nets = sorted(p.name for p in path.glob("*_net_*.pth"))
            hint = f"; load one of its files instead ({', '.join(nets[:4])})" if nets else ""
            raise CheckpointError(f"{path} is a folder without {OPT_FILE}, so it is no ganvas run{hint}")
        if label_nc is not None or instance is not None:
            raise OptionsError("label_nc and instance describe bare pix2pixHD files; a run folder has its own")
        given = {
            "name": path.name,
            "checkpoints_dir": str(path.parent),
            "epoch": str(epoch),
            "paper_mode": paper_mode,
            "gpu_ids": str(target.index or 0) if target.type == "cuda" else "-1",
            "precision": PRECISION_NAMES[chosen],
            "num_threads_infer": num_threads_infer,
            **({"backend": backend} if backend is not None else {}),
            **options,
        }
        if direction is not None:
            given["direction"] = direction
        return run_translator(resolve_options(given, "translate"), seed, batch_size)
    if options or direction is not None or str(epoch) != "latest":
        names = [
            *options,
            *(["direction"] if direction is not None else []),
            *(["epoch"] if str(epoch) != "latest" else []),
        ]
        raise OptionsError(f"{', '.join(names)} apply to run folders; {path} is one network file, loaded as it is")
    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist; pass a run folder (checkpoints/<name>) or a network file "
            f"such as checkpoints/<name>/latest_net_G.pth"
        )
    backend = backend if backend is not None else Options.backend
    check_backend(backend)
    return _from_file(
        path, target, chosen, paper_mode, seed, batch_size, label_nc, instance, backend, num_threads_infer
    )


__all__ = ["Translator", "load"]
