"""The one trainer: epochs, learning-rate schedule, checkpoints, logs and resume, for any model.

Everything that watches a run (progress bar, loss log, training page, periodic checkpoints, and what
callers add: evaluation, TensorBoard, a web feed) is a `Callback`; the loop in `Trainer._run_epoch`
only steps, counts and calls them.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader
from tqdm import tqdm

from ganvas import __version__
from ganvas.checkpoint import STATE_FILE, load_networks, load_torch, network_writes, rng_state, set_rng_state
from ganvas.data import collate_batch, make_dataset
from ganvas.distributed import any_process, barrier, close_world, init_world, mean_losses, shard, wrap_networks
from ganvas.errors import CheckpointError, DataError, DivergedError, GanvasError
from ganvas.files import atomic_write_many, atomic_write_text
from ganvas.models import Model, create_model
from ganvas.options import OPT_FILE, Options, ensure_seed, save_options
from ganvas.report import write_training_page
from ganvas.safe import load_json
from ganvas.speed import accelerate, amp_dtype, autocast, load_scaler_state, scaler_state

log = logging.getLogger("ganvas")

LOSS_LOG = "loss_log.csv"


@dataclass
class Progress:
    """Where a run stands; saved with every checkpoint so that a resume continues exactly."""

    epoch: int = 1  # the epoch in progress (numbered from --epoch_count)
    epoch_iter: int = 0  # batches of that epoch already done
    epoch_images: int = 0  # items of that epoch already done (what a resume skips, whatever its batch size)
    steps: int = 0  # optimisation steps in the whole run
    images: int = 0  # images seen in the whole run (the original's total_iters)
    monitor_sum: float = 0.0
    monitor_count: int = 0
    # Each loss summed over the epoch's steps, saved so that a resumed epoch reports the mean of all its steps.
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_steps: int = 0  # steps in loss_sums (fewer than epoch_iter after resuming a checkpoint without them)


@dataclass
class TrainResult:
    """What a finished or interrupted run leaves."""

    run_dir: Path
    progress: Progress
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)
    # The signal that stopped an interrupted run (SIGINT, SIGTERM); None for request_stop.
    stop_signal: int | None = None


@dataclass(frozen=True)
class StepInfo:
    """One finished optimisation step, as callbacks see it (treat `losses` as read-only)."""

    losses: dict[str, float]  # the step's losses in this process (the loss log averages them over processes)
    epoch: int  # the epoch the step belongs to
    step: int  # optimisation steps in the whole run, this one included
    images: int  # images seen in the whole run, this step's included (all processes, as Progress)
    batch: int  # images of this step (all processes)
    compute_s: float  # seconds the step computed
    data_s: float  # seconds the loop waited for its batch

    def crossed(self, every: int) -> bool:
        """Whether this step took the run past a multiple of `every` images (never for `every` <= 0)."""
        return every > 0 and self.images // every > (self.images - self.batch) // every


@dataclass(frozen=True)
class EpochInfo:
    """One finished epoch, as callbacks see it."""

    epoch: int
    losses: dict[str, float]  # each loss's mean over the epoch's steps (all processes, across resumes)
    images: int  # images of the epoch (all processes)
    steps: int  # optimisation steps of the epoch
    compute_s: float  # seconds this process computed steps of the epoch (since the resume, if any)
    data_s: float  # seconds it waited for batches


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
        log.info(
            "--num_threads %d: %d CPUs for this process, so the loader uses %d workers", opt.num_threads, cpus, workers
        )
    return DataLoader(
        EpochItems(dataset),
        batch_size=opt.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_batch,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(opt.seed),
        worker_init_fn=_ignore_stop_signals if workers > 0 else None,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )


# Ctrl-C, and SIGTERM: what `timeout`, SLURM before a pre-emption, Kubernetes, `docker stop` and torchrun's
# agent send before they kill.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# Set by the main process when a stop signal reaches it (inherited by forked loader workers).
_MAIN_STOPPING = multiprocessing.Event()


def _worker_sigterm(signum: int, frame: Any) -> None:
    # A SIGTERM to the whole process group reaches the main process too, which finishes the step, saves
    # and then shuts the workers down: ignore it then. Any other SIGTERM (multiprocessing terminating
    # leftover workers at exit) ends the worker, or its parent would wait for it forever.
    if not _MAIN_STOPPING.wait(0.5):
        os._exit(0)


def _ignore_stop_signals(_worker_id: int) -> None:
    # Ctrl-C, `timeout`, SLURM and torchrun signal the whole process group; workers leave it to the main
    # process, which finishes the step, saves and exits (a worker killed first would fail that step).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)


class StopRequest:
    """Turns the first Ctrl-C or SIGTERM into a request to stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None  # the signal that asked for the stop (None: none, or request_stop)
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum
        _MAIN_STOPPING.set()
        log.warning(
            "%s: stopping after this step and saving a checkpoint; press Ctrl-C to abort without saving",
            signal.Signals(signum).name,
        )

    def __enter__(self) -> StopRequest:
        _MAIN_STOPPING.clear()  # a stop of an earlier run in this process is not this run's
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in STOP_SIGNALS}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)  # None: set outside Python
        self._previous = {}


