"""The one trainer: epochs, learning-rate schedule, checkpoints, logs and resume, for any model."""

from __future__ import annotations

import csv
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from ganvas import __version__
from ganvas.checkpoint import (STATE_FILE, atomic_write_many, atomic_write_text, load_networks, load_torch,
                               network_writes, rng_state, set_rng_state)
from ganvas.data import collate_batch, make_dataset
from ganvas.errors import CheckpointError, DataError
from ganvas.models import Model, create_model, select_device
from ganvas.options import OPT_FILE, Options, ensure_seed, save_options
from ganvas.report import write_training_page

log = logging.getLogger("ganvas")

LOSS_LOG = "loss_log.csv"


@dataclass
class Progress:
    """Where a run stands; saved with every checkpoint so that a resume continues exactly."""

    epoch: int = 1          # the epoch in progress (numbered from --epoch_count)
    epoch_iter: int = 0     # batches of that epoch already done
    steps: int = 0          # optimisation steps in the whole run
    images: int = 0         # images seen in the whole run (the original's total_iters)
    monitor_sum: float = 0.0
    monitor_count: int = 0


@dataclass
class TrainResult:
    """What a finished or interrupted run leaves."""

    run_dir: Path
    progress: Progress
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)


def lr_factor(epoch: int, opt: Options) -> float:
    """Linear policy: constant for n_epochs, then linear decay over n_epochs_decay (the original's rule)."""
    return 1.0 - max(0, epoch - opt.n_epochs) / float(opt.n_epochs_decay + 1)


def make_scheduler(optimizer: torch.optim.Optimizer, opt: Options) -> Any:
    """The --lr_policy schedule, stepped once at the end of every epoch."""
    if opt.lr_policy == "linear":
        return lr_scheduler.LambdaLR(optimizer, lambda done: lr_factor(opt.epoch_count + done, opt))
    if opt.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters, gamma=0.1)
    if opt.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    # The original annealed over n_epochs only and then rose again; anneal over the whole run.
    total = max(1, opt.n_epochs + opt.n_epochs_decay - opt.epoch_count + 1)
    return lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0)


def epoch_order(n: int, seed: int, epoch: int, serial: bool) -> list[int]:
    """Item order of one epoch: a permutation fixed by (seed, epoch), so a resume sees the same order."""
    if serial:
        return list(range(n))
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=gen).tolist()


