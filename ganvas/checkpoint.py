"""Every file the project writes or reads for weights and run state; all writes are atomic (`ganvas.files`)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganvas.errors import CheckpointError
from ganvas.files import atomic_write, atomic_write_many, atomic_write_text  # noqa: F401 (re-exported)
from ganvas.registry import NETWORKS
from ganvas.safe import file_kind, load_json, load_safetensors, load_torch
from ganvas.speed import unwrap

STATE_FILE = "latest_state.pt"
# The .json beside a network file: {"format": SPEC_FORMAT, "version": SPEC_VERSION, "network": <NETWORKS name>,
# "kind": <its kind>, "kwargs": {<its builder's arguments>}}; the .pth stays the original code bases' state_dict.
SPEC_FORMAT = "ganvas.network"
SPEC_VERSION = 1


def network_path(run_dir: Path, tag: str, net_name: str) -> Path:
    """`<run_dir>/<tag>_net_<name>.pth`, the original repositories' naming."""
    return Path(run_dir) / f"{tag}_net_{net_name}.pth"


def network_spec_path(path: str | PathLike[str]) -> Path:
    """The .json beside a network file that names its architecture (`latest_net_G.pth` -> `latest_net_G.json`)."""
    return Path(path).with_suffix(".json")


def network_spec_text(net: nn.Module) -> str | None:
    """The .json text describing a network built by `registry.build_network` (None for one built otherwise)."""
    spec = getattr(unwrap(net), "ganvas_spec", None)
    if spec is None:
        return None
    name = spec["network"]
    document = {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "network": name,
        "kind": NETWORKS.entry(name).meta.get("kind"),
        "kwargs": spec["kwargs"],
    }
    try:
        return json.dumps(document, indent=2) + "\n"
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"network {name!r} was built with arguments a .json cannot hold ({err}): "
            f"{spec['kwargs']!r}; pass plain ints, floats, bools, strings and lists"
        ) from None


def network_writes(nets: dict[str, nn.Module], run_dir: Path, tag: str) -> list[tuple[Path, Callable[[Path], None]]]:
    """Writers for each network as a plain CPU state_dict, loadable by the original code bases.

    A network built through the registry also gets `<tag>_net_<name>.json` naming its architecture (see
    `network_spec_text`), written in the same batch so that the two files always belong together.
    """

    def writer(state: dict[str, torch.Tensor]) -> Callable[[Path], None]:
        return lambda tmp: torch.save(state, tmp)

    def text_writer(text: str) -> Callable[[Path], None]:
        return lambda tmp: tmp.write_text(text, encoding="utf-8")

    writes = []
    for name, net in nets.items():
        path = network_path(run_dir, tag, name)
        writes.append((path, writer({k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()})))
        text = network_spec_text(net)
        if text is not None:
            writes.append((network_spec_path(path), text_writer(text)))
    return writes


def read_network_spec(path: Path) -> dict[str, Any]:
    """The contents of a network's .json, checked for its format (not yet for its network or arguments)."""
    fix = f"repair it or delete {path} to let ganvas infer the architecture from the weights"
    document = load_json(Path(path), "the network description", fix)
    if not isinstance(document, dict) or document.get("format") != SPEC_FORMAT:
        raise CheckpointError(f'{path} is not a ganvas network description (no "format": "{SPEC_FORMAT}"); {fix}')
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f'{path} has no valid "version" (got {version!r}); {fix}')
    if version > SPEC_VERSION:
        raise CheckpointError(
            f"{path} is version {version} of the network description, newer than this ganvas reads "
            f"({SPEC_VERSION}); upgrade ganvas, or delete it to let ganvas infer the architecture"
        )
    if not isinstance(document.get("network"), str) or not isinstance(document.get("kwargs"), dict):
        raise CheckpointError(f'{path} needs a "network" name and a "kwargs" object; {fix}')
    return document


