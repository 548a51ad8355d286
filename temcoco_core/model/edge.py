# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The ``edge`` preset: a causal, narrow TemCoCo for streaming on edge devices.

Same ideas as the released network (:mod:`.network`), same call
``model(visible, infrared)`` on ``(B, T, 3, H, W)`` in [0, 1] → ``(B, T, 3, H, W)``, but
**causal** — frame ``t`` depends only on frames ``≤ t`` — so it can run one frame at a time with
a fixed-size state (:meth:`EdgeTemCoCo.init_state`, :meth:`EdgeTemCoCo.step`) and give the
same result as the clip forward.

Pipeline (paper Fig. 2; ``c = (c1, c2, c3)`` channels at full, ½, ¼ scale):

1. Encoders ``E_vis``, ``E_ir`` (Eq. 1-2): causal separable 3-D convolutions (3×3 spatial, then
   a temporal conv over the last ``temporal_kernel`` frames) at ½ and ¼ scale after a 3×3 conv
   at full scale; features at 1, ½, ¼ scale.
2. Visual-semantic interaction at ¼ scale (Eq. 4-8): per modality a semantic branch SeB (down to
   1/16 scale and back, 1/16 code distilled to DINOv2 ViT-L/14) and a visual branch ViB (code
   distilled to VGG19 relu3_1); cross-modality attention CM-Attn (Eq. 6) on each, semantic-visual
   attention SV-Attn (Eq. 7), both in per-frame ``window × window`` windows (the release's
   windows span 2 frames, which would look one frame ahead), then causal temporal attention
   T-Attn (Eq. 8) over the last ``history`` frames.
3. Two temporal cooperative modules, at ¼ and ½ scale (Eq. 9-12): cross-modality layer,
   inter-frame layer and offset layer, **DCNv2** (modulated) alignment of ``φ_f^{t−1}`` and
   ``φ_f^{t−2}`` onto ``φ_f^t``, frame fusion layer. Offsets are bounded by
   ``max_offset · tanh`` with zero-initialised offset heads (BasicVSR++ style); the ½-scale
   module learns residual offsets on top of the ¼-scale ones, which are bilinearly upsampled ×2
   **and multiplied by 2** (they are in pixels; the release upsamples without rescaling).
4. Reconstruction at full scale (Eq. 3): the ½-scale result, upsampled, is fused with both
   encoders' full-scale features and decoded to RGB by a 3×3 convolution (not clamped).

Differences from the release (all for causality or cost): no look-ahead anywhere (temporal convs
left-padded, attention windows of one frame, temporal attention masked to the past), narrower
widths, alignment at ¼ and ½ scale instead of ½ and full (deformable sampling at full
resolution is the most expensive part on CPUs and small GPUs; BasicVSR++ aligns at ¼ too) on
``align_channels``-wide features, DCNv2 instead of DCNv1, one joint inter-frame/offset layer for
both neighbours, the 1024-channel semantic projection only as a training-time distillation head
(the release routes its features through it), and at the start of a stream the first frame
stands in for the missing earlier frames (the release lets frames 0 and 1 use themselves as
neighbours).

Cost (``EdgeConfig()`` defaults): 0.42 M parameters (the release: 19.2 M) and 18.9 GFLOPs per
frame at 640×480 by ``torch.utils.flop_counter`` (the release: 909), per streaming step.

``EdgeConfig(framewise=True)`` (preset ``edge-framewise``) is the same architecture and
parameter set run on every frame on its own (``T = 1``), for comparisons.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
import math

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from .attention import CrossModalBlock
from .causal import (
    assign_motion_gate,
    assign_state_keys,
    CausalResBlock,
    CausalSepConv,
    CausalTemporalAttention,
    ClipContext,
    collect_state_shapes,
    Context,
    COUNT_KEY,
    FrameHistory,
    MotionGate,
    StepContext,
)
from .deform import DeformConv2d
from .network import check_frame_pair, pad_to_multiple

__all__ = [
    "EDGE_PRESETS",
    "EdgeConfig",
    "EdgeState",
    "EdgeStateError",
    "EdgeTemCoCo",
    "INPUT_SKIP_INITS",
    "build_edge",
]

#: Initial values of :attr:`EdgeTemCoCo.input_skip` (:attr:`EdgeConfig.input_skip`).
INPUT_SKIP_INITS: tuple[str, ...] = ("average", "visible")

