import csv
import errno
import os
import signal
from pathlib import Path

import pytest
import torch

from ganvas.checkpoint import STATE_FILE, load_torch
from ganvas.errors import CheckpointError, GanvasError, WriteError
from ganvas.files import atomic_write
from ganvas.models.pix2pix import Pix2PixModel
from ganvas.options import Options
from ganvas.train import Trainer, lr_factor, lr_multiplier, make_plateau, train


def read_state_dicts(run_dir, tag="latest"):
    return {n: torch.load(run_dir / f"{tag}_net_{n}.pth", weights_only=True) for n in ("G", "D")}


def read_log(run_dir):
    with open(run_dir / "loss_log.csv", newline="") as fh:
        return list(csv.reader(fh))


def fault_after_step(monkeypatch, step, fault):
    """Have Pix2PixModel.train_step call fault(model, losses) after its step-th call; returns the original."""
    original = Pix2PixModel.train_step
    calls = {"n": 0}

    def step_then_fault(self, batch):
        losses = original(self, batch)
        calls["n"] += 1
        if calls["n"] == step:
            fault(self, losses)
        return losses

    monkeypatch.setattr(Pix2PixModel, "train_step", step_then_fault)
    return original


def assert_finite_checkpoint_of_step(run_dir, steps):
    assert load_torch(run_dir / STATE_FILE)["progress"]["steps"] == steps
    for net in read_state_dicts(run_dir).values():
        assert all(torch.isfinite(v).all() for v in net.values() if v.is_floating_point())


def test_run_writes_reference_checkpoint_files_and_state(tiny_pix2pix):
    opt = tiny_pix2pix(save_epoch_freq=1)
    result = train(opt, show_progress=False)
    run = result.run_dir
    assert not result.interrupted
    assert result.progress.steps == 2 * 6  # 2 epochs x 12 images / batch 2
    for tag in ("latest", "1", "2"):
        g = torch.load(run / f"{tag}_net_G.pth", weights_only=True)
        assert isinstance(g, dict) and "model.model.0.weight" in g and all(torch.is_tensor(v) for v in g.values())
    state = load_torch(run / STATE_FILE)
    assert set(state["optimizers"]) == {"G", "D"} and state["progress"]["epoch"] == 3
    assert (run / "opt.yaml").is_file() and (run / "web" / "index.html").is_file()
    header, *rows = read_log(run)
    assert header[:5] == ["epoch", "images", "steps", "time_s", "lr"] and "G_L1" in header and len(rows) == 12
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))


def test_interrupted_and_resumed_run_reaches_the_same_weights(tiny_pix2pix, monkeypatch, tmp_path):
    # unet_64 has a dropout level (unet_32 has none), so the test also covers the restored RNG.
    reference = train(tiny_pix2pix(name="straight", netG="unet_64"), show_progress=False)

    # Ctrl-C in the middle of epoch 1 of 2.
    original = fault_after_step(monkeypatch, 5, lambda model, losses: os.kill(os.getpid(), signal.SIGINT))
    first = train(tiny_pix2pix(name="resumed", netG="unet_64"), show_progress=False)
    assert first.interrupted and first.progress.steps == 5
    monkeypatch.setattr(Pix2PixModel, "train_step", original)
    second = train(tiny_pix2pix(name="resumed", netG="unet_64", continue_train=True), show_progress=False)
    assert not second.interrupted and second.progress.steps == reference.progress.steps

    want, got = read_state_dicts(reference.run_dir), read_state_dicts(second.run_dir)
    for net in ("G", "D"):
        assert want[net].keys() == got[net].keys()
        for key in want[net]:
            assert torch.equal(want[net][key], got[net][key]), f"{net}.{key} differs after resume"
    # The loss log of the resumed run is the uninterrupted one's, row for row (time aside).
    strip = lambda rows: [r[:3] + r[4:] for r in rows]
    assert strip(read_log(second.run_dir)) == strip(read_log(reference.run_dir))


