import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.infer import run_test, translate_files
from ganvas.metrics import image_metrics, psnr, ssim
from ganvas.train import train


@pytest.fixture
def trained(tiny_pix2pix):
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    return tiny_pix2pix


def test_test_writes_every_image_a_page_and_metrics(trained):
    result = run_test(trained("test"))
    assert result.count == 4  # every test image by default
    out = result.page.parent
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["count"] == 4 and set(summary["mean"]) == {"psnr", "ssim", "l1"}
    assert len(summary["per_image"]) == 4
    html = result.page.read_text()
    for key in ("real_A", "fake_B", "real_B"):
        assert len(list((out / "images").glob(f"*_{key}.png"))) == 4 and key in html
    assert out.name == "test_latest"


def test_num_test_limits_the_images(trained):
    assert run_test(trained("test", num_test=2)).count == 2


def test_paper_mode_is_reproducible_under_the_seed_and_differs_from_eval(tiny_pix2pix):
    # unet_64 has a dropout level, which the paper's test mode keeps on.
    train(tiny_pix2pix(netG="unet_64", n_epochs=1, n_epochs_decay=0), show_progress=False)

    def outputs(**kw):
        page = run_test(tiny_pix2pix("test", **kw)).page
        images = [np.asarray(Image.open(f)) for f in sorted((page.parent / "images").glob("*_fake_B.png"))]
        assert len(images) == 4
        return images

    paper, paper_again = outputs(paper_mode=True), outputs(paper_mode=True)
    assert all(np.array_equal(a, b) for a, b in zip(paper, paper_again))
    evaluated, evaluated_again = outputs(eval=True), outputs(eval=True)
    assert all(np.array_equal(a, b) for a, b in zip(evaluated, evaluated_again))
    assert not all(np.array_equal(a, b) for a, b in zip(paper, evaluated))
    assert not all(np.array_equal(a, b) for a, b in zip(paper, outputs(paper_mode=True, seed=99)))  # seeds dropout


@pytest.mark.parametrize("size", [(37, 53), (31, 64), (70, 45)])
def test_translate_keeps_the_input_size(trained, tmp_path, size):
    h, w = size
    src = tmp_path / "in" / f"odd_{h}x{w}.png"
    src.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)).save(src)
    [out] = translate_files(trained("translate"), [src.parent], tmp_path / "out")
    assert Image.open(out).size == (w, h)


def test_psnr_of_a_known_error():
    a = torch.zeros(3, 8, 8)
    assert psnr(a, a + 0.1) == pytest.approx(20.0)  # 10 log10(1 / 0.01)


def test_ssim_agrees_with_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    a = rng.random((3, 40, 48))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b))
    theirs = metrics.structural_similarity(
        a, b, channel_axis=0, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ours == pytest.approx(theirs, abs=1e-6)


def test_image_metrics_rank_a_closer_output_higher():
    target = torch.rand(3, 32, 32) * 2 - 1
    near, far = target + 0.05 * torch.randn_like(target), target + 0.5 * torch.randn_like(target)
    m_near, m_far = image_metrics(near.clamp(-1, 1), target), image_metrics(far.clamp(-1, 1), target)
    assert m_near["psnr"] > m_far["psnr"] and m_near["ssim"] > m_far["ssim"] and m_near["l1"] < m_far["l1"]


def test_translate_keeps_subfolders_and_never_overwrites_an_output(trained, tmp_path):
    rng = np.random.default_rng(1)
    sources = [tmp_path / "in" / sub / "x.png" for sub in ("a", "b")] + [tmp_path / "x.jpg"]
    for src in sources:
        src.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(src)
    written = translate_files(
        trained("translate"), [tmp_path / "in", tmp_path / "x.jpg", tmp_path / "in" / "a" / "x.png"], tmp_path / "out"
    )
    assert len(written) == len(set(written)) == 4 and all(p.is_file() for p in written)
    assert {p.relative_to(tmp_path / "out").as_posix() for p in written} == {"a/x.png", "b/x.png", "x.png", "x_1.png"}
