# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The training loop and the ``temcoco train`` command.

Run folder (``out_dir``)::

    model.safetensors      inference weights (loadable by build_model(preset, weights=...))
    model_ema.safetensors  the weights' exponential moving average, with ``ema_decay`` > 0
                           (the same format; the weights to ship)
    extra.safetensors      training-only tensors (distillation heads), when the model has any
    optimizer.pt           Adam state + step (torch.save of tensors/primitives; weights_only)
    checkpoint.json        config, step, learning rate, recent losses, last evaluation
    train_log.csv          step, lr, s/it and every loss term (mean over log_every steps)
    eval_log.csv           periodic evaluation on degraded M3SVD val (clip vs frame-by-frame)

Ctrl-C (SIGINT) finishes the current step, writes a checkpoint and returns normally (the
command exits 0); a second Ctrl-C aborts at once. ``--resume`` reloads the three checkpoint
files and continues the step count, the learning-rate schedule and the clip sequence (clips
depend only on (seed, index), see :class:`~.data.ClipDataset`).

Optimisation as released: Adam (β = 0.9, 0.999), lr 5e-4 × 0.95 every 200 steps, gradient
norm clipped to 1.0. Mixed precision (bfloat16 autocast by default) on CUDA only.

Launch (repository root)::

    temcoco train --config config/train_edge.yaml                  # CPU-sized defaults
    temcoco train --config config/train_edge.yaml --device cuda --batch-size 8 \
        --clip-len 10 --crop 224 --steps 20000 --set data.num_workers=8 --out runs/edge-gpu
    temcoco train --resume runs/edge --steps 4000                   # continue a run
    torchrun --nproc_per_node 4 -m temcoco_core.cli train --config config/train_edge.yaml

Under ``torchrun`` the same loop runs data-parallel (DDP; ``batch_size`` is per process,
``world_size``, the global batch and the clips consumed are recorded in ``checkpoint.json``
and every ``train_log.csv`` row); :mod:`.distributed` holds that plumbing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
import contextlib
import csv
from dataclasses import dataclass, field
import json
import logging
import math
import os
from pathlib import Path
import signal
import time
from typing import Any

import numpy as np
import torch
from torch import nn, Tensor
from torch.utils.data import DataLoader

from temcoco_core.io.datasets import FusionSequence, load_m3svd_val
from temcoco_core.train import distributed
from temcoco_core.train.config import (
    config_to_dict,
    ConfigError,
    load_config,
    TrainConfig,
)
from temcoco_core.train.data import ClipDataset, DataSource, load_sources
from temcoco_core.train.degrade import minmax_per_frame
from temcoco_core.train.ema import WeightEMA
from temcoco_core.train.losses import COMPOSITIONS, FusionLoss
from temcoco_core.train.teachers import build_distillation

__all__ = [
    "DataSource",
    "ResumeError",
    "TrainResult",
    "Trainer",
    "add_parser",
    "build_config",
    "learning_rate",
    "run",
]

log = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
EMA_FILE = "model_ema.safetensors"
EXTRA_FILE = "extra.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "checkpoint.json"
TRAIN_LOG = "train_log.csv"
EVAL_LOG = "eval_log.csv"


class ResumeError(ValueError):
    """A run folder has no usable checkpoint to resume from."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _load_optimizer_file(path: Path) -> dict[str, Any]:
    """``optimizer.pt`` with ``weights_only=True``.

    Tensors and plain data only; anything else (a pickle that would run code, a corrupt file) is a
    one-line :class:`ResumeError`.
    """
    import pickle

    try:
        opt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, ImportError, TypeError) as exc:
        raise ResumeError(f"cannot resume: {path} is not a plain optimizer state (refused to "
                          f"unpickle anything but tensors and plain data: "
                          f"{type(exc).__name__}: {_first_line(exc)[:200]})") from None
    if not isinstance(opt, dict) or not isinstance(opt.get("optimizer"), dict):
        raise ResumeError(f"cannot resume: {path} holds no optimizer state dict")
    return opt


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` did."""

    step: int
    interrupted: bool
    losses: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, float] = field(default_factory=dict)
    out_dir: str = ""
    sec_per_step: float = float("nan")
    world_size: int = 1


