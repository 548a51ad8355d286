# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Temporal cooperative module (TCM, paper Sec. 3.1, Eq. 8-11).

Deformable alignment of frames t−1 and t−2 onto frame t, guided by both modalities, at one
scale.

For frame t with fused features x_t and encoder features ir_t, vis_t at this scale
(``g_t = [x_t, ir_t, vis_t]``):

    f_t   = φ_m(g_t)                                   (cross_modality)
    n¹_t  = φ_f(g_{t−1}),  n²_t = φ_f2(g_{t−2})        (cross_frame, cross_frame2)
    Δ¹_t  = off₁(ψ₁(θ₁([f_t, n¹_t]))) + up₂(Δ¹_t,coarse)   (residual offsets, Eq. 10)
    a¹_t  = DCN₁(n¹_t, Δ¹_t),   a²_t likewise
    y_t   = ρ([a¹_t, a²_t]),   out = Sep3D([x, y]) + x

Frames 0 and 1 use themselves as both neighbours (the release's rule). The release's DCN is
DCNv1 (no modulation); coarse offsets are upsampled ×2 by nearest neighbour *without* doubling
their values. All frames are processed as one batch (the release loops over frames; the result
is the same).
"""

from __future__ import annotations

import torch
from torch import nn, Tensor
import torch.nn.functional as F

from .blocks import Separable3DConv
from .deform import DeformConv2d

__all__ = ["TemporalCooperativeModule", "neighbour_indices"]


def neighbour_indices(num_frames: int, lag: int, warmup: int = 2) -> list[int]:
    """Index of the neighbour ``lag`` frames back, or the frame itself during ``warmup``."""
    return [t - lag if t >= warmup else t for t in range(num_frames)]


def _conv_lrelu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1),
                         nn.LeakyReLU(negative_slope=0.2))


class TemporalCooperativeModule(nn.Module):
    """The release's ``VI_TDCN(embed_dim)``.

    Works on ``c = embed_dim / 2`` channels at 2× the resolution of its input ``x``.

    Args:
        embed_dim: channels of the incoming fused features (128 for the ½ scale, 64 for full).
        deformable_groups: offset groups (8 in the release, 18 offsets each → 144 channels).

    ``forward(x, ir, vis, coarse_offsets=None)``:
        x: ``(B, embed_dim, T, h, w)`` fused features from the previous stage.
        ir, vis: ``(B, T, c, 2h, 2w)`` encoder features at this scale.
        coarse_offsets: ``(Δ¹, Δ²)`` from the previous TCM, each ``(B·T, 144, h, w)``.
    Returns ``(B, c, T, 2h, 2w)`` aligned features and this module's ``(Δ¹, Δ²)``.
    """

    def __init__(self, embed_dim: int = 128, deformable_groups: int = 8) -> None:
        super().__init__()
        c = embed_dim // 2
        self.ConvTrans = nn.Conv3d(embed_dim, c, kernel_size=1)
        self.cross_modality = _conv_lrelu(3 * c, c)
        self.cross_frame = _conv_lrelu(3 * c, c)
        self.cross_frame2 = _conv_lrelu(3 * c, c)
        self.temporary_cat = _conv_lrelu(2 * c, c)
        self.temporary_cat2 = _conv_lrelu(2 * c, c)
        self.before_offsets = nn.Conv2d(c, c, 3, padding=1)
        self.before_offsets2 = nn.Conv2d(c, c, 3, padding=1)
        self.off2d_1 = nn.Conv2d(c, 18 * deformable_groups, 3, padding=1)
        self.off2d_2 = nn.Conv2d(c, 18 * deformable_groups, 3, padding=1)
        groups = embed_dim // 16
        self.dconv_1 = DeformConv2d(c, c, 3, padding=1, groups=groups,
                                    deformable_groups=deformable_groups)
        self.dconv_2 = DeformConv2d(c, c, 3, padding=1, groups=groups,
                                    deformable_groups=deformable_groups)
        self.fuse_neighb = _conv_lrelu(2 * c, c)
        self.fuse_feature = Separable3DConv(embed_dim, c)

    def forward(self, x: Tensor, ir: Tensor, vis: Tensor,
                coarse_offsets: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        b, _, t, h, w = x.shape
        x = self.ConvTrans(x)
        c = x.shape[1]
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        frames = F.interpolate(frames, scale_factor=2.0, mode="nearest")
        x = frames.view(b, t, c, 2 * h, 2 * w)

        guide = torch.cat([x, ir, vis], dim=2)  # (B, T, 3c, 2h, 2w)
        flat = guide.flatten(0, 1)
        ref = self.cross_modality(flat)
        near = self.cross_frame(flat).view(b, t, c, 2 * h, 2 * w)
        far = self.cross_frame2(flat).view(b, t, c, 2 * h, 2 * w)
        near = near[:, neighbour_indices(t, 1)].flatten(0, 1)
        far = far[:, neighbour_indices(t, 2)].flatten(0, 1)

        offset1 = self.off2d_1(self.before_offsets(self.temporary_cat(torch.cat([ref, near], 1))))
        offset2 = self.off2d_2(self.before_offsets2(self.temporary_cat2(torch.cat([ref, far], 1))))
        if coarse_offsets is not None:
            offset1 = offset1 + F.interpolate(coarse_offsets[0], scale_factor=2.0, mode="nearest")
            offset2 = offset2 + F.interpolate(coarse_offsets[1], scale_factor=2.0, mode="nearest")
        aligned = self.fuse_neighb(torch.cat([self.dconv_1(near, offset1),
                                              self.dconv_2(far, offset2)], 1))
        aligned = aligned.view(b, t, c, 2 * h, 2 * w)
        x_video = x.permute(0, 2, 1, 3, 4)
        out = self.fuse_feature(torch.cat([x_video, aligned.permute(0, 2, 1, 3, 4)], 1)) + x_video
        return out, (offset1, offset2)