RUN_FILES = ("*_net_*.pth", STATE_FILE, LOSS_LOG, "web")


def clear_run(run_dir: Path, overwrite: bool) -> None:
    """Make way for a fresh run: refuse to mix it with an earlier one unless --overwrite says so."""
    found = sorted(p for pattern in RUN_FILES for p in run_dir.glob(pattern))
    if not found:
        return
    if not overwrite:
        raise GanvasError(
            f"{run_dir} already holds a run ({found[0].name} ...); pass --continue_train to resume "
            f"it, --overwrite to delete it and start afresh, or choose another --name"
        )
    log.warning("deleting the earlier run in %s (--overwrite)", run_dir)
    for path in found:
        shutil.rmtree(path) if path.is_dir() else path.unlink()


# --- callbacks ---------------------------------------------------------------------------------
class Callback:
    """Hooks into a run; every method does nothing here, so a subclass overrides only what it needs.

    The trainer calls its built-in callbacks in every process (some hold collectives) and the callbacks
    it is given in the first process only, after the built-in ones, in the main thread between steps.
    A hook may read `trainer.model`, `trainer.progress` and `trainer.opt`; `trainer.request_stop()`
    ends the run as Ctrl-C does. An exception in a hook propagates out of `Trainer.run` without a save:
    the last checkpoint (renamed into place whole) stays as it was, and --continue_train resumes it.
    """

    def on_train_start(self, trainer: Trainer) -> None:
        """Before the first step of `Trainer.run` (the first step after a resume)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the steps of an epoch (`trainer.progress.epoch_iter` of them are already done after a resume)."""

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        """After each optimisation step."""

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        """After an epoch's last step, before the trainer saves the epoch and sets the next learning rate."""

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        """Once the run has finished, or stopped and saved; not when it raises."""


def truncate_loss_log(path: Path, steps: int) -> None:
    """Drop rows logged after step `steps` (the checkpoint being resumed), so the log matches the weights."""
    if not path.is_file():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return
    header, body = rows[0], [r for r in rows[1:] if r and int(r[2]) <= steps]
    lines = [",".join(header)] + [",".join(r) for r in body]
    atomic_write_text(path, "\n".join(lines) + "\n")


