# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Inference backends behind one interface, with a fallback chain and warm-up.

:func:`prepare_model` turns a fusion network (any preset of :func:`temcoco_core.model.build_model`)
into a :class:`PreparedModel` that runs on one of

=================  ================================================================================
backend            what it is
=================  ================================================================================
``eager``          the PyTorch module as is
``inductor``       ``torch.compile`` (Inductor); CUDA graphs (``mode="reduce-overhead"``) on a GPU
``tensorrt``       Torch-TensorRT (dynamo frontend), engine saved with ``torch_tensorrt.save`` in
                   an on-disk cache (:class:`EngineKey`) and rebuilt when anything it depends on
                   changes
``onnxruntime``    an ONNX export (``torch.onnx.export(dynamo=True)``) run by onnxruntime: the CPU
                   provider, and the CUDA / TensorRT providers where present
=================  ================================================================================

and calls like the model it wraps: ``prepared(visible, infrared)`` on clips ``(B, T, 3, H, W)``
and, for causal networks with a streaming API (the ``edge`` preset),
``prepared.init_state(B, H, W)`` and ``fused_t, state = prepared.step(visible_t, infrared_t,
state)`` on frames ``(B, 3, H, W)``. Engines (``StreamingFuser``, ``ClipBuffer``) use it in place
of the model unchanged.

A compiled backend is built for one input shape (``example_shape``, batch, clip length); a call
with another shape runs the eager model (logged once per shape). If the requested backend cannot
be used — a package is missing, there is no GPU, the build fails, the warm-up output is not
finite or differs from the eager model's — the next one in the chain is tried
(``tensorrt → inductor → eager`` by default; ``auto`` on a CPU is ``onnxruntime → eager``,
the fastest there) and the reason is logged and kept in :attr:`PreparedModel.fallback_log`.
Warm-up (compilation, CUDA-graph capture, allocator) happens in :func:`prepare_model`, before
the first real frame.

One module per backend holds its runner: :mod:`.eager_backend`, :mod:`.inductor_backend`,
:mod:`.tensorrt_backend`, :mod:`.onnxruntime_backend`; :mod:`.cache` owns the engine cache (keys,
metadata, staleness). This module holds what they share: the configuration, the fallback chain,
warm-up and parity checks, and :class:`PreparedModel`.

Ahead-of-time builds (``temcoco export``) go through :func:`build_engine_file`, which writes the
same
cache entries :func:`prepare_model` looks up, so a robot never waits for a build at start-up.
Heavy optional packages (``torch_tensorrt``, ``tensorrt``, ``onnxruntime``) are imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
import contextlib
import ctypes
from dataclasses import dataclass, field, fields, replace
import functools
import gc
import importlib
import json
import logging
import os
from pathlib import Path
import sys
import time
from typing import Any

import torch
from torch import nn, Tensor

from .cache import (
    cached_engine_problem,
    default_cache_dir,
    engine_key,
    ENGINE_SUFFIXES,
    EngineKey,
    metadata_path,
    platform_info,
    read_content_hash,
    read_metadata,
    weights_digest,
    write_metadata,
)

__all__ = [
    "AUTO_CPU_CHAIN",
    "BACKENDS",
    "DEFAULT_FALLBACK",
    "PRECISIONS",
    "BackendConfig",
    "BackendError",
    "BackendUnavailableError",
    "EngineArtifact",
    "EngineFileError",
    "EngineKey",
    "InputSpec",
    "PreparedModel",
    "PreparedStreamingModel",
    "build_engine_file",
    "default_cache_dir",
    "engine_key",
    "platform_info",
    "prepare_model",
    "weights_digest",
]

log = logging.getLogger(__name__)

#: Backend names accepted by :class:`BackendConfig` (``"auto"`` = try the fallback chain).
BACKENDS: tuple[str, ...] = ("eager", "inductor", "tensorrt", "onnxruntime")
#: Precision names and the dtypes they compute in.
PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Tried in this order by ``name="auto"``; a named backend falls back to the entries after it.
DEFAULT_FALLBACK: tuple[str, ...] = ("tensorrt", "inductor", "eager")
#: ``name="auto"`` with the default fallback on a CPU: TensorRT cannot run there; measured with
#: ``temcoco bench --presets edge --backends eager,onnxruntime,inductor --sizes 320x256 --modes
#: stream --threads 1`` on an idle 2-core CPU, ONNX Runtime streams at 10.0 frames/s, eager at
#: 8.1 and Inductor at 5.6 (after compiling). ONNX Runtime is an optional extra: without it
#: ``auto`` falls back to eager, logged.
AUTO_CPU_CHAIN: tuple[str, ...] = ("onnxruntime", "eager")
MODES: tuple[str, ...] = ("stream", "clip")
_ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt",
            "torch_tensorrt": "tensorrt", "compile": "inductor", "torch": "eager"}
#: Warm-up outputs may differ from the eager model's by this much, relative to max(1, |ref|).
PARITY_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 1e-1}


class BackendError(ValueError):
    """A backend could not be prepared or used (the message says which and why)."""


class BackendUnavailableError(BackendError):
    """The backend cannot run here: a package is missing or the device does not suit it."""


class EngineFileError(BackendError):
    """An engine or ONNX file is corrupt, unreadable, or was built for another model.

    Input shape, precision, GPU or library version.
    """


