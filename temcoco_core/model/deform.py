# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Deformable convolution (DCNv1 / DCNv2) in pure PyTorch.

TemCoCo's temporal cooperative module (paper Sec. 2.3, "Temporal Cooperative Module (TCM)",
Eqs. (10)-(11)) aligns the two preceding frames to frame ``t`` with deformable convolutions,
``phi_f^{t-1,t} = DCN_1(phi_f^{t-1}, o_1)`` and ``phi_f^{t-2,t} = DCN_2(phi_f^{t-2}, o_2)``,
citing DCNv2 (Zhu et al., "Deformable ConvNets v2", CVPR 2019). The released code uses the
BasicSR/mmcv ``DeformConv`` CUDA extension, i.e. **DCNv1**: no modulation mask and no bias, with
``groups = in_channels // 8`` and 8 deformable groups (offset conv with 8 * 2 * 3 * 3 = 144
outputs) in both TCM scales.

For a kernel with ``K = kh * kw`` taps at regular positions ``p_k`` (dilated grid, row-major over
``(kh, kw)``), an output location ``p_0`` and learned offsets ``Δp_k``:

    DCNv1:  y(p_0) = Σ_k w_k · x(p_0 + p_k + Δp_k)
    DCNv2:  y(p_0) = Σ_k w_k · m_k · x(p_0 + p_k + Δp_k),   m_k ∈ [0, 1] (modulation mask)

``x(p)`` at a fractional position is bilinear interpolation in which each of the four integer
corners that lies outside the image contributes zero (so a sample with ``y <= -1``, ``y >= H``,
``x <= -1`` or ``x >= W`` is exactly zero). This is the semantics of
``torchvision.ops.deform_conv2d`` and of the released extension, including their offset layout.

Implementation: one ``grid_sample`` call (bilinear, zero padding, ``align_corners=False``)
gathers all ``K`` taps for all deformable groups, producing "columns" of shape
``(B, C_in * K, H_out, W_out)``, followed by a grouped 1x1 convolution with the reshaped weight.
Zero padding in ``grid_sample`` drops each out-of-range corner individually, which reproduces the
per-corner rule above (and therefore the ``-1`` / ``H`` cut-offs) exactly. ``align_corners=False``
keeps the pixel↔grid normalisation free of a division by ``W - 1``, so ``H == 1`` or ``W == 1``
is fine. Everything is shape-static tensor code: it traces with ``torch.export`` and exports to
ONNX (``GridSample``, opset >= 16) and supports autograd for input, offset, mask, weight, bias.

