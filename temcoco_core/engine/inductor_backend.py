# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The ``inductor`` backend: ``torch.compile``; CUDA graphs (``reduce-overhead``) on a GPU."""

from __future__ import annotations

import copy

import torch
from torch import nn, Tensor

from .backends import _export_module, _Runner, BackendConfig, InputSpec, PRECISIONS

__all__ = ["make_runner"]


def make_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
                precision: str) -> _Runner:
    dtype = PRECISIONS[precision]
    device = config.torch_device
    module = copy.deepcopy(model).to(device, dtype).eval()
    flat = _export_module(module, spec)
    graphs = device.type == "cuda" and config.cuda_graphs
    compiled = torch.compile(flat, dynamic=False, fullgraph=False,
                             mode="reduce-overhead" if graphs else None)
    mark_step = getattr(getattr(torch, "compiler", None), "cudagraph_mark_step_begin", None)

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        if graphs and mark_step is not None:
            mark_step()
        out = compiled(*inputs)
        out = out if isinstance(out, tuple) else (out,)
        # CUDA-graph outputs live in buffers the next replay overwrites: hand out copies.
        return tuple(t.clone() for t in out) if graphs else out

    notes = ["inductor: CUDA graphs on"] if graphs else []
    return _Runner("inductor", precision, dtype, call, notes=notes)