#: Streaming state of :class:`EdgeTemCoCo`: layer path → tensor (fixed shapes for a given
#: batch and frame size), plus ``"count"`` (int64 ``(1,)``).
EdgeState = dict[str, Tensor]


class EdgeStateError(ValueError):
    """A streaming state does not match the network or the frame size it is used with."""


@dataclass(frozen=True)
class EdgeConfig:
    """Hyper-parameters of :class:`EdgeTemCoCo`.

    Attributes:
        channels: feature channels at full, ½ and ¼ scale (the release: 32, 64, 128).
        encoder_blocks: causal residual blocks at ¼ scale in each encoder.
        semantic_channels: channels of the semantic branch at 1/8 and 1/16 scale.
        attention_dim: channels of the semantic/visual branches and their attention blocks.
        num_heads: heads of the window cross-attention (CM-Attn, SV-Attn).
        window: side of the per-frame attention windows, at ¼ scale.
        mlp_ratio: hidden width of the attention blocks' MLP relative to ``attention_dim``.
        temporal_heads, temporal_dim_head: temporal attention width (heads × dim per head).
        history: frames the temporal attention sees, the current one included.
        temporal_kernel: frames each causal temporal convolution sees (current included).
        align_channels: width of the aligned features in the ¼- and ½-scale temporal cooperative
            modules (what the deformable convolutions sample; their main cost on CPUs).
        deformable_groups: offset groups of the deformable convolutions (both scales); also
            their convolution groups (the release: 8 channels per convolution group).
        max_offset: bound of the learned offsets (and of the ½-scale residuals), pixels at
            that scale: ``max_offset · tanh(·)``.
        distill: build the training-only distillation heads (:meth:`EdgeTemCoCo.forward_train`).
        semantic_distill_dim, visual_distill_dim: their output channels (DINOv2 ViT-L/14: 1024,
            VGG19 relu3_1: 256).
        framewise: process every frame on its own (no temporal context): the 2-D variant.
        input_skip: initial value of the 1×1 input skip the network refines (only matters for
            parameters that are not loaded from a checkpoint): ``"average"`` (the mean of
            visible RGB and infrared grey, so an untrained network is average fusion) or
            ``"visible"`` (the visible frame: the infrared reaches the output only through the
            network, so its noise and stripes are not in the base the network must cancel).
        motion_gate: ``(low, high)`` of the :class:`~.causal.MotionGate` on every temporal
            convolution and the temporal attention (relative feature change between the current
            and an earlier frame at a pixel: full temporal context below ``low``, none above
            ``high``), so a moving object's earlier positions do not ghost into the current
            frame; ``None``: unaligned temporal context everywhere, as the release. It has no
            parameters; the default ``(0.1, 0.25)`` is what the shipped weights are measured
            with (model card: it recovers the mutual information that streaming lost to ghosts).
    """

    channels: tuple[int, int, int] = (16, 32, 48)
    encoder_blocks: int = 1
    semantic_channels: int = 48
    attention_dim: int = 32
    num_heads: int = 2
    window: int = 8
    mlp_ratio: float = 2.0
    temporal_heads: int = 2
    temporal_dim_head: int = 24
    history: int = 6
    temporal_kernel: int = 3
    align_channels: tuple[int, int] = (24, 16)
    deformable_groups: int = 2
    max_offset: float = 10.0
    distill: bool = False
    semantic_distill_dim: int = 1024
    visual_distill_dim: int = 256
    framewise: bool = False
    input_skip: str = "average"
    motion_gate: tuple[float, float] | None = (0.1, 0.25)

    def __post_init__(self) -> None:
        if self.motion_gate is not None:
            if len(self.motion_gate) != 2:
                raise ValueError(f"EdgeConfig.motion_gate must be (low, high) or None, got "
                                 f"{self.motion_gate}")
            MotionGate(*self.motion_gate)  # validates 0 <= low < high
        if self.input_skip not in INPUT_SKIP_INITS:
            raise ValueError(f"EdgeConfig.input_skip must be one of {INPUT_SKIP_INITS}, got "
                             f"{self.input_skip!r}")
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"EdgeConfig.channels must be three positive ints, "
                             f"got {self.channels}")
        for name in ("semantic_channels", "attention_dim", "num_heads", "window", "history",
                     "temporal_kernel", "temporal_heads", "temporal_dim_head",
                     "deformable_groups", "semantic_distill_dim", "visual_distill_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"EdgeConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.attention_dim % self.num_heads:
            raise ValueError(f"EdgeConfig.attention_dim={self.attention_dim} is not divisible by "
                             f"num_heads={self.num_heads}")
        if len(self.align_channels) != 2 or min(self.align_channels) < 1:
            raise ValueError(f"EdgeConfig.align_channels must be two positive ints, "
                             f"got {self.align_channels}")
        for c in self.align_channels:
            if c % self.deformable_groups:
                raise ValueError(f"EdgeConfig.deformable_groups={self.deformable_groups} must "
                                 f"divide align_channels {self.align_channels}")
        if self.encoder_blocks < 0:
            raise ValueError(f"EdgeConfig.encoder_blocks must be >= 0, got "
                             f"{self.encoder_blocks}")
        if self.max_offset <= 0:
            raise ValueError(f"EdgeConfig.max_offset must be > 0, got {self.max_offset}")

    @property
    def size_multiple(self) -> int:
        """The padding multiple of the input size.

        H and W are reflect-padded to a multiple of this (1/16 semantic scale and whole attention
        windows at ¼ scale) and cropped back.
        """
        return math.lcm(16, 4 * self.window)

    @property
    def causal(self) -> bool:
        """Always True: frame t never depends on later frames."""
        return True


def _conv(in_channels: int, out_channels: int, kernel: int = 3) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2)


