"""Running on the CPU because no GPU is there is said once per run, not at every device look-up."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ganvas import speed
from ganvas.cli import main

CHECKPOINTS = Path(__file__).parent / "fixtures" / "old_runs" / "checkpoints"
PHOTO = Path(__file__).parent / "fixtures" / "old_runs" / "data" / "facades" / "test" / "0000.png"


def test_no_cuda_device_is_said_once_per_run(tmp_path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if hasattr(speed, "_say_no_cuda"):
        speed._say_no_cuda.cache_clear()  # a fresh process: an earlier test may have said it already
    run = ["--name", "pix2pix_old", "--checkpoints_dir", str(CHECKPOINTS)]  # --gpu_ids 0, the default
    with caplog.at_level(logging.INFO, logger="ganvas"):
        assert main(["translate", *run, str(PHOTO), "--out", str(tmp_path / "out")]) == 0
        assert speed.select_device("0") == torch.device("cpu")
    said = [r.getMessage() for r in caplog.records if "no CUDA device" in r.getMessage()]
    assert len(said) == 1, said
