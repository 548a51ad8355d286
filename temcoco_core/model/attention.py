# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Attention blocks of TemCoCo's visual-semantic interaction module (paper Sec. 3.1, Eq. 3-7).

* :class:`WindowCrossAttention3D` — Swin-style attention inside non-overlapping 3-D windows
  ``(t, h, w) = (2, 8, 8)`` with a learned relative position bias; queries from one stream,
  keys/values from the other:  ``Attn(Q_x, K_y, V_y) = softmax(Q_x K_yᵀ / √d + B) V_y``.
* :class:`CrossModalBlock` — pre-norm transformer block around it (``x + Attn``, ``x + MLP``).
* :class:`CombineAttention` — the two-way exchange: ``x ← Block(x, y)`` then ``y ← Block(y, x)``
  (``y`` attends to the *updated* ``x``), as in the release.
* :class:`TemporalAttention` — self-attention along time at every pixel (tokens ``(B·H·W, T, C)``),
  pre-LayerNorm with a residual, no positional encoding and no feed-forward (paper Eq. 7).

All attention products are computed on 4-D ``(batch, heads, tokens, dim)`` tensors with
matmul + softmax (:func:`attention`) so Torch-TensorRT and ONNX convert them.
"""

from __future__ import annotations

import torch
from torch import nn, Tensor
import torch.nn.functional as F

__all__ = [
    "WindowCrossAttention3D",
    "CrossModalBlock",
    "CombineAttention",
    "TemporalAttention",
    "window_partition",
    "window_reverse",
]


def window_partition(x: Tensor, window: tuple[int, int, int]) -> Tensor:
    """``(B, D, H, W, C) -> (B·nW, wd·wh·ww, C)``; D, H, W must be multiples of the window."""
    b, d, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, d // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def window_reverse(windows: Tensor, window: tuple[int, int, int], b: int, d: int, h: int,
                   w: int) -> Tensor:
    """Inverse of :func:`window_partition`: ``(B·nW, wd·wh·ww, C) -> (B, D, H, W, C)``."""
    wd, wh, ww = window
    x = windows.view(b, d // wd, h // wh, w // ww, wd, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def merge_heads(x: Tensor) -> Tensor:
    """``(N, heads, L, d) -> (N, L, heads·d)``."""
    n, heads, length, dim = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * dim)


def attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None = None) -> Tensor:
    """``softmax(q kᵀ / √d + bias) v`` on 4-D ``(N, heads, L, d)`` tensors.

    Written with matmul + softmax rather than ``scaled_dot_product_attention`` because the
    latter's decomposition breaks the ONNX exporter's stride bookkeeping; TensorRT fuses this
    pattern into its attention kernel all the same. ``bias`` broadcasts to ``(N, heads, L, L)``
    (use ``-inf`` entries to mask).
    """
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(dim=-1) @ v


def relative_position_index(window: tuple[int, int, int]) -> Tensor:
    """Index into the bias table for every (query, key) pair of a 3-D window: ``(N, N)`` long."""
    wd, wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww),
                                        indexing="ij"))
    flat = coords.flatten(1)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += wd - 1
    rel[:, :, 1] += wh - 1
    rel[:, :, 2] += ww - 1
    rel[:, :, 0] *= (2 * wh - 1) * (2 * ww - 1)
    rel[:, :, 1] *= 2 * ww - 1
    return rel.sum(-1)


class WindowCrossAttention3D(nn.Module):
    """Multi-head attention within a 3-D window, queries from ``x`` and keys/values from ``y``.

    Args:
        dim: channels C.
        window: window size (wd, wh, ww); N = wd·wh·ww tokens.
        num_heads: heads; head dim C / heads, scale head_dim^-1/2.

    Shapes: ``x, y: (B·nW, N, C) -> (B·nW, N, C)``.
    """

    def __init__(self, dim: int, window: tuple[int, int, int], num_heads: int) -> None:
        super().__init__()
        self.dim = dim
        self.window = window
        self.num_heads = num_heads
        wd, wh, ww = window
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> Tensor:
        """``(heads, N, N)`` relative position bias of the window."""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        bw, n, c = x.shape
        heads = self.num_heads
        q = self.q(x).view(bw, n, heads, c // heads).transpose(1, 2)
        k, v = self.kv(y).view(bw, n, 2, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.position_bias()[:, :n, :n].unsqueeze(0).to(q.dtype)
        out = attention(q, k, v, bias)
        return self.proj(merge_heads(out))


class Mlp(nn.Module):
    """``fc1 → GELU → fc2`` on the last dimension."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CrossModalBlock(nn.Module):
    """Pre-norm window cross-attention block (the release's ``SwinTransformerBlock``, no shift).

    ``x ← x + WinAttn(LN₁(x), LN₁ʸ(y))``, ``x ← x + MLP(LN₂(x))``. Features are zero-padded
    *after* the norms up to multiples of the window (padding tokens take part in attention, as
    in the release), then cropped back.

    Shapes: ``x, y: (B, T, H, W, C) -> (B, T, H, W, C)``.
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int, int],
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim)
        self.norm1y = nn.LayerNorm(dim)
        self.attn = WindowCrossAttention3D(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        b, t, h, w, c = x.shape
        wd, wh, ww = self.window
        pad_t, pad_h, pad_w = (-t) % wd, (-h) % wh, (-w) % ww
        padding = (0, 0, 0, pad_w, 0, pad_h, 0, pad_t)
        xn = F.pad(self.norm1(x), padding)
        yn = F.pad(self.norm1y(y), padding)
        tp, hp, wp = t + pad_t, h + pad_h, w + pad_w
        attended = self.attn(window_partition(xn, self.window), window_partition(yn, self.window))
        attended = window_reverse(attended, self.window, b, tp, hp, wp)[:, :t, :h, :w, :]
        x = x + attended
        return x + self.mlp(self.norm2(x))


class CombineAttention(nn.Module):
    """Two-way cross-modal exchange (paper Eq. 4-6).

    ``x ← Block_x(x, y)``; ``y ← Block_y(y, x_updated)``.

    Shapes: ``x, y: (B, C, T, H, W) -> ((B, C, T, H, W), (B, C, T, H, W))``.
    """

    def __init__(self, dim: int, num_heads: int = 4,
                 window: tuple[int, int, int] = (2, 8, 8), mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.blocks_CAx = CrossModalBlock(dim, num_heads, window, mlp_ratio)
        self.blocks_CAy = CrossModalBlock(dim, num_heads, window, mlp_ratio)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.permute(0, 2, 3, 4, 1)
        y = y.permute(0, 2, 3, 4, 1)
        x = self.blocks_CAx(x, y)
        y = self.blocks_CAy(y, x)
        return x.permute(0, 4, 1, 2, 3), y.permute(0, 4, 1, 2, 3)


class TemporalAttention(nn.Module):
    """Self-attention across frames at every pixel (paper Eq. 7).

    ``z = x + W_o · MHA(LN(x))`` with tokens ``(B·H·W, T, C)``, ``heads × dim_head`` inner width,
    no bias on q/k/v. ``attn_mask`` (optional, ``(T, T)`` bool, True = may attend) restricts
    which frames each frame sees (e.g. causal).

    Shapes: ``(B, C, T, H, W) -> (B, C, T, H, W)``.
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim), nn.Dropout(0.0)])

    def split_heads(self, x: Tensor) -> Tensor:
        """``(N, T, heads·d) -> (N, heads, T, d)``."""
        n, t, _ = x.shape
        return x.view(n, t, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        b, c, t, h, w = x.shape
        tokens = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
        normed = self.norm(tokens)
        q = self.split_heads(self.to_q(normed))
        k = self.split_heads(self.to_k(normed))
        v = self.split_heads(self.to_v(normed))
        bias = None
        if attn_mask is not None:
            bias = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device)
            bias = bias.masked_fill(~attn_mask, float("-inf"))
        out = attention(q, k, v, bias)
        out = merge_heads(out)
        out = self.to_out[1](self.to_out[0](out)) + tokens
        return out.view(b, h, w, t, c).permute(0, 4, 3, 1, 2)
