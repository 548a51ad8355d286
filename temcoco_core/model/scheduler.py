# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Running a clip model over a long sequence in overlapping clips.

The release fuses 30-frame clips that overlap by 5 frames, and the later clip *overwrites* the
overlap (``policy="overwrite"``). ``policy="blend"`` instead cross-fades the overlap linearly,
which hides the seam where the two clips disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["ClipSchedule", "clip_spans", "run_clips"]


@dataclass(frozen=True)
class ClipSchedule:
    """Clip length, overlap and how overlaps are merged (``overwrite`` | ``blend``)."""

    length: int = 30
    overlap: int = 5
    policy: str = "overwrite"

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"clip length must be >= 1, got {self.length}")
        if not 0 <= self.overlap < self.length:
            raise ValueError(f"overlap must be in [0, length), got {self.overlap} for length "
                             f"{self.length}")
        if self.policy not in ("overwrite", "blend"):
            raise ValueError(f"policy must be 'overwrite' or 'blend', got '{self.policy}'")


def clip_spans(num_frames: int, schedule: ClipSchedule) -> Iterator[tuple[int, int]]:
    """The ``(start, end)`` frame span of each clip, end exclusive.

    ``[start, end)`` of each clip; clips advance by ``length − overlap`` and the last one ends at
    ``num_frames`` (it is not padded: it may be shorter).
    """
    step = schedule.length - schedule.overlap
    start = 0
    while True:
        end = min(start + schedule.length, num_frames)
        yield start, end
        if end >= num_frames:
            return
        start += step


@torch.no_grad()
def run_clips(model: Callable[[Tensor, Tensor], Tensor], visible: Tensor, infrared: Tensor,
              schedule: ClipSchedule | None = None,
              progress: Callable[[int], None] | None = None) -> Tensor:
    """Fuse a whole sequence clip by clip.

    Args:
        model: ``(B, t, 3, H, W) × 2 -> (B, t, 3, H, W)``.
        visible, infrared: ``(B, T, 3, H, W)``; may live on the CPU while the model runs elsewhere
            (each clip is moved to the model's device and back).
        schedule: clip length / overlap / merge policy (default: the release's 30/5 overwrite).
        progress: called with the number of frames finished after each clip.

    Returns:
        ``(B, T, 3, H, W)`` on the inputs' device.
    """
    schedule = schedule or ClipSchedule()
    if visible.shape != infrared.shape:
        raise ValueError(f"visible {tuple(visible.shape)} and infrared {tuple(infrared.shape)} "
                         "differ in shape")
    num_frames = visible.shape[1]
    device = next((p.device for p in getattr(model, "parameters", lambda: iter(()))()),
                  visible.device)
    out: Tensor | None = None
    previous_end = 0
    for start, end in clip_spans(num_frames, schedule):
        fused = model(visible[:, start:end].to(device), infrared[:, start:end].to(device))
        fused = fused.to(visible.device, visible.dtype)
        if out is None:
            out = torch.empty(*visible.shape[:2], *fused.shape[2:], dtype=fused.dtype,
                              device=visible.device)
        shared = max(0, previous_end - start)
        if schedule.policy == "blend" and shared > 0:
            weight = torch.arange(1, shared + 1, dtype=fused.dtype, device=fused.device)
            weight = (weight / (shared + 1)).view(1, -1, 1, 1, 1)
            out[:, start:previous_end] = (1 - weight) * out[:, start:previous_end] + \
                weight * fused[:, :shared]
            out[:, previous_end:end] = fused[:, shared:]
        else:
            out[:, start:end] = fused
        previous_end = end
        if progress is not None:
            progress(end)
    assert out is not None
    return out
