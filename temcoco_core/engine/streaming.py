# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Frame-by-frame fusion engines: one frame pair in, fused frames out.

Every engine has the same interface, the one :class:`temcoco_core.pipeline.FusionPipeline`
consumes:

* ``push(visible, infrared) -> Tensor | None`` — one frame pair: ``(3, H, W)`` float tensors in
  [0, 1] (infrared grey repeated to 3 channels), or numpy frames (``(H, W, 3)`` RGB and
  ``(H, W)`` grey), which go through the shared pre-processing
  :func:`temcoco_core.frames.preprocess.to_model_tensor`. Returns the fused ``(3, H, W)`` frame
  (on the engine's device, in the engine's dtype, *not clamped*:
  :func:`~temcoco_core.frames.preprocess.to_output_frame` clamps) of the **oldest pair whose
  output has not been returned yet**, or ``None`` while a clip is filling. Outputs come one per
  input, in input order, so a caller can match them to their inputs with a FIFO.
* ``drain() -> list[Tensor]`` — the outputs still owed (end of stream), oldest first.
* ``reset()`` — forget all temporal state (time jumps, scene cuts). Outputs still owed are
  dropped (and counted in ``dropped_frames``): call ``drain()`` first to keep them.
* ``frames_since_reset``, ``pending`` (outputs owed), ``latency_frames`` (how many pushes later
  a frame's output comes back), ``frame_size``.

Engines:

* :class:`StreamingFuser` — causal networks with a step API (the ``edge`` preset): per-layer
  temporal state (convolution caches, attention keys/values, previous aligned features), so each
  frame's work is done once and the cost per frame does not grow with the stream. Output equals
  the network run on the whole clip. Latency 0 frames.
* :class:`ClipBuffer` — any clip network, e.g. the non-causal ``official`` preset, over a rolling
  buffer of the last ``length`` frames. ``mode="clip"``: run ``length`` frames at once and emit
  them one per push (latency ``length − 1`` frames, cost 1× per frame); ``mode="window"``:
  recompute the last ``length`` frames on every push and emit the newest (latency 0, cost
  ``length``× per frame, only past context).

:func:`make_streaming_engine` picks one from a :class:`EngineConfig`. :func:`streaming_cost`
counts the FLOPs of a streaming step against a window recompute (for ``temcoco bench``).

Bad input policy (the engine stays usable after every error): wrong rank or channel count,
non-float tensors, NaN/Inf and values outside [0, 1] (beyond ``RANGE_TOLERANCE``, which is
clamped), and pairs of different sizes raise :class:`FrameError` (a ``ValueError``) and change no
state. A frame size that differs from the running stream's is **not** an error: the engine resets
(counted in ``size_resets``; a clip buffer's owed outputs are dropped and counted) and starts a
new stream at the new size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import nn, Tensor
from torch.utils.flop_counter import FlopCounterMode

from temcoco_core.frames.preprocess import FrameError, PreprocessConfig, to_model_tensor

__all__ = [
    "ENGINE_MODES",
    "RANGE_TOLERANCE",
    "ClipBuffer",
    "EngineConfig",
    "FrameError",
    "StreamingCost",
    "StreamingFuser",
    "count_flops",
    "has_step",
    "make_streaming_engine",
    "streaming_cost",
]

#: Modes accepted by :class:`EngineConfig` / :func:`make_streaming_engine`.
ENGINE_MODES = ("auto", "stream", "clip", "window")

#: Tensor values within this distance outside [0, 1] are clamped; further out is a FrameError.
RANGE_TOLERANCE = 1e-3

FrameLike = Tensor | np.ndarray
StepFn = Callable[[Tensor, Tensor, Mapping[str, Tensor]], tuple[Tensor, dict[str, Tensor]]]


def has_step(model: nn.Module) -> bool:
    """True when ``model`` is causal with a streaming step API (``init_state`` and ``step``)."""
    return callable(getattr(model, "step", None)) and callable(getattr(model, "init_state", None))


def _check_tensor(x: Tensor, name: str) -> None:
    if x.dim() != 3 or x.shape[0] != 3:
        raise FrameError(f"{name} frame must be a (3, H, W) tensor, got shape {tuple(x.shape)}")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise FrameError(f"{name} frame is empty: shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise FrameError(f"{name} frame must be a float tensor in [0, 1], got {x.dtype}; convert "
                         "uint8 images with temcoco_core.frames.preprocess.to_model_tensor")
    if not bool(torch.isfinite(x).all()):
        raise FrameError(f"{name} frame contains NaN or Inf values")
    lo, hi = torch.aminmax(x)
    if float(lo) < -RANGE_TOLERANCE or float(hi) > 1.0 + RANGE_TOLERANCE:
        raise FrameError(f"{name} frame values must be in [0, 1], got [{float(lo):.4g}, "
                         f"{float(hi):.4g}]")


class _Engine:
    """Input preparation, counters and reset bookkeeping shared by the engines.

    Attributes:
        frame_size: ``(H, W)`` of the running stream (``None`` before the first frame).
        frames_since_reset, frames_total: frames pushed since the last reset / ever.
        resets: resets of any cause (``reset()`` calls and size changes).
        size_resets: resets caused by a change of frame size.
        dropped_frames: owed outputs discarded by resets (clip mode only).
    """

    #: How many pushes later a frame's output comes back.
    latency_frames = 0

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32,
                 preprocess: PreprocessConfig | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.preprocess = preprocess
        self.frame_size: tuple[int, int] | None = None  # (H, W) of the running stream
        self.frames_since_reset = 0
        self.frames_total = 0
        self.resets = 0
        self.size_resets = 0
        self.dropped_frames = 0

    # ------------------------------------------------------------------ input
    def prepare(self, visible: FrameLike, infrared: FrameLike) -> tuple[Tensor, Tensor]:
        """Validate a frame pair and return ``(3, H, W)`` tensors on the engine's device/dtype.

        Numpy frames go through :func:`to_model_tensor` with the engine's ``preprocess`` config;
        tensors must already be ``(3, H, W)`` floats in [0, 1]. Raises :class:`FrameError`.
        """
        vis_np, ir_np = isinstance(visible, np.ndarray), isinstance(infrared, np.ndarray)
        if vis_np and ir_np:
            visible, infrared = to_model_tensor(visible, infrared, self.preprocess)
        elif vis_np or ir_np:
            raise FrameError("pass both frames as numpy arrays or both as torch tensors, got "
                             f"{type(visible).__name__} and {type(infrared).__name__}")
        elif not (isinstance(visible, Tensor) and isinstance(infrared, Tensor)):
            raise FrameError("frames must be torch tensors or numpy arrays, got "
                             f"{type(visible).__name__} and {type(infrared).__name__}")
        else:
            _check_tensor(visible, "visible")
            _check_tensor(infrared, "infrared")
            if visible.shape != infrared.shape:
                raise FrameError(f"visible {tuple(visible.shape)} and infrared "
                                 f"{tuple(infrared.shape)} frames differ in size; register or "
                                 "resize the thermal image first")
        vis = visible.to(device=self.device, dtype=self.dtype).clamp(0.0, 1.0)
        ir = infrared.to(device=self.device, dtype=self.dtype).clamp(0.0, 1.0)
        return vis, ir

    def _follow_size(self, size: tuple[int, int]) -> None:
        """Reset when the frame size changes mid-stream (documented policy, counted)."""
        if self.frame_size is not None and size != self.frame_size:
            self.size_resets += 1
            self.reset()
        self.frame_size = size

    # ------------------------------------------------------------------ interface
    @property
    def pending(self) -> int:
        """Outputs owed: frames pushed whose fused frame has not been returned yet."""
        return 0

    def drain(self) -> list[Tensor]:
        """Outputs still owed, oldest first (end of stream)."""
        return []

    def reset(self) -> None:
        """Forget all temporal state; owed outputs are dropped (``dropped_frames``)."""
        self.dropped_frames += self.pending
        self.frames_since_reset = 0
        self.resets += 1
        self._clear()

    def _clear(self) -> None:
        raise NotImplementedError


class StreamingFuser(_Engine):
    """Streaming engine for causal networks with a step API (``init_state``, ``step``).

    ``push(visible, infrared)`` returns the fused ``(3, H, W)`` frame of that pair (latency 0).
    The network's state (fixed shapes) is kept between pushes; each frame's work is done once,
    and the result equals the network's clip forward over all frames since the last reset.

    Args:
        model: a causal network, e.g. ``build_model("edge")``; moved to ``device``/``dtype``.
        device, dtype: where and in which precision to run.
        preprocess: sizing policy for numpy frames (:class:`PreprocessConfig`).
        step_fn: a compiled/exported replacement for ``model.step`` with the signature
            ``step_fn(visible (1, 3, H, W), infrared, state) -> (fused, new_state)``; default
            ``model.step`` (with a static first-frame hint in eager mode).

    Raises:
        ValueError: the model has no step API (use :class:`ClipBuffer` /
            :func:`make_streaming_engine`).
    """

    def __init__(self, model: nn.Module, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, preprocess: PreprocessConfig | None = None,
                 step_fn: StepFn | None = None) -> None:
        if not has_step(model):
            raise ValueError(f"{type(model).__name__} has no streaming step API (init_state/"
                             "step): it is not causal; use ClipBuffer or "
                             "make_streaming_engine(model)")
        super().__init__(model, device, dtype, preprocess)
        self.step_fn = step_fn
        self._state: dict[str, Tensor] | None = None

    @property
    def state(self) -> dict[str, Tensor] | None:
        """The network's streaming state after the last push (``None`` right after a reset)."""
        return self._state

    def _clear(self) -> None:
        self._state = None

    def push(self, visible: FrameLike, infrared: FrameLike) -> Tensor:
        """Fuse one frame pair → ``(3, H, W)`` (see the module docstring for the policies)."""
        vis, ir = self.prepare(visible, infrared)
        self._follow_size((vis.shape[1], vis.shape[2]))
        state = self._state
        if state is None:
            state = self.model.init_state(1, vis.shape[1], vis.shape[2], device=self.device,
                                          dtype=self.dtype)
        with torch.inference_mode():
            if self.step_fn is not None:
                fused, new_state = self.step_fn(vis[None], ir[None], state)
            else:
                fused, new_state = self.model.step(vis[None], ir[None], state,
                                                   first=self.frames_since_reset == 0)
        self._state = dict(new_state)
        self.frames_since_reset += 1
        self.frames_total += 1
        return fused[0]


class ClipBuffer(_Engine):
    """Rolling frame buffer for clip networks (non-causal ones such as the official preset).

    Modes:
        ``"clip"``: frames are collected into clips of ``length``; when a clip is complete the
            network runs once on it (optionally with the previous clip's last ``overlap`` frames
            prepended as context, their outputs discarded) and its outputs are returned one per
            push: ``push`` returns ``None`` for the first ``length − 1`` frames after a reset,
            then the output of the frame pushed ``length − 1`` pushes earlier. Latency
            ``length − 1`` frames; ``drain()`` runs the partial last clip.
        ``"window"``: every push runs the network on the last ``length`` frames (fewer right
            after a reset) and returns the newest frame's output. Latency 0, cost ``length``×
            per frame, and each frame only sees the past.

    Args:
        model: any network with ``model(visible, infrared)`` on ``(B, T, 3, H, W)``.
        length: frames per clip / window (the network's temporal context).
        mode: ``"clip"`` or ``"window"``.
        overlap: clip mode only: context frames carried over from the previous clip.
        device, dtype, preprocess: as for :class:`StreamingFuser`.
    """

    def __init__(self, model: nn.Module, length: int = 8, mode: str = "clip",
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 preprocess: PreprocessConfig | None = None, overlap: int = 0) -> None:
        if mode not in ("clip", "window"):
            raise ValueError(f"ClipBuffer mode must be 'clip' or 'window', got {mode!r}")
        if length < 1:
            raise ValueError(f"ClipBuffer length must be >= 1, got {length}")
        if overlap < 0 or (overlap and mode != "clip"):
            raise ValueError(f"overlap must be >= 0 and is only used in clip mode, got {overlap} "
                             f"with mode {mode!r}")
        super().__init__(model, device, dtype, preprocess)
        self.length = length
        self.mode = mode
        self.overlap = overlap
        self.latency_frames = length - 1 if mode == "clip" else 0
        self._frames: deque[tuple[Tensor, Tensor]] = deque(
            maxlen=length if mode == "window" else None)
        self._context: list[tuple[Tensor, Tensor]] = []
        self._ready: deque[Tensor] = deque()

    @property
    def pending(self) -> int:
        if self.mode == "window":
            return 0
        return len(self._ready) + len(self._frames)

    def _clear(self) -> None:
        self._frames.clear()
        self._context = []
        self._ready.clear()

    def _run(self, pairs: list[tuple[Tensor, Tensor]]) -> Tensor:
        """Network on ``pairs`` as one clip → ``(T, 3, H, W)``."""
        vis = torch.stack([p[0] for p in pairs])[None]
        ir = torch.stack([p[1] for p in pairs])[None]
        with torch.inference_mode():
            return self.model(vis, ir)[0]

    def _run_clip(self, clip: list[tuple[Tensor, Tensor]]) -> None:
        """Run one clip (with the carried context) and queue its outputs."""
        out = self._run(self._context + clip)
        self._ready.extend(out[len(self._context):].unbind(0))
        self._context = clip[len(clip) - self.overlap:] if self.overlap else []
        self._frames.clear()

    def push(self, visible: FrameLike, infrared: FrameLike) -> Tensor | None:
        """Add one frame pair; return the oldest owed output or ``None`` (see the class doc).

        If the network raises, the buffer is left as it was before the call.
        """
        vis, ir = self.prepare(visible, infrared)
        self._follow_size((vis.shape[1], vis.shape[2]))
        frames = [*self._frames, (vis, ir)]
        out: Tensor | None
        if self.mode == "window":
            out = self._run(frames[-self.length:])[-1]
            self._frames.append((vis, ir))
        else:
            if len(frames) == self.length:
                self._run_clip(frames)
            else:
                self._frames.append((vis, ir))
            out = self._ready.popleft() if self._ready else None
        self.frames_since_reset += 1
        self.frames_total += 1
        return out

    def drain(self) -> list[Tensor]:
        if self.mode == "clip" and self._frames:
            self._run_clip(list(self._frames))
        out = list(self._ready)
        self._ready.clear()
        return out


@dataclass(frozen=True)
class EngineConfig:
    """Which engine :func:`make_streaming_engine` builds.

    Attributes:
        mode: ``"auto"`` (``"stream"`` for networks with a step API, else ``"clip"``),
            ``"stream"`` (:class:`StreamingFuser`), ``"clip"`` or ``"window"``
            (:class:`ClipBuffer`).
        length: frames per clip / window (clip and window modes).
        overlap: context frames carried between clips (clip mode).
        device: torch device string.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
    """

    mode: str = "auto"
    length: int = 8
    overlap: int = 0
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.mode not in ENGINE_MODES:
            raise ValueError(f"engine mode must be one of {ENGINE_MODES}, got {self.mode!r}")
        if self.length < 1:
            raise ValueError(f"engine length must be >= 1, got {self.length}")
        if not 0 <= self.overlap < self.length:
            raise ValueError(f"engine overlap must be in [0, length), got {self.overlap}")
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise ValueError(f"engine dtype must be float32, float16 or bfloat16, "
                             f"got {self.dtype!r}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


def make_streaming_engine(model: nn.Module, config: EngineConfig | None = None, *,
                          preprocess: PreprocessConfig | None = None,
                          step_fn: StepFn | None = None,
                          **overrides: object) -> StreamingFuser | ClipBuffer:
    """Build the engine for ``model``.

    Example: ``make_streaming_engine(model, mode="clip", length=8)``.
    ``overrides`` are :class:`EngineConfig` fields applied on top of ``config``. ``"auto"``
    streams networks that have a step API and runs clips otherwise.

    Raises:
        ValueError: unknown option, or ``mode="stream"`` for a network without a step API.
    """
    known = {f.name for f in fields(EngineConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown engine option(s) {unknown}; known: {sorted(known)}")
    cfg = replace(config or EngineConfig(), **overrides)  # type: ignore[arg-type]
    mode = cfg.mode
    if mode == "auto":
        mode = "stream" if has_step(model) else "clip"
    if mode == "stream":
        return StreamingFuser(model, cfg.device, cfg.torch_dtype, preprocess, step_fn=step_fn)
    return ClipBuffer(model, cfg.length, mode, cfg.device, cfg.torch_dtype, preprocess,
                      overlap=cfg.overlap if mode == "clip" else 0)


# ---------------------------------------------------------------------------------- cost
def count_flops(fn: Callable[..., object], *args: object, **kwargs: object) -> int:
    """Count the FLOPs of ``fn(*args, **kwargs)``.

    FLOPs of ``fn(*args, **kwargs)`` by :class:`torch.utils.flop_counter.FlopCounterMode` (2 per
    multiply-add; convolutions, matmuls and attention only: ``grid_sample`` and element-wise ops
    are not counted). Runs under ``torch.inference_mode``.
    """
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn(*args, **kwargs)
    return int(counter.get_total_flops())


@dataclass(frozen=True)
class StreamingCost:
    """FLOPs of one streaming step against one window recompute of ``length`` frames.

    ``ratio = step_flops / window_flops``; streaming is worth its state when
    ``ratio <= 1.25 / length`` (:attr:`meets_target`).
    """

    height: int
    width: int
    length: int
    step_flops: int
    window_flops: int

    @property
    def ratio(self) -> float:
        return self.step_flops / self.window_flops

    @property
    def target(self) -> float:
        return 1.25 / self.length

    @property
    def meets_target(self) -> bool:
        return self.ratio <= self.target

    @property
    def step_gflops(self) -> float:
        """Giga-FLOPs per streamed frame."""
        return self.step_flops / 1e9


def streaming_cost(model: nn.Module, height: int = 480, width: int = 640,
                   length: int = 8) -> StreamingCost:
    """Count the FLOPs of one streaming step and of one window recompute.

    Count the FLOPs of one streaming step and of one window recompute (the network on ``length``
    frames, as :class:`ClipBuffer` ``"window"`` mode does per frame) at ``height × width``, batch
    1, on the model's device.

    Raises:
        ValueError: the model has no step API.
    """
    if not has_step(model):
        raise ValueError(f"{type(model).__name__} has no streaming step API")
    param = next(model.parameters())
    dev, dt = param.device, param.dtype
    was_training = model.training
    model.eval()
    try:
        frame = torch.rand(1, 3, height, width, device=dev, dtype=dt)
        state = model.init_state(1, height, width)
        step = count_flops(model.step, frame, frame, state)
        clip = torch.rand(1, length, 3, height, width, device=dev, dtype=dt)
        window = count_flops(model, clip, clip)
    finally:
        model.train(was_training)
    return StreamingCost(height, width, length, step, window)