Sampling is done in float32 (float64 for float64 inputs) so that pixel coordinates keep
sub-pixel precision for float16/bfloat16 inputs; the columns are cast back to the input dtype
before the convolution with the weight, so the output has the input's dtype.
"""

from __future__ import annotations

import math

import torch
from torch import nn, Tensor
import torch.nn.functional as F

__all__ = ["DeformConv2d", "DeformConvShapeError", "deform_conv2d", "deform_conv_output_size"]


class DeformConvShapeError(ValueError):
    """Raised when the tensors or hyper-parameters given to a deformable conv do not fit."""


def _pair(value: int | tuple[int, int] | list[int], name: str, minimum: int) -> tuple[int, int]:
    """Normalise an int or a 2-sequence to ``(h, w)`` and check both are >= ``minimum``."""
    if isinstance(value, int) and not isinstance(value, bool):
        pair = (value, value)
    else:
        try:
            pair = tuple(int(v) for v in value)  # type: ignore[union-attr]
        except TypeError as err:
            raise DeformConvShapeError(
                f"{name} must be an int or a pair of ints, got {value!r}"
            ) from err
        if len(pair) != 2:
            raise DeformConvShapeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if pair[0] < minimum or pair[1] < minimum:
        raise DeformConvShapeError(f"{name} must be >= {minimum}, got {pair}")
    return pair[0], pair[1]


def deform_conv_output_size(
    in_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    """Output size ``(H_out, W_out)`` of a (deformable) convolution, same rule as ``nn.Conv2d``.

    ``H_out = (H + 2 * pad_h - (dil_h * (kh - 1) + 1)) // stride_h + 1`` (same for W).
    """
    out = tuple(
        (in_size[d] + 2 * padding[d] - (dilation[d] * (kernel_size[d] - 1) + 1)) // stride[d] + 1
        for d in range(2)
    )
    return out[0], out[1]


def deform_conv2d(
    input: Tensor,  # noqa: A002  (torchvision.ops.deform_conv2d's signature)
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = (1, 1),
    padding: int | tuple[int, int] = (0, 0),
    dilation: int | tuple[int, int] = (1, 1),
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable convolution, same semantics as ``torchvision.ops.deform_conv2d``.

    DCNv1 ``y(p_0) = Σ_k w_k · x(p_0 + p_k + Δp_k)``; with ``mask`` DCNv2
    ``y(p_0) = Σ_k w_k · m_k · x(p_0 + p_k + Δp_k)`` (see module docstring).

    Args:
        input: ``(B, C_in, H, W)`` floating-point feature map.
        offset: ``(B, 2 * dg * kh * kw, H_out, W_out)``. Channel ``((g * kh + i) * kw + j) * 2``
            is ``Δy`` and the next channel ``Δx`` for deformable group ``g`` and kernel tap
            ``(i, j)``, in pixels. ``dg`` (deformable groups) is inferred from the channel
            count and must divide ``C_in``; group ``g`` covers input channels
            ``[g * C_in / dg, (g + 1) * C_in / dg)``.
        weight: ``(C_out, C_in / groups, kh, kw)``; ``groups = C_in // weight.shape[1]``.
        bias: optional ``(C_out,)``.
        stride, padding, dilation: ints or ``(h, w)`` pairs, as for ``nn.Conv2d``.
        mask: optional ``(B, dg * kh * kw, H_out, W_out)`` modulation scalars ``m_k``
            (channel ``g * kh * kw + i * kw + j``), usually a sigmoid output.

    Returns:
        ``(B, C_out, H_out, W_out)`` in the dtype of ``input``.

    Raises:
        DeformConvShapeError (a ``ValueError``): on any shape / hyper-parameter mismatch.
    """
    stride_hw = _pair(stride, "stride", 1)
    padding_hw = _pair(padding, "padding", 0)
    dilation_hw = _pair(dilation, "dilation", 1)

    if input.dim() != 4:
        raise DeformConvShapeError(
            f"input must be (B, C_in, H, W), got shape {tuple(input.shape)}")
    if not input.is_floating_point():
        raise DeformConvShapeError(f"input must be floating point, got {input.dtype}")
    if weight.dim() != 4:
        raise DeformConvShapeError(
            f"weight must be (C_out, C_in/groups, kh, kw), got shape {tuple(weight.shape)}"
        )
    if offset.dim() != 4:
        raise DeformConvShapeError(
            f"offset must be (B, 2*dg*kh*kw, H_out, W_out), got shape {tuple(offset.shape)}"
        )

    batch, in_ch, height, width = input.shape
    out_ch, in_per_group, kh, kw = weight.shape
    taps = kh * kw
    if in_per_group <= 0 or in_ch % in_per_group != 0:
        raise DeformConvShapeError(
            f"weight.shape[1]={in_per_group} (C_in/groups) does not divide input channels "
            f"C_in={in_ch}"
        )
    groups = in_ch // in_per_group
    if out_ch % groups != 0:
        raise DeformConvShapeError(
            f"groups={groups} (C_in={in_ch} / weight.shape[1]={in_per_group}) does not divide "
            f"C_out={out_ch}"
        )
    if bias is not None and tuple(bias.shape) != (out_ch,):
        raise DeformConvShapeError(f"bias must have shape ({out_ch},), got {tuple(bias.shape)}")

    out_h, out_w = deform_conv_output_size(
        (height, width), (kh, kw), stride_hw, padding_hw, dilation_hw
    )
    if out_h <= 0 or out_w <= 0:
        raise DeformConvShapeError(
            f"input {height}x{width} is too small for kernel {kh}x{kw} with padding {padding_hw} "
            f"and dilation {dilation_hw}: output would be {out_h}x{out_w}"
        )

    if offset.shape[0] != batch:
        raise DeformConvShapeError(
            f"offset batch size {offset.shape[0]} does not match input batch size {batch}"
        )
    off_ch = offset.shape[1]
    if off_ch == 0 or off_ch % (2 * taps) != 0:
        raise DeformConvShapeError(
            f"offset channels {off_ch} are not a positive multiple of 2*kh*kw={2 * taps}"
        )
    dgroups = off_ch // (2 * taps)
    if in_ch % dgroups != 0:
        raise DeformConvShapeError(
            f"deformable groups {dgroups} (from {off_ch} offset channels) do not divide "
            f"input channels C_in={in_ch}"
        )
    if (offset.shape[2], offset.shape[3]) != (out_h, out_w):
        raise DeformConvShapeError(
            f"offset spatial size {tuple(offset.shape[2:])} does not match the output size "
            f"{(out_h, out_w)}"
        )
    if mask is not None and tuple(mask.shape) != (batch, dgroups * taps, out_h, out_w):
        raise DeformConvShapeError(
            f"mask must have shape {(batch, dgroups * taps, out_h, out_w)} "
            f"(B, dg*kh*kw, H_out, W_out), got {tuple(mask.shape)}"
        )

    compute_dtype = torch.promote_types(input.dtype, torch.float32)
    device = input.device
    ch_per_dg = in_ch // dgroups

    # Regular sampling positions p_0 + p_k (pixel units, row = y, col = x).
    rows = torch.arange(out_h, device=device, dtype=compute_dtype) * stride_hw[0] - padding_hw[0]
    cols = torch.arange(out_w, device=device, dtype=compute_dtype) * stride_hw[1] - padding_hw[1]
    tap_i = torch.arange(kh, device=device, dtype=compute_dtype) * dilation_hw[0]
    tap_j = torch.arange(kw, device=device, dtype=compute_dtype) * dilation_hw[1]
    tap_y = tap_i.view(kh, 1).expand(kh, kw).reshape(taps)  # row-major over (kh, kw)
    tap_x = tap_j.view(1, kw).expand(kh, kw).reshape(taps)
    base_y = tap_y.view(taps, 1, 1) + rows.view(1, out_h, 1)  # (K, H_out, 1)
    base_x = tap_x.view(taps, 1, 1) + cols.view(1, 1, out_w)  # (K, 1, W_out)

    off = offset.to(compute_dtype).reshape(batch, dgroups, taps, 2, out_h, out_w)
    pos_y = off[:, :, :, 0] + base_y  # (B, dg, K, H_out, W_out)
    pos_x = off[:, :, :, 1] + base_x
    # Pixel -> normalised coordinates for align_corners=False: pixel p maps to (2p + 1) / S - 1.
    grid_x = (2.0 * pos_x + 1.0) / width - 1.0
    grid_y = (2.0 * pos_y + 1.0) / height - 1.0
    grid = torch.stack((grid_x, grid_y), dim=-1).view(batch * dgroups, taps * out_h, out_w, 2)

    feats = input.to(compute_dtype).reshape(batch * dgroups, ch_per_dg, height, width)
    sampled = F.grid_sample(feats, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False)
    # (B*dg, C_in/dg, K*H_out, W_out) -> (B, dg, C_in/dg, K, H_out, W_out)
    sampled = sampled.view(batch, dgroups, ch_per_dg, taps, out_h, out_w)
    if mask is not None:
        sampled = sampled * mask.to(compute_dtype).reshape(batch, dgroups, 1, taps, out_h, out_w)

    # Columns ordered (channel, tap) to match weight.reshape(C_out, C_in/groups * kh * kw).
    columns = sampled.reshape(batch, in_ch * taps, out_h, out_w).to(input.dtype)
    kernel = weight.reshape(out_ch, in_per_group * taps, 1, 1)
    return F.conv2d(columns, kernel, bias, groups=groups)


