# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The TemCoCo fusion network as released (Gong et al.).

Paper: "TemCoCo: Temporally Consistent Multi-modal Video Fusion with Visual-Semantic
Collaboration".

Pipeline (paper Fig. 2), on clips ``(B, T, 3, H, W)``:

1. Two encoders (one per modality) of separable 3-D convolutions → features at 1, ½, ¼ scale.
2. Visual-semantic interaction (:mod:`.vsim`) at ¼ scale → fused features.
3. Two temporal cooperative modules (:mod:`.tcm`) at ½ and full scale align frames t−1, t−2 by
   deformable convolution guided by both modalities (residual offsets between scales).
4. A separable 3-D convolution decodes RGB directly (ends in LeakyReLU; not clamped).

Attribute names follow the release (``Enc_ir``, ``SegBranchCombine``, ``DCN_1`` …) so that
its checkpoint loads key for key (``../shared/official_state_dict.json``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn, Tensor
import torch.nn.functional as F

from .blocks import conv_resblock_two, Separable3DConv
from .tcm import TemporalCooperativeModule
from .vsim import VisualSemanticInteraction

__all__ = ["TemCoCoConfig", "TemCoCo", "Encoder", "Decoder", "check_frame_pair", "pad_to_multiple"]


@dataclass(frozen=True)
class TemCoCoConfig:
    """Hyper-parameters of :class:`TemCoCo` (defaults = the released ``Fusion()``).

    Attributes:
        n_feat: channels at full resolution (½: 2·n_feat, ¼: 4·n_feat).
        window: 3-D window of the cross-modal attention (frames, rows, cols).
        num_heads: heads of the window attention.
        temporal_heads: heads of the temporal attention (dim per head = 2·n_feat).
        deformable_groups: offset groups of the deformable convolutions.
        faithful_reshape: keep the release's semantic-branch reshape quirk (see
            :class:`~temcoco_core.model.vsim.SemanticBranch`); needed for the released weights.
        size_multiple: H and W are reflect-padded to a multiple of this and cropped back.
    """

    n_feat: int = 32
    window: tuple[int, int, int] = (2, 8, 8)
    num_heads: int = 4
    temporal_heads: int = 8
    deformable_groups: int = 8
    faithful_reshape: bool = True
    size_multiple: int = 16


class Encoder(nn.Module):
    """Per-modality encoder.

    ``(B, 3, T, H, W) -> [(B, nf, T, H, W), (B, 2nf, T, H/2, W/2), (B, 4nf, T, H/4, W/4)]``.
    """

    def __init__(self, in_channels: int = 3, nf: int = 32) -> None:
        super().__init__()
        self.conv0 = Separable3DConv(in_channels, nf)
        self.conv1 = conv_resblock_two(nf, nf)
        self.conv2 = conv_resblock_two(nf, 2 * nf, stride=2)
        self.conv3 = conv_resblock_two(2 * nf, 4 * nf, stride=2)

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.conv1(self.conv0(x))
        f2 = self.conv2(f1)
        return [f1, f2, self.conv3(f2)]


class Decoder(nn.Module):
    """``(B, nf, T, H, W) -> (B, 3, T, H, W)`` through one separable 3-D convolution."""

    def __init__(self, nf: int = 32, out_channels: int = 3) -> None:
        super().__init__()
        self.conv0 = Separable3DConv(nf, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv0(x)


def check_frame_pair(visible: Tensor, infrared: Tensor, dims: int = 5) -> None:
    """Check the shapes and types of a visible and an infrared input.

    Raise ``ValueError`` naming the problem unless ``visible`` and ``infrared`` are float tensors
    of the same shape, ``(B, T, 3, H, W)`` (``dims=5``) or ``(B, 3, H, W)`` (``dims=4``).
    """
    layout = "(B, T, 3, H, W)" if dims == 5 else "(B, 3, H, W)"
    for name, x in (("visible", visible), ("infrared", infrared)):
        if x.dim() != dims or x.shape[-3] != 3:
            raise ValueError(f"{name} must be {layout}, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a float tensor in [0, 1], got {x.dtype}")
    if visible.shape != infrared.shape:
        raise ValueError(f"visible {tuple(visible.shape)} and infrared "
                         f"{tuple(infrared.shape)} differ in shape")


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, int, int]:
    """Pad the last two dims of ``x`` (…, H, W) up to multiples of ``multiple`` (bottom/right).

    Reflect padding where the frame is large enough for it, replicate otherwise.
    Returns ``(padded, H, W)`` with the original size for cropping back.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, h, w
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    flat = F.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return flat.reshape(*lead, *flat.shape[-3:]), h, w


class TemCoCo(nn.Module):
    """TemCoCo fusion network (the release's ``Fusion``).

    ``model(visible, infrared)``: both ``(B, T, 3, H, W)`` float in [0, 1], RGB; the infrared grey
    image repeated to 3 channels. Returns the fused clip ``(B, T, 3, H, W)``, RGB, *not clamped*
    (the decoder ends in LeakyReLU and can dip slightly below 0). Any H, W ≥ 1 and T ≥ 1: sizes
    that are not multiples of 16 are reflect-padded and cropped back.

    :meth:`forward_train` also returns the distillation features.
    """

    def __init__(self, config: TemCoCoConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or TemCoCoConfig()
        nf = config.n_feat
        self.Enc_ir = Encoder(3, nf)
        self.Enc_vis = Encoder(3, nf)
        self.SegBranchCombine = VisualSemanticInteraction(
            nf=4 * nf, window=config.window, num_heads=config.num_heads,
            temporal_heads=config.temporal_heads, temporal_dim_head=2 * nf,
            faithful_reshape=config.faithful_reshape)
        self.DCN_1 = TemporalCooperativeModule(4 * nf, config.deformable_groups)
        self.DCN_2 = TemporalCooperativeModule(2 * nf, config.deformable_groups)
        self.dec = Decoder(nf, 3)

    @staticmethod
    def check_inputs(visible: Tensor, infrared: Tensor) -> None:
        """Raise ``ValueError`` naming the problem unless both are ``(B, T, 3, H, W)`` alike."""
        check_frame_pair(visible, infrared, dims=5)

    def run(self, visible: Tensor, infrared: Tensor
            ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Network body on padded inputs.

        Returns ``(fused (B, 3, T, H, W), ir_feats, vis_feats)`` exactly as the release's
        ``Fusion.forward(ir, vis)``.
        """
        x_ir = infrared.permute(0, 2, 1, 3, 4)
        x_vis = visible.permute(0, 2, 1, 3, 4)
        feat_ir = self.Enc_ir(x_ir)
        feat_vis = self.Enc_vis(x_vis)
        fused, ir_feats, vis_feats = self.SegBranchCombine(feat_ir[2], feat_vis[2])
        half, offsets = self.DCN_1(fused, feat_ir[1].permute(0, 2, 1, 3, 4),
                                   feat_vis[1].permute(0, 2, 1, 3, 4))
        full, _ = self.DCN_2(half, feat_ir[0].permute(0, 2, 1, 3, 4),
                             feat_vis[0].permute(0, 2, 1, 3, 4), coarse_offsets=offsets)
        return self.dec(full), ir_feats, vis_feats

    def _padded_run(self, visible: Tensor, infrared: Tensor
                    ) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        self.check_inputs(visible, infrared)
        multiple = self.config.size_multiple
        visible, h, w = pad_to_multiple(visible, multiple)
        infrared, _, _ = pad_to_multiple(infrared, multiple)
        fused, ir_feats, vis_feats = self.run(visible, infrared)
        return fused.permute(0, 2, 1, 3, 4)[..., :h, :w], ir_feats, vis_feats

    def forward(self, visible: Tensor, infrared: Tensor) -> Tensor:
        """``(B, T, 3, H, W) × 2 -> (B, T, 3, H, W)`` fused, RGB, not clamped."""
        return self._padded_run(visible, infrared)[0]

    def forward_train(self, visible: Tensor, infrared: Tensor
                      ) -> tuple[Tensor, dict[str, dict[str, Tensor]]]:
        """Fused clip plus distillation features.

        Returns ``(fused, feats)`` with ``feats["semantic"][m]`` ``(B·T, 1024, H/16, W/16)``
        (to DINOv2 ViT-L/14 tokens) and ``feats["visual"][m]`` ``(B, 256, T, H/4, W/4)`` (to VGG19
        relu3_1) for ``m`` in ``visible``, ``infrared``; sizes are of the padded input.
        """
        fused, ir_feats, vis_feats = self._padded_run(visible, infrared)
        return fused, {
            "semantic": {"visible": vis_feats[0], "infrared": ir_feats[0]},
            "visual": {"visible": vis_feats[1], "infrared": ir_feats[1]},
        }
