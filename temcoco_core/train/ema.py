# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Exponential moving average of a network's weights (timm ``ModelEmaV2`` style).

After every optimisation step, every floating-point tensor of the state dict moves towards the
trained one::

    θ_ema ← d · θ_ema + (1 − d) · θ,    d = min(decay, (1 + n) / (10 + n))

with ``n`` the updates made so far (the warm-up keeps the first steps from being dominated by
the initial weights); tensors that are not floating point (counters) are copied. Averaging
over the last ~1 / (1 − decay) steps removes the step-to-step noise of small-batch CPU training,
so the averaged weights are what a run should ship and evaluate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib

import torch
from torch import nn, Tensor

__all__ = ["WeightEMA"]


class WeightEMA:
    """The averaged copy of ``model``'s state dict, on the model's device.

    Args:
        model: the network being trained (its current weights start the average).
        decay: the long-run decay ``d`` in ``(0, 1)``, e.g. 0.999 (an average over ~1000 steps).
        updates: updates already made (a resumed run passes the stored count).
    """

    def __init__(self, model: nn.Module, decay: float, updates: int = 0) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = updates
        self.shadow: dict[str, Tensor] = {
            k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next update uses (with the warm-up)."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s weights."""
        d = self.current_decay()
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.mul_(d).add_(v.detach().to(s.dtype), alpha=1.0 - d)
            else:
                s.copy_(v)
        self.updates += 1

    def state_dict(self) -> dict[str, Tensor]:
        """The averaged tensors (the live shadow copies: clone before changing them)."""
        return self.shadow

    def load(self, state: Mapping[str, Tensor], updates: int) -> list[str]:
        """Replace the averaged tensors present in ``state``; returns the keys left as they were.

        Raises:
            ValueError: ``state`` has keys the model lacks, or tensors of another shape.
        """
        unknown = [k for k in state if k not in self.shadow]
        bad = [k for k in state if k in self.shadow and state[k].shape != self.shadow[k].shape]
        if unknown or bad:
            raise ValueError(f"EMA weights do not fit the model (unknown {unknown[:5]}, "
                             f"mis-shaped {bad[:5]})")
        for k, v in state.items():
            self.shadow[k].copy_(v)
        self.updates = updates
        return [k for k in self.shadow if k not in state]

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Run the block with the averaged weights in ``model``; its own come back after."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(backup)