def clean_state_dict(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes and drop keys old files carry that the network has no slot for."""
    cleaned = {}
    for key, value in state.items():
        # In any order and nesting: DataParallel/DDP's module., torch.compile's _orig_mod.
        while key.startswith(("module.", "_orig_mod.")):
            key = key.partition(".")[2]
        cleaned[key] = value
    wanted = net.state_dict().keys()
    # PyTorch < 0.4 saved instance-norm running stats and later ones num_batches_tracked; the
    # original repository patched them away on load, and so do we.
    stale = [
        k
        for k in cleaned
        if k not in wanted and k.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked")
    ]
    for key in stale:
        del cleaned[key]
    return cleaned


Shape = tuple[int, ...]
Layout = dict[str, Shape]
_EXAMPLES = 3


@dataclass(frozen=True)
class KeyMismatch:
    """How a state_dict's keys differ from a network's."""

    missing: list[str]  # in the network, not in the file
    unexpected: list[str]  # in the file, not in the network
    reshaped: list[tuple[str, Shape, Shape]]  # (key, shape in the file, shape in the network)

    def __len__(self) -> int:
        return len(self.missing) + len(self.unexpected) + len(self.reshaped)

    def describe(self) -> str:
        """E.g. '1 missing from the file (model.1.weight); 2 unexpected (a, b)'."""

        def examples(keys: list[str]) -> str:
            more = ", ..." if len(keys) > _EXAMPLES else ""
            return ", ".join(keys[:_EXAMPLES]) + more

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing from the file ({examples(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({examples(self.unexpected)})")
        if self.reshaped:
            shown = [f"{k}: {tuple(a)} in the file, {tuple(b)} in the network" for k, a, b in self.reshaped]
            parts.append(f"{len(self.reshaped)} of another shape ({examples(shown)})")
        return "; ".join(parts)


def tensor_shapes(state: Mapping[str, torch.Tensor]) -> Layout:
    """Key -> shape of a state_dict's tensors."""
    return {key: tuple(value.shape) for key, value in state.items()}


def compare_keys(file: Layout, net: Layout) -> KeyMismatch:
    """Compare a file's key -> shape table with a network's."""
    return KeyMismatch(
        missing=[k for k in net if k not in file],
        unexpected=[k for k in file if k not in net],
        reshaped=[(k, file[k], net[k]) for k in net if k in file and file[k] != net[k]],
    )


_RUN_STATE = "a run's training state (optimisers, progress and random states, for --continue_train)"


def _network_file_instead(path: Path) -> str:
    """The network file to pass instead of `path`: a generator in its run folder, or where a run keeps one."""
    folders = [path] if path.is_dir() else list(path.parents)[:3]  # up from a run's web/images/ too
    beside = [path.with_suffix(".pth")] + [
        p for folder in folders for p in (folder / "latest_net_G.pth", *sorted(folder.glob("*_net_G*.pth")))
    ]
    found = next((p for p in beside if p != path and p.is_file()), None)
    return str(found) if found else "checkpoints/<name>/latest_net_G.pth, which training writes"


def refuse_non_network(path: str | PathLike[str]) -> None:
    """CheckpointError in one sentence when a path given as a network's weights is plainly something else
    (a run's options or state, an image, a text file, an exported model), naming the file to pass instead."""
    path = Path(path)
    kind = file_kind(path)
    if path.name == STATE_FILE:
        kind = _RUN_STATE
    elif path.suffix == ".json" and path.is_file() and f'"{SPEC_FORMAT}"' in path.read_text(errors="replace"):
        kind = "the description of a network's architecture"
    elif path.name == "opt.yaml":
        kind = "a run's options"
    if kind:
        raise CheckpointError(f"{path} is {kind}, not a network's weights; pass {_network_file_instead(path)}")


def read_state_dict(path: str | PathLike[str], in_run: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a .pth / .pt file (loaded weights_only: no pickled code runs) or a .safetensors file.

    `in_run`: the file belongs to a run folder, so a missing one means a run not trained that far.
    """
    path = Path(path)
    refuse_non_network(path)
    fix = "train the run first, or check --name, --checkpoints_dir and --epoch" if in_run else "check the path"
    state = load_safetensors(path) if path.suffix == ".safetensors" else load_torch(path, "network file", fix)
    if isinstance(state, Mapping) and {"progress", "optimizers"} <= state.keys():  # a renamed latest_state.pt
        raise CheckpointError(f"{path} is {_RUN_STATE}, not a network's weights; pass {_network_file_instead(path)}")
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(state).__name__}, not a state_dict; save the network's with "
            f"torch.save(net.state_dict(), path)"
        )
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            hint = (
                f"if that entry is the network's state_dict, save it alone: torch.save(checkpoint[{key!r}], 'net.pth')"
                if isinstance(value, Mapping)
                else "save the network's state_dict alone: torch.save(net.state_dict(), 'net.pth')"
            )
            raise CheckpointError(
                f"{path} is not a bare state_dict: entry {key!r} holds a {type(value).__name__}, not a tensor; {hint}"
            )
    return dict(state)


def load_weights(net: nn.Module, path: Path) -> None:
    """Load a state_dict file into `net` strictly, with a message naming the keys that do not fit."""
    target = unwrap(net)
    state = clean_state_dict(read_state_dict(path, in_run=True), target)
    mismatch = compare_keys(tensor_shapes(state), tensor_shapes(target.state_dict()))
    if mismatch:
        raise CheckpointError(
            f"{path} does not fit the network built from the options: {mismatch.describe()}; "
            f"pass the architecture flags the run was trained with (--netG, --ngf, --norm, "
            f"--input_nc, --output_nc), or run the file alone with --checkpoint {path}"
        )
    target.load_state_dict(state)


def load_matching(net: nn.Module, path: Path) -> tuple[int, int, list[str]]:
    """Copy the tensors of a state_dict file whose names and shapes match `net`'s.

    Returns (tensors copied, tensors in net, names found with another shape). For initialising one
    architecture from another (pix2pixHD's local generator from a global run).
    """
    target = unwrap(net)
    state = read_state_dict(path, in_run=True)
    own = target.state_dict()
    state = {k: v for k, v in clean_state_dict(state, target).items() if k in own}
    other_shape = [k for k, v in state.items() if v.shape != own[k].shape]
    state = {k: v for k, v in state.items() if k not in other_shape}
    target.load_state_dict(state, strict=False)
    return len(state), len(own), other_shape


def load_networks(nets: dict[str, nn.Module], run_dir: Path, tag: str) -> None:
    """Load `<tag>_net_<name>.pth` into each network."""
    for name, net in nets.items():
        load_weights(net, network_path(run_dir, tag, name))


def rng_state() -> dict[str, Any]:
    """Every global random state a step can touch, in a form weights_only loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["gauss"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
