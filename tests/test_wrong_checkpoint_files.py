"""A file that is not a network, given where one belongs, is named for what it is in one sentence that says what
to pass instead, and never passes on PyTorch's advice about weights_only."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import ganvas
from ganvas.cli import main
from ganvas.errors import CheckpointError

RUN = Path(__file__).parent / "fixtures" / "old_runs" / "checkpoints" / "pix2pix_old"
PHOTO = Path(__file__).parent / "fixtures" / "old_runs" / "data" / "facades" / "test" / "0000.png"


def make_file(kind: str, tmp_path: Path) -> Path:
    """A file of the kind named, from the fixture run or written here."""
    if kind in ("opt.yaml", "latest_state.pt", "loss_log.csv"):
        return RUN / kind
    if kind == "png":
        return PHOTO
    if kind == "renamed state":
        return Path(shutil.copy(RUN / "latest_state.pt", tmp_path / "backup.pt"))
    if kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("trained on the facades, 200 epochs\n")
        return path
    path = tmp_path / "generator.pt"  # torchscript
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 3, 1)), path)
    return path


KINDS = {
    "opt.yaml": "a run's options",
    "latest_state.pt": "a run's training state",
    "renamed state": "a run's training state",
    "loss_log.csv": "a CSV table",
    "png": "a PNG image",
    "text": "a text file",
    "torchscript": "an exported TorchScript model",
}


def message_of(entry: str, path: Path, tmp_path: Path, capsys) -> str:
    """The refusal `entry` gives for `path` as a network file."""
    if entry in ("load_network", "load"):
        with pytest.raises(CheckpointError) as err:
            getattr(ganvas, entry)(path)
        return str(err.value)
    argv = {
        "translate": ["translate", "--checkpoint", str(path), str(PHOTO), "--out", str(tmp_path / "out")],
        "export": ["export", "--checkpoint", str(path), "--out", str(tmp_path / "g.pt"), "--format", "torchscript"],
    }[entry]
    assert main([*argv, "--gpu_ids", "-1"]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("ganvas: error: "), errors
    return errors[0].removeprefix("ganvas: error: ")


@pytest.mark.filterwarnings("ignore:`torch.jit.(save|script)` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("entry", ["load_network", "load", "translate", "export"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_file_that_is_no_network_is_named_with_what_to_pass(kind, entry, tmp_path, capsys) -> None:
    path = make_file(kind, tmp_path)
    message = message_of(entry, path, tmp_path, capsys)
    assert message.startswith(f"{path} is {KINDS[kind]}") and "not a network's weights; pass " in message, message
    assert "weights_only" not in message and "\n" not in message and message.count(". ") == 0
    if path.parent == RUN:  # a file of a run: the run's generator is what to pass
        assert message.endswith(f"pass {RUN / 'latest_net_G.pth'}"), message