def test_sigterm_saves_a_resumable_state_as_ctrl_c_does(tiny_pix2pix, monkeypatch):
    reference = train(tiny_pix2pix(name="straight", netG="unet_64"), show_progress=False)

    def unhandled(signum, frame):  # what SIGTERM would do outside the trainer: end the process unsaved
        raise AssertionError("the trainer left SIGTERM to the default handler, which kills the run unsaved")

    outside = signal.signal(signal.SIGTERM, unhandled)
    try:
        original = fault_after_step(monkeypatch, 5, lambda model, losses: os.kill(os.getpid(), signal.SIGTERM))
        first = train(tiny_pix2pix(name="terminated", netG="unet_64"), show_progress=False)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # the trainer gives the handler back
    finally:
        signal.signal(signal.SIGTERM, outside)
    assert first.interrupted and first.stop_signal == signal.SIGTERM and first.progress.steps == 5
    assert_finite_checkpoint_of_step(first.run_dir, 5)
    monkeypatch.setattr(Pix2PixModel, "train_step", original)
    second = train(tiny_pix2pix(name="terminated", netG="unet_64", continue_train=True), show_progress=False)
    assert second.progress.steps == reference.progress.steps
    want, got = read_state_dicts(reference.run_dir), read_state_dicts(second.run_dir)
    assert all(torch.equal(want["G"][k], got["G"][k]) for k in want["G"])


def test_resume_without_a_checkpoint_names_the_missing_file(tiny_pix2pix):
    with pytest.raises(CheckpointError, match="latest_net_G.pth does not exist"):
        Trainer(tiny_pix2pix(name="never_trained", continue_train=True), show_progress=False)


def test_resume_with_other_architecture_says_which_flags_to_pass(tiny_pix2pix):
    train(tiny_pix2pix(name="arch", n_epochs=1, n_epochs_decay=0), show_progress=False)
    with pytest.raises(CheckpointError, match="does not fit.*--ngf"):
        Trainer(tiny_pix2pix(name="arch", ngf=16, continue_train=True), show_progress=False)


def test_atomic_write_keeps_the_previous_file_when_the_disk_is_full(tmp_path):
    target = tmp_path / "latest_net_G.pth"
    target.write_bytes(b"previous")

    def fill_disk(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteError, match="latest_net_G.pth.*No space left"):
        atomic_write(target, fill_disk)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["latest_net_G.pth"]


def test_linear_policy_matches_the_original_rule():
    opt = Options(n_epochs=100, n_epochs_decay=100)
    assert lr_factor(1, opt) == 1.0 and lr_factor(100, opt) == 1.0
    assert lr_factor(101, opt) == pytest.approx(1 - 1 / 101)
    assert lr_factor(200, opt) == pytest.approx(1 - 100 / 101)


def _lrs(policy, epochs, **kw):
    opt = Options(lr_policy=policy, n_epochs=epochs // 2, n_epochs_decay=epochs - epochs // 2, **kw)
    return [lr_multiplier(done, opt) for done in range(epochs)]


def test_cosine_policy_anneals_over_the_whole_run_without_rising_again():
    lrs = _lrs("cosine", 20)
    assert lrs[0] == 1.0 and all(b <= a for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.05


def test_step_policy_divides_by_ten_every_lr_decay_iters():
    lrs = _lrs("step", 12, lr_decay_iters=5)
    assert lrs[4] == 1.0 and lrs[5] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.01)


def _plateau_lrs(metric, epochs=20):
    optimizer = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = make_plateau(optimizer)
    for epoch in range(epochs):
        optimizer.step()
        scheduler.step(metric(epoch))
    return optimizer.param_groups[0]["lr"]


def test_plateau_policy_lowers_the_rate_only_when_the_loss_stalls():
    assert _plateau_lrs(lambda e: 1.0 / (e + 1)) == 1.0 and _plateau_lrs(lambda e: 1.0) < 1.0


def test_a_run_extended_with_continue_train_follows_the_new_schedule(tiny_pix2pix):
    """2 + 0 epochs, then resumed with 2 decay epochs, equals a run planned as 2 + 2 from the start."""
    planned = train(tiny_pix2pix(name="planned", n_epochs=2, n_epochs_decay=2), show_progress=False)
    train(tiny_pix2pix(name="extended", n_epochs=2, n_epochs_decay=0), show_progress=False)
    extended = train(
        tiny_pix2pix(name="extended", n_epochs=2, n_epochs_decay=2, continue_train=True), show_progress=False
    )
    assert extended.progress.steps == planned.progress.steps
    lr_column = lambda run: [row[4] for row in read_log(run)[1:]]
    assert lr_column(extended.run_dir) == lr_column(planned.run_dir)
    want, got = read_state_dicts(planned.run_dir), read_state_dicts(extended.run_dir)
    assert all(torch.equal(want["G"][k], got["G"][k]) for k in want["G"])


def test_resume_with_another_batch_size_skips_exactly_the_images_done(tiny_pix2pix, monkeypatch):
    original = Pix2PixModel.train_step
    seen = []

    def record(self, batch):
        seen.extend(batch["A_paths"])
        if len(seen) == 4:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch)

    monkeypatch.setattr(Pix2PixModel, "train_step", record)
    train(tiny_pix2pix(name="rebatch", batch_size=2, n_epochs=1, n_epochs_decay=0), show_progress=False)
    train(tiny_pix2pix(name="rebatch", batch_size=3, continue_train=True), show_progress=False)
    first_epoch = seen[:12]
    assert sorted(first_epoch) == sorted(set(first_epoch)) and len(set(first_epoch)) == 12


