"""Trainer callbacks: what they are told, stopping a run from one, and one that raises."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from ganvas.checkpoint import STATE_FILE, load_torch
from ganvas.distributed import World
from ganvas.train import Callback, EpochInfo, StepInfo, Trainer, TrainResult, train


def read_log(run_dir: Path) -> list[list[str]]:
    with open(run_dir / "loss_log.csv", newline="") as fh:
        return list(csv.reader(fh))


def read_state_dicts(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {n: torch.load(run_dir / f"latest_net_{n}.pth", weights_only=True) for n in ("G", "D")}


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    want, got = read_state_dicts(run_a), read_state_dicts(run_b)
    for net in ("G", "D"):
        assert want[net].keys() == got[net].keys()
        for key in want[net]:
            assert torch.equal(want[net][key], got[net][key]), f"{net}.{key} differs"


class Recorder(Callback):
    """Records every hook call as (name, hook, argument) in a list it may share with other recorders."""

    def __init__(self, name: str = "rec", calls: list | None = None) -> None:
        self.name = name
        self.calls: list[tuple[str, str, object]] = [] if calls is None else calls
        self.last_row: dict[str, int] = {}  # "step N" or "epoch N" -> steps of the log's last row when the hook ran

    def on_train_start(self, trainer: Trainer) -> None:
        self.calls.append((self.name, "train_start", None))

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.calls.append((self.name, "epoch_start", epoch))

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        self.calls.append((self.name, "step", step))
        self.note_last_row(trainer, f"step {step.step}")

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        self.calls.append((self.name, "epoch_end", epoch))
        self.note_last_row(trainer, f"epoch {epoch.epoch}")

    def note_last_row(self, trainer: Trainer, key: str) -> None:
        logged = (trainer.run_dir / "loss_log.csv").is_file()
        self.last_row[key] = int(read_log(trainer.run_dir)[-1][2]) if logged else 0

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.calls.append((self.name, "train_end", result))

    def of(self, hook: str) -> list:
        return [arg for name, h, arg in self.calls if h == hook and name == self.name]


class StopAt(Recorder):
    """Asks the run to stop after step `step`."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        super().on_step_end(trainer, step)
        if step.step == self.step:
            trainer.request_stop()


def test_step_crossed_says_whether_a_step_passed_a_multiple_of_the_frequency():
    step = lambda images, batch: StepInfo({}, 1, 1, images, batch, 0.0, 0.0)
    assert step(8, 2).crossed(4) and step(9, 3).crossed(4) and step(4, 4).crossed(4)
    assert not step(6, 2).crossed(4) and not step(3, 3).crossed(4)
    assert not step(8, 2).crossed(0) and not step(8, 2).crossed(-1)


def test_callbacks_are_told_every_step_and_epoch_after_the_built_in_ones(tiny_pix2pix):
    # Rows every 5 images (steps 3, 5, 8, 10) and at the epoch ends (steps 6 and 12), with batch 2.
    calls: list = []
    first, second = Recorder("a", calls), Recorder("b", calls)
    result = train(tiny_pix2pix(print_freq=5), show_progress=False, callbacks=[first, second])

    hooks = [hook for name, hook, _ in calls if name == "a"]
    assert hooks == [
        "train_start",
        "epoch_start",
        *["step"] * 6,
        "epoch_end",
        "epoch_start",
        *["step"] * 6,
        "epoch_end",
        "train_end",
    ]
    assert [(name, hook) for name, hook, _ in calls] == [(n, h) for h in hooks for n in ("a", "b")]  # in order
    assert first.of("train_end") == [result] and first.of("epoch_start") == [1, 2]

    steps: list[StepInfo] = first.of("step")
    assert [s.step for s in steps] == list(range(1, 13))
    assert [s.images for s in steps] == list(range(2, 25, 2)) and all(s.batch == 2 for s in steps)
    assert [s.epoch for s in steps] == [1] * 6 + [2] * 6
    assert all(s.compute_s > 0 and s.data_s >= 0 for s in steps)
    assert steps[-1].losses == result.losses

    header, *rows = read_log(result.run_dir)
    assert [int(r[2]) for r in rows] == [3, 5, 6, 8, 10, 12]
    for row in rows:
        step = steps[int(row[2]) - 1]
        assert [int(row[0]), int(row[1])] == [step.epoch, step.images]
        assert row[5:] == [f"{step.losses[k]:.5g}" for k in header[5:]]
    # The built-in loss log wrote each row before the callbacks were told of its step or epoch end.
    assert [first.last_row[f"step {n}"] for n in (2, 3, 5, 8, 10)] == [0, 3, 5, 8, 10]
    assert [first.last_row[f"epoch {n}"] for n in (1, 2)] == [6, 12]

    epochs: list[EpochInfo] = first.of("epoch_end")
    assert [e.epoch for e in epochs] == [1, 2]
    for info, in_epoch in zip(epochs, (steps[:6], steps[6:])):
        assert info.images == 12 and info.steps == 6
        assert info.losses.keys() == in_epoch[0].losses.keys()
        for k, mean in info.losses.items():
            assert mean == pytest.approx(sum(s.losses[k] for s in in_epoch) / 6, rel=1e-12)
        assert info.compute_s == pytest.approx(sum(s.compute_s for s in in_epoch))
        assert info.data_s == pytest.approx(sum(s.data_s for s in in_epoch))


