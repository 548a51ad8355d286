# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Visual-semantic interaction module (VSIM, paper Sec. 3.1, Eq. 1-7), at 1/4 resolution.

Per modality two branches turn the encoder's deepest features into

* *semantic* features — distilled towards DINOv2 ViT-L/14 patch tokens through a 1024-channel
  projection (``down``: Conv2d k3 s4), brought back by ``up`` (ConvTranspose2d k3 s4) and merged
  with the pre-projection features; and
* *visual* features — a 256-channel stage distilled towards VGG19 relu3_1.

Then window cross-attention exchanges information across modalities (semantic↔semantic,
visual↔visual), between the semantic and visual streams, a residual stack reduces the
concatenation to ``nf`` channels, and temporal self-attention mixes frames.

Attribute names (``Branch_s1``, ``SegVisAttn`` …) are the release's, so its checkpoint loads.
"""

from __future__ import annotations

import torch
from torch import nn, Tensor

from .attention import CombineAttention, TemporalAttention
from .blocks import conv_resblock_two

__all__ = ["SemanticBranch", "VisualBranch", "VisualSemanticInteraction"]


class SemanticBranch(nn.Module):
    """Semantic branch: residual stage, 1024-channel projection and back (Eq. 1).

    Args:
        nf: channels of the input features.
        proj_channels: channels of the distillation projection (1024 = DINOv2 ViT-L/14 width).
        faithful_reshape: reproduce the release's ``torch.reshape((B·T, C, H, W) -> (B, C, T, H,
            W))`` without a permute, which mixes frames and channels when B·T > 1. The released
            checkpoint was trained with it, so the official preset keeps it; set False for the
            correct permutation.

    Shapes: ``(B, nf, T, H, W) -> ((B, nf, T, H, W), (B·T, proj, H', W'))``; H and W must be
    multiples of 4 (H' = H/4).
    """

    def __init__(self, nf: int, proj_channels: int = 1024, faithful_reshape: bool = True) -> None:
        super().__init__()
        self.faithful_reshape = faithful_reshape
        self.conv1 = nn.Sequential(conv_resblock_two(nf, nf))
        self.down = nn.Conv2d(nf, proj_channels, kernel_size=3, stride=4)
        self.up = nn.ConvTranspose2d(proj_channels, nf, kernel_size=3, stride=4, output_padding=1)
        self.conv2 = nn.Sequential(conv_resblock_two(nf * 2, nf))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f1 = self.conv1(x)
        b, c, t, h, w = f1.shape
        frames = f1.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        projection = self.down(frames)
        restored = self.up(projection)
        if self.faithful_reshape:
            restored = torch.reshape(restored, (b, c, t, h, w))
        else:
            restored = restored.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)
        return self.conv2(torch.cat([restored, f1], 1)), projection


class VisualBranch(nn.Module):
    """Visual branch: ``nf → 2·nf`` (distilled to VGG19 relu3_1, Eq. 2) ``→ nf``.

    Shapes: ``(B, nf, T, H, W) -> ((B, nf, T, H, W), (B, 2·nf, T, H, W))``.
    """

    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = conv_resblock_two(nf, 2 * nf)
        self.conv2 = conv_resblock_two(2 * nf, nf)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        visual = self.conv1(x)
        return self.conv2(visual), visual


class VisualSemanticInteraction(nn.Module):
    """The release's ``Branch_and_Combine``.

    Args:
        nf: channels of the 1/4-resolution encoder features (128 in the release).
        window: 3-D attention window (2, 8, 8).
        num_heads: heads of the window attention (4).
        temporal_heads, temporal_dim_head: temporal attention width (8 × nf/2).
        faithful_reshape: see :class:`SemanticBranch`.

    ``forward(feat_ir, feat_vis)`` with both ``(B, nf, T, H, W)`` returns the fused features
    ``(B, nf, T, H, W)`` and the distillation outputs per modality ``[semantic, visual]``.
    """

    def __init__(self, nf: int = 128, window: tuple[int, int, int] = (2, 8, 8),
                 num_heads: int = 4, temporal_heads: int = 8, temporal_dim_head: int | None = None,
                 faithful_reshape: bool = True) -> None:
        super().__init__()
        self.Branch_s1 = SemanticBranch(nf, faithful_reshape=faithful_reshape)
        self.Branch_v1 = VisualBranch(nf)
        self.Branch_s2 = SemanticBranch(nf, faithful_reshape=faithful_reshape)
        self.Branch_v2 = VisualBranch(nf)
        self.combine_seg = CombineAttention(nf, num_heads, window)
        self.combine_vis = CombineAttention(nf, num_heads, window)
        self.SegVisAttn = CombineAttention(nf * 2, num_heads, window)
        self.combine = conv_resblock_two(nf * 4, nf)
        self.attn_temp = TemporalAttention(nf, temporal_heads, temporal_dim_head or nf // 2)

    def forward(self, feat_ir: Tensor, feat_vis: Tensor
                ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        vi_seg, vi_seg_out = self.Branch_s1(feat_vis)
        vi_visual, vi_visual_out = self.Branch_v1(feat_vis)
        ir_seg, ir_seg_out = self.Branch_s2(feat_ir)
        ir_visual, ir_visual_out = self.Branch_v2(feat_ir)
        vi_seg, ir_seg = self.combine_seg(vi_seg, ir_seg)
        vi_visual, ir_visual = self.combine_vis(vi_visual, ir_visual)
        seg, visual = self.SegVisAttn(torch.cat([vi_seg, ir_seg], 1),
                                      torch.cat([vi_visual, ir_visual], 1))
        fused = self.attn_temp(self.combine(torch.cat([seg, visual], 1)))
        return fused, [ir_seg_out, ir_visual_out], [vi_seg_out, vi_visual_out]