def test_a_fresh_run_does_not_mix_with_an_earlier_one_of_the_same_name(tiny_pix2pix):
    first = train(tiny_pix2pix(name="again", n_epochs=1, n_epochs_decay=0), show_progress=False)
    with pytest.raises(GanvasError, match="--continue_train.*--overwrite"):
        Trainer(tiny_pix2pix(name="again"), show_progress=False)
    train(
        tiny_pix2pix(name="again", n_epochs=1, n_epochs_decay=0, overwrite=True, display_freq=10**9),
        show_progress=False,
    )
    rows = read_log(first.run_dir)[1:]
    assert [int(r[2]) for r in rows] == list(range(1, 7))  # one run's steps, not two runs' rows
    # The fresh run wrote its page only at the end of its epoch: the old run's visuals are gone.
    assert len(list((first.run_dir / "web" / "images").glob("*.png"))) == 3


def test_small_runs_still_get_a_log_row_and_a_page_every_epoch(tiny_pix2pix):
    result = train(tiny_pix2pix(print_freq=10**9, display_freq=10**9), show_progress=False)
    assert [int(r[0]) for r in read_log(result.run_dir)[1:]] == [1, 2]
    assert (result.run_dir / "web" / "index.html").is_file()


@pytest.mark.parametrize("gan_mode", ["vanilla", "lsgan", "hinge", "wgangp"])
def test_every_gan_objective_trains_and_wgangp_applies_its_penalty(tiny_pix2pix, gan_mode):
    result = train(tiny_pix2pix(name=gan_mode, gan_mode=gan_mode, n_epochs=1, n_epochs_decay=0), show_progress=False)
    losses = result.losses
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert ("D_GP" in losses) == (gan_mode == "wgangp")
    if gan_mode == "wgangp":
        assert losses["D_GP"] > 0


def test_training_page_shows_the_loss_plot_and_latest_visuals(tiny_pix2pix):
    result = train(tiny_pix2pix(display_freq=4), show_progress=False)
    web = result.run_dir / "web"
    html = (web / "index.html").read_text()
    assert "<svg" in html and "G_L1" in html
    shown = sorted(p.name for p in (web / "images").glob("*.png"))
    # 24 images seen, one set of visuals every 4: 6 sets of real_A, fake_B, real_B.
    assert len(shown) == 18 and all(name in html for name in shown)


def test_wgangp_penalty_enters_the_discriminator_update(tiny_pix2pix, paired_root):
    from ganvas.data import collate_batch, make_dataset

    opt = tiny_pix2pix(gan_mode="wgangp")
    batch = collate_batch([make_dataset(opt, train=True)[i] for i in range(2)])

    def d_after_one_step(lambda_gp):
        torch.manual_seed(0)
        model = Pix2PixModel(tiny_pix2pix(gan_mode="wgangp", lambda_gp=lambda_gp), torch.device("cpu"), True)
        model.train_step(batch)
        return model.nets["D"].state_dict()

    without, with_penalty = d_after_one_step(0.0), d_after_one_step(10.0)
    assert not all(torch.equal(without[k], with_penalty[k]) for k in without)


