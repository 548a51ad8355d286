# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Counting a network's parameters and floating-point operations.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on an actual forward pass at
the given size (2 FLOPs per multiply-add; convolutions, matmuls and attention are counted,
element-wise ops and deformable sampling are not). The released network measures 909 GFLOPs per
frame at 640×480 this way; the paper's "505.6 GFLOPs" counts differently.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["ModelCost", "count_parameters", "measure_cost"]


@dataclass(frozen=True)
class ModelCost:
    """Parameters and FLOPs of one forward pass of ``frames`` frames at ``width×height``."""

    preset: str
    parameters: int
    width: int
    height: int
    frames: int
    gflops_per_clip: float
    gflops_per_frame: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _count(model: nn.Module, width: int, height: int, frames: int, device: str) -> float:
    x = torch.rand(1, frames, 3, height, width, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x, x)
    return counter.get_total_flops() / 1e9


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def measure_cost(model: nn.Module, width: int, height: int, frames: int = 1,
                 preset: str = "") -> ModelCost:
    """Count FLOPs of ``model(visible, infrared)`` on ``(1, frames, 3, height, width)`` inputs.

    Runs on the meta device when the model allows it (no memory for activations), else on the
    CPU. For official-size models at 640×480 this takes minutes on a small CPU.
    """
    if width < 1 or height < 1 or frames < 1:
        raise ValueError(f"size and frames must be positive, got {width}x{height}x{frames}")
    try:
        total = _count(copy.deepcopy(model).to("meta"), width, height, frames, "meta")
    except (NotImplementedError, RuntimeError):
        total = _count(model, width, height, frames, "cpu")
    return ModelCost(preset=preset, parameters=count_parameters(model), width=width,
                     height=height, frames=frames, gflops_per_clip=total,
                     gflops_per_frame=total / frames)
