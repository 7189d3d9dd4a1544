"""Every file the project writes or reads for weights and run state; all writes are atomic."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ganvas.errors import CheckpointError

STATE_FILE = "latest_state.pt"


def atomic_write_many(writes: list[tuple[Path, Callable[[Path], None]]]) -> None:
    """Write every file to a temporary name beside it, then rename them all into place.

    A full disk, a crash or Ctrl-C while writing leaves the previous files untouched, and the
    files of one checkpoint (networks and run state) are renamed together.
    """
    temps: list[Path] = []
    try:
        for path, write in writes:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(Path(name))
            try:
                write(temps[-1])
                with open(temps[-1], "rb+") as fh:
                    os.fsync(fh.fileno())
            except OSError as err:
                raise CheckpointError(f"could not write {path} ({err.strerror or err}); free some disk space or "
                                      f"choose another --checkpoints_dir; the previous file there is intact") from err
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, (path, _) in zip(temps, writes):
        os.replace(tmp, path)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it into place."""
    atomic_write_many([(path, write)])


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def load_torch(path: Path, what: str = "checkpoint") -> Any:
    """torch.load without running pickled code; a missing or broken file names itself and the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; train the run first, or check --name, "
                              f"--checkpoints_dir and --epoch")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"cannot read {what} {path} ({err}); the file is damaged or not a PyTorch "
                              f"checkpoint: use another --epoch or retrain") from err


def network_path(run_dir: Path, tag: str, net_name: str) -> Path:
    """`<run_dir>/<tag>_net_<name>.pth`, the original repositories' naming."""
    return Path(run_dir) / f"{tag}_net_{net_name}.pth"


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module inside DataParallel, DDP or torch.compile wrappers."""
    while True:
        inner = getattr(net, "module", None) or getattr(net, "_orig_mod", None)
        if inner is None:
            return net
        net = inner


def network_writes(nets: dict[str, nn.Module], run_dir: Path, tag: str) -> list[tuple[Path, Callable[[Path], None]]]:
    """Writers for each network as a plain CPU state_dict, loadable by the original code bases."""
    def writer(state: dict[str, torch.Tensor]) -> Callable[[Path], None]:
        return lambda tmp: torch.save(state, tmp)

    return [(network_path(run_dir, tag, name),
             writer({k: v.detach().cpu() for k, v in unwrap(net).state_dict().items()}))
            for name, net in nets.items()]


def clean_state_dict(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes and drop keys old files carry that the network has no slot for."""
    cleaned = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    wanted = net.state_dict().keys()
    # PyTorch < 0.4 saved instance-norm running stats and later ones num_batches_tracked; the
    # original repository patched them away on load, and so do we.
    stale = [k for k in cleaned if k not in wanted and k.rsplit(".", 1)[-1] in
             ("running_mean", "running_var", "num_batches_tracked")]
    for key in stale:
        del cleaned[key]
    return cleaned


def load_network(net: nn.Module, path: Path) -> None:
    """Load a state_dict file into `net` strictly, with a message naming the keys that do not fit."""
    state = load_torch(path, "network file")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state_dict; save it with "
                              f"torch.save(net.state_dict(), path)")
    target = unwrap(net)
    state = clean_state_dict(state, target)
    expected = target.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(state[k].shape)} in the file, "
                         f"{tuple(expected[k].shape)} in the network)")
        raise CheckpointError(f"{path} does not fit the network built from the options: "
                              f"{'; '.join(parts)} keys; pass the architecture flags the run was trained with "
                              f"(--netG, --ngf, --norm, --input_nc, --output_nc)")
    target.load_state_dict(state)


def load_matching(net: nn.Module, path: Path) -> tuple[int, int, list[str]]:
    """Copy the tensors of a state_dict file whose names and shapes match `net`'s.

    Returns (tensors copied, tensors in net, names found with another shape). For initialising one
    architecture from another (pix2pixHD's local generator from a global run).
    """
    state = load_torch(path, "network file")
    target = unwrap(net)
    own = target.state_dict()
    state = {k: v for k, v in clean_state_dict(state, target).items() if k in own}
    other_shape = [k for k, v in state.items() if v.shape != own[k].shape]
    state = {k: v for k, v in state.items() if k not in other_shape}
    target.load_state_dict(state, strict=False)
    return len(state), len(own), other_shape


def load_networks(nets: dict[str, nn.Module], run_dir: Path, tag: str) -> None:
    """Load `<tag>_net_<name>.pth` into each network."""
    for name, net in nets.items():
        load_network(net, network_path(run_dir, tag, name))


def rng_state() -> dict[str, Any]:
    """Every global random state a step can touch, in a form weights_only loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "gauss": float(gauss)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what rng_state() captured."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
