"""Multi-process training: torchrun with gloo on the CPU matches one process with the whole batch."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ganvas.checkpoint import STATE_FILE, load_torch, read_state_dict
from ganvas.data.synthetic import write_paired_set
from ganvas.distributed import World, shard
from ganvas.interop import load_network

pytestmark = pytest.mark.slow


def test_each_process_takes_every_nth_item_padded_to_equal_counts() -> None:
    order = [5, 3, 0, 4, 1]
    parts = [shard(order, World(rank, 2)) for rank in range(2)]
    assert parts == [[5, 0, 1], [3, 4, 5]]  # padded with the order's start, as DistributedSampler pads
    assert shard(order, World(0, 1)) == order
    assert [shard([7], World(r, 3)) for r in range(3)] == [[7], [7], [7]]


def ganvas_train(*args: str, processes: int = 1) -> None:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
        if processes > 1
        else [sys.executable]
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launcher, "-m", "ganvas", "train", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]


def pix2pix_flags(root: Path, epochs: int) -> list[str]:
    """The runs' options: a small instance-norm pix2pix on the paired set under root/data."""
    return [
        "--dataroot",
        str(root / "data"),
        "--model",
        "pix2pix",
        "--netG",
        "unet_32",
        "--ngf",
        "8",
        "--ndf",
        "8",
        "--norm",
        "instance",
        "--no_dropout",
        "--preprocess",
        "none",
        "--n_epochs",
        str(epochs),
        "--n_epochs_decay",
        "0",
        "--num_threads",
        "0",
        "--gpu_ids",
        "-1",
        "--seed",
        "5",
        "--checkpoints_dir",
        str(root / "ck"),
        "--save_epoch_freq",
        "1",
        "--print_freq",
        "2",
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """One process with batch 2 for two epochs, and two processes with batch 1 for the first epoch, then
    one process with batch 2 resuming for the second (a resume with another number of processes)."""
    root = tmp_path_factory.mktemp("ddp")
    write_paired_set(root / "data", n_train=6, n_test=1, size=32, seed=1)
    common = pix2pix_flags(root, 2)
    ganvas_train(*common, "--name", "one", "--batch_size", "2")
    ganvas_train(*pix2pix_flags(root, 1), "--name", "two", "--batch_size", "1", processes=2)
    for net in ("G", "D"):  # the two-process epoch, kept before the resume overwrites latest_*
        (root / "ck" / "two" / f"ddp_net_{net}.pth").write_bytes(
            (root / "ck" / "two" / f"latest_net_{net}.pth").read_bytes()
        )
    ganvas_train(*common, "--name", "two", "--batch_size", "2", "--continue_train")
    return root / "ck"


def assert_same_network(path_a: Path, path_b: Path, example: torch.Tensor) -> None:
    """Equal weights within float tolerance, and equal outputs.

    Conv biases right before instance norm are left out of the weight comparison: the norm removes
    them, so their gradient is zero up to rounding, and Adam turns that rounding into steps of +-lr.
    """
    a, b = read_state_dict(path_a), read_state_dict(path_b)
    assert a.keys() == b.keys()
    net = load_network(path_a)
    cancelled: set[str] = set()
    modules = dict(net.named_modules())
    names = list(modules)
    for i, name in enumerate(names[:-1]):
        if isinstance(modules[name], torch.nn.modules.conv._ConvNd) and isinstance(
            modules[names[i + 1]], torch.nn.InstanceNorm2d
        ):
            cancelled.add(f"{name}.bias")
    compared = [k for k in a if k not in cancelled]
    assert len(compared) > len(a) / 2
    for key in compared:
        torch.testing.assert_close(a[key], b[key], atol=2e-5, rtol=1e-4, msg=key)
    with torch.no_grad():
        torch.testing.assert_close(net(example), load_network(path_b)(example), atol=1e-4, rtol=1e-4)


def test_two_processes_with_batch_1_train_as_one_process_with_batch_2(runs) -> None:
    example = torch.rand(2, 3, 32, 32) * 2 - 1
    assert_same_network(runs / "one" / "1_net_G.pth", runs / "two" / "ddp_net_G.pth", example)
    assert_same_network(runs / "one" / "1_net_D.pth", runs / "two" / "ddp_net_D.pth", torch.cat([example] * 2, 1))


def test_two_nodes_through_c10d_rendezvous_train_as_two_local_processes(runs) -> None:
    # torchrun's multi-node launch, both "nodes" on this machine: global ranks 0 and 1, local rank 0 each.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{free.getsockname()[1]}"
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--nproc_per_node",
                "1",
                "--rdzv_backend",
                "c10d",
                "--rdzv_endpoint",
                endpoint,
                "--rdzv_id",
                "ganvas-test",
                "-m",
                "ganvas",
                "train",
                *pix2pix_flags(runs.parent, 1),
                "--name",
                "nodes",
                "--batch_size",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    try:
        outputs = [node.communicate(timeout=300)[0] for node in nodes]
    finally:
        for node in nodes:  # none is left behind when one hangs or the test fails
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    for net in ("G", "D"):
        a = read_state_dict(runs / "two" / f"ddp_net_{net}.pth")
        b = read_state_dict(runs / "nodes" / f"latest_net_{net}.pth")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert loss_rows(runs / "nodes" / "loss_log.csv") == loss_rows(runs / "two" / "loss_log.csv")[:3]


def test_a_run_of_two_processes_resumes_in_one(runs) -> None:
    lines = (runs / "two" / "loss_log.csv").read_text().splitlines()
    assert sum(line.startswith("epoch,") for line in lines) == 1  # one writer: the first process
    rows = loss_rows(runs / "one" / "loss_log.csv")
    assert len(rows) == 6 and rows == loss_rows(runs / "two" / "loss_log.csv")
    # After six Adam steps rounding noise has grown (Adam normalises near-zero gradients), so the
    # resumed networks agree to about lr, not to float precision; the losses above agree exactly.
    example = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        difference = (
            (
                load_network(runs / "one" / "latest_net_G.pth")(example)
                - load_network(runs / "two" / "latest_net_G.pth")(example)
            )
            .abs()
            .max()
        )
    assert difference < 5e-3


def test_sigterm_to_torchrun_saves_every_process_and_the_run_resumes(tmp_path) -> None:
    # torchrun's agent passes SIGTERM (from Kubernetes, docker stop, SLURM) to each process's group and
    # kills them 30 s later. Rank 0 can only save if every process reaches the save's collectives.
    write_paired_set(tmp_path / "data", n_train=80, n_test=1, size=32, seed=1)
    flags = pix2pix_flags(tmp_path, 1)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    agent = subprocess.Popen(
        [*launcher, "-m", "ganvas", "train", *flags, "--name", "term", "--batch_size", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    log = tmp_path / "ck" / "term" / "loss_log.csv"
    try:
        deadline = time.monotonic() + 120
        while not (log.is_file() and len(log.read_text().splitlines()) > 3) and time.monotonic() < deadline:
            time.sleep(0.1)
        agent.send_signal(signal.SIGTERM)
        output = agent.communicate(timeout=120)[0]
    finally:
        agent.kill()
    assert "stopped by SIGTERM" in output, output[-3000:]
    state = load_torch(tmp_path / "ck" / "term" / STATE_FILE)["progress"]
    # Saved mid-epoch at the step the processes stopped after (a loss row per step: 2 images, --print_freq 2).
    assert 0 < state["epoch_iter"] < 40 and state["steps"] == int(log.read_text().splitlines()[-1].split(",")[2])
    ganvas_train(*flags, "--name", "term", "--batch_size", "2", "--continue_train")
    after = load_torch(tmp_path / "ck" / "term" / STATE_FILE)["progress"]
    assert after["epoch"] == 2 and after["images"] == 80


def test_sync_batch_norm_on_cpu_processes_is_refused_with_the_alternatives(tmp_path) -> None:
    # One process under torchrun joins a process group too (DDP, SyncBatchNorm), as it would with more,
    # so it meets the same refusal (and costs the suite one process, not two).
    data = write_paired_set(tmp_path / "data", n_train=2, n_test=1, size=32, seed=1)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    done = subprocess.run(
        [
            *launcher,
            "-m",
            "ganvas",
            "train",
            "--dataroot",
            str(data),
            "--name",
            "s",
            "--netG",
            "unet_32",
            "--ngf",
            "4",
            "--ndf",
            "4",
            "--norm",
            "syncbatch",
            "--gpu_ids",
            "-1",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--num_threads",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode != 0
    assert "--norm syncbatch" in done.stderr and "--norm batch" in done.stderr


def test_a_partly_frozen_pix2pixhd_generator_trains_alike_in_two_processes(tmp_path) -> None:
    # --niter_fix_global freezes G's global part for the first epoch: DDP must average the enhancer's
    # gradients then, and all of G's after.
    from ganvas.data.synthetic import write_street_set

    data = write_street_set(tmp_path / "s", n_train=4, n_test=1, size=(32, 64), seed=0)
    common = [
        "--dataroot",
        str(data),
        "--model",
        "pix2pixhd",
        "--label_nc",
        "8",
        "--netG",
        "local",
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--n_downsample_global",
        "2",
        "--n_blocks_global",
        "1",
        "--n_blocks_local",
        "1",
        "--niter_fix_global",
        "1",
        "--n_epochs",
        "2",
        "--n_epochs_decay",
        "0",
        "--no_vgg_loss",
        "--preprocess",
        "none",
        "--no_flip",
        "--num_threads",
        "0",
        "--gpu_ids",
        "-1",
        "--seed",
        "3",
        "--checkpoints_dir",
        str(tmp_path / "ck"),
        "--print_freq",
        "1",
    ]
    ganvas_train(*common, "--name", "one", "--batch_size", "2")
    ganvas_train(*common, "--name", "two", "--batch_size", "1", processes=2)
    one, two = (loss_rows(tmp_path / "ck" / name / "loss_log.csv") for name in ("one", "two"))
    assert len(one) == 4 and one == two


def loss_rows(path: Path) -> list[list[str]]:
    """Epoch, step and every loss of each logged row (not the wall time)."""
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    return [[r[0], r[2], *r[5:]] for r in rows]


def test_vid2vid_in_two_processes_keeps_each_clip_in_one_process_and_trains_as_one_process(tmp_path) -> None:
    """Sequences split across processes: each process carries its own clips' frames from chunk to chunk, so two
    processes of batch 1 follow one process of batch 2 (to float rounding, which the GAN losses let grow)."""
    from ganvas.data.synthetic import write_video_set

    data = write_video_set(tmp_path / "v", n_train=4, n_test=1, n_frames=6, size=(32, 32), seed=0)
    common = ["--dataroot", str(data), "--model", "vid2vid", "--ngf", "4", "--ndf", "4", "--n_downsample_G", "2",
              "--n_blocks", "2", "--norm", "instance", "--no_vgg", "--preprocess", "none", "--no_flip",
              "--n_frames_G", "2", "--n_frames_total", "4", "--max_frames_per_gpu", "2", "--flow", "gt",
              "--n_epochs", "1", "--n_epochs_decay", "0", "--num_threads", "0", "--gpu_ids", "-1", "--seed", "3",
              "--checkpoints_dir", str(tmp_path / "ck"), "--print_freq", "1"]  # fmt: skip
    ganvas_train(*common, "--name", "one", "--batch_size", "2")
    ganvas_train(*common, "--name", "two", "--batch_size", "1", processes=2)
    one, two = (loss_rows(tmp_path / "ck" / name / "loss_log.csv") for name in ("one", "two"))
    assert len(one) == len(two) == 4  # 4 clips of 2 chunks, 2 clips a step
    for a, b in zip(one, two):  # epoch, step, then the losses
        assert a[:2] == b[:2] and [float(x) for x in b[2:]] == pytest.approx([float(x) for x in a[2:]], rel=0.02)


def test_eval_freq_in_two_processes_evaluates_in_the_first_and_trains_as_one_process(tmp_path) -> None:
    # The first process scores the model between epochs (its networks unwrapped from DDP, so no collective
    # waits for the others); the weights and the figures are those of one process with the whole batch.
    write_paired_set(tmp_path / "data", n_train=6, n_test=2, size=32, seed=1)
    scored = ["--eval_freq", "1", "--eval_count", "2", "--save_best", "psnr"]
    ganvas_train(*pix2pix_flags(tmp_path, 2), *scored, "--name", "one", "--batch_size", "2")
    ganvas_train(*pix2pix_flags(tmp_path, 2), *scored, "--name", "two", "--batch_size", "1", processes=2)
    logs = []
    for name in ("one", "two"):
        with open(tmp_path / "ck" / name / "eval_log.csv", newline="") as fh:
            logs.append(list(csv.DictReader(fh)))
    assert [row["epoch"] for row in logs[0]] == [row["epoch"] for row in logs[1]] == ["1", "2"]
    for row_one, row_two in zip(*logs):
        assert abs(float(row_one["psnr"]) - float(row_two["psnr"])) < 1e-3, (row_one, row_two)
    assert (tmp_path / "ck" / "two" / "best_net_G.pth").is_file()
