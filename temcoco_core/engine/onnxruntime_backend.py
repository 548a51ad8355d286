# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The ``onnxruntime`` backend: an ONNX export run by ONNX Runtime.

The ``onnxruntime`` backend: an ONNX export (``torch.onnx.export(dynamo=True)``) run by ONNX
Runtime: the CPU provider, and the CUDA / TensorRT providers where present.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import contextlib
import copy
from dataclasses import replace
import hashlib
import json
import logging
import os
from pathlib import Path
import sys
from typing import Any

import numpy as np
import torch
from torch import nn, Tensor

from .backends import (
    _check_engine_file,
    _example_inputs,
    _export_module,
    _first_line,
    _import_optional,
    _input_signature,
    _Runner,
    _state_keys,
    BackendConfig,
    BackendUnavailableError,
    build_engine_file,
    EngineFileError,
    InputSpec,
    PRECISIONS,
)
from .cache import platform_info
from .trust import atomic_path, private_dir

__all__ = ["export_onnx", "make_runner", "onnxruntime_providers"]

log = logging.getLogger(__name__)


def export_onnx(model: nn.Module, spec: InputSpec, path: str | os.PathLike,
                precision: str = "fp32", device: str | torch.device = "cpu",
                opset: int = 18) -> Path:
    """Export ``model`` to ONNX with ``torch.onnx.export(dynamo=True)``, static shapes of ``spec``.

    The clip forward is exported, or in stream mode the model's ``step`` as :class:`FlatStep`.

    Inputs are named ``visible``, ``infrared`` (and ``state.<key>``), outputs ``fused`` (and
    ``new_state.<key>``). Written atomically; returns the path.
    """
    path = Path(path)
    dtype = PRECISIONS[precision]
    device = torch.device(device)
    module = _export_module(copy.deepcopy(model).to(device, dtype).eval(), spec)
    inputs = _example_inputs(model, spec, device, dtype)
    names, outputs = _onnx_names(model, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # unique name, renamed into place
        with torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=names,
                                        output_names=outputs, opset_version=opset,
                                        external_data=False, verbose=False)
        program.save(str(tmp))
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the ONNX exporter quiet.

    Keep the ONNX exporter's progress prints off stdout (which may carry JSON) and its INFO logging
    quiet.
    """
    names = ("onnxscript", "onnx_ir", "torch.onnx")
    saved = {n: logging.getLogger(n).level for n in names}
    try:
        for name in names:
            logging.getLogger(name).setLevel(logging.WARNING)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _onnx_names(model: nn.Module, spec: InputSpec) -> tuple[list[str], list[str]]:
    if spec.mode == "clip":
        return ["visible", "infrared"], ["fused"]
    keys = _state_keys(model, spec)
    return (["visible", "infrared", *(f"state.{k}" for k in keys)],
            ["fused", *(f"new_state.{k}" for k in keys)])


def onnxruntime_providers(available: Sequence[str], device: str | torch.device,
                          precision: str = "fp32", cache_dir: Path | None = None
                          ) -> list[tuple[str, dict[str, Any]]]:
    """Onnxruntime execution providers (with options) for ``device``, best first.

    CUDA devices: ``TensorrtExecutionProvider`` (fp16 when asked, its own engine cache under
    ``cache_dir``), then ``CUDAExecutionProvider``, then the CPU; only those in ``available``.
    CPU: ``CPUExecutionProvider``. Raises :class:`BackendUnavailableError` if a CUDA device is
    asked for and no GPU provider is available.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return [("CPUExecutionProvider", {})]
    index = device.index or 0
    chosen: list[tuple[str, dict[str, Any]]] = []
    if "TensorrtExecutionProvider" in available:
        options: dict[str, Any] = {"device_id": index, "trt_fp16_enable": precision == "fp16"}
        if cache_dir is not None:
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir),
                           trt_timing_cache_enable=True)
        chosen.append(("TensorrtExecutionProvider", options))
    if "CUDAExecutionProvider" in available:
        chosen.append(("CUDAExecutionProvider", {"device_id": index}))
    if not chosen:
        raise BackendUnavailableError(
            f"onnxruntime has no GPU execution provider (available: {list(available)}); "
            "install onnxruntime-gpu")
    chosen.append(("CPUExecutionProvider", {}))
    return chosen


_ORT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16,
              "tensor(int64)": torch.int64, "tensor(bfloat16)": torch.bfloat16}
_NUMPY_TYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}


