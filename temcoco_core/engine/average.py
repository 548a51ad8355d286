# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The model-free fusion engine (``fusion_engine: average``)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["AverageEngine"]


class AverageEngine:
    """Model-free engine: ``F = (V + I) / 2`` per pixel and channel (the ``average`` baseline).

    Stateless; used for bring-up without weights, to test the pipeline and to measure its own
    overhead. ``push`` takes ``(3, H, W)`` float tensors in ``[0, 1]``.
    """

    name = "average"

    def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        if visible.device.type == "cpu" and infrared.device.type == "cpu":
            # numpy: one pass, no torch intra-op threads (they thrash on a loaded CPU)
            out = np.add(visible.numpy(), infrared.numpy())
            out *= np.float32(0.5)
            return torch.from_numpy(out)
        return (visible + infrared).mul_(0.5)

    def reset(self) -> None:
        pass
