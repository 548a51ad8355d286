# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Causal building blocks for streaming networks: every layer has a clip path and a step path.

A causal network computes frame ``t`` from frames ``≤ t`` only, so it can be run two ways that
give the same numbers:

* **clip**: a whole clip at once; frames are folded into the batch, ``(B·T, C, H, W)``, and the
  few layers that look back in time (temporal convolutions, temporal attention, frame
  histories) shift the clip along ``T``;
* **step**: one frame at a time, ``(B, C, H, W)``, with each of those layers keeping what it
  needs from earlier frames in a fixed-shape *state* tensor (a cache of its last ``k − 1``
  inputs, a ring of attention keys/values).

Every module here takes ``forward(x, ctx)`` where ``ctx`` says which way it runs
(:class:`ClipContext` or :class:`StepContext`); frame-local layers ignore it. Stateful layers
derive from :class:`StatefulModule`: they know the spatial ``scale`` (down-sampling factor) of
their input relative to the network input, so a network can list the shapes of its whole state
from the frame size alone (:func:`collect_state_shapes`), before any frame is seen.

Motion gate (:class:`MotionGate`, :func:`assign_motion_gate`): the temporal convolutions and
the temporal attention look at earlier frames at the *same pixel*, without alignment; where
something moved, that mixes the object's earlier position into the current frame (a ghost
trailing a walking person). With a gate, an earlier frame's contribution at a pixel is faded
out as its features' relative change against the current frame's grows: a convolution sees the
current frame in its place, the attention down-weights that key. Static pixels (change below
``low``) keep the full temporal context. Same arithmetic in clip and step mode.

Start of a stream: where a layer would look before frame 0 it sees frame 0 again (replicate
padding in time). In step mode this is done without data-dependent Python branching:
``torch.where(first, copies of x, cache)`` with a boolean ``first`` tensor, so a step graph
with the state as inputs and outputs can be exported or compiled. Temporal attention instead
masks out ring slots older than the stream (it must not weight frame 0 several times).

