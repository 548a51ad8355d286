# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Convolution blocks of TemCoCo: factorised (separable) 3-D convolutions and residual stacks.

All blocks work on video features laid out ``(B, C, T, H, W)``. Attribute names reproduce the
released code's module tree (``spatial_conv.conv3d``, ``main_branch.0``) so that its checkpoint
loads key for key.
"""

from __future__ import annotations

from torch import nn, Tensor

__all__ = ["Conv3dAct", "Separable3DConv", "ResBlock3D", "conv_resblock_two"]


class Conv3dAct(nn.Module):
    """``Conv3d`` followed by LeakyReLU(0.2).  ``(B, C_in, T, H, W) -> (B, C_out, T', H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int],
                 stride: tuple[int, int, int] | int = 1,
                 padding: tuple[int, int, int] | int = 0) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding)
        self.act = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv3d(x))


class Separable3DConv(nn.Module):
    """A 3×3×3 convolution factorised into space then time (paper Sec. 3.1, "3D conv").

    ``spatial_conv``: kernel (1, 3, 3), stride (1, s, s), padding (0, 1, 1), LeakyReLU(0.2);
    ``depth_conv``: kernel (3, 1, 1), padding (1, 0, 0) — symmetric in time, so frame t sees
    t−1 and t+1 (not causal), LeakyReLU(0.2).

    Shapes: ``(B, C_in, T, H, W) -> (B, C_out, T, H/s, W/s)``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.spatial_conv = Conv3dAct(in_channels, out_channels, (1, 3, 3), (1, stride, stride),
                                      (0, 1, 1))
        self.depth_conv = Conv3dAct(out_channels, out_channels, (3, 1, 1), 1, (1, 0, 0))

    def forward(self, x: Tensor) -> Tensor:
        return self.depth_conv(self.spatial_conv(x))


class ResBlock3D(nn.Module):
    """``x + Separable3DConv(c, c)(x)``.  ``(B, C, T, H, W) -> (B, C, T, H, W)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.main_branch = nn.Sequential(Separable3DConv(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.main_branch(x)


def conv_resblock_two(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """``Separable3DConv(in, out, stride) → ResBlock3D → ResBlock3D`` (the release's stage unit).

    ``(B, C_in, T, H, W) -> (B, C_out, T, H/stride, W/stride)``.
    """
    return nn.Sequential(
        Separable3DConv(in_channels, out_channels, stride),
        ResBlock3D(out_channels),
        ResBlock3D(out_channels),
    )