def _ignore_sigint(_worker_id: int) -> None:
    # Ctrl-C reaches the whole process group; workers leave it to the main process, which
    # finishes the step, saves and exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """Turns the first Ctrl-C into a request to stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after this step and saving a checkpoint; press Ctrl-C again to abort without saving")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """Drives any Model through epochs; owns schedules, checkpoints, logs and resume."""

    def __init__(self, opt: Options, show_progress: bool = True):
        self.opt = ensure_seed(opt)
        self.run_dir = opt.run_dir
        self.show_progress = show_progress
        self.device = select_device(opt.gpu_ids)
        torch.manual_seed(opt.seed)
        self.dataset = make_dataset(opt, train=True)
        if len(self.dataset) == 0:
            raise DataError(f"the data set under {opt.dataroot} has no items; add images or check --phase")
        self.model: Model = create_model(opt, self.device, train=True)
        self.schedulers = {k: make_scheduler(o, opt) for k, o in self.model.optimizers.items()}
        self.progress = Progress(epoch=opt.epoch_count)
        self.loss_columns: list[str] = []
        if opt.continue_train:
            self._resume()
        elif (self.run_dir / STATE_FILE).is_file():
            log.warning("%s already holds a run; starting afresh overwrites it (pass --continue_train to resume)",
                        self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_options(opt, self.run_dir / OPT_FILE)

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "progress": vars(self.progress).copy(),
            "optimizers": {k: o.state_dict() for k, o in self.model.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "rng": rng_state(),
            "model": self.model.extra_state(),
        }

    def save(self, tags: tuple[str, ...] = ("latest",)) -> None:
        """Write the networks under each tag and the run state, all renamed into place together."""
        writes = [w for tag in tags for w in network_writes(self.model.nets, self.run_dir, tag)]
        state = self._state()
        writes.append((self.run_dir / STATE_FILE, lambda tmp: torch.save(state, tmp)))
        atomic_write_many(writes)

    def _resume(self) -> None:
        opt = self.opt
        state_path = self.run_dir / STATE_FILE
        if opt.epoch != "latest" or not state_path.is_file():
            # Networks only, e.g. files from the original code bases: optimisers start afresh at --epoch_count.
            load_networks(self.model.nets, self.run_dir, opt.epoch)
            log.warning("no run state in %s; continuing from %s networks with fresh optimisers at epoch %d",
                        self.run_dir, opt.epoch, opt.epoch_count)
            return
        state = load_torch(state_path, "run state")
        load_networks(self.model.nets, self.run_dir, "latest")
        try:
            for k, o in self.model.optimizers.items():
                o.load_state_dict(state["optimizers"][k])
            for k, s in self.schedulers.items():
                s.load_state_dict(state["schedulers"][k])
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{state_path} does not match this model's optimisers ({err}); resume with the "
                                  f"options the run was started with, or delete the file to restart them") from err
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        self.model.load_extra_state(state.get("model", {}))
        self._truncate_loss_log(self.progress.steps)
        log.info("resuming %s at epoch %d, step %d", self.run_dir, self.progress.epoch, self.progress.steps)

    # --- logs ----------------------------------------------------------------------------------
    def _truncate_loss_log(self, steps: int) -> None:
        """Drop rows logged after the checkpoint being resumed, so the log matches the weights."""
        path = self.run_dir / LOSS_LOG
        if not path.is_file():
            return
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            return
        header, body = rows[0], [r for r in rows[1:] if r and int(r[2]) <= steps]
        self.loss_columns = header[5:]
        lines = [",".join(header)] + [",".join(r) for r in body]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def _log_losses(self, losses: dict[str, float], elapsed: float) -> None:
        path = self.run_dir / LOSS_LOG
        if not self.loss_columns:
            self.loss_columns = list(losses)
        new = not path.is_file()
        with open(path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["epoch", "images", "steps", "time_s", "lr", *self.loss_columns])
            p = self.progress
            writer.writerow([p.epoch, p.images, p.steps, f"{elapsed:.3f}", f"{self.current_lr():.3g}",
                             *(f"{losses.get(k, float('nan')):.5g}" for k in self.loss_columns)])

    def current_lr(self) -> float:
        """Learning rate of the first optimiser."""
        first = next(iter(self.model.optimizers.values()))
        return first.param_groups[0]["lr"]

    # --- the loop ------------------------------------------------------------------------------
    def _loader(self, epoch: int, skip_batches: int) -> DataLoader:
        opt = self.opt
        self.dataset.set_epoch(epoch)
        order = epoch_order(len(self.dataset), opt.seed, epoch, opt.serial_batches)[skip_batches * opt.batch_size:]
        # A loader draws its workers' base seed from its generator; a private one keeps the global
        # RNG (dropout, noise) on the same sequence whether or not the epoch was resumed midway.
        seeds = torch.Generator().manual_seed(opt.seed + epoch)
        return DataLoader(self.dataset, batch_size=opt.batch_size, sampler=order, num_workers=opt.num_threads,
                          collate_fn=collate_batch, pin_memory=self.device.type == "cuda", generator=seeds,
                          worker_init_fn=_ignore_sigint if opt.num_threads > 0 else None)

    def _crossed(self, before: int, freq: int) -> bool:
        return freq > 0 and self.progress.images // freq > before // freq

    def run(self) -> TrainResult:
        """Train until the last epoch, or until Ctrl-C; the latest state is saved either way."""
        opt, p = self.opt, self.progress
        last_epoch = opt.n_epochs + opt.n_epochs_decay
        batches_per_epoch = math.ceil(len(self.dataset) / opt.batch_size)
        losses: dict[str, float] = {}
        if p.epoch > last_epoch:
            log.warning("%s already finished epoch %d of %d; raise --n_epochs or --n_epochs_decay to train on",
                        opt.name, p.epoch - 1, last_epoch)
        start = time.perf_counter()
        with StopRequest() as stop:
            while p.epoch <= last_epoch:
                loader = self._loader(p.epoch, p.epoch_iter)
                bar = tqdm(loader, total=batches_per_epoch, initial=p.epoch_iter, disable=not self.show_progress,
                           desc=f"epoch {p.epoch}/{last_epoch}", unit="step", leave=False, dynamic_ncols=True)
                tick, tick_images = time.perf_counter(), p.images
                for batch in bar:
                    self.model.set_mode(True)
                    losses = self.model.train_step(batch)
                    before = p.images
                    p.epoch_iter += 1
                    p.steps += 1
                    p.images += len(next(iter(v for v in batch.values() if torch.is_tensor(v))))
                    if self.model.monitor in losses:
                        p.monitor_sum += losses[self.model.monitor]
                        p.monitor_count += 1
                    if self._crossed(before, opt.print_freq):
                        self._log_losses(losses, time.perf_counter() - start)
                    if self._crossed(before, opt.display_freq):
                        write_training_page(self.run_dir / "web", opt.name, p.epoch, p.images,
                                            self.model.current_visuals(), self.run_dir / LOSS_LOG)
                    if self._crossed(before, opt.save_latest_freq):
                        self.save()
                    if self.show_progress:
                        rate = (p.images - tick_images) / max(time.perf_counter() - tick, 1e-9)
                        bar.set_postfix({**{k: f"{v:.3g}" for k, v in losses.items()}, "img/s": f"{rate:.1f}"})
                    if stop.requested:
                        bar.close()
                        self.save()
                        return TrainResult(self.run_dir, p, True, losses)
                bar.close()
                self._end_epoch()
        return TrainResult(self.run_dir, p, False, losses)

    def _end_epoch(self) -> None:
        p, opt = self.progress, self.opt
        for scheduler in self.schedulers.values():
            if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
                scheduler.step(p.monitor_sum / max(p.monitor_count, 1))
            else:
                scheduler.step()
        log.info("end of epoch %d: %d images, lr %.3g", p.epoch, p.images, self.current_lr())
        finished = p.epoch
        p.epoch, p.epoch_iter, p.monitor_sum, p.monitor_count = p.epoch + 1, 0, 0.0, 0
        tags = ("latest", str(finished)) if finished % opt.save_epoch_freq == 0 else ("latest",)
        self.save(tags)


def train(opt: Options, show_progress: bool = True) -> TrainResult:
    """Train the run described by `opt` (resuming it with --continue_train)."""
    return Trainer(opt, show_progress).run()
