# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The ``eager`` backend: the PyTorch module as it is (a copy on the device and precision)."""

from __future__ import annotations

import copy

from torch import nn, Tensor

from .backends import _export_module, _Runner, BackendConfig, InputSpec, PRECISIONS

__all__ = ["make_runner"]


def make_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
                precision: str) -> _Runner:
    dtype = PRECISIONS[precision]
    module = copy.deepcopy(model).to(config.torch_device, dtype).eval()
    flat = _export_module(module, spec)

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        out = flat(*inputs)
        return out if isinstance(out, tuple) else (out,)

    return _Runner("eager", precision, dtype, call, module=module)