All tensors use operators that Torch-TensorRT converts and ONNX exports: ``conv2d``, ``cat``,
slicing, ``where``, ``layer_norm``, ``linear``, and attention as matmul + softmax on 4-D tensors
with an additive ``-inf`` mask (:func:`temcoco_core.model.attention.attention`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from .attention import attention

__all__ = [
    "COUNT_KEY",
    "ClipContext",
    "StepContext",
    "StatefulModule",
    "FrameHistory",
    "CausalTemporalConv",
    "CausalSepConv",
    "CausalResBlock",
    "CausalTemporalAttention",
    "causal_band_mask",
    "mask_to_bias",
    "assign_motion_gate",
    "assign_state_keys",
    "MotionGate",
    "collect_state_shapes",
    "delayed",
]

#: Key of the frame counter in a state dict: int64 ``(1,)``, frames seen since the last reset,
#: saturating at the network's history length.
COUNT_KEY = "count"


@dataclass
class ClipContext:
    """Run a layer on a clip.

    Run a layer on a clip: tensors are ``(B·T, C, H, W)`` with frames ``t`` contiguous per batch
    item (``index = b·T + t``).
    """

    batch: int
    frames: int


@dataclass
class StepContext:
    """Run a layer on one frame: tensors are ``(B, C, H, W)``.

    Attributes:
        state: the state before this frame (read only).
        first: True on the first frame after a reset: a bool ``(1, 1, 1, 1)`` tensor (one graph
            for every frame, for export), or a Python bool when the caller knows it (eager mode:
            skips a ``torch.where`` per cached layer).
        count: int64 ``(1,)``, frames seen before this one (saturating).
        new_state: filled by each stateful layer with its state after this frame.
    """

    state: Mapping[str, Tensor]
    first: Tensor | bool
    count: Tensor
    new_state: dict[str, Tensor] = field(default_factory=dict)

    def start_or_cache(self, copies: Callable[[], Tensor], cache: Tensor) -> Tensor:
        """``copies()`` on the first frame.

        Else ``cache`` (``torch.where`` when ``first`` is a tensor).
        """
        if isinstance(self.first, bool):
            return copies() if self.first else cache
        return torch.where(self.first, copies(), cache)


Context = ClipContext | StepContext


def delayed(x: Tensor, lag: int, frames: int) -> Tensor:
    """Clip ``x`` ``(B, T, …)`` delayed by ``lag`` frames, replicate-padded at the start.

    ``out[:, t] = x[:, max(t − lag, 0)]``.
    """
    if lag == 0:
        return x
    lag = min(lag, frames)
    pad = x[:, :1].expand(x.shape[0], lag, *x.shape[2:])
    return torch.cat([pad, x[:, : frames - lag]], dim=1)


def causal_band_mask(frames: int, history: int, device: torch.device | None = None) -> Tensor:
    """Bool ``(T, T)`` mask, True where query frame ``i`` may attend key frame ``j``.

    ``j ≤ i`` and ``i − j < history`` (the last ``history`` frames, itself included).
    """
    i = torch.arange(frames, device=device).view(frames, 1)
    j = torch.arange(frames, device=device).view(1, frames)
    return (j <= i) & (i - j < history)


def mask_to_bias(mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Bool mask (True = may attend) → additive bias: 0 where allowed, ``-inf`` elsewhere."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, float("-inf"))


@dataclass(frozen=True)
class MotionGate:
    """How much an earlier frame's features may count at a pixel, from their change.

    With ``d = mean_c |a − b| / (mean_c |a| + mean_c |b| + ε)`` the relative change between the
    current frame's features ``a`` and an earlier frame's ``b`` at a pixel (0: identical,
    1: unrelated or one of them zero), the weight is ``clamp((high − d) / (high − low), 0, 1)``:
    1 for ``d ≤ low`` (static: full temporal context), 0 for ``d ≥ high`` (moved: the
    earlier frame does not count), linear in between.

    Attributes:
        low, high: the ramp's ends, ``0 ≤ low < high``.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.low < self.high:
            raise ValueError(f"motion gate needs 0 <= low < high, got low={self.low}, "
                             f"high={self.high}")

    def __call__(self, current: Tensor, earlier: Tensor, dim: int) -> Tensor:
        """Weights in [0, 1], the shape of ``current`` with ``dim`` reduced (kept, size 1).

        Computed in float32 (bf16 features under autocast), returned in ``current``'s dtype.
        """
        a, b = current.float(), earlier.float()
        change = (a - b).abs().mean(dim, keepdim=True)
        scale = a.abs().mean(dim, keepdim=True) + b.abs().mean(dim, keepdim=True) + 1e-6
        weight = ((self.high - change / scale) / (self.high - self.low)).clamp(0.0, 1.0)
        return weight.to(current.dtype)


def assign_motion_gate(network: nn.Module, gate: MotionGate | None) -> None:
    """Set the motion gate of every temporal convolution and temporal attention in ``network``.

    ``None`` switches it off (plain unaligned temporal context, as the release).
    """
    for module in network.modules():
        if isinstance(module, (CausalTemporalConv, CausalTemporalAttention)):
            module.motion_gate = gate


class StatefulModule(nn.Module):
    """A layer that keeps state between frames in step mode.

    Attributes:
        scale: spatial down-sampling factor of this layer's input relative to the (padded)
            network input; its state is sized ``(H / scale, W / scale)``.
        state_key: name of its entry in the state dict; set by :func:`assign_state_keys`.
    """

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.state_key = ""

    def state_shape(self, batch: int, height: int, width: int) -> tuple[int, ...] | None:
        """Shape of this layer's state.

        Shape of this layer's state for a padded network input of ``height × width`` (``None``:
        this layer keeps no state).
        """
        raise NotImplementedError

    def _key(self) -> str:
        if not self.state_key:
            raise RuntimeError(f"{type(self).__name__} has no state key: call "
                               "assign_state_keys(network) after building the network")
        return self.state_key


def assign_state_keys(network: nn.Module) -> None:
    """Name every :class:`StatefulModule` in ``network`` by its module path."""
    for name, module in network.named_modules():
        if isinstance(module, StatefulModule):
            module.state_key = name


def collect_state_shapes(network: nn.Module, batch: int, height: int, width: int
                         ) -> dict[str, tuple[int, ...]]:
    """``{state_key: shape}`` of every stateful layer for a padded input ``height × width``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for module in network.modules():
        if isinstance(module, StatefulModule):
            shape = module.state_shape(batch, height, width)
            if shape is not None:
                shapes[module._key()] = shape
    return shapes


class FrameHistory(StatefulModule):
    """The previous ``length`` frames of a feature map (a shift register).

    ``forward(x, ctx)`` returns ``[x_{t−1}, …, x_{t−length}]``, each shaped like ``x``
    (``(B·T, C, H, W)`` in clip mode, ``(B, C, H, W)`` in step mode); before the start of the
    stream the first frame stands in. State: ``(B, length·C, H, W)``, oldest first.
    """

    def __init__(self, channels: int, length: int, scale: int) -> None:
        super().__init__(scale)
        if length < 1:
            raise ValueError(f"FrameHistory length must be >= 1, got {length}")
        self.channels = channels
        self.length = length

    def state_shape(self, batch: int, height: int, width: int) -> tuple[int, ...]:
        return (batch, self.length * self.channels, height // self.scale, width // self.scale)

    def forward(self, x: Tensor, ctx: Context) -> list[Tensor]:
        if isinstance(ctx, ClipContext):
            clip = x.view(ctx.batch, ctx.frames, *x.shape[1:])
            return [delayed(clip, lag, ctx.frames).reshape(x.shape)
                    for lag in range(1, self.length + 1)]
        key = self._key()
        cache = ctx.start_or_cache(lambda: x.repeat(1, self.length, 1, 1), ctx.state[key])
        window = torch.cat([cache, x], dim=1)
        ctx.new_state[key] = window[:, self.channels:]
        c = self.channels
        return [cache[:, (self.length - lag) * c:(self.length - lag + 1) * c]
                for lag in range(1, self.length + 1)]


class CausalTemporalConv(StatefulModule):
    """Convolution along time with kernel ``k``, left-padded: ``y_t = Σ_j W_j x_{t−k+1+j} + b``.

    Implemented as a 1×1 ``conv2d`` over the channel-stacked window ``[x_{t−k+1}, …, x_t]``
    (same arithmetic in clip and step mode). ``(·, C_in, H, W) -> (·, C_out, H, W)``.
    State: ``(B, (k − 1)·C_in, H, W)``, the last ``k − 1`` inputs, oldest first (none for
    ``k = 1``). With a :class:`MotionGate` (``motion_gate``), each earlier input is replaced by
    ``x_t + g·(x_{t−i} − x_t)`` before the convolution, ``g`` per pixel; the state keeps the
    inputs themselves.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3,
                 scale: int = 1) -> None:
        super().__init__(scale)
        if kernel < 1:
            raise ValueError(f"temporal kernel must be >= 1, got {kernel}")
        self.in_channels = in_channels
        self.kernel = kernel
        self.conv = nn.Conv2d(kernel * in_channels, out_channels, 1)
        self.motion_gate: MotionGate | None = None

    def _gated(self, x: Tensor, earlier: Tensor) -> Tensor:
        if self.motion_gate is None:
            return earlier
        return x + self.motion_gate(x, earlier, 1) * (earlier - x)

    def state_shape(self, batch: int, height: int, width: int) -> tuple[int, ...] | None:
        if self.kernel == 1:
            return None
        return (batch, (self.kernel - 1) * self.in_channels, height // self.scale,
                width // self.scale)

    def forward(self, x: Tensor, ctx: Context) -> Tensor:
        k = self.kernel
        if k == 1:
            return self.conv(x)
        if isinstance(ctx, ClipContext):
            clip = x.view(ctx.batch, ctx.frames, *x.shape[1:])
            earlier = [self._gated(x, delayed(clip, lag, ctx.frames).reshape(x.shape))
                       for lag in range(k - 1, 0, -1)]
            return self.conv(torch.cat([*earlier, x], dim=1))
        key = self._key()
        cache = ctx.start_or_cache(lambda: x.repeat(1, k - 1, 1, 1), ctx.state[key])
        window = torch.cat([cache, x], dim=1)
        ctx.new_state[key] = window[:, self.in_channels:]
        if self.motion_gate is not None:  # the state keeps the ungated inputs
            c = self.in_channels
            window = torch.cat([*(self._gated(x, cache[:, i * c:(i + 1) * c])
                                  for i in range(k - 1)), x], dim=1)
        return self.conv(window)


class CausalSepConv(nn.Module):
    """Causal separable 3-D convolution.

    Spatial conv (``spatial_kernel``², stride ``s``) → LeakyReLU(0.2) → causal temporal conv
    (kernel ``k``) → LeakyReLU(0.2).

    The causal counterpart of the release's ``Separable3DConv`` (kernel (1,3,3) then (3,1,1)),
    whose temporal padding is symmetric. ``(·, C_in, H, W) -> (·, C_out, H/s, W/s)``.

    Args:
        in_scale: down-sampling factor of the input relative to the network input.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 kernel: int = 3, in_scale: int = 1, spatial_kernel: int = 3) -> None:
        super().__init__()
        self.spatial = nn.Conv2d(in_channels, out_channels, spatial_kernel, stride,
                                 spatial_kernel // 2)
        self.temporal = CausalTemporalConv(out_channels, out_channels, kernel,
                                           scale=in_scale * stride)

    def forward(self, x: Tensor, ctx: Context) -> Tensor:
        x = F.leaky_relu(self.spatial(x), 0.2)
        return F.leaky_relu(self.temporal(x, ctx), 0.2)


class CausalResBlock(nn.Module):
    """``x + CausalSepConv(c, c)(x)``. ``(·, C, H, W) -> (·, C, H, W)``."""

    def __init__(self, channels: int, kernel: int = 3, scale: int = 1) -> None:
        super().__init__()
        self.body = CausalSepConv(channels, channels, 1, kernel, scale)

    def forward(self, x: Tensor, ctx: Context) -> Tensor:
        return x + self.body(x, ctx)


class CausalTemporalAttention(StatefulModule):
    """Self-attention along time at every pixel over the last ``history`` frames.

    Paper Eq. 8, made causal and bounded.

    ``z_t = x_t + W_o · MHA(q = LN(x_t), k, v = LN(x_{t−history+1..t}))``, tokens per pixel,
    pre-LayerNorm, no positional encoding and no feed-forward, as in the release's temporal
    attention. Clip mode applies a band mask (:func:`causal_band_mask`); step mode keeps a ring
    of the last ``history − 1`` keys and values and masks slots older than the stream.

    State: keys and values stacked, ``(2, B·h·w, heads, history − 1, dim_head)`` (``h, w`` at
    this layer's scale), oldest first; none for ``history = 1``.
    With a :class:`MotionGate` (``motion_gate``), ``log g`` of the change between the current
    key and an earlier key (all heads) is added to that key's score: a pixel whose content
    changed does not attend its earlier frames.
    Shapes: ``(·, C, h, w) -> (·, C, h, w)``.
    """

    def __init__(self, dim: int, heads: int = 2, dim_head: int = 32, history: int = 6,
                 scale: int = 1) -> None:
        super().__init__(scale)
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.history = history
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.motion_gate: MotionGate | None = None

    @staticmethod
    def _log_gate(gate: MotionGate, current: Tensor, earlier: Tensor,
                  dtype: torch.dtype) -> Tensor:
        """``log g`` (floored near −30) of keys ``(N, heads, L, d)`` against keys: ``(N, L)``."""
        n, _, length, _ = current.shape
        a = current.transpose(1, 2).reshape(n, length, -1)   # (N, L, heads·d)
        b = earlier.transpose(1, 2).reshape(n, length, -1)
        weight = gate(a, b, -1).squeeze(-1)                   # (N, L)
        return weight.float().clamp(min=1e-13).log().to(dtype)

    def state_shape(self, batch: int, height: int, width: int) -> tuple[int, ...] | None:
        if self.history == 1:
            return None
        tokens = batch * (height // self.scale) * (width // self.scale)
        return (2, tokens, self.heads, self.history - 1, self.dim_head)

    def _qkv(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(N, T, C) -> 3 × (N, heads, T, dim_head)``."""
        n, t, _ = tokens.shape
        qkv = self.to_qkv(self.norm(tokens)).view(n, t, 3, self.heads, self.dim_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def _out(self, attended: Tensor, tokens: Tensor) -> Tensor:
        n, _, t, _ = attended.shape
        merged = attended.transpose(1, 2).reshape(n, t, self.heads * self.dim_head)
        return tokens + self.to_out(merged)

    def forward(self, x: Tensor, ctx: Context) -> Tensor:
        _, c, h, w = x.shape
        if isinstance(ctx, ClipContext):
            b, t = ctx.batch, ctx.frames
            tokens = x.view(b, t, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)
            q, k, v = self._qkv(tokens)
            bias = mask_to_bias(causal_band_mask(t, self.history, x.device), q.dtype)
            gate = self.motion_gate
            if gate is not None and t > 1:
                # log g of (query frame i, key frame i − lag) on the lag-th lower diagonal
                gated = bias.expand(k.shape[0], 1, t, t)
                for lag in range(1, min(self.history, t)):
                    log_g = self._log_gate(gate, k[:, :, lag:], k[:, :, :-lag], q.dtype)
                    gated = gated + torch.diag_embed(log_g, offset=-lag).unsqueeze(1)
                bias = gated
            out = self._out(attention(q, k, v, bias), tokens)
            return out.view(b, h, w, t, c).permute(0, 3, 4, 1, 2).reshape(b * t, c, h, w)
        b = x.shape[0]
        tokens = x.permute(0, 2, 3, 1).reshape(b * h * w, 1, c)
        q, k, v = self._qkv(tokens)
        if self.history > 1:
            key = self._key()
            ring = ctx.state[key]
            keys = torch.cat([ring[0], k], dim=2)
            values = torch.cat([ring[1], v], dim=2)
            ctx.new_state[key] = torch.stack([keys[:, :, 1:], values[:, :, 1:]])
            # Slot j holds the frame (history - 1 - j) steps back; valid if the stream is that old.
            ago = torch.arange(self.history - 1, -1, -1, device=x.device).view(1, 1, 1, -1)
            bias = mask_to_bias(ago <= ctx.count.view(1, 1, 1, 1), q.dtype)
            if self.motion_gate is not None:
                log_g = self._log_gate(self.motion_gate, k.expand(keys.shape), keys, q.dtype)
                bias = bias + log_g[:, None, None, :]
            attended = attention(q, keys, values, bias)
        else:
            attended = attention(q, k, v)
        out = self._out(attended, tokens)
        return out.view(b, h, w, c).permute(0, 3, 1, 2)
