"""`ganvas eval`: folders, a run's test page, runs compared, and FID's weights file (missing, given, downloaded)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas import evaluate
from ganvas.cli import main
from ganvas.errors import DataError
from ganvas.train import train


def write_images(folder: Path, seed: int, count: int = 4, shift: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.clip(rng.normal(120 + shift, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def no_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("GANVAS_HOME", str(tmp_path / "home"))


def test_folders_get_fid_kid_and_paired_figures_with_their_protocol(tmp_path, fid_weights, capsys):
    real = write_images(tmp_path / "real", 0)
    near = write_images(tmp_path / "near", 1)
    far = write_images(tmp_path / "far", 2, shift=80)
    args = ["eval", "--real", str(real), "--metrics", "fid,kid,psnr", "--inception_weights", str(fid_weights)]
    assert main([*args, "--fake", str(near), "--out", str(tmp_path / "near.json")]) == 0
    assert main([*args, "--fake", str(far), "--out", str(tmp_path / "far.json")]) == 0
    near_result, far_result = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("near", "far"))
    assert 0 < near_result["metrics"]["fid"] < far_result["metrics"]["fid"]
    assert near_result["metrics"]["psnr"] > far_result["metrics"]["psnr"] and near_result["pairs"] == 4
    protocol = near_result["protocol"]
    assert protocol["real_images"] == 4 and protocol["weights_sha256"] == evaluate.file_sha256(fid_weights)
    assert "bicubic" in protocol["resize"] and protocol["kid"]["subset_size"] == 4
    out = capsys.readouterr().out
    assert "FID" in out and "biased upwards" in out  # 4 images: said, not hidden


def test_without_weights_fid_and_kid_are_skipped_in_one_line(tmp_path, no_cached_weights, capsys):
    real, fake = write_images(tmp_path / "real", 0), write_images(tmp_path / "fake", 1)
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--metrics", "fid,kid,ssim"]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if line.startswith("note: FID and KID skipped")]
    assert len(notes) == 1 and str(evaluate.weights_path()) in notes[0] and evaluate.WEIGHTS_URL in notes[0]
    assert "SSIM" in out and "FID" not in out.splitlines()[0]
    with pytest.raises(DataError, match="does not exist"):
        evaluate.find_weights(tmp_path / "nowhere.pth")


def test_download_fetches_the_weights_and_checks_their_hash(tmp_path, no_cached_weights, fid_weights, monkeypatch):
    from test_data_download import Server

    path = "/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
    server = Server({path: fid_weights.read_bytes()})
    try:
        with pytest.raises(DataError, match="different SHA-256"):
            evaluate.find_weights(None, download=True, mirror=server.url)
        assert not evaluate.weights_path().exists()
        monkeypatch.setattr(evaluate, "WEIGHTS_SHA256_PREFIX", evaluate.file_sha256(fid_weights)[:8])
        found = evaluate.find_weights(None, download=True, mirror=server.url)
        assert found.path == evaluate.weights_path() and found.path.read_bytes() == fid_weights.read_bytes()
        requests = len(server.requests)
        assert evaluate.find_weights(None, download=True, mirror=server.url).path == found.path
        assert len(server.requests) == requests  # cached: not fetched again
    finally:
        server.close()


def test_a_run_is_tested_scored_and_compared_with_another(tiny_pix2pix, fid_weights, tmp_path, capsys):
    for name, epochs in (("short", 1), ("longer", 2)):
        opt = tiny_pix2pix(name=name, n_epochs=epochs)
        train(opt, show_progress=False)
    common = ["--checkpoints_dir", str(opt.checkpoints_dir), "--results_dir", str(opt.results_dir)]
    weights = ["--inception_weights", str(fid_weights), "--metrics", "fid,psnr,ssim"]
    for name in ("short", "longer"):
        assert main(["eval", "--name", name, *common, *weights]) == 0
    result = json.loads((Path(opt.results_dir) / "short" / "test_latest" / "eval.json").read_text())
    assert result["pairs"] == 4 and result["protocol"]["generated_images"] == 4 and result["epoch"] == "latest"
    capsys.readouterr()
    assert main(["eval", "--compare", "short", "longer", "--results_dir", str(opt.results_dir)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["run", "FID", "PSNR", "SSIM"]
    assert [line.split()[0] for line in table[1:3]] == ["short", "longer"]
    assert main(["eval", "--compare", "short", "missing", "--results_dir", str(opt.results_dir)]) == 2


def test_unknown_metrics_and_unpaired_folders_are_named(tmp_path, no_cached_weights, capsys):
    real, fake = write_images(tmp_path / "real", 0), write_images(tmp_path / "fake", 1)
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--metrics", "fid,lpipz"]) == 2
    assert "unknown metric 'lpipz'" in capsys.readouterr().err
    (fake / "0.png").rename(fake / "other.png")
    for f in list(fake.glob("[123].png")):
        f.rename(fake / f"x{f.name}")
    assert main(["eval", "--real", str(real), "--fake", str(fake), "--metrics", "psnr"]) == 0
    assert "no paired targets" in capsys.readouterr().out


def test_an_unpaired_run_is_scored_against_its_sets_kept_aside_truth(studio_runs, tmp_path, no_cached_weights):
    from ganvas.infer import run_test
    from ganvas.options import resolve_options

    given = {"name": "cycle", "checkpoints_dir": str(studio_runs / "checkpoints"), "results_dir": str(tmp_path)}
    page = run_test(resolve_options(given, "test")).page
    result = evaluate.evaluate_test_page(page.parent, ("psnr", "fid"), evaluate.find_weights(None))
    assert result["pairs"] == len(list((page.parent / "images").glob("*_truth_B.png"))) > 0
    assert result["metrics"]["psnr"] > 0 and "fid" not in result["metrics"]
    assert len(result["notes"]) == 1 and "skipped" in result["notes"][0]


# ------------------------------------------------------------------------------------- during training


def eval_run(tiny_pix2pix, name: str, **flags):
    given = {"name": name, "eval_freq": 1, "eval_count": 4, "save_best": "psnr", "save_epoch_freq": 1}
    return tiny_pix2pix(**{**given, "n_epochs": 2, "n_epochs_decay": 1, **flags})


def read_log(run_dir: Path) -> list[dict[str, str]]:
    import csv

    with open(run_dir / "eval_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_eval_freq_logs_figures_plots_them_and_keeps_the_best_networks(tiny_pix2pix):
    import torch

    opt = eval_run(tiny_pix2pix, "scored")
    train(opt, show_progress=False)
    rows = read_log(opt.run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and {"psnr", "ssim"} <= set(rows[0])
    best = json.loads((opt.run_dir / "best.json").read_text())
    psnrs = [float(r["psnr"]) for r in rows]
    assert best["epoch"] == 1 + int(np.argmax(psnrs)) and best["value"] == pytest.approx(max(psnrs))
    kept = torch.load(opt.run_dir / "best_net_G.pth", weights_only=True)
    that_epoch = torch.load(opt.run_dir / f"{best['epoch']}_net_G.pth", weights_only=True)
    assert all(torch.equal(kept[k], that_epoch[k]) for k in kept)
    page = (opt.run_dir / "web" / "index.html").read_text()
    assert "test figures" in page and "psnr" in page


def test_a_resumed_run_evaluates_as_an_uninterrupted_one_and_keeps_its_best(tiny_pix2pix):
    from ganvas.train import Callback

    whole = eval_run(tiny_pix2pix, "whole")
    train(whole, show_progress=False)

    class StopAfterTwo(Callback):
        def on_epoch_end(self, trainer, epoch):
            if epoch.epoch == 2:
                trainer.request_stop()

    parts = eval_run(tiny_pix2pix, "parts")
    assert train(parts, show_progress=False, callbacks=[StopAfterTwo()]).interrupted
    assert len(read_log(parts.run_dir)) == 2
    train(eval_run(tiny_pix2pix, "parts", continue_train=True), show_progress=False)
    assert read_log(parts.run_dir) == read_log(whole.run_dir)
    best = {k: v for k, v in json.loads((parts.run_dir / "best.json").read_text()).items()}
    assert best == json.loads((whole.run_dir / "best.json").read_text())


def test_save_best_must_be_an_evaluated_figure(tiny_pix2pix):
    from ganvas.errors import GanvasError

    with pytest.raises(GanvasError, match="--save_best fid is not among --eval_metrics"):
        train(eval_run(tiny_pix2pix, "bad", save_best="fid"), show_progress=False)


def test_tensorboard_gets_losses_figures_and_visuals_and_a_resume_drops_what_it_redoes(tiny_pix2pix):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from ganvas.train import Callback

    class StopAfterOne(Callback):
        def on_epoch_end(self, trainer, epoch):
            trainer.request_stop()

    opt = eval_run(tiny_pix2pix, "board", tensorboard=True, print_freq=4, display_freq=8, n_epochs=1)
    assert train(opt, show_progress=False, callbacks=[StopAfterOne()]).interrupted
    train(eval_run(tiny_pix2pix, "board", tensorboard=True, print_freq=4, display_freq=8, n_epochs=1,
                   continue_train=True), show_progress=False)  # fmt: skip
    events = EventAccumulator(str(opt.run_dir / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"loss/G_GAN", "loss/G_L1", "loss/D_real", "lr", "eval/psnr", "eval/ssim"} <= set(tags["scalars"])
    assert any(t.startswith("visuals/") for t in tags["images"])
    psnr = [e.value for e in events.Scalars("eval/psnr")]
    assert psnr == pytest.approx([float(r["psnr"]) for r in read_log(opt.run_dir)])
    steps = [e.step for e in events.Scalars("loss/G_GAN")]
    assert steps == sorted(set(steps))  # no step twice after the resume


def test_samples_of_a_generator_from_noise_are_scored_against_its_training_images(tmp_path, fid_weights, capsys):
    from ganvas.data.synthetic import write_image_folder
    from ganvas.options import resolve_options

    data = write_image_folder(tmp_path / "photos", 8, size=32, seed=0)
    given = {"model": "gan", "dataroot": str(data), "name": "noise", "checkpoints_dir": str(tmp_path / "ck"),
             "gpu_ids": "-1", "n_epochs": 1, "n_epochs_decay": 0, "batch_size": 4, "num_threads": 0}  # fmt: skip
    train(resolve_options({**given, "load_size": 32, "crop_size": 32}, "train"), show_progress=False)
    args = ["eval", "--name", "noise", "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir", str(tmp_path)]
    assert main([*args, "--num_test", "4", "--inception_weights", str(fid_weights), "--metrics", "fid,psnr"]) == 0
    result = json.loads((tmp_path / "noise" / "test_latest" / "eval.json").read_text())
    assert result["protocol"]["generated_images"] == 4 and result["protocol"]["real_images"] == 8
    assert result["metrics"]["fid"] > 0 and any("no paired targets" in n for n in result["notes"])
