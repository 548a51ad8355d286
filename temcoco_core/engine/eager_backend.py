"""The ``eager`` backend: the PyTorch module as it is (a copy on the device and precision)."""

from __future__ import annotations

import copy

from torch import Tensor, nn

from .backends import PRECISIONS, BackendConfig, InputSpec, _export_module, _Runner

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
