"""Test, translate, the API and export run layers in the same mode by default (eval), and the pages say which."""

from __future__ import annotations

import json
from html import unescape
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganvas
from ganvas.cli import main
from ganvas.errors import OptionsError
from ganvas.infer import run_test
from ganvas.nets.padding import pad_to_multiple
from ganvas.options import resolve_options
from ganvas.train import train


def _has_onnxruntime() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


FORMAT = "onnx" if _has_onnxruntime() else "torchscript"


@pytest.fixture(scope="module")
def run(tmp_path_factory, paired_root) -> Path:
    """A pix2pix run whose generator has batch norm and dropout (unet_64's innermost level), trained briefly."""
    checkpoints = tmp_path_factory.mktemp("mode") / "ck"
    given = {
        "dataroot": str(paired_root),
        "name": "bn",
        "model": "pix2pix",
        "checkpoints_dir": str(checkpoints),
        "netG": "unet_64",
        "norm": "batch",
        "ngf": 8,
        "ndf": 8,
        "batch_size": 2,
        "load_size": 36,
        "crop_size": 32,
        "n_epochs": 1,
        "n_epochs_decay": 0,
        "num_threads": 0,
        "gpu_ids": "-1",
        "seed": 3,
        "save_latest_freq": 10**9,
    }
    train(resolve_options(given, "train"), show_progress=False)
    return checkpoints / "bn"


def run_flags(run: Path) -> list[str]:
    return ["--name", run.name, "--checkpoints_dir", str(run.parent), "--gpu_ids", "-1"]


def options_for_test(run: Path, tmp_path: Path, **given):
    return resolve_options(
        {"name": run.name, "checkpoints_dir": str(run.parent), "results_dir": str(tmp_path / "res"), **given}, "test"
    )


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.int16)


def translated(run: Path, image: Path, out: Path, *flags: str) -> np.ndarray:
    """`ganvas translate` of one image file, as uint8 pixels."""
    assert main(["translate", *run_flags(run), *flags, str(image), "--out", str(out)]) == 0
    return pixels(out / f"{image.stem}.png")


