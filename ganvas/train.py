"""The one trainer: epochs, learning-rate schedule, checkpoints, logs and resume, for any model."""

from __future__ import annotations

import csv
import logging
import math
import os
import shutil
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
from ganvas.errors import CheckpointError, DataError, DivergedError, GanvasError
from ganvas.distributed import any_process, barrier, close_world, init_world, mean_losses, shard, wrap_networks
from ganvas.models import Model, create_model
from ganvas.options import OPT_FILE, Options, ensure_seed, save_options
from ganvas.report import write_training_page
from ganvas.speed import accelerate, amp_dtype, autocast, load_scaler_state, scaler_state

log = logging.getLogger("ganvas")

LOSS_LOG = "loss_log.csv"


@dataclass
class Progress:
    """Where a run stands; saved with every checkpoint so that a resume continues exactly."""

    epoch: int = 1          # the epoch in progress (numbered from --epoch_count)
    epoch_iter: int = 0     # batches of that epoch already done
    epoch_images: int = 0   # items of that epoch already done (what a resume skips, whatever its batch size)
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


def nonfinite_networks(nets: dict[str, torch.nn.Module]) -> list[str]:
    """Names of the networks with a NaN or infinite parameter or buffer."""
    bad = []
    for name, net in nets.items():
        tensors = [t for t in (*net.parameters(), *net.buffers()) if t.is_floating_point()]
        if tensors and not torch.stack([torch.isfinite(t).all() for t in tensors]).all():
            bad.append(name)
    return bad


def lr_factor(epoch: int, opt: Options) -> float:
    """Linear policy: constant for n_epochs, then linear decay over n_epochs_decay (the original's rule)."""
    return 1.0 - max(0, epoch - opt.n_epochs) / float(opt.n_epochs_decay + 1)


def lr_multiplier(done: int, opt: Options) -> float:
    """Learning-rate multiplier after `done` finished epochs, for every policy but plateau.

    A closed form of the options rather than saved scheduler state, so a run resumed with more
    epochs (or another --lr, --lr_decay_iters ...) follows the schedule those options describe.
    """
    if opt.lr_policy == "linear":
        return lr_factor(opt.epoch_count + done, opt)
    if opt.lr_policy == "step":
        return 0.1 ** (done // opt.lr_decay_iters)
    # The original annealed over n_epochs only and then rose again; anneal over the whole run.
    total = max(1, opt.n_epochs + opt.n_epochs_decay - opt.epoch_count + 1)
    return 0.5 * (1 + math.cos(math.pi * min(done, total) / total))


def make_plateau(optimizer: torch.optim.Optimizer) -> lr_scheduler.ReduceLROnPlateau:
    """The plateau policy: x0.2 after 5 epochs without a 1% better monitored loss."""
    return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)


def epoch_order(n: int, seed: int, epoch: int, serial: bool) -> list[int]:
    """Item order of one epoch: a permutation fixed by (seed, epoch), so a resume sees the same order."""
    if serial:
        return list(range(n))
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=gen).tolist()


class EpochSampler(torch.utils.data.Sampler):
    """The (epoch, index) pairs of the epoch being run, replaced before each epoch."""

    def __init__(self) -> None:
        self.items: list[tuple[int, int]] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(list(self.items))

    def __len__(self) -> int:
        return len(self.items)