class EdgeEncoder(nn.Module):
    """Per-modality encoder (Eq. 1-2).

    A 3×3 conv at full scale (frame-local: a full-scale temporal cache would dominate the
    state), causal separable convs down to ½ and ¼ (stride 2), then ``blocks`` causal residual
    blocks at ¼ scale. ``(·, 3, H, W) -> [(·, c1, H, W), (·, c2, H/2, W/2), (·, c3, H/4, W/4)]``.
    """

    def __init__(self, channels: tuple[int, int, int], kernel: int, blocks: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.stem = _conv(3, c1)
        self.down1 = CausalSepConv(c1, c2, 2, kernel, in_scale=1)
        self.down2 = CausalSepConv(c2, c3, 2, kernel, in_scale=2)
        self.res = nn.ModuleList(CausalResBlock(c3, kernel, scale=4) for _ in range(blocks))

    def forward(self, x: Tensor, ctx: Context) -> list[Tensor]:
        f1 = _lrelu(self.stem(x))
        f2 = self.down1(f1, ctx)
        f4 = self.down2(f2, ctx)
        for block in self.res:
            f4 = block(f4, ctx)
        return [f1, f2, f4]


class SemanticBranch(nn.Module):
    """SeB (Eq. 4).

    ¼ → 1/8 → 1/16 scale (the semantic code, distilled to DINOv2 tokens) → bilinear ×4 →
    concatenated with the input → 1×1 conv to ``attention_dim`` channels.

    ``(·, c3, h, w) -> ((·, attention_dim, h, w), code (·, semantic_channels, h/4, w/4))``.
    """

    def __init__(self, in_channels: int, semantic_channels: int, out_channels: int,
                 kernel: int) -> None:
        super().__init__()
        self.down1 = CausalSepConv(in_channels, semantic_channels, 2, kernel, in_scale=4)
        self.down2 = CausalSepConv(semantic_channels, semantic_channels, 2, kernel, in_scale=8)
        self.fuse = _conv(in_channels + semantic_channels, out_channels, 1)

    def forward(self, x: Tensor, ctx: Context) -> tuple[Tensor, Tensor]:
        code = self.down2(self.down1(x, ctx), ctx)
        up = F.interpolate(code, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return _lrelu(self.fuse(torch.cat([x, up], dim=1))), code


class CrossExchange(nn.Module):
    """Two-way window cross-attention (Eq. 6-7), per frame.

    ``x ← Block_x(x, y)`` then ``y ← Block_y(y, x)`` with the updated ``x`` (as
    the release's ``CombineAttn``).

    ``x, y: (N, C, h, w) -> (N, C, h, w) × 2``; ``h, w`` multiples of ``window``.
    """

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float) -> None:
        super().__init__()
        win = (1, window, window)
        self.block_x = CrossModalBlock(dim, num_heads, win, mlp_ratio)
        self.block_y = CrossModalBlock(dim, num_heads, win, mlp_ratio)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        xs = x.permute(0, 2, 3, 1).unsqueeze(1)  # (N, 1, h, w, C)
        ys = y.permute(0, 2, 3, 1).unsqueeze(1)
        xs = self.block_x(xs, ys)
        ys = self.block_y(ys, xs)
        return xs.squeeze(1).permute(0, 3, 1, 2), ys.squeeze(1).permute(0, 3, 1, 2)


class EdgeVSIM(nn.Module):
    """Visual-semantic interaction module at ¼ scale (Eq. 4-8).

    ``(vis, ir)`` each ``(·, c3, h, w)`` → fused ``(·, c3, h, w)`` and the branch codes
    ``{"semantic": {modality: code}, "visual": {modality: code}}``.
    """

    def __init__(self, cfg: EdgeConfig) -> None:
        super().__init__()
        c3 = cfg.channels[2]
        a = cfg.attention_dim
        k = cfg.temporal_kernel
        self.semantic_vis = SemanticBranch(c3, cfg.semantic_channels, a, k)
        self.semantic_ir = SemanticBranch(c3, cfg.semantic_channels, a, k)
        self.visual_vis = CausalSepConv(c3, a, 1, k, in_scale=4)
        self.visual_ir = CausalSepConv(c3, a, 1, k, in_scale=4)
        self.cm_semantic = CrossExchange(a, cfg.num_heads, cfg.window, cfg.mlp_ratio)
        self.cm_visual = CrossExchange(a, cfg.num_heads, cfg.window, cfg.mlp_ratio)
        self.merge_semantic = _conv(2 * a, a, 1)
        self.merge_visual = _conv(2 * a, a, 1)
        self.sv_attention = CrossExchange(a, cfg.num_heads, cfg.window, cfg.mlp_ratio)
        self.combine = CausalSepConv(2 * a, c3, 1, k, in_scale=4)
        self.temporal = CausalTemporalAttention(c3, cfg.temporal_heads, cfg.temporal_dim_head,
                                                cfg.history, scale=4)

    def forward(self, vis: Tensor, ir: Tensor, ctx: Context
                ) -> tuple[Tensor, dict[str, dict[str, Tensor]]]:
        s_vis, code_vis = self.semantic_vis(vis, ctx)
        s_ir, code_ir = self.semantic_ir(ir, ctx)
        v_vis = self.visual_vis(vis, ctx)
        v_ir = self.visual_ir(ir, ctx)
        codes = {"semantic": {"visible": code_vis, "infrared": code_ir},
                 "visual": {"visible": v_vis, "infrared": v_ir}}
        s_vis, s_ir = self.cm_semantic(s_vis, s_ir)  # CM-Attn, Eq. 6 (x = s)
        v_vis, v_ir = self.cm_visual(v_vis, v_ir)  # CM-Attn, Eq. 6 (x = v)
        sem = _lrelu(self.merge_semantic(torch.cat([s_vis, s_ir], dim=1)))
        vis_feat = _lrelu(self.merge_visual(torch.cat([v_vis, v_ir], dim=1)))
        vis_feat, sem = self.sv_attention(vis_feat, sem)  # SV-Attn, Eq. 7
        fused = self.combine(torch.cat([sem, vis_feat], dim=1), ctx)
        return self.temporal(fused, ctx), codes  # T-Attn, Eq. 8


class EdgeTCM(nn.Module):
    """Temporal cooperative module at one scale (Eq. 9-12), causal, DCNv2.

    For frame ``t`` with fused features ``x`` from the previous stage and encoder features at
    this scale::

        φ_t     = CML([up(x)_t, φ_vis,t, φ_ir,t])                        (Eq. 9)
        h_t     = IFL([φ_t, φ_{t−1}, φ_{t−2}])                           inter-frame layer
        o_k     = max_offset·tanh(O_k(h_t)) [+ 2·up₂(o_k^coarse)],  m_k = σ(M_k(h_t))
        a_k     = DCNv2_k(φ_{t−k}, o_k, m_k),  k = 1, 2                  (Eq. 10-11)
        out_t   = up(x)_t + FFL([φ_t, a_1, a_2])                         (Eq. 12)

    ``up(x)`` is a 1×1 conv then nearest ×2 when ``upsample`` (as the release), else ``x`` (a
    1×1 conv if the widths differ); CML a 1×1 conv, IFL a 1×1 then a
    3×3 conv, the offset layer (``O_k``, ``M_k``) one zero-initialised 1×1 conv, each DCN a 3×3
    deformable conv with one convolution group per deformable group, FFL a 1×1 conv then a causal
    temporal conv; LeakyReLU(0.2) after each but the offset layer.

    ``forward(x, vis, ir, ctx, coarse_offsets=None)``: ``x`` ``(·, C_in, h, w)`` (``h, w``
    halved when ``upsample``), ``vis``, ``ir`` ``(·, C, H, W)``; returns ``(·, C, H, W)`` and
    ``(o_1, o_2)``, each ``(·, 2·G·9, H, W)`` (torchvision offset layout). ``coarse_offsets``
    are the previous scale's ``(o_1, o_2)`` at ``(H/2, W/2)``.

    Args:
        scale: down-sampling factor of this module's resolution (sizes its frame history).
        upsample: ``x`` comes from the next coarser scale: 1×1 conv then nearest ×2 (as the
            release); otherwise ``x`` is at this scale already (a 1×1 conv if ``C_in ≠ C``).
    """

    def __init__(self, in_channels: int, channels: int, align_channels: int,
                 deformable_groups: int, max_offset: float, kernel: int, scale: int,
                 upsample: bool) -> None:
        super().__init__()
        c, a, g = channels, align_channels, deformable_groups
        self.max_offset = max_offset
        self.upsample = upsample
        self.offset_channels = 2 * g * 9
        self.mask_channels = g * 9
        self.reduce = (_conv(in_channels, c, 1) if upsample or in_channels != c
                       else nn.Identity())
        self.cross_modality = _conv(3 * c, a, 1)
        self.history = FrameHistory(a, 2, scale)
        self.inter_frame = _conv(3 * a, a, 1)
        self.inter_frame_spatial = _conv(a, a, 3)
        self.offset_head = _conv(a, 2 * (self.offset_channels + self.mask_channels), 1)
        self.dcn_1 = DeformConv2d(a, a, 3, padding=1, groups=g, deformable_groups=g, bias=True)
        self.dcn_2 = DeformConv2d(a, a, 3, padding=1, groups=g, deformable_groups=g, bias=True)
        self.frame_fusion = CausalSepConv(3 * a, c, 1, kernel, in_scale=scale, spatial_kernel=1)
        nn.init.zeros_(self.offset_head.weight)
        nn.init.zeros_(self.offset_head.bias)

    def forward(self, x: Tensor, vis: Tensor, ir: Tensor, ctx: Context,
                coarse_offsets: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        up = self.reduce(x)
        if self.upsample:
            up = F.interpolate(up, scale_factor=2.0, mode="nearest")
        phi = _lrelu(self.cross_modality(torch.cat([up, vis, ir], dim=1)))
        prev1, prev2 = self.history(phi, ctx)
        h = _lrelu(self.inter_frame(torch.cat([phi, prev1, prev2], dim=1)))
        h = _lrelu(self.inter_frame_spatial(h))
        o1, o2, m1, m2 = torch.split(
            self.offset_head(h),
            [self.offset_channels, self.offset_channels, self.mask_channels,
             self.mask_channels], dim=1)
        o1 = self.max_offset * torch.tanh(o1)
        o2 = self.max_offset * torch.tanh(o2)
        if coarse_offsets is not None:
            o1 = o1 + 2.0 * F.interpolate(coarse_offsets[0], scale_factor=2.0, mode="bilinear",
                                          align_corners=False)
            o2 = o2 + 2.0 * F.interpolate(coarse_offsets[1], scale_factor=2.0, mode="bilinear",
                                          align_corners=False)
        a1 = self.dcn_1(prev1, o1, torch.sigmoid(m1))
        a2 = self.dcn_2(prev2, o2, torch.sigmoid(m2))
        return up + self.frame_fusion(torch.cat([phi, a1, a2], dim=1), ctx), (o1, o2)


class EdgeReconstruction(nn.Module):
    """Full-scale fusion and decoding, the reconstruction module ``V_f = RM(φ_f^h)``.

    Eq. 3::

        u = up₂(W₁ x),  φ = LReLU(W₂ [u, φ_vis^h, φ_ir^h]),  r = u + LReLU(W₃ ∗ φ),  V_f = W₄ ∗ r

    with 1×1 convs ``W₁, W₂`` and 3×3 convs ``W₃, W₄``; frame-local, no activation at the end.
    ``x`` ``(·, C_in, H/2, W/2)``, ``vis, ir`` ``(·, C, H, W)`` → ``(·, 3, H, W)``.
    """

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.reduce = _conv(in_channels, channels, 1)
        self.cross_modality = _conv(3 * channels, channels, 1)
        self.refine = _conv(channels, channels, 3)
        self.to_rgb = _conv(channels, 3, 3)

    def forward(self, x: Tensor, vis: Tensor, ir: Tensor) -> Tensor:
        up = F.interpolate(self.reduce(x), scale_factor=2.0, mode="nearest")
        phi = _lrelu(self.cross_modality(torch.cat([up, vis, ir], dim=1)))
        return self.to_rgb(up + _lrelu(self.refine(phi)))


class EdgeTemCoCo(nn.Module):
    """Causal edge TemCoCo (see the module docstring).

    Clip API: ``model(visible, infrared)`` with both ``(B, T, 3, H, W)`` float in [0, 1] (infrared
    grey repeated to 3 channels) → fused ``(B, T, 3, H, W)``, RGB, not clamped. Any ``H, W``:
    reflect-padded to a multiple of :attr:`EdgeConfig.size_multiple` and cropped back.

    Step API (streaming): ``state = model.init_state(B, H, W)``, then for each frame
    ``fused_t, state = model.step(visible_t, infrared_t, state)`` with ``(B, 3, H, W)`` tensors.
    The state is a dict of fixed-shape tensors (layer caches and a frame counter), so the cost of
    a step does not depend on how long the stream has run, and ``step`` can be exported or
    compiled with the state as inputs and outputs. ``T`` successive steps equal the clip forward
    on those ``T`` frames (up to float rounding). A new ``init_state`` is a reset.
    """

    def __init__(self, config: EdgeConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or EdgeConfig()
        c1, c2, c3 = cfg.channels
        k = cfg.temporal_kernel
        self.enc_vis = EdgeEncoder(cfg.channels, k, cfg.encoder_blocks)
        self.enc_ir = EdgeEncoder(cfg.channels, k, cfg.encoder_blocks)
        self.vsim = EdgeVSIM(cfg)
        a4, a2 = cfg.align_channels
        g = cfg.deformable_groups
        self.tcm_quarter = EdgeTCM(c3, c3, a4, g, cfg.max_offset, k, scale=4, upsample=False)
        self.tcm_half = EdgeTCM(c3, c2, a2, g, cfg.max_offset, k, scale=2, upsample=True)
        self.reconstruction = EdgeReconstruction(c2, c1)
        # Input skip: a 1x1 mix of the two input frames that the network refines. Initialised to
        # the average of visible RGB and infrared grey (or the visible alone, config.input_skip)
        # with a zero-initialised last layer, so an untrained network already outputs that mix
        # and training learns the correction (far fewer steps on a CPU than learning to
        # reproduce the inputs from scratch).
        self.input_skip = nn.Conv2d(6, 3, 1)
        infrared_share = 0.5 if cfg.input_skip == "average" else 0.0
        with torch.no_grad():
            self.input_skip.weight.zero_()
            for ch in range(3):
                self.input_skip.weight[ch, ch] = 1.0 - infrared_share
                self.input_skip.weight[ch, 3 + ch] = infrared_share
            self.input_skip.bias.zero_()
            nn.init.zeros_(self.reconstruction.to_rgb.weight)
            nn.init.zeros_(self.reconstruction.to_rgb.bias)
        if cfg.distill:
            self.semantic_head = nn.ModuleDict({
                m: _conv(cfg.semantic_channels, cfg.semantic_distill_dim, 1)
                for m in ("visible", "infrared")})
            self.visual_head = nn.ModuleDict({
                m: _conv(cfg.attention_dim, cfg.visual_distill_dim, 1)
                for m in ("visible", "infrared")})
        assign_state_keys(self)
        assign_motion_gate(self, None if cfg.motion_gate is None else MotionGate(*cfg.motion_gate))

    # ----------------------------------------------------------------------------- helpers
    @property
    def size_multiple(self) -> int:
        return self.config.size_multiple

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size frames of ``height × width`` are padded to inside the network."""
        m = self.size_multiple
        return -(-height // m) * m, -(-width // m) * m

    @staticmethod
    def _check(visible: Tensor, infrared: Tensor, dims: int) -> None:
        check_frame_pair(visible, infrared, dims)

    def _body(self, vis: Tensor, ir: Tensor, ctx: Context
              ) -> tuple[Tensor, dict[str, dict[str, Tensor]]]:
        """Network on padded frames ``(N, 3, H, W)`` → ``(N, 3, H, W)`` and the branch codes."""
        v1, v2, v4 = self.enc_vis(vis, ctx)
        i1, i2, i4 = self.enc_ir(ir, ctx)
        fused, codes = self.vsim(v4, i4, ctx)
        quarter, offsets = self.tcm_quarter(fused, v4, i4, ctx)
        half, _ = self.tcm_half(quarter, v2, i2, ctx, coarse_offsets=offsets)
        base = self.input_skip(torch.cat([vis, ir], dim=1))
        return base + self.reconstruction(half, v1, i1), codes

    def _clip(self, visible: Tensor, infrared: Tensor
              ) -> tuple[Tensor, dict[str, dict[str, Tensor]], tuple[int, int, int, int]]:
        self._check(visible, infrared, 5)
        b, t, _, h, w = visible.shape
        vis, _, _ = pad_to_multiple(visible, self.size_multiple)
        ir, _, _ = pad_to_multiple(infrared, self.size_multiple)
        hp, wp = vis.shape[-2:]
        ctx = ClipContext(b * t, 1) if self.config.framewise else ClipContext(b, t)
        out, codes = self._body(vis.reshape(b * t, 3, hp, wp), ir.reshape(b * t, 3, hp, wp),
                                ctx)
        fused = out.view(b, t, 3, hp, wp)[..., :h, :w]
        return fused, codes, (b, t, hp, wp)

    # --------------------------------------------------------------------------- clip API
    def forward(self, visible: Tensor, infrared: Tensor) -> Tensor:
        """``(B, T, 3, H, W) × 2 -> (B, T, 3, H, W)`` fused, RGB, not clamped."""
        return self._clip(visible, infrared)[0]

    def forward_train(self, visible: Tensor, infrared: Tensor
                      ) -> tuple[Tensor, dict[str, dict[str, Tensor]]]:
        """Fused clip plus the distillation features (needs ``EdgeConfig(distill=True)``).

        Returns ``(fused, feats)``: ``feats["semantic"][m]`` ``(B·T, 1024, Hp/16, Wp/16)`` (to
        DINOv2 ViT-L/14 patch tokens) and ``feats["visual"][m]`` ``(B, 256, T, Hp/4, Wp/4)`` (to
        VGG19 relu3_1) for ``m`` in ``"visible"``, ``"infrared"``; ``Hp, Wp`` the padded size.
        The same layout as the official preset's :meth:`TemCoCo.forward_train`.
        """
        if not self.config.distill:
            raise RuntimeError("forward_train needs the distillation heads: build with "
                               "build_model('edge', distill=True)")
        fused, codes, (b, t, _, _) = self._clip(visible, infrared)
        feats: dict[str, dict[str, Tensor]] = {"semantic": {}, "visual": {}}
        for m in ("visible", "infrared"):
            feats["semantic"][m] = self.semantic_head[m](codes["semantic"][m])
            vis_feat = self.visual_head[m](codes["visual"][m])
            feats["visual"][m] = vis_feat.view(b, t, *vis_feat.shape[1:]).transpose(1, 2)
        return fused, feats

    # --------------------------------------------------------------------------- step API
    def state_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        """Shapes of the streaming state for frames of ``height × width`` (unpadded)."""
        if self.config.framewise:
            return {COUNT_KEY: (1,)}
        hp, wp = self.padded_size(height, width)
        shapes = collect_state_shapes(self, batch, hp, wp)
        shapes[COUNT_KEY] = (1,)
        return shapes

    def init_state(self, batch: int, height: int, width: int,
                   device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> EdgeState:
        """Fresh streaming state (a reset) for ``batch`` streams of ``height × width`` frames.

        Defaults: the device and dtype of the parameters. All tensors are zero; ``"count"`` is
        int64 ``(1,)``.
        """
        if batch < 1 or height < 1 or width < 1:
            raise ValueError(f"init_state needs positive batch and size, got {batch}, "
                             f"{height}x{width}")
        param = next(self.parameters())
        device = param.device if device is None else torch.device(device)
        dtype = param.dtype if dtype is None else dtype
        return {key: torch.zeros(shape, device=device,
                                 dtype=torch.int64 if key == COUNT_KEY else dtype)
                for key, shape in self.state_shapes(batch, height, width).items()}

    def check_state(self, state: Mapping[str, Tensor], batch: int, height: int,
                    width: int) -> None:
        """Check that ``state`` fits the input.

        Raise :class:`EdgeStateError` unless ``state`` fits ``batch`` frames of ``height × width``.
        """
        expected = self.state_shapes(batch, height, width)
        if set(state) != set(expected):
            missing = sorted(set(expected) - set(state))
            extra = sorted(set(state) - set(expected))
            raise EdgeStateError(f"state does not belong to this network: missing {missing}, "
                                 f"unexpected {extra}")
        for key, shape in expected.items():
            if tuple(state[key].shape) != shape:
                raise EdgeStateError(
                    f"state[{key!r}] has shape {tuple(state[key].shape)}, expected {shape} for "
                    f"batch {batch} and frames {height}x{width}: call init_state for this size")

    def step(self, visible: Tensor, infrared: Tensor, state: Mapping[str, Tensor], *,
             first: bool | None = None) -> tuple[Tensor, EdgeState]:
        """Fuse one frame per stream: ``(B, 3, H, W) × 2`` → ``((B, 3, H, W), new_state)``.

        Args:
            visible: ``(B, 3, H, W)`` float in [0, 1].
            infrared: ``(B, 3, H, W)`` float in [0, 1] (grey repeated).
            state: from :meth:`init_state` (same ``B, H, W``) or the previous step; not
                modified.
            first: optional static hint, whether this is the first frame since
                :meth:`init_state`. ``None`` (default, use it for export/compilation) derives it
                from ``state["count"]`` inside the graph; a Python bool skips a
                ``torch.where`` per cached layer in eager mode. A wrong hint gives wrong output.

        Shapes are checked in Python only; there are no data-dependent branches.
        """
        self._check(visible, infrared, 4)
        b, _, h, w = visible.shape
        self.check_state(state, b, h, w)
        vis, _, _ = pad_to_multiple(visible, self.size_multiple)
        ir, _, _ = pad_to_multiple(infrared, self.size_multiple)
        count = state[COUNT_KEY]
        if self.config.framewise:
            out, _ = self._body(vis, ir, ClipContext(b, 1))
            return out[..., :h, :w], {COUNT_KEY: torch.clamp(count + 1, max=1)}
        flag = (count == 0).view(1, 1, 1, 1) if first is None else bool(first)
        ctx = StepContext(state=state, first=flag, count=count)
        out, _ = self._body(vis, ir, ctx)
        ctx.new_state[COUNT_KEY] = torch.clamp(count + 1, max=self.config.history)
        return out[..., :h, :w], ctx.new_state


def build_edge(**overrides: object) -> EdgeTemCoCo:
    """The ``edge`` preset.

    ``edge`` preset: :class:`EdgeTemCoCo` with :class:`EdgeConfig` defaults and ``overrides``
    (field names of :class:`EdgeConfig`).
    """
    return EdgeTemCoCo(_config(EdgeConfig(), overrides, "edge"))


def build_edge_framewise(**overrides: object) -> EdgeTemCoCo:
    """``edge-framewise`` preset: the edge architecture on single frames (``framewise=True``)."""
    return EdgeTemCoCo(_config(EdgeConfig(framewise=True), overrides, "edge-framewise"))


def motion_gate_parameter(values: Sequence[float]) -> tuple[float, float] | None:
    """``EdgeConfig.motion_gate`` from its parameter form: ``[0, 0]`` (or ``[]``) is off.

    ``ValueError`` unless ``values`` is off or a valid ``[low, high]`` (:class:`MotionGate`).
    """
    if not any(values):
        return None
    if len(values) != 2:
        raise ValueError(f"motion_gate needs [low, high] or [0, 0] (off), got {list(values)}")
    gate = MotionGate(float(values[0]), float(values[1]))  # validates 0 <= low < high
    return (gate.low, gate.high)


def _config(base: EdgeConfig, overrides: Mapping[str, object], preset: str) -> EdgeConfig:
    known = {f.name for f in fields(EdgeConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown option(s) for preset '{preset}': {unknown}; "
                         f"known: {sorted(known)}")
    values = dict(overrides)
    for key in ("channels", "align_channels", "motion_gate"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])  # type: ignore[arg-type]
    return replace(base, **values)  # type: ignore[arg-type]


#: Preset name → builder, wired into :func:`temcoco_core.model.build_model`.
EDGE_PRESETS: dict[str, Callable[..., nn.Module]] = {
    "edge": build_edge,
    "edge-framewise": build_edge_framewise,
}