def test_a_diverged_run_stops_and_keeps_the_last_good_checkpoint(tiny_pix2pix, monkeypatch):
    def blow_up(model, losses):
        with torch.no_grad():
            next(model.nets["G"].parameters()).fill_(float("nan"))
        losses["G_L1"] = float("nan")

    original = fault_after_step(monkeypatch, 8, blow_up)  # in epoch 2, after epoch 1's checkpoint (6 steps)
    opt = tiny_pix2pix(name="diverged")
    with pytest.raises(
        GanvasError,
        match=r"diverged by step 8: G now has NaN .* after G_L1 = nan; "
        r"the checkpoint of step 6 .* is kept",
    ):
        train(opt, show_progress=False)
    assert_finite_checkpoint_of_step(Path(opt.checkpoints_dir) / "diverged", 6)
    # The kept state resumes (here without the fault) to the end of the run.
    monkeypatch.setattr(Pix2PixModel, "train_step", original)
    assert train(tiny_pix2pix(name="diverged", continue_train=True), show_progress=False).progress.steps == 12


def test_nonfinite_weights_are_never_saved_even_with_finite_losses(tiny_pix2pix, monkeypatch):
    def break_d(model, losses):
        with torch.no_grad():
            next(model.nets["D"].parameters())[0] = float("inf")

    fault_after_step(monkeypatch, 12, break_d)  # the last step of epoch 2, whose end saves; losses stay finite
    opt = tiny_pix2pix(name="broken_save")
    with pytest.raises(
        GanvasError,
        match=r"diverged by step 12: D now has NaN or infinite weights; the checkpoint "
        r"of step 6 .* is kept",
    ):
        train(opt, show_progress=False)
    assert_finite_checkpoint_of_step(Path(opt.checkpoints_dir) / "broken_save", 6)


def test_a_nonfinite_loss_with_finite_weights_does_not_stop_a_run(tiny_pix2pix, monkeypatch):
    # What an fp16 step whose scaler skipped an overflow looks like to the trainer.
    original = Pix2PixModel.train_step

    def overflowing_loss(self, batch):
        return {**original(self, batch), "G_GAN": float("inf")}

    monkeypatch.setattr(Pix2PixModel, "train_step", overflowing_loss)
    assert train(tiny_pix2pix(name="skipped", n_epochs=1, n_epochs_decay=0), show_progress=False).progress.steps == 6


def test_the_loader_uses_at_most_one_worker_per_cpu(tiny_pix2pix, monkeypatch):
    from ganvas.data import make_dataset
    from ganvas.train import EpochSampler, make_loader

    opt = tiny_pix2pix(num_threads=4)
    dataset = make_dataset(opt, train=True)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert make_loader(dataset, EpochSampler(), opt, pin_memory=False).num_workers == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert make_loader(dataset, EpochSampler(), opt, pin_memory=False).num_workers == 4


def test_a_process_exits_with_its_loader_workers_still_alive(tmp_path, paired_root):
    """multiprocessing terminates leftover loader workers at exit; they must not ignore that SIGTERM."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        from ganvas.options import resolve_options
        from ganvas.train import Trainer
        opt = resolve_options({{"dataroot": {str(paired_root)!r}, "name": "h", "model": "pix2pix",
            "checkpoints_dir": {str(tmp_path / "ck")!r}, "netG": "unet_32", "ngf": 4, "ndf": 4, "num_threads": 2,
            "n_epochs": 1, "n_epochs_decay": 0, "gpu_ids": "-1"}}, "train")
        trainer = Trainer(opt, show_progress=False)
        batches = iter(trainer._loader(1, 0))
        next(batches)
        KEEP = (trainer, batches)  # alive until exit, as a test's traceback keeps them
        """
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
