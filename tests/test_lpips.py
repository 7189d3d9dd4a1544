"""LPIPS against the lpips package's own computation, with random AlexNet weights and heads in the real files'
layouts. The package installs without its dependencies (`pip install --no-deps lpips==0.1.4`, as .ci/run does)
and takes its AlexNet from a stand-in for torchvision that returns the same random layers. Without the package
these tests skip, except in CI (GANVAS_CI=1), where they fail."""

from __future__ import annotations

import types

import pytest
import torch
from conftest import import_reference

from ganvas.errors import CheckpointError
from ganvas.nets.lpips import CHANNELS, alexnet_features, load_lpips


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("lpips")
    features = alexnet_features()
    backbone = {f"features.{k}": v for k, v in features.state_dict().items()}
    backbone.update({"classifier.1.weight": torch.zeros(4096, 9216), "classifier.1.bias": torch.zeros(4096)})
    torch.save(backbone, folder / "alexnet-owt-7be5be79.pth")
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate(CHANNELS)}
    torch.save(heads, folder / "alex.pth")
    return folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth", features


@pytest.fixture(scope="module")
def reference(files):
    """The lpips package's LPIPS, its AlexNet the same random layers through a stand-in torchvision."""
    _, heads, features = files
    vision, models = types.ModuleType("torchvision"), types.ModuleType("torchvision.models")
    models.alexnet = lambda *args, **kwargs: types.SimpleNamespace(features=features)
    vision.models = models

    def load():
        import lpips

        return lpips.LPIPS(net="alex", model_path=str(heads), verbose=False)

    return import_reference(load, {"torchvision": vision, "torchvision.models": models}, "lpips==0.1.4")


def test_the_distance_is_the_lpips_packages_for_the_same_weights(files, reference):
    backbone, heads, _ = files
    ours = load_lpips(backbone, heads)
    gen = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 3, 64, 64, generator=gen) * 2 - 1, torch.rand(3, 3, 64, 64, generator=gen) * 2 - 1
    with torch.no_grad():
        expected = reference(a, b).flatten()
        got = ours(a, b)
        same = ours(a, a)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7)
    assert torch.all(same.abs() < 1e-6) and torch.all(got > 0)


def test_wrong_or_missing_files_get_one_sentence(files, tmp_path):
    backbone, heads, _ = files
    with pytest.raises(CheckpointError, match="does not exist"):
        load_lpips(tmp_path / "none.pth", heads)
    with pytest.raises(CheckpointError, match="is not LPIPS's linear heads"):
        load_lpips(backbone, backbone)


def test_ganvas_eval_scores_lpips_of_paired_folders_or_says_which_files_it_needs(files, tmp_path, monkeypatch, capsys):
    import json

    import numpy as np
    from PIL import Image

    from ganvas.cli import main

    backbone, heads, _ = files
    for folder, shift in (("real", 0), ("same", 0), ("other", 60)):
        (tmp_path / folder).mkdir()
        for i in range(3):
            pixels = np.random.default_rng(i).integers(0, 190, (40, 40, 3)) + shift
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / folder / f"{i}.png")
    args = ["eval", "--real", str(tmp_path / "real"), "--metrics", "lpips,psnr"]
    files_args = ["--lpips_backbone", str(backbone), "--lpips_heads", str(heads)]
    for folder in ("same", "other"):
        assert (
            main([*args, "--fake", str(tmp_path / folder), *files_args, "--out", str(tmp_path / f"{folder}.json")]) == 0
        )
    same, other = (json.loads((tmp_path / f"{f}.json").read_text())["metrics"]["lpips"] for f in ("same", "other"))
    assert same == pytest.approx(0, abs=1e-6) and other > 0.01
    monkeypatch.setenv("GANVAS_HOME", str(tmp_path / "home"))
    capsys.readouterr()
    assert main([*args, "--fake", str(tmp_path / "other")]) == 0
    out = capsys.readouterr().out
    assert "note: LPIPS skipped" in out and "alexnet-owt-7be5be79.pth" in out and "PSNR" in out
