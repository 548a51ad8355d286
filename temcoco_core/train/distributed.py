# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
r"""Data-parallel training plumbing for :class:`~.trainer.Trainer` (``torch.distributed``).

``torchrun`` starts one process per device and sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
``MASTER_ADDR``/``MASTER_PORT``; :func:`session` turns that into a process group (NCCL when the
training device is CUDA, gloo on CPUs) and a :class:`DistContext`. Without those variables the
context is the single process (world size 1) and every helper here is a no-op, so the trainer
runs the same code either way::

    torchrun --nproc_per_node 4 -m temcoco_core.cli train --config config/train_edge.yaml
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \
        --rdzv-id edge1 -m temcoco_core.cli train --config ... --out /shared/runs/edge

What each rank does:

* **Sampling.** :class:`~.data.ClipDataset` draws clip ``i`` from ``(seed, i)`` only, so a clip
  index is a complete description of a sample. Step ``s`` of a run at world size ``W`` with
  ``batch_size`` ``b`` per rank uses the *global* indices ``n₀ + s·W·b … n₀ + (s+1)·W·b − 1``;
  rank ``r`` takes the block ``[r·b, (r+1)·b)`` of them (:class:`ShardedClipSampler`). Ranks
  thus never see the same clip, and a W-process step sees exactly the clips of a one-process
  step with batch ``W·b``. ``n₀`` is the number of clips the run has consumed so far
  (``samples`` in ``checkpoint.json``), so a resume -- on any world size -- continues the clip
  stream without repeating or skipping clips.
* **Randomness.** The network is initialised from ``seed`` on every rank (DDP also broadcasts
  rank 0's weights); afterwards torch's global generator is re-seeded per rank
  (:func:`rank_seed`), so any stochastic layer differs between ranks.
* **Gradients.** :func:`training_forward` wraps the network in
  :class:`~torch.nn.parallel.DistributedDataParallel`: gradients are averaged over ranks during
  ``backward``; gradient clipping and the AMP scaler then see identical gradients on every
  rank, so the optimiser steps stay identical.
* **Agreement.** :func:`mean_over_ranks` averages the step's loss terms (the logged loss is
  the global-batch mean); :func:`any_rank` combines the ranks' stop flags right before the
  loop decides to stop, so a Ctrl-C/SIGTERM (or any other stop request) seen by one rank stops
  every rank after the same step.
* **Rank 0 only:** progress bar, CSV logs, checkpoints, evaluation, the JSON summary. Other ranks
  log warnings and errors only (prefixed ``[rank r]``).

Failure handling: every collective has the group timeout (``--dist-timeout``, default 30 min,
longer than an evaluation on rank 0); a rank that raises exits non-zero, ``torchrun`` stops the
others, and rank 0 writes a checkpoint of the last completed step when a collective fails under
it. The process group is destroyed on every exit path.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
import logging
import os

import torch
from torch import nn, Tensor
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "ShardedClipSampler",
    "add_arguments",
    "any_rank",
    "barrier",
    "broadcast_object",
    "context_from_group",
    "mean_over_ranks",
    "rank_seed",
    "resolve_device",
    "session",
    "training_forward",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run.

    Attributes:
        rank: global rank (0 … world_size − 1).
        world_size: number of processes (1: plain single-process training).
        local_rank: rank on this machine (selects the GPU).
        backend: ``"nccl"``/``"gloo"``; ``None`` without a process group.
        timeout_s: collective timeout of the group.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def enabled(self) -> bool:
        """True with more than one process (DDP, collectives)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, checkpoints and evaluates."""
        return self.rank == 0

    def describe(self) -> dict[str, object]:
        """What ``checkpoint.json`` records about the run's processes."""
        return {"world_size": self.world_size, "backend": self.backend or "none"}


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise ValueError(f"environment variable {name}={os.environ[name]!r} is not an "
                         f"integer") from None


def context_from_group(timeout_s: float = DEFAULT_TIMEOUT_S) -> DistContext:
    """The context of an already initialised default process group, else world size 1."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext(timeout_s=timeout_s)
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                       local_rank=_env_int("LOCAL_RANK", 0),
                       backend=str(dist.get_backend()), timeout_s=timeout_s)


def resolve_device(name: str, ctx: DistContext) -> torch.device:
    """Training device of this rank: ``"auto"`` -> CUDA when available, else CPU.

    ``"cuda"`` (or ``"auto"`` on a GPU machine) under a multi-process run -> ``cuda:LOCAL_RANK``.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        if dev.index is None and ctx.enabled:
            if ctx.local_rank >= torch.cuda.device_count():
                raise ValueError(f"rank {ctx.rank}: LOCAL_RANK {ctx.local_rank} but only "
                                 f"{torch.cuda.device_count()} CUDA device(s) visible")
            dev = torch.device("cuda", ctx.local_rank)
    return dev


def _init_group(device: str, timeout_s: float) -> DistContext:
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistContext(timeout_s=timeout_s)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local = _env_int("LOCAL_RANK", 0)
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    backend = "nccl" if cuda and dist.is_nccl_available() else "gloo"
    if cuda:
        torch.cuda.set_device(local)
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return context_from_group(timeout_s)