def exported(run: Path, x: torch.Tensor, tmp_path: Path, fmt: str = FORMAT) -> np.ndarray:
    """What the file `ganvas export` writes gives for x (1 x 3 x H x W in [-1, 1]), as H x W x 3 uint8 pixels."""
    out = tmp_path / f"bn.{'onnx' if fmt == 'onnx' else 'pt'}"
    assert main(["export", *run_flags(run), "--format", fmt, "--out", str(out)]) == 0
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        y = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    else:
        with torch.no_grad():
            y = torch.jit.load(str(out))(x)
    return np.rint((y[0].clamp(-1, 1).numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.int16)


def photo(path: Path, size: int = 128) -> Path:
    """A random photo whose side the exported graph takes as it is (two of unet_64's strides)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(7).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def as_input(image: Path) -> torch.Tensor:
    return torch.from_numpy(pixels(image).astype(np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal but for rounding: the exported graph's arithmetic may differ from eager's in the last bits."""
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1, f"differ by up to {np.abs(a - b).max()} levels"


def test_translate_by_default_gives_what_the_exported_graph_gives(run, tmp_path) -> None:
    image = photo(tmp_path / "in" / "p.png")
    close(translated(run, image, tmp_path / "out"), exported(run, as_input(image), tmp_path))


def test_the_test_page_by_default_shows_what_translate_and_export_give(run, tmp_path) -> None:
    page = run_test(options_for_test(run, tmp_path)).page
    assert page.parent.name == "test_latest"
    real = sorted((page.parent / "images").glob("*_real_A.png"))[0]
    shown = pixels(Path(str(real).replace("_real_A", "_fake_B")))
    np.testing.assert_array_equal(shown, translated(run, real, tmp_path / "out"))
    # The 32 px test image, padded as the translator pads it, through the exported graph.
    x = pad_to_multiple(as_input(real), 64)
    close(shown, exported(run, x, tmp_path, "torchscript")[:32, :32])


def test_the_api_by_default_gives_what_translate_test_and_export_give(run, tmp_path) -> None:
    image = photo(tmp_path / "in" / "p.png")
    from_api = np.asarray(ganvas.load(run, device="cpu").translate(image), dtype=np.int16)
    np.testing.assert_array_equal(from_api, translated(run, image, tmp_path / "out"))
    close(from_api, exported(run, as_input(image), tmp_path))
    page = run_test(options_for_test(run, tmp_path)).page
    real = sorted((page.parent / "images").glob("*_real_A.png"))[0]
    np.testing.assert_array_equal(
        np.asarray(ganvas.load(run, device="cpu").translate(real), dtype=np.int16),
        pixels(Path(str(real).replace("_real_A", "_fake_B"))),
    )


def test_results_pages_and_metrics_say_which_layer_mode_made_them(run, tmp_path) -> None:
    default = run_test(options_for_test(run, tmp_path))
    paper = run_test(options_for_test(run, tmp_path, paper_mode=True))
    assert (default.page.parent.name, paper.page.parent.name) == ("test_latest", "test_latest_paper")
    assert "Layers in eval mode: batch norm uses the running statistics" in unescape(default.page.read_text())
    assert "Layers in the pix2pix paper's test-time mode (--paper_mode)" in unescape(paper.page.read_text())
    for result, eval_mode in ((default, True), (paper, False)):
        summary = json.loads((result.page.parent / "metrics.json").read_text())
        assert summary["eval_mode"] is eval_mode and summary["layers"].startswith("Layers in")


def test_the_papers_mode_is_reachable_everywhere_and_differs_for_batch_norm(run, tmp_path) -> None:
    image = photo(tmp_path / "in" / "p.png")
    default = translated(run, image, tmp_path / "eval")
    paper = translated(run, image, tmp_path / "paper", "--paper_mode")
    assert np.abs(default - paper).mean() > 1  # batch statistics and dropout against running statistics
    from_api = ganvas.load(run, device="cpu", paper_mode=True).translate(image)
    np.testing.assert_array_equal(np.asarray(from_api, dtype=np.int16), paper)
    older_spelling = ganvas.load(run, device="cpu", eval=False).translate(image)
    np.testing.assert_array_equal(np.asarray(older_spelling, dtype=np.int16), paper)
    assert main(["test", *run_flags(run), "--paper_mode", "--results_dir", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / run.name / "test_latest_paper" / "index.html").is_file()


def test_eval_is_still_accepted_and_is_the_default(run, tmp_path) -> None:
    image = photo(tmp_path / "in" / "p.png")
    np.testing.assert_array_equal(
        translated(run, image, tmp_path / "flag", "--eval"), translated(run, image, tmp_path / "plain")
    )
    assert options_for_test(run, tmp_path, eval=True).paper_mode is False
    assert main(["test", *run_flags(run), "--eval", "--results_dir", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / run.name / "test_latest" / "index.html").is_file()
    with pytest.raises(OptionsError, match="contradict"):
        ganvas.load(run, device="cpu", eval=True, paper_mode=True)
    assert main(["translate", *run_flags(run), "--eval", "--paper_mode", str(image)]) == 2


def test_sample_pages_say_which_layer_mode_made_them(tmp_path) -> None:
    assert main(["data", "synth", "--kind", "images", "--out", str(tmp_path / "faces"), "--n_train", "8"]) == 0
    flags = ["--name", "faces_gan", "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1"]
    train_flags = ["--dataroot", str(tmp_path / "faces"), "--model", "gan", "--crop_size", "16", "--load_size", "16"]
    small = ["--ngf", "8", "--ndf", "8", "--batch_size", "4", "--n_epochs", "1", "--n_epochs_decay", "0"]
    assert main(["train", *flags, *train_flags, *small, "--num_threads", "0"]) == 0
    for extra, folder, words in (([], "test_latest", "eval mode"), (["--paper_mode"], "test_latest_paper", "paper")):
        assert main(["test", *flags, "--num_test", "4", "--results_dir", str(tmp_path / "res"), *extra]) == 0
        out = tmp_path / "res" / "faces_gan" / folder
        assert words in unescape((out / "index.html").read_text())
        assert json.loads((out / "metrics.json").read_text())["eval_mode"] is (extra == [])


def test_a_page_says_when_the_mode_makes_no_difference(tiny_pix2pix) -> None:
    # unet_32 has no dropout level; with instance norm nothing in it depends on the mode.
    train(tiny_pix2pix(norm="instance", n_epochs=1, n_epochs_decay=0), show_progress=False)
    page = run_test(tiny_pix2pix("test")).page
    assert "no batch norm or dropout, so both modes give the same images" in page.read_text()