# --------------------------------------------------------------------------------- config


def canonical_backend(name: str) -> str:
    """``"onnx"`` → ``"onnxruntime"``, ``"trt"`` → ``"tensorrt"`` …; ``ValueError`` if unknown."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in (*BACKENDS, "auto"):
        raise ValueError(f"unknown backend '{name}'; choose from {['auto', *BACKENDS]}")
    return key


@dataclass(frozen=True)
class BackendConfig:
    """How to run a network.

    Attributes:
        name: ``"eager"``, ``"inductor"``, ``"tensorrt"``, ``"onnxruntime"`` or ``"auto"``
            (try :attr:`fallback` in order; on a CPU with the default fallback:
            :data:`AUTO_CPU_CHAIN`). Aliases: ``onnx``, ``trt``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"``. fp16 on the CPU runs fp32 (logged).
        cache_dir: engine cache folder (default :func:`default_cache_dir`).
        fallback: backends tried, in order, when the requested one fails: those after it in
            this tuple (all of them when it is not in the tuple). ``()`` disables falling back.
        warmup: calls on random frames before the first real one (compiled backends ≥ 1).
        engine_path: a prebuilt ``.ep`` (TensorRT) or ``.onnx`` file, e.g. from
            ``temcoco export --output``; its backend is implied by the suffix. Errors with it are
            raised (:class:`EngineFileError`), never silently fallen back from.
        rebuild: ignore cached engines and build again.
        cuda_graphs: inductor on a GPU uses CUDA graphs (``mode="reduce-overhead"``).
        check_parity: compare warm-up outputs with the eager model (:data:`PARITY_TOLERANCE`);
            a compiled backend that disagrees is fallen back from.
        min_block_size, torch_executed_ops, require_full_compilation: Torch-TensorRT partitioning
            (``torch_executed_ops`` as ATen names, e.g. ``"aten.grid_sampler.default"``).
        onnx_opset: opset of ONNX exports.
        onnx_threads: onnxruntime intra-op threads (0: its default, one per core). On a CPU
            shared with other work, fewer threads than cores avoids spin-waiting stalls.
    """

    name: str = "auto"
    device: str = "cpu"
    precision: str = "fp32"
    cache_dir: str | os.PathLike | None = None
    fallback: tuple[str, ...] = DEFAULT_FALLBACK
    warmup: int = 2
    engine_path: str | os.PathLike | None = None
    rebuild: bool = False
    cuda_graphs: bool = True
    check_parity: bool = True
    min_block_size: int = 5
    torch_executed_ops: tuple[str, ...] = ()
    require_full_compilation: bool = False
    onnx_opset: int = 18
    onnx_threads: int = 0

    def __post_init__(self) -> None:
        name = canonical_backend(self.name)
        fallback = tuple(canonical_backend(b) for b in self.fallback)
        if "auto" in fallback:
            raise ValueError("BackendConfig.fallback lists backends, not 'auto'")
        precision = self.precision.strip().lower()
        precision = {"float32": "fp32", "float16": "fp16", "half": "fp16",
                     "bfloat16": "bf16"}.get(precision, precision)
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision '{self.precision}'; choose from "
                             f"{list(PRECISIONS)}")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise ValueError(f"unknown device '{self.device}'; use cpu, cuda or cuda:N") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda[:N], got '{self.device}'")
        if self.warmup < 0 or self.onnx_threads < 0 or self.min_block_size < 1:
            raise ValueError(f"warmup and onnx_threads must be >= 0 and min_block_size >= 1, "
                             f"got {self.warmup}, {self.onnx_threads}, {self.min_block_size}")
        if self.engine_path is not None:
            implied = _backend_of_file(Path(self.engine_path))
            if name not in ("auto", implied):
                raise ValueError(f"engine file {self.engine_path} is a {implied} engine but "
                                 f"backend '{name}' was asked for")
            name = implied
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "fallback", fallback)
        object.__setattr__(self, "precision", precision)
        object.__setattr__(self, "device", str(device))
        object.__setattr__(self, "torch_executed_ops", tuple(self.torch_executed_ops))

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()

    def chain(self) -> tuple[str, ...]:
        """Backends to try, in order (see :attr:`fallback`)."""
        if self.name == "auto":
            if self.fallback == DEFAULT_FALLBACK and self.torch_device.type == "cpu":
                return AUTO_CPU_CHAIN
            return self.fallback or ("eager",)
        if self.engine_path is not None:
            return (self.name,)
        rest = self.fallback
        if self.name in rest:
            rest = rest[rest.index(self.name) + 1:]
        return (self.name, *(b for b in rest if b != self.name))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BackendConfig:
        """Build from a dict (YAML, ROS parameters); unknown keys raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown backend option(s) {unknown}; known: {sorted(known)}")
        values = dict(values)
        for key in ("fallback", "torch_executed_ops"):
            if isinstance(values.get(key), str):
                values[key] = tuple(v for v in values[key].replace(" ", "").split(",") if v)
            elif key in values:
                values[key] = tuple(values[key])
        for key in ("cache_dir", "engine_path"):
            if values.get(key) == "":
                values[key] = None
        return cls(**values)


