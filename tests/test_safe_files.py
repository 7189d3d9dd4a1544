"""No file a run reads may run code: a crafted file of each kind a run folder holds goes through every command and
API call that reads it; its payload never runs, and each gets its one-sentence refusal."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ganvas
from ganvas.cli import main
from ganvas.errors import CheckpointError, GanvasError
from ganvas.interop import load_network
from ganvas.safe import load_array_dict

FIXTURE = Path(__file__).parent / "fixtures" / "old_runs"


class Payload:
    """An object whose unpickling would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def runs(tmp_path) -> Path:
    """Copies of a pix2pix run and a pix2pixHD run with style clusters (made by ganvas, encode-features included)."""
    return Path(shutil.copytree(FIXTURE, tmp_path / "runs"))


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload_ran"


def refused(capsys, argv: list[str]) -> str:
    """Run a command that must refuse; its one error line."""
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ganvas: error:")]
    assert len(lines) == 1
    return lines[0]


def assert_refusal(message: str, file: str) -> None:
    assert file in message and "was not loaded" in message and "would run code" in message, message
    assert "weights_only" not in message  # never PyTorch's advice to switch the protection off


def commands(runs: Path, name: str) -> dict[str, list[str]]:
    ck = ["--name", name, "--checkpoints_dir", str(runs / "checkpoints"), "--gpu_ids", "-1"]
    data = "facades" if name == "pix2pix_old" else "streets"
    image = runs / "data" / data / ("test/0000.png" if data == "facades" else "test_label/0000.png")
    return {
        "test": ["test", *ck, "--dataroot", str(runs / "data" / data), "--results_dir", str(runs / "res")],
        "translate": ["translate", *ck, str(image), "--out", str(runs / "out")],
    }


def test_a_network_file_with_a_payload_is_refused_by_every_reader(runs, marker, capsys) -> None:
    path = runs / "checkpoints" / "pix2pix_old" / "latest_net_G.pth"
    torch.save({**torch.load(path, weights_only=True), "extra": Payload(marker)}, path)
    for argv in commands(runs, "pix2pix_old").values():
        assert_refusal(refused(capsys, argv), "latest_net_G.pth")
    for load in (lambda: ganvas.load(path.parent, device="cpu"), lambda: load_network(path)):
        with pytest.raises(CheckpointError) as err:
            load()
        assert_refusal(str(err.value), "latest_net_G.pth")
    assert main(["export", "--checkpoint", str(path), "--format", "torchscript", "--out", str(runs / "g.pt")]) == 2
    assert not marker.exists()


def test_a_run_state_with_a_payload_is_refused_on_resume(runs, marker, capsys) -> None:
    path = runs / "checkpoints" / "pix2pix_old" / "latest_state.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "extra": Payload(marker)}, path)
    argv = ["train", "--continue_train", "--name", "pix2pix_old", "--checkpoints_dir", str(runs / "checkpoints")]
    message = refused(capsys, [*argv, "--dataroot", str(runs / "data" / "facades"), "--gpu_ids", "-1"])
    assert_refusal(message, "latest_state.pt")
    assert not marker.exists()


def test_a_cluster_file_with_a_payload_is_refused_by_test_and_translate(runs, marker, capsys) -> None:
    path = runs / "checkpoints" / "pix2pixhd_old" / "features_clustered_010.npy"  # written by encode-features
    with open(path, "wb") as fh:
        np.save(fh, np.array({1: np.zeros((2, 3), np.float32), 2: Payload(marker)}, dtype=object), allow_pickle=True)
    for argv in commands(runs, "pix2pixhd_old").values():
        assert_refusal(refused(capsys, argv), "features_clustered_010.npy")
    with pytest.raises(CheckpointError) as err:
        ganvas.load(path.parent, device="cpu").translate(np.zeros((32, 64), np.uint8))
    assert_refusal(str(err.value), "features_clustered_010.npy")
    assert not marker.exists()


def test_cluster_files_in_the_original_format_load_and_ganvas_writes_that_format(tmp_path, runs) -> None:
    # NVIDIA's encode_features.py: np.save of a dict from numpy integer class ids to float arrays.
    original = {np.int64(26): np.random.default_rng(0).random((10, 4)).astype(np.float32), 7: np.ones((3, 4))}
    path = tmp_path / "features_clustered_010.npy"
    np.save(path, original)
    loaded = load_array_dict(path, "the style cluster file")
    assert set(loaded) == {26, 7} and all(isinstance(k, int) for k in loaded)
    np.testing.assert_array_equal(loaded[26], original[np.int64(26)])
    # What ganvas wrote reads back with the original code's np.load(..., allow_pickle=True).item().
    ours = runs / "checkpoints" / "pix2pixhd_old" / "features_clustered_010.npy"
    as_original = np.load(ours, allow_pickle=True).item()
    assert {int(k) for k in as_original} == set(load_array_dict(ours, "the style cluster file"))


@pytest.mark.parametrize(
    "content, expected",
    [
        (np.zeros((2, 3), np.float32), "not a dict"),  # a plain array
        (np.array({"car": "fast"}, dtype=object), "maps 'car' to a str"),  # not class ids to float arrays
    ],
)
def test_cluster_files_that_hold_something_else_are_refused(tmp_path, content, expected) -> None:
    path = tmp_path / "features_clustered_010.npy"
    np.save(path, content, allow_pickle=True)
    with pytest.raises(CheckpointError, match=expected):
        load_array_dict(path, "the style cluster file")


def test_an_option_file_with_a_python_tag_is_refused(runs, marker, capsys) -> None:
    path = runs / "checkpoints" / "pix2pix_old" / "opt.yaml"
    path.write_text(path.read_text() + f'extra: !!python/object/apply:os.system ["touch {marker}"]\n')
    for argv in commands(runs, "pix2pix_old").values():
        assert_refusal(refused(capsys, argv), "opt.yaml")
    with pytest.raises(GanvasError) as err:
        ganvas.load(path.parent, device="cpu")
    assert_refusal(str(err.value), "opt.yaml")
    assert not marker.exists()


def test_a_truncated_safetensors_header_is_one_sentence(tmp_path) -> None:
    path = tmp_path / "G.safetensors"
    path.write_bytes((10**6).to_bytes(8, "little") + b'{"model.1.weight": {"dtype"')
    with pytest.raises(CheckpointError, match=r"cannot read .*G\.safetensors .*damaged or not a safetensors file"):
        load_network(path)


def test_a_description_naming_a_module_path_is_refused(runs, marker) -> None:
    path = runs / "checkpoints" / "pix2pix_old" / "latest_net_G.pth"
    spec = {"format": "ganvas.network", "version": 1, "network": "os.system", "kind": "generator",
            "kwargs": {"command": f"touch {marker}"}}  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(spec))
    with pytest.raises(CheckpointError, match=r"latest_net_G\.json") as err:
        load_network(path)
    assert "os.system" in str(err.value) and not marker.exists()