def learning_rate(config: TrainConfig, step: int) -> float:
    """Lr after ``step`` completed steps: ``lr · decay^(step // decay_every)`` (as released)."""
    return config.lr * config.lr_decay ** (step // config.lr_decay_every)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    return distributed.resolve_device(name, distributed.DistContext())


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.chmod(tmp, 0o644)  # safetensors writes 0600; weights are meant to be shared/shipped
    os.replace(tmp, path)


def _build_model(config: TrainConfig, distill: bool) -> nn.Module:
    from temcoco_core.model import build_model

    overrides = dict(config.model)
    if distill and "distill" not in overrides and config.preset != "official":
        overrides["distill"] = True
    return build_model(config.preset, **overrides)


class _StopFlag:
    """SIGINT (and the given other signals) -> set a flag (first time).

    Restore the old handlers on exit.
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGINT,)) -> None:
        self.stop = False
        self.signals = tuple(signals)
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.stop:  # second Ctrl-C: abort now
            raise KeyboardInterrupt
        self.stop = True
        log.warning("%s: finishing this step and writing a checkpoint (Ctrl-C again to "
                    "abort)", signal.Signals(signum).name)

    def __enter__(self) -> _StopFlag:
        for sig in self.signals:
            # not the main thread: no handler (KeyboardInterrupt is still caught)
            with contextlib.suppress(ValueError):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _worker_init(_: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C


class Trainer:
    """Trains a fusion network per a :class:`TrainConfig`.

    Args:
        config: the run's configuration.
        model: a network to train instead of ``build_model(config.preset, ...)`` (tests);
            ``model(visible, infrared)`` on (B, T, 3, H, W) -> (B, T, 3, H, W), and
            ``forward_train`` when teachers are used.
        sequences: training data instead of ``config.data.sources``.
        eval_sequences: evaluation data instead of ``config.eval.root`` (``[]`` disables).
        progress: show the tqdm bar.
        dist: this process's place in a data-parallel run (:mod:`.distributed`); default:
            the initialised default process group, else a single process.
    """

    def __init__(self, config: TrainConfig, model: nn.Module | None = None,
                 sequences: Sequence[FusionSequence] | None = None,
                 eval_sequences: Sequence[FusionSequence] | None = None,
                 progress: bool = True,
                 dist: distributed.DistContext | None = None) -> None:
        self.config = config
        self.dist = dist if dist is not None else distributed.context_from_group()
        self.progress = progress and self.dist.is_main
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device = distributed.resolve_device(config.device, self.dist)
        self.out_dir = Path(config.out_dir)
        torch.manual_seed(config.seed)

        distillation = build_distillation(config.teachers)
        self.loss_fn = FusionLoss(config.loss, distillation).to(self.device)
        self.distill = self.loss_fn.uses_distillation
        self.model = model if model is not None else _build_model(config, self.distill)
        if self.distill and not hasattr(self.model, "forward_train"):
            raise ValueError(f"preset {config.preset!r}: the model has no forward_train(); "
                             "distillation needs it (or remove the teachers)")
        self.inference_keys = self._inference_keys(model is None)
        multiple = getattr(self.model, "size_multiple", None)
        if isinstance(multiple, int) and config.data.crop % multiple:
            log.warning("crop %d is not a multiple of %d: the network pads every clip (slower, "
                        "and distillation maps are resized over the padding)",
                        config.data.crop, multiple)
        if config.init_weights:
            self._load_init(config.init_weights)
        self.model.to(self.device).train()
        self.ema = WeightEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.train_forward = distributed.training_forward(self.model, self.distill, self.dist,
                                                          self.device)
        distributed.rank_seed(config.seed, self.dist)

        self.optimizer = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad], lr=config.lr,
            betas=(0.9, 0.999), eps=1e-8, weight_decay=config.weight_decay)
        self.use_amp = config.amp and self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if config.amp_dtype == "bfloat16" else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp
                                           and self.amp_dtype == torch.float16)
        self.step = 0
        self.samples = 0  # clips consumed by all ranks together (the next clip index)
        self.recent: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}

        seqs = list(sequences) if sequences is not None else load_sources(
            config.data.sources, progress=self.progress)
        self.dataset = ClipDataset(seqs, config.data, seed=config.seed)
        log.info("training data: %d sequence(s), %d frames, %d distinct clips",
                 len(self.dataset.sequences),
                 sum(s.num_frames for s in self.dataset.sequences), self.dataset.num_clips)
        if not self.dist.is_main:  # rank 0 evaluates
            self.eval_sequences: list[FusionSequence] = []
        else:
            self.eval_sequences = (list(eval_sequences) if eval_sequences is not None
                                   else self._load_eval())
        self._eval_flows: dict[str, list[np.ndarray] | None] = {}

    # ------------------------------------------------------------------------------- setup

    def _inference_keys(self, built_here: bool) -> set[str]:
        """State-dict keys of the deployable network (without distillation-only heads)."""
        keys = set(self.model.state_dict())
        if built_here and self.distill and self.config.preset != "official":
            try:
                keys &= set(_build_model(self.config, distill=False).state_dict())
            except (ValueError, TypeError) as e:  # preset without a distill switch
                log.debug("no separate inference model: %s", e)
        return keys

    def _load_init(self, path: str) -> None:
        from temcoco_core.model.checkpoint import read_state_dict

        state = read_state_dict(path)
        own = self.model.state_dict()
        bad = [k for k in state if k in own and state[k].shape != own[k].shape]
        if bad:
            raise ValueError(f"init_weights {path}: mis-shaped tensors {bad[:5]}")
        unexpected = [k for k in state if k not in own]
        if unexpected:
            raise ValueError(f"init_weights {path}: keys the model lacks: {unexpected[:5]}")
        reinit = tuple(self.config.reinit)
        for prefix in reinit:
            if not any(k.startswith(prefix) for k in own):
                raise ValueError(f"reinit prefix {prefix!r} matches no parameter of the model "
                                 f"(e.g. {sorted(own)[:3]})")
        kept = {k: v for k, v in state.items() if not k.startswith(reinit)}  # () matches none
        missing = [k for k in own if k not in kept]
        self.model.load_state_dict(kept, strict=False)
        fresh = f", re-initialised: {', '.join(self.config.reinit)}" if self.config.reinit else ""
        log.info("initialised from %s (%d tensors; %d left at their initial values%s)", path,
                 len(kept), len(missing), fresh)

    def _load_eval(self) -> list[FusionSequence]:
        ev = self.config.eval
        if ev.root is None:
            log.info("evaluation disabled (eval.root is null)")
            return []
        root = Path(ev.root)
        if not root.is_dir():
            log.warning("evaluation disabled: %s not found", root)
            return []
        seqs = [s for s in load_m3svd_val(root, max_frames=ev.frames)
                if s.name not in set(ev.exclude)]
        if ev.sequences:
            seqs = seqs[:ev.sequences]
        if ev.crop is not None:
            ch, cw = ev.crop
            cut = []
            for s in seqs:
                h, w = s.size
                if h < ch or w < cw:
                    raise ValueError(f"eval sequence {s.name}: {w}x{h} smaller than the crop "
                                     f"{cw}x{ch}")
                t0, l0 = (h - ch) // 2, (w - cw) // 2

                def win(a: np.ndarray | None, t0: int = t0, l0: int = l0) -> np.ndarray | None:
                    return None if a is None else np.ascontiguousarray(
                        a[:, t0:t0 + ch, l0:l0 + cw])

                cut.append(FusionSequence(s.name, win(s.visible), win(s.infrared),
                                          win(s.visible_ref), win(s.infrared_ref), s.meta))
            seqs = cut
        return seqs

    # --------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self, complete: bool = False) -> Path:
        """Write weights, optimizer state and ``checkpoint.json`` into ``out_dir``."""
        from safetensors.torch import save_file

        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous().clone()
                 for k, v in self.model.state_dict().items()}
        infer = {k: v for k, v in state.items() if k in self.inference_keys}
        extra = {k: v for k, v in state.items() if k not in self.inference_keys}
        meta = {"preset": self.config.preset, "step": str(self.step)}
        _atomic_write(self.out_dir / MODEL_FILE, lambda p: save_file(infer, str(p), meta))
        if extra:
            _atomic_write(self.out_dir / EXTRA_FILE, lambda p: save_file(extra, str(p), meta))
        if self.ema is not None:
            averaged = {k: v.detach().to("cpu").contiguous().clone()
                        for k, v in self.ema.state_dict().items() if k in self.inference_keys}
            _atomic_write(self.out_dir / EMA_FILE,
                          lambda p: save_file(averaged, str(p), {**meta, "ema": "1"}))
        opt = {"optimizer": self.optimizer.state_dict(), "step": self.step,
               "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {}}
        _atomic_write(self.out_dir / OPTIMIZER_FILE, lambda p: torch.save(opt, str(p)))
        info = {
            "step": self.step,
            "complete": complete,
            "preset": self.config.preset,
            "lr": learning_rate(self.config, self.step),
            "losses": self.recent,
            "eval": self.last_eval,
            "loss_weights": self.loss_fn.describe(),
            "distillation": self.distill,
            "samples": self.samples,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            **self.dist.describe(),
            "global_batch_size": self.global_batch,
            "config": config_to_dict(self.config),
            "torch": torch.__version__,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _atomic_write(self.out_dir / STATE_FILE,
                      lambda p: p.write_text(json.dumps(info, indent=2, default=str)))
        return self.out_dir

    @property
    def global_batch(self) -> int:
        """Clips per optimisation step over all ranks."""
        return self.config.batch_size * self.dist.world_size

    def load_checkpoint(self, run_dir: str | Path | None = None) -> int:
        """Restore weights, optimizer and step from a run folder; returns the step.

        Under torch.distributed rank 0 reads the files and sends them to the other ranks.
        """
        d = Path(run_dir) if run_dir is not None else self.out_dir
        payload: Any = None
        if self.dist.is_main:
            try:
                payload = _read_checkpoint(d)
            except Exception as e:  # every rank raises it
                payload = e
        payload = distributed.broadcast_object(payload, self.dist, self.device)
        if isinstance(payload, BaseException):
            raise payload
        state, opt, info, ema_state = payload
        missing = [k for k in self.model.state_dict() if k not in state]
        unexpected = [k for k in state if k not in self.model.state_dict()]
        if missing or unexpected:
            raise ResumeError(f"cannot resume from {d}: weights do not match the model "
                              f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
        self.model.load_state_dict(state)
        try:
            self.optimizer.load_state_dict(opt["optimizer"])
            if opt.get("scaler") and self.scaler.is_enabled():
                self.scaler.load_state_dict(opt["scaler"])
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise ResumeError(f"cannot resume from {d}: {OPTIMIZER_FILE} does not fit this "
                              f"optimizer ({type(exc).__name__}: {_first_line(exc)})") from None
        try:
            self.step = int(info["step"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ResumeError(f"cannot resume from {d}: {STATE_FILE} is unreadable "
                              f"({type(exc).__name__}: {_first_line(exc)})") from None
        # clips consumed; checkpoints from before torch.distributed: step x batch size
        self.samples = int(info.get("samples", self.step * int(
            info.get("config", {}).get("batch_size", self.config.batch_size))))
        old_world = int(info.get("world_size", 1))
        if old_world != self.dist.world_size and self.dist.is_main:
            log.info("resuming a world-size-%d run on %d process(es): global batch %s -> %d",
                     old_world, self.dist.world_size, info.get("global_batch_size", "?"),
                     self.global_batch)
        if int(opt.get("step", self.step)) != self.step:
            log.warning("optimizer state is from step %s, checkpoint.json says %d",
                        opt.get("step"), self.step)
        if self.ema is not None:
            self.ema = WeightEMA(self.model, self.config.ema_decay)  # from the loaded weights
            if ema_state is not None:
                try:
                    self.ema.load(ema_state, int(info.get("ema_updates", 0)))
                except ValueError as exc:
                    raise ResumeError(f"cannot resume from {d}: {EMA_FILE}: {exc}") from None
            else:
                log.info("%s has no %s: the weight average starts from the resumed weights",
                         d, EMA_FILE)
        self.recent = {k: float(v) for k, v in info.get("losses", {}).items()}
        self.last_eval = dict(info.get("eval", {}))
        log.info("resumed from %s at step %d", d, self.step)
        return self.step

    # ------------------------------------------------------------------------------ training

    def _loader(self) -> DataLoader:
        b = self.config.batch_size
        workers = self.config.data.num_workers
        sampler = distributed.ShardedClipSampler(self.samples, self.config.steps - self.step, b,
                                                 self.dist.rank, self.dist.world_size)
        return DataLoader(
            self.dataset, batch_size=b, sampler=sampler,
            num_workers=workers, drop_last=True, pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init if workers else None,
            persistent_workers=False)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.use_amp:
            return torch.autocast(device_type="cuda", dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One optimisation step on a collated batch.

        Returns the loss terms as floats (the mean over all ranks' batches under
        torch.distributed).
        """
        dev = self.device
        vis = batch["visible"].to(dev, non_blocking=True)
        ir = batch["infrared"].to(dev, non_blocking=True)
        vis_ref = batch["visible_ref"].to(dev, non_blocking=True)
        ir_ref = batch["infrared_ref"].to(dev, non_blocking=True)
        for g in self.optimizer.param_groups:
            g["lr"] = learning_rate(self.config, self.step)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            fused, feats = self.train_forward(vis, ir)  # DDP under torch.distributed
        terms = self.loss_fn(fused.float(), vis_ref, ir_ref, feats, visible_input=vis)
        total = terms["total"]
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"step {self.step + 1}: non-finite loss "
                f"{ {k: float(v.detach()) for k, v in terms.items()} }")
        self.scaler.scale(total).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.samples += self.global_batch
        return distributed.mean_over_ranks({k: float(v.detach()) for k, v in terms.items()},
                                           self.dist, self.device)

    def fit(self, resume: bool = False, resume_dir: str | Path | None = None) -> TrainResult:
        """Train up to ``config.steps``; checkpoints, CSV logs, evaluation, clean Ctrl-C."""
        if resume:
            self.load_checkpoint(resume_dir)
        main = self.dist.is_main  # rank 0 logs, evaluates and writes checkpoints
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.config
        interrupted = False
        window: list[dict[str, float]] = []
        times: list[float] = []
        all_times: list[float] = []
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=self.step, unit="it", desc="train",
                       dynamic_ncols=True)
        writer = _CsvLog(self.out_dir / TRAIN_LOG)
        log.info("training %s on %s from step %d to %d (batch %d, clip %d, crop %d, AMP %s, "
                 "distillation %s, world size %d, global batch %d)", cfg.preset, self.device,
                 self.step, cfg.steps, cfg.batch_size, cfg.data.clip_len, cfg.data.crop,
                 self.amp_dtype if self.use_amp else "off", "on" if self.distill else "off",
                 self.dist.world_size, self.global_batch)
        # under torchrun a Ctrl-C reaches the ranks as SIGINT, a shutdown as SIGTERM
        signals = (signal.SIGINT, signal.SIGTERM) if self.dist.enabled else (signal.SIGINT,)
        try:
            with _StopFlag(signals) as flag:
                t_last = t_begin = time.perf_counter()
                for batch in self._batches():
                    terms = self.train_step(batch)
                    now = time.perf_counter()
                    if cfg.time_limit_s and now - t_begin >= cfg.time_limit_s \
                            and not flag.stop and self.step < cfg.steps:
                        log.warning("time limit of %.0f s reached at step %d: writing a "
                                    "checkpoint (continue with --resume)", cfg.time_limit_s,
                                    self.step)
                        flag.stop = True
                    times.append(now - t_last)
                    all_times.append(now - t_last)
                    t_last = now
                    window.append(terms)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{terms['total']:.4f}",
                                        lr=f"{learning_rate(cfg, self.step):.2e}")
                    # a stop request of any rank (Ctrl-C, SIGTERM...) stops every rank now
                    flag.stop = distributed.any_rank(flag.stop, self.dist, self.device)
                    if self.step % cfg.log_every == 0 or flag.stop or self.step == cfg.steps:
                        self.recent = {k: float(np.mean([w[k] for w in window]))
                                       for k in window[0]}
                        if main:
                            writer.write({"step": self.step,
                                          "lr": learning_rate(cfg, self.step - 1),
                                          "sec_per_it": float(np.mean(times)), **self.recent,
                                          "world_size": self.dist.world_size})
                        window, times = [], []
                    if cfg.eval.every and self.step % cfg.eval.every == 0 and not flag.stop:
                        self._run_eval()
                        t_last = time.perf_counter()
                    if flag.stop:
                        interrupted = True
                        break
                    if (main and self.step % cfg.checkpoint_every == 0
                            and self.step < cfg.steps):
                        self.save_checkpoint()
        except KeyboardInterrupt:
            interrupted = True
            log.warning("aborted at step %d; writing a checkpoint", self.step)
        except Exception:
            if self.dist.enabled and main:  # e.g. another rank died inside a collective
                log.error("training failed at step %d; writing a checkpoint of the last "
                          "completed step", self.step)
                with contextlib.suppress(Exception):
                    self.save_checkpoint()
            raise
        finally:
            if bar is not None:
                bar.close()
        if window:
            self.recent = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
        if not interrupted and self.eval_sequences and (
                not cfg.eval.every or self.step % cfg.eval.every != 0):
            self._run_eval()
        if main:
            self.save_checkpoint(complete=not interrupted and self.step >= cfg.steps)
        distributed.barrier(self.dist)  # no rank leaves before the final checkpoint exists
        # steady-state speed: skip the first step (allocations, lazy init)
        steady = all_times[1:] if len(all_times) > 1 else all_times
        spi = float(np.mean(steady)) if steady else float("nan")
        if interrupted and main:
            log.warning("stopped at step %d; checkpoint in %s (resume with --resume)",
                        self.step, self.out_dir)
        return TrainResult(self.step, interrupted, dict(self.recent), dict(self.last_eval),
                           str(self.out_dir), spi, self.dist.world_size)

    def _batches(self) -> Iterator[dict[str, Tensor]]:
        if self.step >= self.config.steps:
            return iter(())
        return iter(self._loader())

    # ---------------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Fuse the evaluation sequences with clips and frame by frame; compare.

        Returns mean values over sequences: ``val_loss`` (the training loss against the clean
        references), ``MI``, ``SD`` and ``salience`` against the clean references
        (:mod:`temcoco_core.metrics.fusion`), ``flicker`` and ``flowD`` (with the clean visible
        video's DIS flow; :mod:`temcoco_core.metrics.temporal`), each also with a
        ``framewise_`` prefix (the same network fed one frame at a time) when
        ``eval.framewise`` is on.
        """
        if not self.eval_sequences:
            return {}
        was_training = self.model.training
        self.model.eval()
        rows: list[dict[str, float]] = []
        stack = contextlib.ExitStack()
        try:
            if self.ema is not None:  # evaluate the weights a run ships
                stack.enter_context(self.ema.applied(self.model))
            for seq in self.eval_sequences:
                vis = _to_clip(seq.visible)
                ir = _to_clip(seq.infrared)
                vis_ref = _to_clip(seq.vis_ref).to(self.device)
                vis_input = vis.to(self.device)     # for a loss with warm_visible "input"
                ir_ref = _to_clip(seq.ir_ref)[:, :, :1]
                if self.config.data.degrade.infrared_minmax:  # as the training targets
                    ir_ref = minmax_per_frame(ir_ref[0]).unsqueeze(0)
                ir_ref = ir_ref.to(self.device)
                if seq.name not in self._eval_flows:
                    self._eval_flows[seq.name] = _reference_flows(seq)
                flows = self._eval_flows[seq.name]
                runs = {"": None}
                if self.config.eval.framewise:
                    runs["framewise_"] = 1
                row: dict[str, float] = {}
                for prefix, t in runs.items():
                    fused = self._fuse(vis, ir, t)
                    row[f"{prefix}val_loss"] = float(
                        self.loss_fn(fused.to(self.device), vis_ref, ir_ref,
                                     visible_input=vis_input)["total"])
                    row.update({f"{prefix}{k}": v for k, v in
                                _metrics(_to_uint8(fused), seq, flows).items()})
                rows.append(row)
        finally:
            stack.close()
            self.model.train(was_training)
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def _fuse(self, vis: Tensor, ir: Tensor, frames: int | None) -> Tensor:
        """(1, T, 3, H, W) -> fused (1, T, 3, H, W) on the CPU, ``frames`` (or all) at a time."""
        t = vis.shape[1]
        step = frames or t
        outs = []
        for s in range(0, t, step):
            with self._autocast():
                out = self.model(vis[:, s:s + step].to(self.device),
                                 ir[:, s:s + step].to(self.device))
            outs.append(out.float().cpu())
        return torch.cat(outs, dim=1)

    def _run_eval(self) -> None:
        if not self.eval_sequences:  # also on ranks > 0
            return
        t0 = time.perf_counter()
        self.last_eval = self.evaluate()
        _CsvLog(self.out_dir / EVAL_LOG).write({"step": self.step, **self.last_eval})
        log.info("eval at step %d (%.1f s): %s", self.step, time.perf_counter() - t0,
                 ", ".join(f"{k}={v:.4g}" for k, v in self.last_eval.items()))


# ------------------------------------------------------------------------------- helpers


_Checkpoint = tuple[dict[str, Tensor], dict[str, Any], dict[str, Any], dict[str, Tensor] | None]


def _read_checkpoint(d: Path) -> _Checkpoint:
    """(weights incl. extra tensors, optimizer file, checkpoint.json, EMA weights or None)."""
    from temcoco_core.model.checkpoint import read_state_dict

    for name in (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE):
        if not (d / name).is_file():
            raise ResumeError(f"cannot resume from {d}: {name} is missing")
    state = read_state_dict(d / MODEL_FILE)
    if (d / EXTRA_FILE).is_file():
        state.update(read_state_dict(d / EXTRA_FILE))
    opt = _load_optimizer_file(d / OPTIMIZER_FILE)
    try:
        info = json.loads((d / STATE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ResumeError(f"cannot resume from {d}: {STATE_FILE} is unreadable "
                          f"({type(exc).__name__}: {_first_line(exc)})") from None
    ema = read_state_dict(d / EMA_FILE) if (d / EMA_FILE).is_file() else None
    return state, opt, info, ema


def _to_clip(frames: np.ndarray) -> Tensor:
    """(T, H, W, 3) or (T, H, W) uint8 -> (1, T, 3, H, W) float in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0
    x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x.unsqueeze(1).expand(-1, 3, -1, -1)
    return x.unsqueeze(0).contiguous()


def _to_uint8(fused: Tensor) -> np.ndarray:
    """(1, T, 3, H, W) float -> (T, H, W, 3) uint8 (clamped, rounded)."""
    x = fused[0].clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def _metrics(fused: np.ndarray, seq: FusionSequence,
             flows: list[np.ndarray] | None) -> dict[str, float]:
    """MI, SD, salience against the clean references.

    Flicker and flowD (clean visible flows) of the fused video -- whatever of
    :mod:`temcoco_core.metrics` is installed.
    """
    out: dict[str, float] = {}
    try:
        from temcoco_core.metrics.fusion import fusion_metrics
    except ImportError:
        return out
    out.update(fusion_metrics(fused, seq.vis_ref, seq.ir_ref, metrics=("MI", "SD", "salience")))
    if fused.shape[0] < 2:
        return out
    try:
        from temcoco_core.metrics.temporal import flicker, flowd
    except ImportError:
        return out
    out["flicker"] = float(flicker(fused, seq.vis_ref))
    if flows is not None:
        out["flowD"] = float(flowd(fused, seq.vis_ref, flows=flows))
    return out


def _reference_flows(seq: FusionSequence) -> list[np.ndarray] | None:
    """Optical flow of the clean visible video (t -> t-1), for flowD; None if unavailable."""
    if seq.num_frames < 2:
        return None
    try:
        from temcoco_core.metrics.temporal import reference_flows
    except ImportError:
        return None
    return reference_flows(seq.vis_ref)


class _CsvLog:
    """Append rows to a CSV file; the header is written once.

    The columns are fixed by the first row; a resumed run appends to the same file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, row: dict[str, float | int]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if not new:
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
        else:
            header = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) and math.isfinite(v) else v)
                        for k, v in row.items()})


# ------------------------------------------------------------------------------------ CLI


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``temcoco train``."""
    p = subparsers.add_parser(
        "train", help="train a fusion network (losses, degradations, checkpoints)",
        description="Train a TemCoCo preset on infrared-visible videos with synthetic "
                    "degradations. Settings come from --config (YAML, see "
                    "config/train_edge.yaml), then the flags below, then --set KEY=VALUE. "
                    "Ctrl-C stops cleanly with a checkpoint; --resume continues it.")
    p.add_argument("--config", help="YAML training config")
    p.add_argument("--resume", nargs="?", const="", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR (default: the config's out_dir); its "
                        "checkpoint.json config is the base the other options override")
    p.add_argument("--out", dest="out_dir", help="run folder (checkpoints, logs)")
    p.add_argument("--preset", help="network preset (edge, edge-framewise, official)")
    p.add_argument("--data", action="append", metavar="ROOT",
                   help="training data root (repeatable; replaces the config's sources)")
    p.add_argument("--steps", type=int, help="total optimisation steps")
    p.add_argument("--batch-size", type=int, dest="batch_size")
    p.add_argument("--clip-len", type=int, dest="clip_len", help="frames per clip T")
    p.add_argument("--crop", type=int, help="square crop side in pixels")
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--loss", choices=COMPOSITIONS, help="loss composition")
    p.add_argument("--vgg19", help="VGG19 teacher weights ('auto': torch hub cache; 'none')")
    p.add_argument("--dinov2", help="local Hugging Face DINOv2 directory")
    p.add_argument("--eval-every", type=int, dest="eval_every",
                   help="evaluate every N steps (0: only at the end)")
    p.add_argument("--no-eval", action="store_true", help="no evaluation")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--time-limit", type=float, dest="time_limit_s", metavar="SECONDS",
                   help="stop with a checkpoint after this many seconds of training "
                        "(0: no limit)")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-amp", action="store_true", help="full precision on CUDA")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set data.degrade.agc_gain=0.1")
    distributed.add_arguments(p)
    p.set_defaults(func=run)
    return p


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """Argparse flags -> ``key=value`` overrides (YAML-encoded values)."""
    def enc(v: Any) -> str:
        return json.dumps(v)

    out = []
    simple = {"out_dir": "out_dir", "preset": "preset", "steps": "steps",
              "batch_size": "batch_size", "clip_len": "data.clip_len", "crop": "data.crop",
              "lr": "lr", "loss": "loss.composition", "eval_every": "eval.every",
              "device": "device", "threads": "threads", "seed": "seed", "dinov2":
              "teachers.dinov2", "time_limit_s": "time_limit_s"}
    for attr, key in simple.items():
        v = getattr(args, attr, None)
        if v is not None:
            out.append(f"{key}={enc(v)}")
    if getattr(args, "vgg19", None) is not None:
        v = None if args.vgg19.lower() in ("none", "null", "") else args.vgg19
        out.append(f"teachers.vgg19={enc(v)}")
    if getattr(args, "data", None):
        out.append(f"data.sources={enc([{'root': r} for r in args.data])}")
    if getattr(args, "no_eval", False):
        out.append("eval.root=null")
    if getattr(args, "no_amp", False):
        out.append("amp=false")
    return out