def _backend_of_file(path: Path) -> str:
    if path.suffix == ".onnx":
        return "onnxruntime"
    if path.suffix in (".ep", ".pt2"):
        return "tensorrt"
    raise ValueError(f"engine file {path}: unknown kind (expected .ep / .pt2 for TensorRT or "
                     f".onnx for onnxruntime)")


@dataclass(frozen=True)
class InputSpec:
    """The input a compiled backend is built for.

    ``mode="stream"``: one step on frames ``(batch, 3, height, width)`` with the model's
    streaming state; ``mode="clip"``: ``model(visible, infrared)`` on ``(batch, clip_length, 3,
    height, width)`` (also what sliding-window recompute calls).
    """

    mode: str
    height: int
    width: int
    batch: int = 1
    clip_length: int = 4

    def __post_init__(self) -> None:
        mode = {"window": "clip", "step": "stream"}.get(self.mode, self.mode)
        if mode not in MODES:
            raise ValueError(f"unknown mode '{self.mode}'; choose from {list(MODES)}")
        object.__setattr__(self, "mode", mode)
        if min(self.height, self.width, self.batch, self.clip_length) < 1:
            raise ValueError(f"input size must be positive, got batch {self.batch}, "
                             f"{self.width}x{self.height}, clip length {self.clip_length}")

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of ``visible`` (and ``infrared``) for one call."""
        if self.mode == "stream":
            return (self.batch, 3, self.height, self.width)
        return (self.batch, self.clip_length, 3, self.height, self.width)

    @property
    def tag(self) -> str:
        t = "" if self.mode == "stream" else f"T{self.clip_length}-"
        return f"{self.mode}-{t}b{self.batch}-{self.width}x{self.height}"


# ------------------------------------------------------------------- platform and cache key


# ------------------------------------------------------------------------- model adapters


def _has_step(model: nn.Module) -> bool:
    return callable(getattr(model, "step", None)) and callable(getattr(model, "init_state", None))


def _state_keys(model: nn.Module, spec: InputSpec) -> list[str]:
    shapes = getattr(model, "state_shapes", None)
    if callable(shapes):
        return sorted(shapes(spec.batch, spec.height, spec.width))
    return sorted(model.init_state(spec.batch, spec.height, spec.width, device="meta"))


class FlatStep(nn.Module):
    """A model's ``step`` with the state as positional tensors, for export and compilation.

    ``forward(visible, infrared, *state)`` with ``visible, infrared`` ``(B, 3, H, W)`` and
    ``state`` the tensors of ``model.init_state(B, H, W)`` in the order of :attr:`keys` →
    ``(fused (B, 3, H, W), *new_state)`` (row-major strides, same order).
    """

    def __init__(self, model: nn.Module, keys: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.keys = list(keys)

    def forward(self, visible: Tensor, infrared: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        fused, new = self.model.step(visible, infrared, dict(zip(self.keys, state)))
        return (fused, *(_canonical(new[k]) for k in self.keys))


def _canonical(x: Tensor) -> Tensor:
    """``x`` with row-major strides (a copy only if needed).

    ``Tensor.contiguous`` is not enough: a ``(1, C, H, W)`` slice of a larger buffer counts as
    contiguous but keeps the buffer's batch stride, and compiled graphs guard on exact strides
    (each new stride would recompile).
    """
    expected, step = [], 1
    for size in reversed(x.shape):
        expected.append(step)
        step *= size
    if tuple(reversed(expected)) == tuple(x.stride()):
        return x
    return x.clone(memory_format=torch.contiguous_format)


def _example_inputs(model: nn.Module, spec: InputSpec, device: torch.device,
                    dtype: torch.dtype, seed: int = 0) -> tuple[Tensor, ...]:
    """Random inputs of ``spec`` (plus a fresh state in stream mode), for tracing and warm-up."""
    generator = torch.Generator().manual_seed(seed)
    visible = torch.rand(spec.frame_shape, generator=generator).to(device, dtype)
    infrared = torch.rand(spec.frame_shape, generator=generator).to(device, dtype)
    if spec.mode == "clip":
        return visible, infrared
    state = model.init_state(spec.batch, spec.height, spec.width, device=device, dtype=dtype)
    return (visible, infrared, *(state[k] for k in _state_keys(model, spec)))


def _input_signature(model: nn.Module, spec: InputSpec, dtype: torch.dtype
                     ) -> tuple[Tensor, ...]:
    """Meta tensors shaped and typed like :func:`_example_inputs` (no memory, no computation)."""
    meta = torch.device("meta")
    frame = torch.empty(spec.frame_shape, device=meta, dtype=dtype)
    if spec.mode == "clip":
        return frame, frame
    state = model.init_state(spec.batch, spec.height, spec.width, device=meta, dtype=dtype)
    return (frame, frame, *(state[k] for k in _state_keys(model, spec)))


def _export_module(model: nn.Module, spec: InputSpec) -> nn.Module:
    return FlatStep(model, _state_keys(model, spec)).eval() if spec.mode == "stream" else model


# ------------------------------------------------------------------------------- runners


@dataclass
class _Runner:
    """A built backend: ``call(*flat_inputs) -> tuple of outputs`` on the :class:`InputSpec`.

    ``flat inputs`` are ``(visible, infrared)`` in clip mode and ``(visible, infrared,
    *state)`` in stream mode (state in :func:`_state_keys` order); outputs ``(fused,)`` or
    ``(fused, *new_state)``.
    """

    backend: str
    precision: str
    input_dtype: torch.dtype
    call: Callable[..., tuple[Tensor, ...]]
    engine_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    module: nn.Module | None = None


def _effective_precision(backend: str, config: BackendConfig, notes: list[str]) -> str:
    precision = config.precision
    # (TensorRT refuses CPUs anyway, with its own reason.)
    if config.torch_device.type == "cpu" and precision == "fp16" and backend != "tensorrt":
        notes.append(f"{backend}: fp16 is not supported on the CPU; running fp32")
        return "fp32"
    if backend == "onnxruntime" and precision == "bf16":
        notes.append("onnxruntime: bf16 is not supported; running fp32")
        return "fp32"
    return precision


def _require_cuda(backend: str, device: torch.device) -> None:
    if device.type != "cuda":
        raise BackendUnavailableError(f"{backend} needs a CUDA device (device is {device})")
    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"{backend} needs CUDA, but torch.cuda is not available "
                                      f"(torch {torch.__version__})")


def _import_optional(name: str, pip_name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"{name} is not installed ({exc}); install it with `pip install {pip_name}`"
        ) from None
    except Exception as exc:  # installed but broken (CUDA libraries, ABI): say so
        raise BackendUnavailableError(f"{name} failed to import: {exc}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


@dataclass(frozen=True)
class EngineArtifact:
    """A built (or found) engine file and the key it was built for."""

    backend: str
    path: Path
    key: EngineKey
    built: bool
    build_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "path": str(self.path),
                "metadata": str(metadata_path(self.path)), "built": self.built,
                "build_s": round(self.build_s, 3), "digest": self.key.digest(),
                "key": self.key.as_dict()}


def _artifact_options(backend: str, config: BackendConfig) -> str:
    if backend == "tensorrt":
        return json.dumps({"min_block_size": config.min_block_size,
                           "torch_executed_ops": sorted(config.torch_executed_ops),
                           "require_full_compilation": config.require_full_compilation})
    return json.dumps({"opset": config.onnx_opset})


def build_engine_file(model: nn.Module, config: BackendConfig, spec: InputSpec,
                      output: str | os.PathLike | None = None, weights: str | None = None,
                      notes: list[str] | None = None) -> EngineArtifact:
    """Build (or find in the cache) the TensorRT engine or ONNX file of ``model`` for ``spec``.

    Args:
        model: the fp32 network (not modified).
        config: ``name`` ``"tensorrt"`` or ``"onnxruntime"``; device, precision, cache folder,
            rebuild flag and partitioning options.
        spec: the input the engine is built for.
        output: write here instead of the cache (a metadata file ``<output>.json`` is written
            beside it); an existing matching file is kept unless ``config.rebuild``.
        weights: :func:`weights_digest` of ``model`` if already known.
        notes: appended with what happened (cache hit, stale entry rebuilt …).

    Returns:
        The file and its :class:`EngineKey`. A cached file whose metadata does not match the key
        (other weights, shape, precision, GPU, TensorRT or library version) is rebuilt.

    Raises:
        BackendUnavailableError: the package or device is missing. Build errors propagate.
    """
    notes = notes if notes is not None else []
    backend = config.name
    if backend not in ENGINE_SUFFIXES:
        raise ValueError(f"build_engine_file builds tensorrt or onnxruntime engines, not "
                         f"'{backend}'")
    precision = _effective_precision(backend, config, notes)
    device = config.torch_device
    if backend == "tensorrt":
        from .tensorrt_backend import tensorrt_compile_settings

        trt = _import_optional("torch_tensorrt", "torch-tensorrt")
        _require_cuda("tensorrt", device)
        _, cast = tensorrt_compile_settings(str(getattr(trt, "__version__", "")), precision)
    else:
        trt = None
        cast = PRECISIONS[precision]
    info = platform_info(device)
    inputs = _input_signature(model, spec, cast)
    key = engine_key(backend, model, spec, precision, info, inputs,
                     _artifact_options(backend, config), weights)
    if output is not None:
        path = Path(output)
    else:
        from .trust import CacheTrustError, private_dir

        try:
            path = private_dir(config.resolved_cache_dir) / key.filename(spec)
        except CacheTrustError as exc:
            raise EngineFileError(str(exc)) from None
    if path.is_file() and not config.rebuild:
        recorded = read_metadata(path)
        differences = key.mismatches(recorded) if recorded is not None else ["no metadata"]
        problem = None if differences else cached_engine_problem(path)
        if not differences and problem is None:
            notes.append(f"{backend}: using cached engine {path}")
            return EngineArtifact(backend, path, key, built=False)
        if problem is not None:
            log.warning("%s: refusing cached engine %s: %s; rebuilding", backend, path, problem)
            notes.append(f"{backend}: refusing cached engine {path}: {problem}; rebuilding")
        else:
            notes.append(f"{backend}: rebuilding {path}: it differs in "
                         f"{'; '.join(differences)}")
    start = time.perf_counter()
    log.info("building %s engine %s (this can take minutes)", backend, path)
    if backend == "tensorrt":
        from .tensorrt_backend import build

        build(trt, model, spec, config, precision, path)
    else:
        from .onnxruntime_backend import export_onnx

        export_onnx(model, spec, path, precision=precision, device=device,
                    opset=config.onnx_opset)
    build_s = time.perf_counter() - start
    write_metadata(path, key, build_s)
    notes.append(f"{backend}: built {path} in {build_s:.1f} s")
    return EngineArtifact(backend, path, key, built=True, build_s=build_s)


def _check_engine_file(path: Path, model: nn.Module, config: BackendConfig, spec: InputSpec,
                       precision: str, weights: str, cast: torch.dtype) -> None:
    """Check that an engine file exists and was built for this model.

    Raise :class:`EngineFileError` unless ``path`` exists and its metadata (if any) matches what
    this model, input, precision and platform need.
    """
    if not path.is_file():
        raise EngineFileError(f"engine file not found: {path}")
    if path.stat().st_size == 0:
        raise EngineFileError(f"engine file is empty: {path}")
    from .trust import file_sha256, untrusted_reason

    why = untrusted_reason(path)
    if why is not None and "owned by" not in why:  # another owner is fine for a file you name
        raise EngineFileError(f"refusing engine file {path}: {why}")
    recorded_hash = read_content_hash(path)
    if recorded_hash is not None and file_sha256(path) != recorded_hash:
        raise EngineFileError(f"refusing engine file {path}: its content hash does not match "
                              f"the one in {metadata_path(path).name} (modified after it was "
                              "built)")
    recorded = read_metadata(path)
    if recorded is None:
        log.warning("engine %s has no metadata file %s: cannot check that it matches the "
                    "model; the warm-up will", path, metadata_path(path).name)
        return
    inputs = _input_signature(model, spec, cast)
    key = engine_key(config.name, model, spec, precision, platform_info(config.device), inputs,
                     _artifact_options(config.name, config), weights)
    differences = key.mismatches(recorded)
    if differences:
        raise EngineFileError(
            f"engine {path} does not match: it differs in {'; '.join(differences)}. Rebuild it "
            f"with `temcoco export --backend {config.name}` for this model, size and device")


# ------------------------------------------------------------------------------ ONNX


# ---------------------------------------------------------------------------- prepared model


class PreparedModel(nn.Module):
    """A network bound to a backend, device and precision; calls like the network.

    ``prepared(visible, infrared)``: ``(B, T, 3, H, W) × 2 → (B, T, 3, H, W)``. Inputs are
    moved to :attr:`device` and cast to the backend's dtype; the output comes back in the input's
    dtype, so callers (the engines of :mod:`.streaming`) keep working in fp32. Other attributes
    (``config``, ``size_multiple`` …) are the network's.

    It is an ``nn.Module`` so that engines taking a network take it unchanged, but device and
    precision are fixed when it is prepared: ``.to(dtype)``, ``.half()`` … change nothing, and
    ``.to(another device)`` raises :class:`BackendError`. Inference only (``train()`` raises).

    Attributes:
        backend: the backend in use (after any fallback).
        requested: the first backend of the chain.
        precision: the precision in use (``"fp32"`` if fp16 was asked for on a CPU …).
        device: ``torch.device`` it runs on.
        spec: the :class:`InputSpec` the backend was built and warmed up for; other input shapes
            run the eager network (logged once per shape).
        fallback_log: why earlier backends were not used, and other notes (cache hits …).
        engine_path: the TensorRT engine / ONNX file in use, if any.
        model: the eager network (on :attr:`device`, in the eager dtype).
    """

    def __init__(self, model: nn.Module, runner: _Runner, spec: InputSpec,
                 device: torch.device, requested: str, fallback_log: list[str],
                 eager_dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self._runner = runner
        self.spec = spec
        self.device = device
        self.requested = requested
        self.fallback_log = fallback_log
        self._eager_dtype = eager_dtype
        self._warned_shapes: set[tuple[int, ...]] = set()
        super().train(False)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            model = self.__dict__.get("_modules", {}).get("model")
            if model is None or name.startswith("__"):
                raise
            return getattr(model, name)

    # -- fixed device and precision
    def to(self, *args: Any, **kwargs: Any) -> PreparedModel:  # type: ignore[override]
        device, _, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and not _same_device(torch.device(device), self.device):
            raise BackendError(f"this model was prepared for {self.device} ({self.backend}); "
                               f"prepare it again for {device}")
        return self

    def _apply(self, fn: Callable[..., Any], recurse: bool = True) -> PreparedModel:
        return self  # .half(), .float(), .cuda() …: precision and device are fixed

    def train(self, mode: bool = True) -> PreparedModel:
        if mode:
            raise BackendError("a prepared model is for inference only; train the network")
        return self

    # -- description
    @property
    def backend(self) -> str:
        return self._runner.backend

    @property
    def precision(self) -> str:
        return self._runner.precision

    @property
    def engine_path(self) -> Path | None:
        return self._runner.engine_path

    @property
    def compute_dtype(self) -> torch.dtype:
        """Dtype the compiled backend takes its inputs (and streaming state) in."""
        return self._runner.input_dtype

    def describe(self) -> dict[str, Any]:
        """What runs, for logs, ``/diagnostics`` and the bench (JSON-ready)."""
        return {"backend": self.backend, "requested": self.requested,
                "precision": self.precision, "device": str(self.device),
                "mode": self.spec.mode, "size": [self.spec.width, self.spec.height],
                "batch": self.spec.batch,
                "clip_length": self.spec.clip_length if self.spec.mode == "clip" else None,
                "engine_path": str(self.engine_path) if self.engine_path else None,
                "fallback_log": list(self.fallback_log)}

    def extra_repr(self) -> str:
        return (f"backend={self.backend!r}, precision={self.precision!r}, "
                f"device='{self.device}', spec={self.spec.tag!r}")

    # -- calls
    def _note_shape(self, shape: tuple[int, ...]) -> None:
        if self.backend != "eager" and shape not in self._warned_shapes:
            self._warned_shapes.add(shape)
            log.warning("%s backend is built for %s; input %s runs eager", self.backend,
                        self.spec.frame_shape, shape)

    def _cast(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        if x.is_floating_point():
            return x.to(device=self.device, dtype=dtype)
        return x.to(device=self.device)

    def _compiled_for(self, mode: str, visible: Tensor, infrared: Tensor) -> bool:
        shape = tuple(visible.shape)
        ok = (shape == self.spec.frame_shape and tuple(infrared.shape) == shape
              and visible.is_floating_point() and infrared.is_floating_point())
        if self.spec.mode == mode and not ok:
            self._note_shape(shape)
        return self.spec.mode == mode and ok

    def forward(self, visible: Tensor, infrared: Tensor) -> Tensor:
        """Fuse a clip: ``(B, T, 3, H, W) × 2 → (B, T, 3, H, W)`` (the network's forward)."""
        out_dtype = visible.dtype if visible.is_floating_point() else torch.float32
        with _plain_mode():
            if self._compiled_for("clip", visible, infrared):
                dtype = self._runner.input_dtype
                fused = self._runner.call(_plain(self._cast(visible, dtype)),
                                          _plain(self._cast(infrared, dtype)))[0]
            else:
                dtype = self._eager_dtype
                fused = self.model(self._cast(visible, dtype), self._cast(infrared, dtype))
        return fused.to(out_dtype)


class PreparedStreamingModel(PreparedModel):
    """A :class:`PreparedModel` of a causal network with the streaming API.

    ``state = prepared.init_state(B, H, W)``; ``fused_t, state = prepared.step(visible_t,
    infrared_t, state)`` with ``(B, 3, H, W)`` frames (the network's ``step``). State tensors
    may come in any float dtype (e.g. from an engine's own ``init_state``): they are cast to the
    backend's dtype, and the new state comes back in it.
    """

    def init_state(self, batch: int, height: int, width: int,
                   device: torch.device | str | None = None,
                   dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        """The network's fresh streaming state.

        The network's fresh state, by default on :attr:`device` in :attr:`compute_dtype` for the
        prepared size (the eager dtype for other sizes).
        """
        if dtype is None:
            prepared = (batch, height, width) == (self.spec.batch, self.spec.height,
                                                  self.spec.width)
            dtype = (self._runner.input_dtype if prepared and self.spec.mode == "stream"
                     else self._eager_dtype)
        return self.model.init_state(batch, height, width,
                                     device=self.device if device is None else device,
                                     dtype=dtype)

    def step(self, visible: Tensor, infrared: Tensor, state: Mapping[str, Tensor], *,
             first: bool | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Fuse one frame per stream: ``(B, 3, H, W) × 2, state → ((B, 3, H, W), new_state)``.

        ``first`` is the network's optional static first-frame hint (used by the eager backend,
        ignored by compiled ones, which derive it from the state). A state that does not fit
        raises the network's ``ValueError``; a failed call changes nothing.
        """
        out_dtype = visible.dtype if visible.is_floating_point() else torch.float32
        keys = self._state_keys()
        with _plain_mode():
            compiled = (self._runner.backend != "eager"
                        and self._compiled_for("stream", visible, infrared))
            if compiled and self._state_fits(state, keys):
                dtype = self._runner.input_dtype
                out = self._runner.call(_plain(self._cast(visible, dtype)),
                                        _plain(self._cast(infrared, dtype)),
                                        *(_plain(self._cast(state[k], dtype)) for k in keys))
                fused, new_state = out[0], dict(zip(keys, out[1:]))
            else:
                dtype = self._eager_dtype
                kwargs = {} if first is None else {"first": first}
                fused, new_state = self.model.step(
                    self._cast(visible, dtype), self._cast(infrared, dtype),
                    {k: self._cast(v, dtype) for k, v in state.items()}, **kwargs)
        return fused.to(out_dtype), dict(new_state)

    def _state_keys(self) -> list[str]:
        keys = self.__dict__.get("_keys")
        if keys is None:
            keys = _state_keys(self.model, self.spec) if self.spec.mode == "stream" else []
            self.__dict__["_keys"] = keys
        return keys

    def _state_fits(self, state: Mapping[str, Tensor], keys: list[str]) -> bool:
        if set(state) != set(keys):
            return False
        if "_shapes" not in self.__dict__:  # the prepared size's state shapes, found once
            shapes = getattr(self.model, "state_shapes", None)
            self.__dict__["_shapes"] = (shapes(self.spec.batch, self.spec.height, self.spec.width)
                                        if callable(shapes) else None)
        expected = self.__dict__["_shapes"]
        return expected is None or all(tuple(state[k].shape) == tuple(expected[k])
                                       for k in keys)


@contextlib.contextmanager
def _plain_mode() -> Iterator[None]:
    """No autograd, and *not* inference mode even inside a caller's ``torch.inference_mode``.

    ``torch.compile`` guards on whether inputs are inference tensors: a state that is an
    inference tensor on one call and a normal one on the next would recompile (minutes on a
    small CPU) at the first real frames. Running every call (and the warm-up) this way keeps
    all tensors the backend sees of one kind.
    """
    with torch.inference_mode(False), torch.no_grad():
        yield


def _plain(x: Tensor) -> Tensor:
    """``x``, or a normal-tensor copy of it if the caller made it in inference mode."""
    return x.clone() if x.is_inference() else x


def _same_device(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device() if torch.cuda.is_available() else 0
    return (a.index if a.index is not None else current) == \
        (b.index if b.index is not None else current)


# -------------------------------------------------------------------------------- prepare


def _build_runner(backend: str, model: nn.Module, config: BackendConfig, spec: InputSpec,
                  weights: Callable[[], str], notes: list[str]) -> _Runner:
    # The runners and the engine cache read ``config.name``: give them the backend being tried,
    # not the requested name (``auto``, or the head of a fallback chain).
    config = replace(config, name=backend)
    precision = _effective_precision(backend, config, notes)
    if backend == "eager":
        from .eager_backend import make_runner as eager
        return eager(model, config, spec, precision)
    if backend == "inductor":
        from .inductor_backend import make_runner as inductor
        return inductor(model, config, spec, precision)
    if backend == "tensorrt":
        from .tensorrt_backend import make_runner as tensorrt
        return tensorrt(model, config, spec, precision, weights())
    from .onnxruntime_backend import make_runner as onnxruntime
    return onnxruntime(model, config, spec, precision, weights())


def _warm_up_calls(backend: str, config: BackendConfig) -> int:
    """Warm-up calls of ``backend``: ``config.warmup``, with a minimum for compiled backends.

    Compiled backends get at least one, inductor with CUDA graphs at least three, as the graphs are
    recorded on the first calls.
    """
    calls = config.warmup if backend == "eager" else max(1, config.warmup)
    if backend == "inductor" and config.torch_device.type == "cuda" and config.cuda_graphs:
        calls = max(3, calls)
    return calls


def _warm_up_frames(spec: InputSpec, calls: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The ``(visible, infrared)`` random frames of the warm-up, CPU float32.

    Always the same (the first ``n`` of any longer run are those of a run of ``n``).
    """
    generator = torch.Generator().manual_seed(1234)
    for _ in range(calls):
        visible = torch.rand(spec.frame_shape, generator=generator)
        infrared = torch.rand(spec.frame_shape, generator=generator)
        yield visible, infrared


def _run_steps(runner: _Runner, model: nn.Module, spec: InputSpec, device: torch.device,
               calls: int) -> Iterator[Tensor]:
    """The fused outputs of ``runner`` on the ``calls`` warm-up frames.

    One at a time (stream mode carries the state from step to step; only the current one is held).
    """
    state = None
    if spec.mode == "stream":
        init = model.init_state(spec.batch, spec.height, spec.width, device=device,
                                dtype=runner.input_dtype)
        state = [init[k] for k in _state_keys(model, spec)]
        del init
    for visible, infrared in _warm_up_frames(spec, calls):
        out = runner.call(visible.to(device, runner.input_dtype),
                          infrared.to(device, runner.input_dtype), *(state or []))
        if state is not None:
            state = list(out[1:])
        fused = out[0]
        del out
        yield fused


def _reference_outputs(reference: _Runner, model: nn.Module, spec: InputSpec,
                       device: torch.device, calls: int) -> list[Tensor]:
    """The eager model's fused outputs on the warm-up frames, float32 on the CPU.

    Computed before the backend under test is built, and nothing but these outputs (a frame
    each) is kept: the eager activations and streaming state are freed (and handed back to the
    OS) before the backend allocates its own, so the parity check does not add the two peaks.
    """
    with _plain_mode():
        outputs = [fused.float().cpu().clone()
                   for fused in _run_steps(reference, model, spec, device, calls)]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    release_freed_memory()
    return outputs


def _warm_up(runner: _Runner, expected: Sequence[Tensor] | None, model: nn.Module,
             spec: InputSpec, device: torch.device, calls: int) -> None:
    """Run ``calls`` steps/clips on the warm-up frames.

    Compare each output with ``expected`` (the eager model's, :func:`_reference_outputs`) if given.
    Raises :class:`BackendError` on a wrong shape, non-finite output or disagreement beyond
    :data:`PARITY_TOLERANCE`.
    """
    tolerance = PARITY_TOLERANCE[runner.precision]
    if expected is not None and len(expected) < calls:
        raise ValueError(f"parity check needs {calls} reference outputs, got {len(expected)}")
    with _plain_mode():
        for index, fused in enumerate(_run_steps(runner, model, spec, device, calls)):
            if tuple(fused.shape) != spec.frame_shape:
                raise BackendError(f"{runner.backend}: warm-up output has shape "
                                   f"{tuple(fused.shape)}, expected {spec.frame_shape}")
            if not torch.isfinite(fused.float()).all():
                raise BackendError(f"{runner.backend}: warm-up output is not finite "
                                   f"({runner.precision} overflow?)")
            if expected is not None:
                ref = expected[index]
                error = (fused.float().cpu() - ref).abs().max().item()
                bound = tolerance * max(1.0, ref.abs().max().item())
                if not error <= bound:
                    raise BackendError(f"{runner.backend}: warm-up frame {index} differs from "
                                       f"eager by {error:.3g} (> {bound:.3g})")
        if device.type == "cuda":
            torch.cuda.synchronize(device)


def release_freed_memory() -> None:
    """Hand memory that Python, torch and onnxruntime have freed back to the OS.

    glibc's malloc keeps freed blocks in its heaps (after the first large block is freed it
    also stops using ``mmap`` for blocks of that size), so the resident size stays at its
    highest point; ``malloc_trim`` returns the free pages. A no-op where there is no glibc.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc.malloc_trim
    except (OSError, AttributeError):  # musl or another libc: nothing to trim
        return None


def prepare_model(model: nn.Module, config: BackendConfig | None = None,
                  example_shape: tuple[int, int] = (256, 320), mode: str = "stream",
                  clip_length: int = 4, batch: int = 1) -> PreparedModel:
    """Bind ``model`` to the first backend of ``config``'s chain that builds and warms up.

    Args:
        model: a fusion network (``build_model(...)``), fp32; it is not modified (the backends
            work on copies).
        config: backend, device, precision, cache and fallback (default: ``BackendConfig()``).
        example_shape: ``(H, W)`` of the frames the backend is built for.
        mode: ``"stream"`` (one ``step`` per frame; networks without a streaming API use
            ``"clip"``, logged) or ``"clip"`` (``model(visible, infrared)`` on
            ``(batch, clip_length, 3, H, W)``; also what window recompute calls).
        clip_length: ``T`` in clip mode.
        batch: ``B``.

    Returns:
        :class:`PreparedStreamingModel` if the network has ``step``/``init_state``, else
        :class:`PreparedModel`.

    Raises:
        EngineFileError: ``config.engine_path`` is missing, corrupt or built for something else.
        BackendUnavailableError: a CUDA device was asked for and CUDA is not available.
        BackendError: no backend of the chain could be used (the message lists why).
    """
    config = config or BackendConfig()
    height, width = example_shape
    streaming = _has_step(model)
    notes: list[str] = []
    if mode in ("stream", "step") and not streaming:
        notes.append(f"{type(model).__name__} has no streaming step: preparing clip mode "
                     f"(window recompute over T={clip_length})")
        mode = "clip"
    spec = InputSpec(mode, height, width, batch, clip_length)
    device = config.torch_device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device} requested but CUDA is not available "
                                      f"(torch {torch.__version__})")
    model = model.eval()
    digest: list[str] = []

    def weights() -> str:
        if not digest:
            digest.append(weights_digest(model))
        return digest[0]

    eager_notes: list[str] = []
    from .eager_backend import make_runner as make_eager_runner

    eager_precision = _effective_precision("eager", config, eager_notes)
    eager = make_eager_runner(model, config, spec, eager_precision)
    chain = config.chain()
    errors: list[str] = []
    expected: list[Tensor] = []  # the eager model's warm-up outputs (parity reference)
    for position, backend in enumerate(chain):
        backend_notes: list[str] = []
        start = time.perf_counter()
        try:
            calls = _warm_up_calls(backend, config)
            if config.check_parity and backend != "eager" and len(expected) < calls:
                # the eager outputs first: its memory is freed before the backend is built
                expected = _reference_outputs(eager, model, spec, device, calls)
            if backend == "eager":
                runner = eager
                backend_notes.extend(eager_notes)
            else:
                runner = _build_runner(backend, model, config, spec, weights, backend_notes)
            parity = config.check_parity and backend != "eager"
            _warm_up(runner, expected if parity else None, model, spec, device, calls)
        except EngineFileError as exc:
            if config.engine_path is not None:
                raise  # an engine file the user named: say what is wrong with it
            reason = _reason(exc)
        except Exception as exc:  # any build / compile / run failure: fall back and say why
            reason = _reason(exc)
        else:
            notes.extend(backend_notes + runner.notes)
            log.info("backend %s ready (%s, %s, %s) in %.1f s", backend, runner.precision,
                     device, spec.tag, time.perf_counter() - start)
            cls = PreparedStreamingModel if streaming else PreparedModel
            assert eager.module is not None
            expected.clear()
            release_freed_memory()  # what the warm-up freed, before the first real frame
            return cls(eager.module, runner, spec, device, chain[0], notes,
                       eager.input_dtype)
        following = chain[position + 1] if position + 1 < len(chain) else None
        message = f"{backend} failed: {reason}" + (f"; falling back to {following}"
                                                   if following else "")
        log.warning("%s", message)
        notes.extend(backend_notes)
        notes.append(message)
        errors.append(f"{backend}: {reason}")
    raise BackendError("no backend could be prepared: " + " | ".join(errors))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BackendError):
        return str(exc).splitlines()[0][:300]
    return _first_line(exc)