@pytest.mark.parametrize("stop_at", [4, 6])  # in the middle of epoch 1, and at its last step (before its end)
def test_a_stop_requested_by_a_callback_resumes_to_the_uninterrupted_run(tiny_pix2pix, stop_at):
    # unet_64 has a dropout level (unet_32 has none), so the comparison also covers the restored RNG.
    straight = Recorder()
    reference = train(tiny_pix2pix(name="straight", netG="unet_64"), show_progress=False, callbacks=[straight])

    stopper = StopAt(stop_at)
    first = train(tiny_pix2pix(name="stopped", netG="unet_64"), show_progress=False, callbacks=[stopper])
    assert first.interrupted and first.progress.steps == stop_at
    assert load_torch(first.run_dir / STATE_FILE)["progress"]["steps"] == stop_at
    assert stopper.of("epoch_end") == [] and stopper.of("train_end") == [first]

    resumed = Recorder()
    second = train(
        tiny_pix2pix(name="stopped", netG="unet_64", continue_train=True), show_progress=False, callbacks=[resumed]
    )
    assert not second.interrupted and second.progress.steps == reference.progress.steps == 12
    assert [s.step for s in resumed.of("step")] == list(range(stop_at + 1, 13))
    assert_same_weights(reference.run_dir, second.run_dir)
    strip = lambda rows: [r[:3] + r[4:] for r in rows]  # all but the time column
    assert strip(read_log(second.run_dir)) == strip(read_log(reference.run_dir))
    # The epoch cut by the stop reports the mean of all its steps, the ones before the stop included.
    want, got = straight.of("epoch_end"), resumed.of("epoch_end")
    assert [(e.epoch, e.images, e.steps, e.losses) for e in got] == [
        (e.epoch, e.images, e.steps, e.losses) for e in want
    ]


def test_an_epoch_resumed_from_a_checkpoint_without_loss_sums_reports_the_mean_of_its_later_steps(tiny_pix2pix):
    opt = tiny_pix2pix(name="legacy", n_epochs=1, n_epochs_decay=0)
    train(opt, show_progress=False, callbacks=[StopAt(4)])
    state = load_torch(opt.run_dir / STATE_FILE)
    assert state["progress"]["loss_steps"] == 4
    for key in ("loss_sums", "loss_steps"):  # as a checkpoint of an earlier version has it
        del state["progress"][key]
    torch.save(state, opt.run_dir / STATE_FILE)

    resumed = Recorder()
    train(
        tiny_pix2pix(name="legacy", n_epochs=1, n_epochs_decay=0, continue_train=True),
        show_progress=False,
        callbacks=[resumed],
    )
    (epoch,), steps = resumed.of("epoch_end"), resumed.of("step")
    assert epoch.steps == 6 and [s.step for s in steps] == [5, 6]
    assert epoch.losses == {k: (steps[0].losses[k] + steps[1].losses[k]) / 2 for k in epoch.losses}


class Boom(RuntimeError):
    pass


class RaiseIn(Callback):
    """Raises Boom in the step-th on_step_end, or in the first on_epoch_end."""

    def __init__(self, step: int | None) -> None:
        self.step = step

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        if step.step == self.step:
            raise Boom(f"step {step.step}")

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        if self.step is None:
            raise Boom(f"end of epoch {epoch.epoch}")


@pytest.mark.parametrize("raise_at_step", [5, None], ids=["step_end", "epoch_end"])
def test_a_callback_that_raises_stops_the_run_and_keeps_the_last_checkpoint(tiny_pix2pix, raise_at_step):
    """The exception propagates unchanged and nothing is saved for it: the checkpoint of step 4 (every 8 images)
    stays, also when on_epoch_end of epoch 1 raises, since that hook runs before the epoch's checkpoint."""
    reference = train(tiny_pix2pix(name="straight"), show_progress=False)
    opt = tiny_pix2pix(name="raised", save_latest_freq=8)
    with pytest.raises(Boom):
        train(opt, show_progress=False, callbacks=[RaiseIn(raise_at_step)])
    run_dir = opt.run_dir
    assert load_torch(run_dir / STATE_FILE)["progress"]["steps"] == 4
    assert not list(run_dir.glob("*.tmp")) and not list(run_dir.glob(".*.tmp"))
    for net in read_state_dicts(run_dir).values():
        assert all(torch.isfinite(v).all() for v in net.values() if v.is_floating_point())
    assert max(int(r[2]) for r in read_log(run_dir)[1:]) == (5 if raise_at_step else 6)  # rows after the checkpoint

    resumed = train(tiny_pix2pix(name="raised", save_latest_freq=8, continue_train=True), show_progress=False)
    assert resumed.progress.steps == 12
    assert_same_weights(reference.run_dir, resumed.run_dir)
    strip = lambda rows: [r[:3] + r[4:] for r in rows]
    assert strip(read_log(resumed.run_dir)) == strip(read_log(reference.run_dir))


def test_callbacks_run_in_the_first_process_only(tiny_pix2pix, monkeypatch):
    # A stand-in for process 1 of a torchrun launch, without a process group: it trains, writes nothing.
    monkeypatch.setattr("ganvas.train.init_world", lambda gpu_ids: (World(rank=1), torch.device("cpu")))
    recorder = Recorder()
    result = train(tiny_pix2pix(name="rank1", n_epochs=1, n_epochs_decay=0), show_progress=False, callbacks=[recorder])
    assert result.progress.steps == 6 and recorder.calls == []
    assert not (result.run_dir / "loss_log.csv").exists()


def test_a_stop_requested_before_the_first_step_saves_the_untrained_run(tiny_pix2pix):
    class StopAtStart(Callback):
        def on_train_start(self, trainer: Trainer) -> None:
            trainer.request_stop()

    result = train(tiny_pix2pix(name="at_start"), show_progress=False, callbacks=[StopAtStart()])
    assert result.interrupted and result.progress.steps == 0
    state = load_torch(result.run_dir / STATE_FILE)
    assert state["progress"]["steps"] == 0 and state["progress"]["epoch"] == 1
    assert (result.run_dir / "latest_net_G.pth").is_file() and not (result.run_dir / "loss_log.csv").exists()
