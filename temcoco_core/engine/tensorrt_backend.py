# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The ``tensorrt`` backend: Torch-TensorRT (dynamo frontend).

Engines saved with ``torch_tensorrt.save`` in the engine cache (:mod:`.cache`) or loaded from
``engine_path``.
"""

from __future__ import annotations

from collections.abc import Callable
import copy
from dataclasses import replace
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn, Tensor

from . import backends
from .backends import _Runner, BackendConfig, EngineFileError, InputSpec
from .cache import parse_version
from .trust import atomic_path, load_exported_program, PickleRefusedError

__all__ = ["build", "make_runner", "tensorrt_compile_settings"]

log = logging.getLogger(__name__)


def tensorrt_compile_settings(version: str, precision: str) -> tuple[dict[str, Any], torch.dtype]:
    """Precision arguments for ``torch_tensorrt.compile``.

    Precision arguments for ``torch_tensorrt.compile`` and the dtype to cast model and inputs to,
    by Torch-TensorRT version.

    Up to 2.12 the builder is weakly typed: the model and inputs stay fp32 and
    ``enabled_precisions={torch.half}`` lets TensorRT pick fp16 kernels. From 2.13 strong typing
    is always on and ``enabled_precisions`` is gone: the model and inputs are cast to the target
    dtype instead.
    """
    dtype = backends.PRECISIONS[precision]
    parsed = parse_version(version)
    if not parsed:
        raise backends.BackendUnavailableError(
            f"cannot read the torch_tensorrt version '{version}'")
    if parsed < (2, 13):
        precisions = {torch.float32} if precision == "fp32" else {torch.float32, dtype}
        return {"enabled_precisions": precisions}, torch.float32
    return {}, dtype


def build(trt: Any, model: nn.Module, spec: InputSpec, config: BackendConfig,
          precision: str, path: Path) -> None:
    """Export, compile with Torch-TensorRT and save to ``path`` (atomically)."""
    settings, cast = tensorrt_compile_settings(str(getattr(trt, "__version__", "")), precision)
    device = config.torch_device
    module = backends._export_module(copy.deepcopy(model).to(device, cast).eval(), spec)
    inputs = backends._example_inputs(model, spec, device, cast)
    program = torch.export.export(module, inputs, strict=False)
    executed = {_aten_op(name) for name in config.torch_executed_ops}
    compiled = trt.compile(
        program, ir="dynamo", inputs=list(inputs), device=device,
        min_block_size=config.min_block_size, torch_executed_ops=executed,
        require_full_compilation=config.require_full_compilation, **settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # unique name, 0600, renamed into place
        trt.save(compiled, str(tmp), output_format="exported_program", arg_inputs=list(inputs))


def _aten_op(name: str) -> Any:
    """``"aten.grid_sampler.default"`` → ``torch.ops.aten.grid_sampler.default``."""
    target: Any = torch.ops
    try:
        for part in name.split("."):
            target = getattr(target, part)
    except (AttributeError, RuntimeError):
        raise ValueError(f"torch_executed_ops: unknown operator '{name}'") from None
    return target


def _load_tensorrt(trt: Any, path: Path) -> Callable[..., Any]:
    """A saved Torch-TensorRT program.

    Loaded without running any Python pickle (``torch_tensorrt.load`` inside
    :func:`~temcoco_core.engine.trust.load_exported_program`: left alone, ``torch.export.load``
    falls back to unpickling, which can run arbitrary code); only exported programs
    (``.ep``/``.pt2``) are accepted.
    """
    try:
        if path.suffix in (".ep", ".pt2"):
            loaded = load_exported_program(path, trt.load)
        else:
            raise EngineFileError(f"TensorRT engine {path}: only exported programs (.ep) are "
                                  "loaded (TorchScript and pickled modules are refused)")
        return loaded.module() if hasattr(loaded, "module") else loaded
    except PickleRefusedError as exc:
        raise EngineFileError(str(exc)) from None
    except EngineFileError:
        raise
    except Exception as exc:
        raise EngineFileError(f"TensorRT engine {path} could not be loaded "
                              f"({backends._first_line(exc)}); rebuild it with `temcoco export "
                              f"--backend tensorrt`") from None


def make_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
                precision: str, weights: str) -> _Runner:
    trt = backends._import_optional("torch_tensorrt", "torch-tensorrt")
    backends._require_cuda("tensorrt", config.torch_device)  # (patched in tests)
    notes: list[str] = []
    _, cast = tensorrt_compile_settings(str(getattr(trt, "__version__", "")), precision)
    if config.engine_path is not None:
        path = Path(config.engine_path)
        backends._check_engine_file(path, model, config, spec, precision, weights, cast)
        module = _load_tensorrt(trt, path)
    else:
        artifact = backends.build_engine_file(model, config, spec, weights=weights, notes=notes)
        path = artifact.path
        try:
            module = _load_tensorrt(trt, path)
        except EngineFileError as exc:
            if artifact.built:
                raise
            notes.append(f"tensorrt: cached engine unusable ({exc}); rebuilding")
            artifact = backends.build_engine_file(model, replace(config, rebuild=True), spec,
                                                  weights=weights, notes=notes)
            module = _load_tensorrt(trt, artifact.path)

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        out = module(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    return _Runner("tensorrt", precision, cast, call, engine_path=path, notes=notes)