class LossLog(Callback):
    """loss_log.csv: a row every --print_freq images and at each epoch end that did not just get one."""

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.last: dict[str, float] = {}  # the last step's losses in this run, for the epoch-end row
        self.logged_at = -1  # steps of the last row
        self.started = 0.0

    def on_train_start(self, trainer: Trainer) -> None:
        self.started, self.last, self.logged_at, self.columns = time.perf_counter(), {}, -1, []
        path = trainer.run_dir / LOSS_LOG
        if trainer.world.is_main and path.is_file():  # a resumed run appends to the columns it has
            with open(path, newline="") as fh:
                self.columns = next(csv.reader(fh), [])[5:]

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        self.last = step.losses
        if step.crossed(trainer.opt.print_freq):
            self.write(trainer, step.losses)

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        if self.last and self.logged_at != trainer.progress.steps:  # small runs get a row per epoch too
            self.write(trainer, self.last)

    def write(self, trainer: Trainer, losses: dict[str, float]) -> None:
        """Append a row of `losses` averaged over the processes (every process calls this at the same step)."""
        p = trainer.progress
        self.logged_at = p.steps
        losses = mean_losses(losses, trainer.world, trainer.device)
        if not trainer.world.is_main:
            return
        path = trainer.run_dir / LOSS_LOG
        if not self.columns:
            self.columns = list(losses)
        new = not path.is_file()
        with open(path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(["epoch", "images", "steps", "time_s", "lr", *self.columns])
            writer.writerow(
                [
                    p.epoch,
                    p.images,
                    p.steps,
                    f"{time.perf_counter() - self.started:.3f}",
                    f"{trainer.current_lr():.3g}",
                    *(f"{losses.get(k, float('nan')):.5g}" for k in self.columns),
                ]
            )


class TrainingPage(Callback):
    """web/index.html, the latest visuals and the loss plot: every --display_freq images and at each epoch end."""

    def __init__(self) -> None:
        self.stepped = False  # a step has run in this run
        self.written_at = -1  # steps of the last page

    def on_train_start(self, trainer: Trainer) -> None:
        self.stepped, self.written_at = False, -1

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        self.stepped = True
        if step.crossed(trainer.opt.display_freq):
            self.write(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        if self.stepped and self.written_at != trainer.progress.steps:
            self.write(trainer)

    def write(self, trainer: Trainer) -> None:
        """Write the page (in the first process; the others only count)."""
        p = trainer.progress
        self.written_at = p.steps
        if trainer.world.is_main:  # after LossLog's row of this step, which the page plots
            write_training_page(
                trainer.run_dir / "web",
                trainer.opt.name,
                p.epoch,
                p.images,
                trainer.model.current_visuals(),
                trainer.run_dir / LOSS_LOG,
                trainer.run_dir / EVAL_LOG if trainer.opt.eval_freq else None,
            )


EVAL_LOG = "eval_log.csv"
BEST_FILE = "best.json"


class Evaluation(Callback):
    """--eval_freq: every N epochs the model as it is translates the first --eval_count test images, scored as
    `ganvas eval` scores them, into eval_log.csv and the training page; with --save_best, best_net_*.pth and
    best.json follow the best figure so far (kept across a resume). The first process evaluates."""

    def __init__(self, opt: Options) -> None:
        from ganvas.evaluate import LOWER_IS_BETTER, find_lpips, find_weights, parse_metrics

        self.metrics = parse_metrics(opt.eval_metrics)
        if opt.save_best and opt.save_best not in self.metrics:
            raise GanvasError(
                f"--save_best {opt.save_best} is not among --eval_metrics {opt.eval_metrics}; add it there"
            )
        self.lower_is_better = opt.save_best in LOWER_IS_BETTER
        self.weights = find_weights(Path(opt.inception_weights) if opt.inception_weights else None)
        self.lpips = find_lpips()  # the cached files (ganvas eval --download puts them there)
        self.best: dict[str, Any] | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        if not trainer.world.is_main:
            return
        if self.weights.note and any(m in ("fid", "kid") for m in self.metrics):
            log.warning("%s", self.weights.note)
        if self.lpips.note and "lpips" in self.metrics:
            log.warning("%s", self.lpips.note)
        run_dir, resumed_epoch = trainer.run_dir, trainer.progress.epoch
        self.best = (
            load_json(run_dir / BEST_FILE, "the best figure", "delete it") if (run_dir / BEST_FILE).is_file() else None
        )
        log_file = run_dir / EVAL_LOG
        if log_file.is_file():  # a resumed run re-evaluates the epochs after its checkpoint
            with open(log_file, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < resumed_epoch]
            _write_csv(log_file, rows)
        if self.best is not None and int(self.best["epoch"]) >= resumed_epoch:
            self.best = None  # found after the checkpoint the run resumes from: found again if still best

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        if trainer.opt.eval_freq == 0 or epoch.epoch % trainer.opt.eval_freq or not trainer.world.is_main:
            return
        result = self.evaluate(trainer, epoch.epoch)
        figures = result["metrics"]
        row = {"epoch": epoch.epoch, "images": trainer.progress.images, "steps": trainer.progress.steps, **figures}
        log_file = trainer.run_dir / EVAL_LOG
        rows = []
        if log_file.is_file():
            with open(log_file, newline="") as fh:
                rows = list(csv.DictReader(fh))
        _write_csv(log_file, [*rows, row])
        log.info("epoch %d on %d test images: %s", epoch.epoch, trainer.opt.eval_count,
                 ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))  # fmt: skip
        name = trainer.opt.save_best
        if name and name in figures and self._better(figures[name]):
            self.best = {"metric": name, "value": figures[name], "epoch": epoch.epoch, "steps": trainer.progress.steps}
            best = dict(self.best)
            writes = network_writes(trainer.model.nets, trainer.run_dir, "best")
            writes.append((trainer.run_dir / BEST_FILE, lambda tmp: tmp.write_text(json.dumps(best, indent=1))))
            atomic_write_many(writes)
            log.info("best %s so far (%.4g): saved best_net_* of epoch %d", name, figures[name], epoch.epoch)

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best["value"] if self.lower_is_better else value > self.best["value"]

    def evaluate(self, trainer: Trainer, epoch: int) -> dict[str, Any]:
        """The model's figures on the test subset, without touching the training's random streams or modes."""
        import random

        import numpy as np

        from ganvas.evaluate import evaluate_test_page
        from ganvas.infer import run_test
        from ganvas.options import resolve_options
        from ganvas.speed import unwrap

        opt = trainer.opt
        test_opt = resolve_options(
            {
                "name": opt.name,
                "checkpoints_dir": opt.checkpoints_dir,
                "results_dir": str(trainer.run_dir / "eval"),
                "phase": "test",
                "num_test": opt.eval_count,
                "epoch": str(epoch),
                "gpu_ids": opt.gpu_ids,
            },
            "test",
        )
        model, wrapped = trainer.model, dict(trainer.model.nets)
        states = random.getstate(), np.random.get_state()
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                model.nets.update({k: unwrap(v) for k, v in wrapped.items()})  # no DDP collectives in one process
                model.set_mode(False)
                page = run_test(test_opt, model).page
        finally:
            model.nets.update(wrapped)
            model.set_mode(True)
            random.setstate(states[0])
            np.random.set_state(states[1])
        return evaluate_test_page(page.parent, self.metrics, self.weights, str(trainer.device), self.lpips)


class TensorBoardLog(Callback):
    """--tensorboard: losses and the learning rate every --print_freq images, visuals every --display_freq, the
    --eval_freq figures each time they are measured, in <run>/tensorboard (x axis: images seen). A resumed run
    drops the events its checkpoint had not reached."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GanvasError(
                "--tensorboard needs the tensorboard package: pip install 'ganvas[tensorboard]'"
            ) from None
        self.writer_class = SummaryWriter
        self.writer: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        if trainer.world.is_main:
            # events after the checkpoint (logged at more images than it holds) are dropped: the run logs them again
            purge = trainer.progress.images + 1 if trainer.opt.continue_train else None
            self.writer = self.writer_class(str(trainer.run_dir / "tensorboard"), purge_step=purge)

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        if self.writer is None:
            return
        if step.crossed(trainer.opt.print_freq):
            for name, value in step.losses.items():
                self.writer.add_scalar(f"loss/{name}", value, step.images)
            self.writer.add_scalar("lr", trainer.current_lr(), step.images)
        if step.crossed(trainer.opt.display_freq):
            from ganvas.report import make_grid

            for name, batch in trainer.model.current_visuals().items():
                grid = (make_grid(batch.detach().float().cpu()) + 1) / 2
                self.writer.add_image(f"visuals/{name}", grid.clamp(0, 1), step.images)

    def on_epoch_end(self, trainer: Trainer, epoch: EpochInfo) -> None:
        if self.writer is None:
            return
        log_file = trainer.run_dir / EVAL_LOG
        if trainer.opt.eval_freq and log_file.is_file():
            with open(log_file, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) == epoch.epoch]
            for row in rows:
                for name, value in row.items():
                    if name not in ("epoch", "images", "steps") and value:
                        self.writer.add_scalar(f"eval/{name}", float(value), trainer.progress.images)
        self.writer.flush()

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["epoch"]

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            writer.writerows(rows)

    atomic_write_many([(path, write)], sync=False)


class LatestCheckpoint(Callback):
    """Saves latest_* every --save_latest_freq images; the trainer itself saves at each epoch end and on a stop."""

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        if step.crossed(trainer.opt.save_latest_freq):
            trainer.save()  # in every process: the save checks the weights of all of them


def bar_columns(stream: Any, fallback: int = 100) -> int:
    """Columns for a progress line on `stream`: COLUMNS when set, else the terminal's; `fallback` where neither
    gives a width (a pipe, or a terminal that reports 0 columns, where tqdm would draw an empty bar)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, ValueError, OSError):  # no file descriptor, or not a terminal
            columns = 0
    return columns - 1 if columns > 0 else fallback  # tqdm's margin: a full line would wrap