def build_config(args: argparse.Namespace) -> tuple[TrainConfig, Path | None]:
    """Config from ``--config``/``--resume``/flags; returns it and the resume folder."""
    base: dict[str, Any] = {}
    resume_dir: Path | None = None
    if args.resume is not None:
        if args.resume:
            resume_dir = Path(args.resume)
        else:
            pre = load_config(args.config, _flag_overrides(args) + list(args.set))
            resume_dir = Path(pre.out_dir)
        state = resume_dir / STATE_FILE
        if not state.is_file():
            raise ResumeError(f"cannot resume: {state} not found")
        base = json.loads(state.read_text()).get("config", {})
        base["out_dir"] = str(resume_dir)
    if args.config and base:
        import yaml

        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.config}: top level must be a mapping")
        _deep_merge(base, loaded)
        cfg = load_config(None, _flag_overrides(args) + list(args.set), base=base)
    else:
        cfg = load_config(args.config, _flag_overrides(args) + list(args.set), base=base)
    return cfg, resume_dir


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = v


def run(args: argparse.Namespace) -> int:
    """``temcoco train``: exit 0 when finished or stopped with Ctrl-C (checkpoint written)."""
    cfg, resume_dir = build_config(args)
    timeout = getattr(args, "dist_timeout", distributed.DEFAULT_TIMEOUT_S)
    with distributed.session(cfg.device, timeout) as ctx:  # torchrun: join the group
        trainer = Trainer(cfg, progress=not getattr(args, "no_progress", False), dist=ctx)
        result = trainer.fit(resume=args.resume is not None, resume_dir=resume_dir)
    if not ctx.is_main:
        return 0
    summary = {"step": result.step, "interrupted": result.interrupted,
               "sec_per_step": round(result.sec_per_step, 4), "out_dir": result.out_dir,
               "world_size": result.world_size,
               "losses": {k: round(v, 5) for k, v in result.losses.items()},
               "eval": {k: round(v, 5) for k, v in result.evaluation.items()}}
    print(json.dumps(summary, indent=2))
    return 0