class _RankFilter(logging.Filter):
    """Prefix records of ranks > 0 with ``[rank r]``."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"[rank {self.rank}] {record.msg}"
        return True


@contextmanager
def session(device: str = "auto", timeout_s: float = DEFAULT_TIMEOUT_S
            ) -> Iterator[DistContext]:
    """Join the process group ``torchrun`` describes (or none: world size 1) for the block.

    Ranks > 0 log warnings and errors only. The group is destroyed on leaving the block --
    also on an exception or Ctrl-C -- when this call created it.
    """
    owns = not (dist.is_available() and dist.is_initialized())
    ctx = _init_group(device, timeout_s) if owns else context_from_group(timeout_s)
    root = logging.getLogger()
    old_level = root.level
    filt = _RankFilter(ctx.rank)
    if not ctx.is_main:
        root.setLevel(max(logging.WARNING, old_level))
        for h in root.handlers:
            h.addFilter(filt)
    if ctx.enabled:
        log.info("process group: world size %d, backend %s, timeout %.0f s", ctx.world_size,
                 ctx.backend, ctx.timeout_s)
    try:
        yield ctx
    finally:
        if not ctx.is_main:
            root.setLevel(old_level)
            for h in root.handlers:
                h.removeFilter(filt)
        if owns and ctx.enabled and dist.is_initialized():
            dist.destroy_process_group()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dist-timeout`` for ``temcoco train``."""
    parser.add_argument("--dist-timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                        help="under torchrun: seconds a rank waits for the others in a "
                             f"collective before failing (default {DEFAULT_TIMEOUT_S:.0f})")


def rank_seed(seed: int, ctx: DistContext) -> None:
    """Re-seed torch's global generator per rank (after the shared initialisation).

    No-op for a single process, whose random stream stays as without torch.distributed.
    """
    if ctx.enabled:
        torch.manual_seed(seed + 1_000_003 * ctx.rank)


class ShardedClipSampler(Sampler[int]):
    """This rank's clip indices, step after step (see the module docstring).

    Args:
        start: global index of the first clip (clips consumed before this run segment).
        steps: optimisation steps to cover.
        batch_size: clips per step and rank.
        rank, world_size: this process's place.
    """

    def __init__(self, start: int, steps: int, batch_size: int, rank: int = 0,
                 world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.start, self.steps, self.batch_size = int(start), max(0, int(steps)), int(batch_size)
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self) -> Iterator[int]:
        g = self.batch_size * self.world_size
        for s in range(self.steps):
            first = self.start + s * g + self.rank * self.batch_size
            yield from range(first, first + self.batch_size)


class _TrainForward(nn.Module):
    """Run the network's training forward as one ``nn.Module`` call.

    ``(visible, infrared) -> (fused, features | None)``; DDP hooks run on module calls only.
    """

    def __init__(self, model: nn.Module, distill: bool) -> None:
        super().__init__()
        self.model = model
        self.distill = distill

    def forward(self, visible: Tensor, infrared: Tensor) -> tuple[Tensor, object]:
        if self.distill:
            return self.model.forward_train(visible, infrared)
        return self.model(visible, infrared), None


def training_forward(model: nn.Module, distill: bool, ctx: DistContext,
                     device: torch.device) -> nn.Module:
    """The callable the training step runs; DDP-wrapped under a multi-process run.

    ``TEMCOCO_DDP_FIND_UNUSED=1`` turns on DDP's unused-parameter search (for custom networks
    whose forward skips parameters).
    """
    fwd = _TrainForward(model, distill)
    if not ctx.enabled:
        return fwd
    from torch.nn.parallel import DistributedDataParallel

    find_unused = os.environ.get("TEMCOCO_DDP_FIND_UNUSED", "0") not in ("0", "", "false")
    return DistributedDataParallel(
        fwd, device_ids=[device.index] if device.type == "cuda" else None,
        output_device=device.index if device.type == "cuda" else None,
        find_unused_parameters=find_unused)


def _all_reduce(values: list[float], ctx: DistContext, device: torch.device) -> Tensor:
    on = device if ctx.backend == "nccl" else torch.device("cpu")
    buf = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(buf)
    return buf.cpu()


def mean_over_ranks(terms: Mapping[str, float], ctx: DistContext,
                    device: torch.device) -> dict[str, float]:
    """Mean of each loss term over ranks (= the global-batch mean, ranks having equal batches).

    One all-reduce; identity for a single process.
    """
    if not ctx.enabled:
        return dict(terms)
    keys = sorted(terms)
    total = _all_reduce([float(terms[k]) for k in keys], ctx, device)
    return dict(zip(keys, (total / ctx.world_size).tolist()))


def any_rank(flag: bool, ctx: DistContext, device: torch.device) -> bool:
    """Return True on every rank when ``flag`` is true on any rank.

    ``flag`` is a stop request (Ctrl-C, SIGTERM, a time limit), so that all ranks leave the loop
    after the same step. Identity for a single process.
    """
    if not ctx.enabled:
        return flag
    return bool(_all_reduce([1.0 if flag else 0.0], ctx, device)[0] > 0)


def broadcast_object(obj: object, ctx: DistContext, device: torch.device) -> object:
    """Return rank 0's ``obj`` on every rank.

    Checkpoints are read by rank 0 only, so no shared disk is needed for a resume.
    """
    if not ctx.enabled:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0,
                               device=device if ctx.backend == "nccl" else None)
    return box[0]


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for a single process)."""
    if ctx.enabled:
        dist.barrier()
