"""Transparent inputs to a model without an alpha channel: translated, and said once per call or run."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ganvas
from ganvas.cli import main

CHECKPOINTS = Path(__file__).parent / "fixtures" / "old_runs" / "checkpoints"  # pix2pix_old: an RGB -> RGB run


def rgba(seed: int, transparent: bool = True) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    if transparent:
        pixels[:8, :8, 3] = 0
    return pixels


def alpha_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "alpha" in r.getMessage()]


def test_translate_says_once_that_the_alpha_of_transparent_images_was_dropped(tmp_path, caplog, capsys) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        Image.fromarray(rgba(i)).save(inputs / f"cutout{i}.png")
    Image.fromarray(rgba(3, transparent=False)).save(inputs / "opaque_rgba.png")  # nothing is lost: no word of it
    Image.fromarray(rgba(4)[..., :3]).save(inputs / "photo.png")
    run = ["--name", "pix2pix_old", "--checkpoints_dir", str(CHECKPOINTS), "--gpu_ids", "-1"]
    with caplog.at_level(logging.INFO, logger="ganvas"):
        assert main(["translate", *run, str(inputs), "--out", str(tmp_path / "out")]) == 0
    [warning] = alpha_warnings(caplog)
    assert warning.startswith("3 inputs had transparent pixels") and "cutout0.png" in warning and "RGB" in warning
    assert len(list((tmp_path / "out").glob("*.png"))) == 5


@pytest.fixture(scope="module")
def translator():
    return ganvas.load(CHECKPOINTS / "pix2pix_old", device="cpu")


def test_a_translate_call_says_once_for_all_its_transparent_inputs(translator, tmp_path, caplog) -> None:
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba(0)).save(path)
    with caplog.at_level(logging.WARNING, logger="ganvas"):
        outputs = translator.translate([path, Image.fromarray(rgba(1)), rgba(2)])
    [warning] = alpha_warnings(caplog)
    assert warning.startswith("3 inputs had transparent pixels") and str(path) in warning
    assert [o.size for o in outputs[:2]] == [(32, 32)] * 2 and outputs[2].shape == (32, 32, 3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ganvas"):  # opaque RGBA and RGB lose nothing: no word of it
        translator.translate([Image.fromarray(rgba(0, transparent=False)), rgba(1)[..., :3]])
    assert alpha_warnings(caplog) == []
