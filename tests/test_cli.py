"""The `ganvas` command as a user types it: reference-style flags, clear one-sentence errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from ganvas.checkpoint import load_torch
from ganvas.cli import main

NETS = [
    "--netG",
    "unet_32",
    "--ngf",
    "8",
    "--ndf",
    "8",
    "--load_size",
    "32",
    "--crop_size",
    "32",
    "--gpu_ids",
    "-1",
    "--seed",
    "1",
]
TINY = [*NETS, "--n_epochs", "1", "--n_epochs_decay", "0", "--num_threads", "0"]


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_original_repository_commands_train_test_and_translate(paired_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(
        [
            "train",
            "--dataroot",
            str(paired_root),
            "--name",
            "facades_pix2pix",
            "--model",
            "pix2pix",
            "--direction",
            "BtoA",
            *TINY,
        ],
        capsys,
    )
    assert code == 0 and (tmp_path / "checkpoints/facades_pix2pix/latest_net_G.pth").is_file()
    code, out, _ = run(
        [
            "test",
            "--dataroot",
            str(paired_root),
            "--name",
            "facades_pix2pix",
            "--model",
            "pix2pix",
            "--direction",
            "BtoA",
        ],
        capsys,
    )
    page = tmp_path / "results/facades_pix2pix/test_latest/index.html"
    assert code == 0 and "results/facades_pix2pix/test_latest/index.html" in out
    metrics = json.loads((page.parent / "metrics.json").read_text())
    assert metrics["count"] == 4
    # BtoA: the input is B (photo, right half) and the target is A (labels, left half).
    real_a = np.asarray(Image.open(next((page.parent / "images").glob("*_real_A.png"))))
    src = np.asarray(Image.open(sorted((paired_root / "test").glob("*.png"))[0]))
    assert np.array_equal(real_a, src[:, 32:]) or np.abs(real_a.astype(int) - src[:, 32:].astype(int)).max() <= 1

    img = tmp_path / "photo1.png"
    Image.fromarray(np.full((45, 61, 3), 120, np.uint8)).save(img)
    img2 = tmp_path / "photo2.jpg"
    Image.fromarray(np.full((30, 40, 3), 90, np.uint8)).save(img2)
    code, out, _ = run(["translate", "--name", "facades_pix2pix", str(img), "--out", "out/", str(img2)], capsys)
    assert code == 0 and "translated 2 images" in out
    assert Image.open(tmp_path / "out/photo1.png").size == (61, 45)
    assert Image.open(tmp_path / "out/photo2.png").size == (40, 30)


def test_data_synth_is_deterministic_by_seed(tmp_path, capsys):
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        assert (
            run(
                [
                    "data",
                    "synth",
                    "--out",
                    str(tmp_path / name),
                    "--n_train",
                    "3",
                    "--n_test",
                    "1",
                    "--size",
                    "32",
                    "--seed",
                    str(seed),
                ],
                capsys,
            )[0]
            == 0
        )
    files = lambda d: [p.read_bytes() for p in sorted((tmp_path / d).rglob("*.png"))]
    assert len(files("a")) == 4 and files("a") == files("b") and files("a") != files("c")


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["train", "--dataroot", "{tmp}/nowhere", "--name", "x"], "nowhere"),
        (["train", "--dataroot", "{tmp}/empty", "--name", "x", "--dataset_mode", "single"], "empty"),
        (
            ["test", "--name", "never_trained", "--checkpoints_dir", "{tmp}/ck", "--dataroot", "{tmp}"],
            "latest_net_G.pth",
        ),
        (["train", "--dataroot", "{tmp}", "--lamda_L1", "3"], "did you mean --lambda_L1"),
        (["translate", "--name", "x", "--checkpoints_dir", "{tmp}/ck", "{tmp}/missing.png"], "missing.png"),
    ],
)
def test_bad_input_gives_one_sentence_naming_the_problem(tmp_path, capsys, argv, fragment):
    (tmp_path / "empty").mkdir()
    code, out, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    message = err.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("ganvas: error:") and fragment in message[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("workers", ["0", "2"])
def test_image_that_fails_mid_run_is_named_and_the_run_is_saved(tmp_path, capsys, workers):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / f"good{i}.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / "z.png")
    data = (folder / "z.png").read_bytes()
    (folder / "z.png").write_bytes(data[: len(data) // 2])  # a valid header, truncated pixels
    code, _, err = run(
        [
            "train",
            "--dataroot",
            str(folder),
            "--name",
            "g",
            "--model",
            "gan",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--crop_size",
            "16",
            "--load_size",
            "16",
            "--num_threads",
            workers,
            "--serial_batches",
            "--n_epochs",
            "1",
            "--n_epochs_decay",
            "0",
            "--gpu_ids",
            "-1",
        ],
        capsys,
    )
    lines = err.strip().splitlines()
    assert code == 2 and lines[-1].startswith("ganvas: error: cannot read image") and "z.png" in lines[-1]
    assert "Traceback" not in err
    # The four good steps before it are saved: the run resumes once the file is fixed.
    assert load_torch(tmp_path / "ck/g/latest_state.pt")["progress"]["steps"] == 4


def test_unconditional_gan_trains_and_samples(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        run(["data", "synth", "--kind", "images", "--out", "faces", "--n_train", "8", "--size", "16"], capsys)[0] == 0
    )
    code, _, _ = run(
        [
            "train",
            "--dataroot",
            "./faces",
            "--name",
            "faces_gan",
            "--model",
            "gan",
            "--crop_size",
            "16",
            "--load_size",
            "16",
            "--ngf",
            "8",
            "--ndf",
            "8",
            "--batch_size",
            "4",
            "--n_epochs",
            "1",
            "--n_epochs_decay",
            "0",
            "--num_threads",
            "0",
            "--gpu_ids",
            "-1",
        ],
        capsys,
    )
    assert code == 0
    code, out, _ = run(["test", "--name", "faces_gan", "--num_test", "9"], capsys)
    grid = tmp_path / "results/faces_gan/test_latest/samples_grid.png"
    assert code == 0 and len(list(grid.parent.glob("images/sample_*.png"))) == 9
    assert Image.open(grid).size == (3 * 18 + 2, 3 * 18 + 2)  # 3 x 3 tiles of 16 px with 2 px borders


def test_python_dash_m_ganvas_runs():
    proc = subprocess.run([sys.executable, "-m", "ganvas", "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.startswith("ganvas ")


def test_sigterm_to_the_process_group_saves_then_exits_143(paired_root, tmp_path):
    """SIGTERM to `ganvas train` and its loader workers, as `timeout`, SLURM and torchrun send it."""
    argv = [sys.executable, "-m", "ganvas", "train", "--dataroot", str(paired_root), "--name", "term"]
    argv += ["--checkpoints_dir", str(tmp_path / "ck"), *NETS, "--n_epochs", "1000", "--n_epochs_decay", "0"]
    argv += ["--num_threads", "2", "--print_freq", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = tmp_path / "ck/term/loss_log.csv"
    deadline = time.monotonic() + 60
    while not (log.is_file() and len(log.read_text().splitlines()) > 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM" in out and "--continue_train" in out and "Traceback" not in err
    # Saved at the step it stopped after: the last row of the loss log (a row per step here).
    steps = load_torch(tmp_path / "ck/term/latest_state.pt")["progress"]["steps"]
    assert steps >= 3 and steps == int(log.read_text().splitlines()[-1].split(",")[2])


def test_ctrl_c_saves_a_checkpoint_that_continue_train_resumes(paired_root, tmp_path):
    """A real SIGINT to `ganvas train` (with loader workers): exit 130, resumable state, then resume."""
    argv = [
        sys.executable,
        "-m",
        "ganvas",
        "train",
        "--dataroot",
        str(paired_root),
        "--name",
        "long",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        *NETS,
        "--n_epochs",
        "1000",
        "--n_epochs_decay",
        "0",
        "--num_threads",
        "2",
        "--print_freq",
        "1",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "ck/long/loss_log.csv"
    deadline = time.monotonic() + 60
    while not (log.is_file() and len(log.read_text().splitlines()) > 3) and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--continue_train" in out and "Traceback" not in err
    state = load_torch(tmp_path / "ck/long/latest_state.pt")
    steps = state["progress"]["steps"]
    assert steps >= 3
    # Resume from the saved options alone and finish the first epoch's remainder plus one more epoch.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ganvas",
            "train",
            "--dataroot",
            str(paired_root),
            "--name",
            "long",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--continue_train",
            "--n_epochs",
            str(state["progress"]["epoch"] + 1),
            "--num_threads",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    after = load_torch(tmp_path / "ck/long/latest_state.pt")
    per_epoch = 12  # 12 images, batch 1
    assert after["progress"]["steps"] == (state["progress"]["epoch"] + 1) * per_epoch
    assert os.path.getsize(tmp_path / "ck/long/latest_net_G.pth") > 0