class EpochItems(torch.utils.data.Dataset):
    """A data set indexed by (epoch, index): a persistent worker learns the epoch with every item."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if self.dataset.epoch != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def make_loader(dataset: Any, sampler: EpochSampler, opt: Options, pin_memory: bool) -> DataLoader:
    """The run's DataLoader: --num_threads persistent workers, batches of --batch_size, in sampler's order.

    Workers take their epoch with each index (EpochItems), so they can live for the whole run; every
    random choice of an item is seeded by (seed, epoch, index), not by worker state.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpus = max(1, cpus // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # torchrun's processes on this machine
    workers = min(opt.num_threads, cpus)  # more workers than cores only compete with the step for them
    if workers < opt.num_threads:
        log.info("--num_threads %d: %d CPUs for this process, so the loader uses %d workers", opt.num_threads, cpus,
                 workers)
    return DataLoader(EpochItems(dataset), batch_size=opt.batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate_batch, pin_memory=pin_memory, generator=torch.Generator().manual_seed(opt.seed),
                      worker_init_fn=_ignore_sigint if workers > 0 else None, persistent_workers=workers > 0,
                      prefetch_factor=4 if workers > 0 else None)


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


RUN_FILES = ("*_net_*.pth", STATE_FILE, LOSS_LOG, "web")


def clear_run(run_dir: Path, overwrite: bool) -> None:
    """Make way for a fresh run: refuse to mix it with an earlier one unless --overwrite says so."""
    found = sorted(p for pattern in RUN_FILES for p in run_dir.glob(pattern))
    if not found:
        return
    if not overwrite:
        raise GanvasError(f"{run_dir} already holds a run ({found[0].name} ...); pass --continue_train to resume "
                          f"it, --overwrite to delete it and start afresh, or choose another --name")
    log.warning("deleting the earlier run in %s (--overwrite)", run_dir)
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


class Trainer:
    """Drives any Model through epochs; owns schedules, checkpoints, logs and resume."""

    def __init__(self, opt: Options, show_progress: bool = True):
        self.opt = ensure_seed(opt)
        self.run_dir = opt.run_dir
        self.show_progress = show_progress
        self.world, self.device = init_world(opt.gpu_ids)
        torch.manual_seed(opt.seed)
        if not opt.continue_train and opt.epoch_count > opt.n_epochs + opt.n_epochs_decay:
            raise GanvasError(f"--epoch_count {opt.epoch_count} is past the last epoch "
                              f"{opt.n_epochs + opt.n_epochs_decay} (--n_epochs + --n_epochs_decay): nothing to train")
        self.opt.dataroot = str(Path(opt.dataroot).resolve())  # so test and translate work from any folder
        self.dataset = make_dataset(opt, train=True)
        if len(self.dataset) == 0:
            raise DataError(f"the data set under {opt.dataroot} has no items; add images or check --phase")
        if hasattr(self.dataset, "check_labels"):  # a bad class id stops the run now, not mid-epoch
            self.dataset.check_labels()
        self.model: Model = create_model(opt, self.device, train=True)
        accelerate(self.model, opt)
        wrap_networks(self.model, self.world, self.device, opt.norm == "syncbatch")
        self.plateaus = ({k: make_plateau(o) for k, o in self.model.optimizers.items()}
                         if opt.lr_policy == "plateau" else {})
        self.progress = Progress(epoch=opt.epoch_count)
        self.loss_columns: list[str] = []
        self.sampler, self.loader = EpochSampler(), None
        self.step_time = self.data_time = 0.0  # this epoch's seconds computing and waiting for batches
        self.timed_steps = 0
        self._saved_at: int | None = None  # steps of the last checkpoint this run wrote or resumed from
        self._nonfinite = False  # a loss of the last step was NaN or infinite
        if opt.continue_train:
            self._resume()
        elif self.world.is_main:
            clear_run(self.run_dir, opt.overwrite)
        barrier(self.world)  # the other processes start once rank 0 has cleared the folder
        if self.world.rank:
            # Dropout and noise differ between processes, as each would on its own machine.
            torch.manual_seed(opt.seed + 7919 * self.world.rank + self.progress.steps)
        self._apply_schedule()
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_options(opt, self.run_dir / OPT_FILE)

    def _apply_schedule(self) -> None:
        """Prepare the model and set every optimiser's learning rate for the epoch about to run."""
        self.model.start_epoch(self.progress.epoch)
        if self.plateaus:
            return  # ReduceLROnPlateau owns the rate; its state is saved and restored
        rate = self.opt.lr * lr_multiplier(self.progress.epoch - self.opt.epoch_count, self.opt)
        for optimizer in self.model.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = rate

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "progress": vars(self.progress).copy(),
            "optimizers": {k: o.state_dict() for k, o in self.model.optimizers.items()},
            "plateaus": {k: s.state_dict() for k, s in self.plateaus.items()},
            "rng": rng_state(),
            "model": self.model.extra_state(),
            "scalers": scaler_state(self.model),
        }

    def save(self, tags: tuple[str, ...] = ("latest",)) -> None:
        """Write the networks under each tag and the run state, all renamed into place together (by rank 0).

        Networks with NaN or infinite weights are never written over the last good checkpoint.
        """
        self._check_finite({})  # in every process: the weights are the same in all of them
        if self.world.is_main:
            writes = [w for tag in tags for w in network_writes(self.model.nets, self.run_dir, tag)]
            state = self._state()
            writes.append((self.run_dir / STATE_FILE, lambda tmp: torch.save(state, tmp)))
            atomic_write_many(writes)
        self._saved_at = self.progress.steps

    def _check_finite(self, losses: dict[str, float]) -> None:
        """Raise DivergedError if a network's weights are no longer finite (after `losses`, when given).

        fp16 steps whose gradients overflow are skipped by their scaler and leave the weights finite, so
        a non-finite loss alone does not stop a run.
        """
        bad = nonfinite_networks(self.model.nets)
        if not any_process([bool(bad)], self.world, self.device)[0]:  # every process calls this at the same step
            return
        p = self.progress
        cause = ", ".join(f"{k} = {v}" for k, v in losses.items() if not math.isfinite(v))
        kept = (f"the checkpoint of step {self._saved_at} in {self.run_dir} is kept as it was; resume it with "
                "--continue_train" if self._saved_at is not None else "no checkpoint was written; start again")
        raise DivergedError(f"training diverged by step {p.steps}: {', '.join(bad) or 'a network of another process'} "
                            f"now {'has' if len(bad) <= 1 else 'have'} NaN or infinite weights"
                            f"{f' after {cause}' if cause else ''}; {kept}, with a lower --lr (or --amp bf16 "
                            "instead of fp16, or --amp off)")

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
            for k, s in self.plateaus.items():
                if k in state.get("plateaus", {}):
                    s.load_state_dict(state["plateaus"][k])
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{state_path} does not match this model's optimisers ({err}); resume with the "
                                  f"options the run was started with, or delete the file to restart them") from err
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        self.model.load_extra_state(state.get("model", {}))
        load_scaler_state(self.model, state.get("scalers", {}))
        self._truncate_loss_log(self.progress.steps)
        self._saved_at = self.progress.steps
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

    def _log_losses(self, losses: dict[str, float]) -> None:
        self._logged_at = self.progress.steps
        losses = mean_losses(losses, self.world, self.device)  # every process calls it at the same step
        if not self.world.is_main:
            return
        elapsed = time.perf_counter() - self._started
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
    def _loader(self, epoch: int, skip_items: int) -> DataLoader:
        """The one DataLoader of the run (its workers persist across epochs), set to this epoch's items."""
        opt = self.opt
        order = shard(epoch_order(len(self.dataset), opt.seed, epoch, opt.serial_batches)[skip_items:], self.world)
        self.sampler.items = [(epoch, index) for index in order]
        if self.loader is None:
            self.loader = make_loader(self.dataset, self.sampler, opt, pin_memory=self.device.type == "cuda")
        return self.loader

    def _crossed(self, before: int, freq: int) -> bool:
        return freq > 0 and self.progress.images // freq > before // freq

    def run(self) -> TrainResult:
        """Train until the last epoch, or until Ctrl-C; the latest state is saved either way.

        A data error met mid-run (an image that only fails when decoded) also saves the state of the
        last finished step before it propagates, so the run resumes once the file is fixed.
        """
        opt, p = self.opt, self.progress
        last_epoch = opt.n_epochs + opt.n_epochs_decay
        if p.epoch > last_epoch:
            log.warning("%s already finished epoch %d of %d; raise --n_epochs or --n_epochs_decay to train on",
                        opt.name, p.epoch - 1, last_epoch)
        losses: dict[str, float] = {}
        self._started, self._logged_at, self._page_at = time.perf_counter(), -1, -1
        with StopRequest() as stop:
            while p.epoch <= last_epoch:
                try:
                    losses = self._run_epoch(stop, losses)
                except DataError:
                    if p.steps:
                        self.save()
                    raise
                if any_process([stop.requested], self.world, self.device)[0]:
                    self.save()
                    return TrainResult(self.run_dir, p, True, losses)
                self._end_epoch(losses)
        return TrainResult(self.run_dir, p, False, losses)

    def close(self) -> None:
        """Stop the loader's workers and leave the process group (multi-process runs)."""
        self.loader = None
        close_world(self.world)

    def _run_epoch(self, stop: StopRequest, losses: dict[str, float]) -> dict[str, float]:
        """The remaining steps of the current epoch, or fewer when a stop is requested."""
        opt, p = self.opt, self.progress
        batches = math.ceil(math.ceil((len(self.dataset) - p.epoch_images) / self.world.size) / opt.batch_size)
        bar = tqdm(self._loader(p.epoch, p.epoch_images), total=p.epoch_iter + batches, initial=p.epoch_iter,
                   disable=not self.show_progress, desc=f"epoch {p.epoch}/{opt.n_epochs + opt.n_epochs_decay}",
                   unit="step", leave=False, dynamic_ncols=True)
        tick, tick_images = time.perf_counter(), p.images
        waited = time.perf_counter()
        batches_left = iter(bar)
        while True:
            failed: DataError | None = None
            try:
                batch = next(batches_left)
            except StopIteration:
                break  # every process has as many batches (see shard), so all end here together
            except DataError as err:
                failed = err
            # One collective per step: a data error or Ctrl-C in any process stops all of them here.
            elsewhere, stopping, nonfinite = any_process([failed is not None, stop.requested, self._nonfinite],
                                                         self.world, self.device)
            if nonfinite:
                self._check_finite(losses)
            if elsewhere:
                raise failed or DataError("another training process stopped on a data error (its message names "
                                          "the file); fix it and resume with --continue_train")
            if stopping:
                stop.requested = True
                break
            started = time.perf_counter()
            self.data_time += started - waited  # time the step waited for its batch
            self.model.set_mode(True)
            with autocast(self.device, amp_dtype(opt.amp)):
                losses = self.model.train_step(batch)
            size = len(next(v for v in batch.values() if torch.is_tensor(v))) * self.world.size  # all processes
            before = p.images
            p.epoch_iter += 1
            p.epoch_images += size
            p.steps += 1
            p.images += size
            # A NaN or infinite loss has the weights checked at the next step's collective (in every
            # process at once) or by the next save, whichever comes first.
            self._nonfinite = not all(map(math.isfinite, losses.values()))
            if self.model.monitor in losses:
                p.monitor_sum += losses[self.model.monitor]
                p.monitor_count += 1
            if self._crossed(before, opt.print_freq):
                self._log_losses(losses)
            if self._crossed(before, opt.display_freq):
                self._write_page()
            if self._crossed(before, opt.save_latest_freq):
                self.save()
            if self.show_progress:
                rate = (p.images - tick_images) / max(time.perf_counter() - tick, 1e-9)
                bar.set_postfix({**{k: f"{v:.3g}" for k, v in losses.items()}, "img/s": f"{rate:.1f}"})
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # so that the step time is the step's
            waited = time.perf_counter()
            self.step_time += waited - started
            self.timed_steps += 1
        bar.close()
        return losses

    def _write_page(self) -> None:
        self._page_at = self.progress.steps
        if not self.world.is_main:
            return
        write_training_page(self.run_dir / "web", self.opt.name, self.progress.epoch, self.progress.images,
                            self.model.current_visuals(), self.run_dir / LOSS_LOG)

    def _end_epoch(self, losses: dict[str, float]) -> None:
        p, opt = self.progress, self.opt
        # Small runs also get a log row and a page: at every epoch end unless one was just written.
        if losses and self._logged_at != p.steps:
            self._log_losses(losses)
        if losses and self._page_at != p.steps:
            self._write_page()
        if self.plateaus:  # every process watches the same figure: the mean over all of them
            totals = mean_losses({"sum": p.monitor_sum, "count": float(p.monitor_count)}, self.world, self.device)
            for scheduler in self.plateaus.values():
                scheduler.step(totals["sum"] / max(totals["count"], 1.0))
        steps = max(self.timed_steps, 1)
        log.info("end of epoch %d: %d images, lr %.3g; per step %.3f s computing, %.3f s waiting for data%s", p.epoch,
                 p.images, self.current_lr(), self.step_time / steps, self.data_time / steps,
                 " (raise --num_threads)" if self.data_time > 0.2 * self.step_time else "")
        self.step_time = self.data_time = 0.0
        self.timed_steps = 0
        finished = p.epoch
        p.epoch, p.epoch_iter, p.epoch_images, p.monitor_sum, p.monitor_count = p.epoch + 1, 0, 0, 0.0, 0
        self._apply_schedule()
        tags = ("latest", str(finished)) if finished % opt.save_epoch_freq == 0 else ("latest",)
        self.save(tags)


def train(opt: Options, show_progress: bool = True) -> TrainResult:
    """Train the run described by `opt` (resuming it with --continue_train)."""
    trainer = Trainer(opt, show_progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