def _onnx_session(ort: Any, path: Path, providers: list[tuple[str, dict[str, Any]]],
                  threads: int = 0) -> Any:
    if not path.is_file():
        raise EngineFileError(f"ONNX file not found: {path}")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
        if all(name == "CPUExecutionProvider" for name, _ in providers):
            # The CPU arena keeps every activation block it ever allocated: measured 2.47 GB
            # peak RSS with it, 1.77 GB without, for the edge preset at 640x480 (an 8 GB
            # Jetson or a busy robot cannot spare it); large blocks come from malloc instead.
            options.enable_cpu_mem_arena = False
            # The memory pattern plans one block per run for all activations; freed into
            # malloc's heaps next to the arena-less blocks it fragments them: the resident size
            # grew from 0.97 to 1.33 GB over the first runs at 640x480 with it, to 1.08 without.
            options.enable_mem_pattern = False
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=[name for name, _ in providers],
                                    provider_options=[opts for _, opts in providers])
    except Exception as exc:
        raise EngineFileError(f"ONNX file {path} could not be loaded ({_first_line(exc)}); "
                              f"re-export it with `temcoco export --backend onnx`") from None


def _check_onnx_signature(session: Any, path: Path, model: nn.Module, spec: InputSpec,
                          dtype: torch.dtype) -> None:
    names, _ = _onnx_names(model, spec)
    expected = _input_signature(model, spec, dtype)
    got = {i.name: (i.shape, i.type) for i in session.get_inputs()}
    problems = []
    if list(got) != names:
        problems.append(f"inputs {list(got)[:4]}… instead of {names[:4]}…")
    else:
        for name, tensor in zip(names, expected):
            shape, kind = got[name]
            if list(shape) != list(tensor.shape) or _ORT_TYPES.get(kind) != tensor.dtype:
                problems.append(f"{name} is {kind}{list(shape)}, needs "
                                f"{tensor.dtype}{list(tensor.shape)}")
    if problems:
        raise EngineFileError(f"ONNX file {path} does not match this model and input: "
                              f"{'; '.join(problems[:3])}")


def make_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
                precision: str, weights: str) -> _Runner:
    ort = _import_optional("onnxruntime", "onnxruntime (or onnxruntime-gpu)")
    device = config.torch_device
    dtype = PRECISIONS[precision]
    notes: list[str] = []
    info = platform_info(device)
    ort_key = hashlib.sha256(json.dumps([weights, spec.tag, precision, info.device_name,
                                         info.compute_capability, info.onnxruntime,
                                         info.tensorrt]).encode()).hexdigest()[:16]
    providers = onnxruntime_providers(ort.get_available_providers(), device, precision,
                                      private_dir(config.resolved_cache_dir) / "ort-trt"
                                      / ort_key)
    if config.engine_path is not None:
        path = Path(config.engine_path)
        _check_engine_file(path, model, config, spec, precision, weights, dtype)
    else:
        path = build_engine_file(model, config, spec, weights=weights, notes=notes).path
    try:
        session = _onnx_session(ort, path, providers, config.onnx_threads)
    except EngineFileError as exc:
        if config.engine_path is not None:
            raise
        notes.append(f"onnxruntime: cached file unusable ({exc}); re-exporting")
        path = build_engine_file(model, replace(config, rebuild=True), spec, weights=weights,
                                 notes=notes).path
        session = _onnx_session(ort, path, providers, config.onnx_threads)
    _check_onnx_signature(session, path, model, spec, dtype)
    in_names = [i.name for i in session.get_inputs()]
    outs = session.get_outputs()
    out_names = [o.name for o in outs]
    notes.append(f"onnxruntime providers: {session.get_providers()}")

    if device.type == "cpu":
        def call(*inputs: Tensor) -> tuple[Tensor, ...]:
            feeds = {n: t.detach().contiguous().numpy() for n, t in zip(in_names, inputs)}
            return tuple(torch.from_numpy(a) for a in session.run(out_names, feeds))
    else:
        call = _onnx_cuda_call(session, in_names, out_names, device)

    return _Runner("onnxruntime", precision, dtype, call, engine_path=path, notes=notes)


def _onnx_cuda_call(session: Any, in_names: list[str], out_names: list[str],
                    device: torch.device) -> Callable[..., tuple[Tensor, ...]]:
    """Run a session on CUDA tensors without host copies (I/O binding).

    Outputs are allocated by onnxruntime and handed over through DLPack.
    """
    index = device.index or 0

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        binding = session.io_binding()
        for name, tensor in zip(in_names, inputs):
            tensor = tensor.contiguous()
            binding.bind_input(name=name, device_type="cuda", device_id=index,
                               element_type=_NUMPY_TYPES[tensor.dtype],
                               shape=tuple(tensor.shape), buffer_ptr=tensor.data_ptr())
        for name in out_names:
            binding.bind_output(name, "cuda", index)
        torch.cuda.current_stream(device).synchronize()
        session.run_with_iobinding(binding)
        return tuple(torch.from_dlpack(v.to_dlpack()) if hasattr(v, "to_dlpack")
                     else torch.from_numpy(v.numpy()).to(device)
                     for v in binding.get_outputs())

    return call