class ProgressBar(Callback):
    """One tqdm line for the whole run: the epoch, images done of the run's total, its speed in images per
    second, the time left until the run ends, and the last step's losses."""

    # A bar of fixed width, so that long loss lists (trimmed at the line's end) never squeeze it away.
    FORMAT = (
        "{desc}{percentage:3.0f}%|{bar:16}| {n_fmt}/{total_fmt} img, "
        "{rate_noinv_fmt}, {remaining} left in the run{postfix}"
    )

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.stream: Any = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.close()
        self.stream = sys.stderr
        self.bar = tqdm(
            total=trainer.run_images(),
            initial=trainer.progress.images,
            desc=self.describe(trainer, trainer.progress.epoch),
            unit=" img",
            leave=False,
            file=self.stream,
            ncols=bar_columns(self.stream),
            bar_format=self.FORMAT,
        )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if self.bar is not None:
            self.bar.set_description(self.describe(trainer, epoch), refresh=False)

    @staticmethod
    def describe(trainer: Trainer, epoch: int) -> str:
        """The line's start: 'epoch 3/200'."""
        return f"epoch {epoch}/{trainer.opt.n_epochs + trainer.opt.n_epochs_decay}"

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        if self.bar is None:
            return
        self.bar.ncols = bar_columns(self.stream)  # the terminal may have been resized
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in step.losses.items()}, refresh=False)
        self.bar.update(step.batch)

    def on_train_end(self, trainer: Trainer, result: TrainResult) -> None:
        self.close()

    def close(self) -> None:
        """Remove the bar, if one is shown."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- the trainer -------------------------------------------------------------------------------
class Trainer:
    """Drives any Model through epochs; owns schedules, checkpoints and resume, and calls the callbacks."""

    def __init__(self, opt: Options, show_progress: bool = True, callbacks: Iterable[Callback] = ()) -> None:
        # Options are frozen: each change is a new object. The data root is resolved so that test and
        # translate, which read the saved options, work from any folder.
        opt = ensure_seed(opt)
        opt = replace(opt, dataroot=str(Path(opt.dataroot).resolve()))
        self.opt = opt
        self.run_dir = opt.run_dir
        self.show_progress = show_progress
        self.world, self.device = init_world(opt.gpu_ids)
        builtin: list[Callback] = [LossLog(), TrainingPage(), LatestCheckpoint()]
        if opt.eval_freq:
            builtin.insert(0, Evaluation(opt))  # before the page and TensorBoard, which show its figures
        if opt.tensorboard:
            builtin.append(TensorBoardLog())
        if show_progress:
            builtin.append(ProgressBar())
        self.callbacks: list[Callback] = [*builtin, *(callbacks if self.world.is_main else ())]
        torch.manual_seed(opt.seed)
        if not opt.continue_train and opt.epoch_count > opt.n_epochs + opt.n_epochs_decay:
            raise GanvasError(
                f"--epoch_count {opt.epoch_count} is past the last epoch "
                f"{opt.n_epochs + opt.n_epochs_decay} (--n_epochs + --n_epochs_decay): nothing to train"
            )
        self.dataset = make_dataset(opt, train=True)
        if len(self.dataset) == 0:
            raise DataError(f"the data set under {opt.dataroot} has no items; add images or check --phase")
        if hasattr(self.dataset, "check_labels"):  # a bad class id stops the run now, not mid-epoch
            self.dataset.check_labels()
        self.model: Model = create_model(opt, self.device, train=True)
        accelerate(self.model, opt)
        wrap_networks(self.model, self.world, self.device, opt.norm == "syncbatch")
        self.plateaus = (
            {k: make_plateau(o) for k, o in self.model.optimizers.items()} if opt.lr_policy == "plateau" else {}
        )
        self.progress = Progress(epoch=opt.epoch_count)
        self.sampler, self.loader = EpochSampler(), None
        self.step_time = self.data_time = 0.0  # this epoch's seconds computing and waiting for batches
        self.timed_steps = 0
        self._stop = StopRequest()
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

    def request_stop(self) -> None:
        """Stop after the current step as Ctrl-C does: the run saves its latest state and returns, resumable."""
        if not self._stop.requested:
            log.info("stop requested: stopping after this step and saving a checkpoint")
        self._stop.requested = True

    def _apply_schedule(self) -> None:
        """Prepare the model and set every optimiser's learning rate for the epoch about to run."""
        self.model.start_epoch(self.progress.epoch)
        if self.plateaus:
            return  # ReduceLROnPlateau owns the rate; its state is saved and restored
        rate = self.opt.lr * lr_multiplier(self.progress.epoch - self.opt.epoch_count, self.opt)
        for name, optimizer in self.model.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = rate * self.model.lr_factors.get(name, 1.0)

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "version": __version__,
            "progress": {**vars(self.progress), "loss_sums": dict(self.progress.loss_sums)},
            "optimizers": {k: o.state_dict() for k, o in self.model.optimizers.items()},
            "plateaus": {k: s.state_dict() for k, s in self.plateaus.items()},
            "rng": rng_state(),
            "model": self.model.extra_state(),
            "scalers": scaler_state(self.model),
        }

    def save(self, tags: tuple[str, ...] = ("latest",)) -> None:
        """Write the networks under each tag and the run state, all renamed into place together (by rank 0).

        Every process calls it at the same step. Networks with NaN or infinite weights are never written
        over the last good checkpoint.
        """
        self._check_finite({})  # in every process: the weights are the same in all of them
        # Each process holds the loss sums of its own items; their mean is what rank 0 saves and every
        # process continues from. The epoch's mean over processes stays the same, since it is linear.
        self.progress.loss_sums = mean_losses(self.progress.loss_sums, self.world, self.device)
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
        kept = (
            f"the checkpoint of step {self._saved_at} in {self.run_dir} is kept as it was; resume it with "
            "--continue_train"
            if self._saved_at is not None
            else "no checkpoint was written; start again"
        )
        raise DivergedError(
            f"training diverged by step {p.steps}: {', '.join(bad) or 'a network of another process'} "
            f"now {'has' if len(bad) <= 1 else 'have'} NaN or infinite weights"
            f"{f' after {cause}' if cause else ''}; {kept}, with a lower --lr (or --amp bf16 "
            "instead of fp16, or --amp off)"
        )

    def _resume(self) -> None:
        opt = self.opt
        state_path = self.run_dir / STATE_FILE
        if opt.epoch != "latest" or not state_path.is_file():
            # Networks only, e.g. files from the original code bases: optimisers start afresh at --epoch_count.
            load_networks(self.model.nets, self.run_dir, opt.epoch)
            log.warning(
                "no run state in %s; continuing from %s networks with fresh optimisers at epoch %d",
                self.run_dir,
                opt.epoch,
                opt.epoch_count,
            )
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
            raise CheckpointError(
                f"{state_path} does not match this model's optimisers ({err}); resume with the "
                f"options the run was started with, or delete the file to restart them"
            ) from err
        self.progress = Progress(**state["progress"])
        set_rng_state(state["rng"])
        self.model.load_extra_state(state.get("model", {}))
        load_scaler_state(self.model, state.get("scalers", {}))
        if self.world.is_main:
            truncate_loss_log(self.run_dir / LOSS_LOG, self.progress.steps)
        self._saved_at = self.progress.steps
        log.info("resuming %s at epoch %d, step %d", self.run_dir, self.progress.epoch, self.progress.steps)

    def current_lr(self) -> float:
        """Learning rate of the first optimiser."""
        first = next(iter(self.model.optimizers.values()))
        return first.param_groups[0]["lr"]

    # --- the loop ------------------------------------------------------------------------------
    def _loader(self, epoch: int, skip_items: int) -> DataLoader:
        """The one DataLoader of the run (its workers persist across epochs), set to this epoch's items."""
        opt = self.opt
        permutation = lambda n: epoch_order(n, opt.seed, epoch, opt.serial_batches)
        own_order = getattr(self.dataset, "epoch_order", None)  # sequences: the chunks of a clip stay in order
        if own_order is not None:
            order = own_order(epoch, permutation, opt.batch_size * self.world.size)
        else:
            order = permutation(len(self.dataset))
        order = shard(order[skip_items:], self.world)
        self.sampler.items = [(epoch, index) for index in order]
        if self.loader is None:
            self.loader = make_loader(self.dataset, self.sampler, opt, pin_memory=self.device.type == "cuda")
        return self.loader

    def run_images(self) -> int:
        """Images of the whole run once its last epoch is done (all processes, as `Progress.images` counts them)."""
        p, n, size = self.progress, len(self.dataset), self.world.size
        last_epoch = self.opt.n_epochs + self.opt.n_epochs_decay
        if p.epoch > last_epoch:
            return p.images
        epochs_after = last_epoch - p.epoch
        # Each process takes ceil(items / size) items of an epoch (see shard), so an epoch counts a multiple of size.
        return p.images + math.ceil((n - p.epoch_images) / size) * size + epochs_after * math.ceil(n / size) * size

    def _call(self, hook: str, *args: Any) -> None:
        """Call `hook` of every callback, in order."""
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def run(self) -> TrainResult:
        """Train until the last epoch, or until Ctrl-C, SIGTERM or `request_stop`; the latest state is saved either way.

        A data error met mid-run (an image that only fails when decoded) also saves the state of the
        last finished step before it propagates, so the run resumes once the file is fixed.
        """
        opt, p = self.opt, self.progress
        last_epoch = opt.n_epochs + opt.n_epochs_decay
        if p.epoch > last_epoch:
            log.warning(
                "%s already finished epoch %d of %d; raise --n_epochs or --n_epochs_decay to train on",
                opt.name,
                p.epoch - 1,
                last_epoch,
            )
        losses: dict[str, float] = {}
        interrupted = False
        with self._stop:
            self._call("on_train_start")
            while p.epoch <= last_epoch:
                try:
                    losses = self._run_epoch(losses)
                except DataError:
                    if p.steps:
                        self.save()
                    raise
                if any_process([self._stop.requested], self.world, self.device)[0]:
                    self.save()
                    interrupted = True
                    break
                self._end_epoch()
        result = TrainResult(self.run_dir, p, interrupted, losses, self._stop.signal if interrupted else None)
        # Outside the Ctrl-C handler: the run is saved, so a Ctrl-C here may simply abort the hooks.
        self._call("on_train_end", result)
        return result

    def close(self) -> None:
        """Stop the loader's workers and leave the process group (multi-process runs)."""
        self.loader = None
        close_world(self.world)

    def _run_epoch(self, losses: dict[str, float]) -> dict[str, float]:
        """The remaining steps of the current epoch, or fewer when a stop is requested; returns the last losses."""
        loader = self._loader(self.progress.epoch, self.progress.epoch_images)
        self._call("on_epoch_start", self.progress.epoch)
        batches = iter(loader)
        waited = time.perf_counter()
        while True:
            failed: DataError | None = None
            try:
                batch = next(batches)
            except StopIteration:
                break  # every process has as many batches (see shard), so all end here together
            except DataError as err:
                failed = err
            # One collective per step: a data error or a stop request in any process stops all of them here.
            elsewhere, stopping, nonfinite = any_process(
                [failed is not None, self._stop.requested, self._nonfinite], self.world, self.device
            )
            if nonfinite:
                self._check_finite(losses)
            if elsewhere:
                raise failed or DataError(
                    "another training process stopped on a data error (its message names "
                    "the file); fix it and resume with --continue_train"
                )
            if stopping:
                self._stop.requested = True
                break
            step = self._step(batch, waited)
            losses = step.losses
            self._call("on_step_end", step)
            waited = time.perf_counter()
        return losses

    def _step(self, batch: dict[str, Any], waited: float) -> StepInfo:
        """One optimisation step on `batch`, counted in the progress; `waited`: when the loop began to wait for it."""
        p = self.progress
        started = time.perf_counter()
        self.model.set_mode(True)
        with autocast(self.device, amp_dtype(self.opt.amp)):
            losses = self.model.train_step(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # so that the step time is the step's
        computed = time.perf_counter()
        size = len(next(v for v in batch.values() if torch.is_tensor(v))) * self.world.size  # all processes
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
        for name, value in losses.items():
            p.loss_sums[name] = p.loss_sums.get(name, 0.0) + value
        p.loss_steps += 1
        self.step_time += computed - started
        self.data_time += started - waited
        self.timed_steps += 1
        return StepInfo(losses, p.epoch, p.steps, p.images, size, computed - started, started - waited)

    def _end_epoch(self) -> None:
        """Hand the finished epoch to the callbacks, step the plateau policy, move to the next epoch and save."""
        p, opt = self.progress, self.opt
        sums = mean_losses(p.loss_sums, self.world, self.device)  # each process summed its own items' losses
        self._call(
            "on_epoch_end",
            EpochInfo(
                p.epoch,
                {k: v / max(p.loss_steps, 1) for k, v in sums.items()},
                p.epoch_images,
                p.epoch_iter,
                self.step_time,
                self.data_time,
            ),
        )
        if self.plateaus:  # every process watches the same figure: the mean over all of them
            totals = mean_losses({"sum": p.monitor_sum, "count": float(p.monitor_count)}, self.world, self.device)
            for scheduler in self.plateaus.values():
                scheduler.step(totals["sum"] / max(totals["count"], 1.0))
        steps = max(self.timed_steps, 1)
        log.info(
            "end of epoch %d: %d images, lr %.3g; per step %.3f s computing, %.3f s waiting for data%s",
            p.epoch,
            p.images,
            self.current_lr(),
            self.step_time / steps,
            self.data_time / steps,
            " (raise --num_threads)" if self.data_time > 0.2 * self.step_time else "",
        )
        self.step_time = self.data_time = 0.0
        self.timed_steps = 0
        finished = p.epoch
        p.epoch, p.epoch_iter, p.epoch_images, p.monitor_sum, p.monitor_count = p.epoch + 1, 0, 0, 0.0, 0
        p.loss_sums, p.loss_steps = {}, 0
        self._apply_schedule()
        tags = ("latest", str(finished)) if finished % opt.save_epoch_freq == 0 else ("latest",)
        self.save(tags)


def train(opt: Options, show_progress: bool = True, callbacks: Iterable[Callback] = ()) -> TrainResult:
    """Train the run described by `opt` (resuming it with --continue_train); `callbacks` run in the first process."""
    trainer = Trainer(opt, show_progress, callbacks)
    try:
        return trainer.run()
    finally:
        trainer.close()
