"""Multi-process training under torchrun: the process group, data shards, DDP networks, rank-0 files.

`torchrun --nproc_per_node N -m ganvas train ...` starts N copies of the trainer. Each takes every
N-th item of the epoch's (seeded) order, so N processes with --batch_size B take the same steps as
one process with --batch_size N*B; gradients are averaged across processes. Only rank 0 writes
checkpoints, logs and pages; the run state is the same on every rank, so a run resumes with any
number of processes.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganvas.errors import OptionsError
from ganvas.models import Model
from ganvas.speed import parse_gpu_ids, select_device

log = logging.getLogger("ganvas")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    joined: bool = False  # in a process group (any torchrun launch, one process included)

    @property
    def is_main(self) -> bool:
        """True for the process that writes files and logs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when training in a process group: networks in DDP, losses and flags reduced."""
        return self.joined or self.size > 1


def init_world(gpu_ids: str) -> tuple[World, torch.device]:
    """Join torchrun's process group (gloo on CPUs, nccl on GPUs) and pick this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        # Not started by torchrun. A torchrun launch of one process still joins a group, so that
        # `--nproc_per_node 1` runs the DDP, nccl and --norm syncbatch code it will run with more.
        return World(), select_device(gpu_ids)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    ids = parse_gpu_ids(gpu_ids)
    if torch.cuda.is_available() and not (ids and ids[0] < 0):
        # One GPU per process: the local_rank-th of --gpu_ids, or of all GPUs.
        if local_rank < len(ids):
            index = ids[local_rank]
        elif ids == [0]:  # the default: GPU i for local process i
            index = local_rank
        else:
            raise OptionsError(
                f"--gpu_ids {gpu_ids} lists {len(ids)} GPUs for more processes per node; list one "
                f"GPU per process, or leave --gpu_ids out to use GPUs 0, 1, ... in order"
            )
        if index >= torch.cuda.device_count():
            raise OptionsError(
                f"process {local_rank} on this node has no GPU (only {torch.cuda.device_count()}); "
                f"start at most as many processes per node as GPUs"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=size)
    if rank == 0:
        log.info("training with %d processes (%s)", size, dist.get_backend())
    return World(rank, size, joined=True), device


def shard(order: list[int], world: World) -> list[int]:
    """This process's part of an epoch's order: every size-th item, the order padded by its start (as
    DistributedSampler pads) so that every process takes the same number of steps."""
    if not world.active or not order:
        return order
    total = math.ceil(len(order) / world.size) * world.size
    padded = (order * math.ceil(total / len(order)))[:total]
    return padded[world.rank :: world.size]


class FrozenAwareDDP(DistributedDataParallel):
    """DDP that steps aside while its network is frozen (a discriminator during the G step).

    A frozen network produces no gradients to average, and DDP would wait for them; calling the
    module itself keeps the one-model-one-step code of every ganvas model unchanged.
    """

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        """The network's own methods (CUT's G.encode) and attributes (size_multiple) show through."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)

    def forward(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not any(p.requires_grad for p in self.module.parameters()):
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)


def wrap_networks(model: Model, world: World, device: torch.device, sync_batch_norm: bool) -> None:
    """Wrap each trained network of the model in DDP (G and D apart), with synchronised batch norm if asked."""
    if not world.active:
        return
    if sync_batch_norm and device.type != "cuda":
        raise OptionsError(
            "--norm syncbatch synchronises batch statistics between GPU processes and PyTorch has it on "
            "GPUs only; on CPUs use --norm batch (statistics per process) or --norm instance"
        )
    for name, net in model.nets.items():
        if not any(p.requires_grad for p in net.parameters()):
            continue
        if sync_batch_norm:
            # Reuses the same parameters and buffers, so the optimisers keep working on them.
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        # A partly frozen network leaves some parameters without gradients in some epochs: DDP then has
        # to look for them after each backward instead of waiting for them.
        model.nets[name] = FrozenAwareDDP(
            net,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=name in model.partly_frozen,
        )


def mean_losses(losses: dict[str, float], world: World, device: torch.device) -> dict[str, float]:
    """The losses averaged over the processes (every process must call this at the same step)."""
    if not world.active or not losses:
        return losses
    values = torch.tensor(list(losses.values()), dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {k: float(v) / world.size for k, v in zip(losses, values.tolist())}


def any_process(flags: list[bool], world: World, device: torch.device) -> list[bool]:
    """Each flag set in any process, in one collective (so that all stop at the same step)."""
    if not world.active:
        return flags
    value = torch.tensor([1 if f else 0 for f in flags], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return [bool(v) for v in value.tolist()]


def barrier(world: World) -> None:
    """Wait for every process (e.g. until rank 0 has cleared or written the run folder)."""
    if world.active:
        dist.barrier()


def close_world(world: World) -> None:
    """Leave the process group at the end of training."""
    if world.active and dist.is_initialized():
        # Leave together: a process that tears its gloo group down while another still finishes its last
        # collective can abort at exit ("terminate called without an active exception", SIGABRT).
        try:
            if dist.get_backend() == "gloo":
                dist.monitored_barrier(timeout=timedelta(seconds=60))
            else:
                dist.barrier()
        except RuntimeError as err:  # another process has died: leave anyway, its error is the one to see
            log.warning("not every training process reached the end together (%s)", err)
        dist.destroy_process_group()