class DeformConv2d(nn.Module):
    """Deformable convolution layer (DCNv1, or DCNv2 when a mask is passed to ``forward``).

    Drop-in for the released TemCoCo ``DeformConv`` (BasicSR/mmcv style): the parameter is
    named ``weight`` with shape ``(out_channels, in_channels / groups, kh, kw)``, so checkpoint
    keys such as ``DCN_1.dconv_1.weight`` ``[64, 8, 3, 3]`` (in = out = 64, groups = 8,
    deformable_groups = 8) and ``DCN_2.dconv_1.weight`` ``[32, 8, 3, 3]`` (in = out = 32,
    groups = 4, deformable_groups = 8) load directly. ``bias=True`` adds a ``bias`` parameter
    ``(out_channels,)`` (the release has none).

    Offsets are not predicted here: ``forward(x, offset, mask=None)`` takes them, with
    ``offset`` ``(B, 2 * deformable_groups * kh * kw, H_out, W_out)`` and optional ``mask``
    ``(B, deformable_groups * kh * kw, H_out, W_out)``; see :func:`deform_conv2d`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__()
        if in_channels <= 0 or out_channels <= 0:
            raise DeformConvShapeError(
                f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}"
            )
        if groups <= 0 or in_channels % groups != 0 or out_channels % groups != 0:
            raise DeformConvShapeError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        if deformable_groups <= 0 or in_channels % deformable_groups != 0:
            raise DeformConvShapeError(
                f"deformable_groups={deformable_groups} must divide in_channels={in_channels}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size", 1)
        self.stride = _pair(stride, "stride", 1)
        self.padding = _pair(padding, "padding", 0)
        self.dilation = _pair(dilation, "dilation", 1)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Released init: weight ~ U(-1/sqrt(n), 1/sqrt(n)) with n = in_channels * kh * kw.

        Bias (if any) zero, as in the released modulated variant.
        """
        n = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(n)
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.bias is not None:
                self.bias.zero_()

    @property
    def offset_channels(self) -> int:
        """Channels the offset tensor must have: ``2 * deformable_groups * kh * kw``."""
        return 2 * self.deformable_groups * self.kernel_size[0] * self.kernel_size[1]

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        """Deformable convolution: (B, C_in, H, W) -> (B, C_out, H_out, W_out).

        ``x`` (B, C_in, H, W), ``offset`` (B, 2*dg*kh*kw, H_out, W_out), optional ``mask``
        (B, dg*kh*kw, H_out, W_out) -> (B, C_out, H_out, W_out).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise DeformConvShapeError(
                f"expected input (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
            )
        if offset.dim() != 4 or offset.shape[1] != self.offset_channels:
            raise DeformConvShapeError(
                f"expected offset with {self.offset_channels} channels "
                f"(2 * deformable_groups={self.deformable_groups} * {self.kernel_size[0]} * "
                f"{self.kernel_size[1]}), got shape {tuple(offset.shape)}"
            )
        return deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, deformable_groups={self.deformable_groups}, "
            f"bias={self.bias is not None}"
        )
