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

Ahead-of-time builds (``temcoco export``) go through :func:`build_engine_file`, which writes the
same
cache entries :func:`prepare_model` looks up, so a robot never waits for a build at start-up.
Heavy optional packages (``torch_tensorrt``, ``tensorrt``, ``onnxruntime``) are imported lazily.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib
import json
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

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
    "PlatformInfo",
    "PreparedModel",
    "PreparedStreamingModel",
    "build_engine_file",
    "default_cache_dir",
    "engine_key",
    "export_onnx",
    "onnxruntime_providers",
    "parse_version",
    "platform_info",
    "prepare_model",
    "tensorrt_compile_settings",
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
#: Bumped when the layout of cached engines changes: old entries are then rebuilt.
ENGINE_FORMAT_VERSION = 1
_ALIASES = {"onnx": "onnxruntime", "ort": "onnxruntime", "trt": "tensorrt",
            "torch_tensorrt": "tensorrt", "compile": "inductor", "torch": "eager"}
_SUFFIXES = {"tensorrt": ".ep", "onnxruntime": ".onnx"}
#: Warm-up outputs may differ from the eager model's by this much, relative to max(1, |ref|).
PARITY_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2, "bf16": 1e-1}


class BackendError(ValueError):
    """A backend could not be prepared or used (the message says which and why)."""


class BackendUnavailableError(BackendError):
    """The backend cannot run here: a package is missing or the device does not suit it."""


class EngineFileError(BackendError):
    """An engine or ONNX file is corrupt, unreadable, or was built for another model, input
    shape, precision, GPU or library version."""


# --------------------------------------------------------------------------------- config


def default_cache_dir() -> Path:
    """Where built engines are cached: ``$TEMCOCO_ENGINE_CACHE``, else
    ``$XDG_CACHE_HOME/temcoco/engines`` (``~/.cache/temcoco/engines``)."""
    explicit = os.environ.get("TEMCOCO_ENGINE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "temcoco" / "engines"


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


def parse_version(text: str) -> tuple[int, ...]:
    """Leading numeric components: ``"2.13.0+cu128"`` → ``(2, 13, 0)``, ``"2.12.0.dev1"`` →
    ``(2, 12, 0)``; ``()`` if none."""
    parts = []
    for piece in re.split(r"[.+\-]", text.strip()):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
        if match.group() != piece:
            break
    return tuple(parts)


def _module_version(name: str) -> str:
    """``module.__version__`` or the installed distribution's version; ``""`` if absent."""
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except Exception:  # absent, or present but broken (e.g. missing CUDA libraries)
            module = None
    version = getattr(module, "__version__", None) if module is not None else None
    if version:
        return str(version)
    from importlib import metadata

    for dist in (name, name.replace("_", "-")):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


@dataclass(frozen=True)
class PlatformInfo:
    """What a built engine depends on besides the model and its input."""

    device_name: str
    compute_capability: str
    torch: str
    tensorrt: str
    torch_tensorrt: str
    onnxruntime: str


def platform_info(device: str | torch.device = "cpu") -> PlatformInfo:
    """Device name and compute capability (``""`` on the CPU) and library versions."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        capability = f"{major}.{minor}"
    else:
        name, capability = (platform.processor() or platform.machine() or "cpu"), ""
    return PlatformInfo(device_name=name, compute_capability=capability,
                        torch=torch.__version__, tensorrt=_module_version("tensorrt"),
                        torch_tensorrt=_module_version("torch_tensorrt"),
                        onnxruntime=_module_version("onnxruntime"))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of the model's class, config and every tensor of its state dict (names, dtypes,
    shapes, bytes), and of the source files of the (non-torch) classes it is built from, so
    that editing the network's code invalidates engines built from it."""
    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    digest.update(repr(getattr(model, "config", None)).encode())
    sources = set()
    for module in model.modules():
        name = type(module).__module__
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and name.split(".")[0] != "torch":
            sources.add(path)
    for path in sorted(sources):
        try:
            digest.update(Path(path).read_bytes())
        except OSError:
            digest.update(path.encode())
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        if data.numel():
            digest.update(memoryview(data.view(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on; its :meth:`digest` names the cache entry.

    Torch-TensorRT's own engine cache leaves out the GPU model and the TensorRT version; this
    key has both (an engine only runs on the compute capability and TensorRT it was built with).
    ONNX files are portable: their GPU and library fields are empty.
    """

    backend: str
    model: str
    weights_sha256: str
    mode: str
    inputs: tuple[tuple[str, tuple[int, ...], str], ...]
    precision: str
    device_name: str
    compute_capability: str
    tensorrt: str
    torch_tensorrt: str
    torch: str
    options: str = ""
    format_version: int = ENGINE_FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [[n, list(s), d] for n, s, d in self.inputs]
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def filename(self, spec: InputSpec) -> str:
        return (f"{self.model.lower()}-{self.backend}-{spec.tag}-{self.precision}-"
                f"{self.digest()[:16]}{_SUFFIXES[self.backend]}")

    def mismatches(self, recorded: Mapping[str, Any]) -> list[str]:
        """Human-readable differences between this key and one read from a metadata file."""
        mine = self.as_dict()
        out = []
        for name, value in mine.items():
            theirs = recorded.get(name, "<absent>")
            if theirs != value:
                if name == "weights_sha256":
                    out.append(f"weights/model code (file {str(theirs)[:12]}…, model "
                               f"{str(value)[:12]}…)")
                else:
                    out.append(f"{name} (file {theirs!r}, here {value!r})")
        return out


def engine_key(backend: str, model: nn.Module, spec: InputSpec, precision: str,
               platform_: PlatformInfo, inputs: Sequence[Tensor], options: str = "",
               weights: str | None = None) -> EngineKey:
    """The :class:`EngineKey` of ``model`` built by ``backend`` for ``inputs``."""
    described = tuple((f"arg{i}", tuple(t.shape), str(t.dtype).replace("torch.", ""))
                      for i, t in enumerate(inputs))
    portable = backend == "onnxruntime"
    return EngineKey(
        backend=backend, model=type(model).__name__,
        weights_sha256=weights or weights_digest(model), mode=spec.mode, inputs=described,
        precision=precision,
        device_name="" if portable else platform_.device_name,
        compute_capability="" if portable else platform_.compute_capability,
        tensorrt="" if portable else platform_.tensorrt,
        torch_tensorrt="" if portable else platform_.torch_tensorrt,
        torch="" if portable else platform_.torch, options=options)


def _metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_metadata(path: Path, key: EngineKey, build_s: float) -> Path:
    meta = {"key": key.as_dict(), "digest": key.digest(), "build_s": round(build_s, 3),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    target = _metadata_path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, target)
    return target


def _read_metadata(path: Path) -> dict[str, Any] | None:
    meta_path = _metadata_path(path)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        return meta["key"] if isinstance(meta.get("key"), dict) else None
    except (OSError, ValueError, AttributeError):
        return None


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
    """``x`` with row-major strides (a copy only if needed). ``Tensor.contiguous`` is not enough:
    a ``(1, C, H, W)`` slice of a larger buffer counts as contiguous but keeps the buffer's batch
    stride, and compiled graphs guard on exact strides (each new stride would recompile)."""
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


def _eager_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
                  precision: str) -> _Runner:
    dtype = PRECISIONS[precision]
    module = copy.deepcopy(model).to(config.torch_device, dtype).eval()
    flat = _export_module(module, spec)

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        out = flat(*inputs)
        return out if isinstance(out, tuple) else (out,)

    return _Runner("eager", precision, dtype, call, module=module)


def _inductor_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
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


def tensorrt_compile_settings(version: str, precision: str) -> tuple[dict[str, Any], torch.dtype]:
    """Precision arguments for ``torch_tensorrt.compile`` and the dtype to cast model and inputs
    to, by Torch-TensorRT version.

    Up to 2.12 the builder is weakly typed: the model and inputs stay fp32 and
    ``enabled_precisions={torch.half}`` lets TensorRT pick fp16 kernels. From 2.13 strong typing
    is always on and ``enabled_precisions`` is gone: the model and inputs are cast to the target
    dtype instead.
    """
    dtype = PRECISIONS[precision]
    parsed = parse_version(version)
    if not parsed:
        raise BackendUnavailableError(f"cannot read the torch_tensorrt version '{version}'")
    if parsed < (2, 13):
        precisions = {torch.float32} if precision == "fp32" else {torch.float32, dtype}
        return {"enabled_precisions": precisions}, torch.float32
    return {}, dtype


def _tensorrt_build(trt: Any, model: nn.Module, spec: InputSpec, config: BackendConfig,
                    precision: str, path: Path) -> None:
    """Export, compile with Torch-TensorRT and save to ``path`` (atomically)."""
    settings, cast = tensorrt_compile_settings(str(getattr(trt, "__version__", "")), precision)
    device = config.torch_device
    module = _export_module(copy.deepcopy(model).to(device, cast).eval(), spec)
    inputs = _example_inputs(model, spec, device, cast)
    program = torch.export.export(module, inputs, strict=False)
    executed = {_aten_op(name) for name in config.torch_executed_ops}
    compiled = trt.compile(
        program, ir="dynamo", inputs=list(inputs), device=device,
        min_block_size=config.min_block_size, torch_executed_ops=executed,
        require_full_compilation=config.require_full_compilation, **settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        trt.save(compiled, str(tmp), output_format="exported_program", arg_inputs=list(inputs))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
    try:
        loaded = trt.load(str(path))
        return loaded.module() if hasattr(loaded, "module") else loaded
    except Exception as exc:
        raise EngineFileError(f"TensorRT engine {path} could not be loaded "
                              f"({_first_line(exc)}); rebuild it with `temcoco export "
                              f"--backend tensorrt`") from None


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
                "metadata": str(_metadata_path(self.path)), "built": self.built,
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
    if backend not in _SUFFIXES:
        raise ValueError(f"build_engine_file builds tensorrt or onnxruntime engines, not "
                         f"'{backend}'")
    precision = _effective_precision(backend, config, notes)
    device = config.torch_device
    if backend == "tensorrt":
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
    path = Path(output) if output is not None else config.resolved_cache_dir / key.filename(spec)
    if path.is_file() and not config.rebuild:
        recorded = _read_metadata(path)
        differences = key.mismatches(recorded) if recorded is not None else ["no metadata"]
        if not differences:
            notes.append(f"{backend}: using cached engine {path}")
            return EngineArtifact(backend, path, key, built=False)
        notes.append(f"{backend}: rebuilding {path}: it differs in {'; '.join(differences)}")
    start = time.perf_counter()
    log.info("building %s engine %s (this can take minutes)", backend, path)
    if backend == "tensorrt":
        _tensorrt_build(trt, model, spec, config, precision, path)
    else:
        export_onnx(model, spec, path, precision=precision, device=device,
                    opset=config.onnx_opset)
    build_s = time.perf_counter() - start
    _write_metadata(path, key, build_s)
    notes.append(f"{backend}: built {path} in {build_s:.1f} s")
    return EngineArtifact(backend, path, key, built=True, build_s=build_s)


def _tensorrt_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
                     precision: str, weights: str) -> _Runner:
    trt = _import_optional("torch_tensorrt", "torch-tensorrt")
    _require_cuda("tensorrt", config.torch_device)
    notes: list[str] = []
    _, cast = tensorrt_compile_settings(str(getattr(trt, "__version__", "")), precision)
    if config.engine_path is not None:
        path = Path(config.engine_path)
        _check_engine_file(path, model, config, spec, precision, weights, cast)
        module = _load_tensorrt(trt, path)
    else:
        artifact = build_engine_file(model, config, spec, weights=weights, notes=notes)
        path = artifact.path
        try:
            module = _load_tensorrt(trt, path)
        except EngineFileError as exc:
            if artifact.built:
                raise
            notes.append(f"tensorrt: cached engine unusable ({exc}); rebuilding")
            artifact = build_engine_file(model, replace(config, rebuild=True), spec,
                                    weights=weights, notes=notes)
            module = _load_tensorrt(trt, artifact.path)

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        out = module(*inputs)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    return _Runner("tensorrt", precision, cast, call, engine_path=path, notes=notes)


def _check_engine_file(path: Path, model: nn.Module, config: BackendConfig, spec: InputSpec,
                       precision: str, weights: str, cast: torch.dtype) -> None:
    """Raise :class:`EngineFileError` unless ``path`` exists and its metadata (if any) matches
    what this model, input, precision and platform need."""
    if not path.is_file():
        raise EngineFileError(f"engine file not found: {path}")
    if path.stat().st_size == 0:
        raise EngineFileError(f"engine file is empty: {path}")
    recorded = _read_metadata(path)
    if recorded is None:
        log.warning("engine %s has no metadata file %s: cannot check that it matches the "
                    "model; the warm-up will", path, _metadata_path(path).name)
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


def export_onnx(model: nn.Module, spec: InputSpec, path: str | os.PathLike,
                precision: str = "fp32", device: str | torch.device = "cpu",
                opset: int = 18) -> Path:
    """Export ``model`` (clip forward, or in stream mode its ``step`` as :class:`FlatStep`) to
    ONNX with ``torch.onnx.export(dynamo=True)``, static shapes of ``spec``.

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
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.onnx")
    try:
        with torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(module, inputs, dynamo=True, input_names=names,
                                        output_names=outputs, opset_version=opset,
                                        external_data=False, verbose=False)
        program.save(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the ONNX exporter's progress prints off stdout (which may carry JSON) and its
    INFO logging quiet."""
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
    """onnxruntime execution providers (with options) for ``device``, best first.

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


def _onnx_session(ort: Any, path: Path, providers: list[tuple[str, dict[str, Any]]],
                  threads: int = 0) -> Any:
    if not path.is_file():
        raise EngineFileError(f"ONNX file not found: {path}")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads > 0:
            options.intra_op_num_threads = threads
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


def _onnxruntime_runner(model: nn.Module, config: BackendConfig, spec: InputSpec,
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
                                      config.resolved_cache_dir / "ort-trt" / ort_key)
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
    """Run a session on CUDA tensors without host copies (I/O binding; outputs are allocated
    by onnxruntime and handed over through DLPack)."""
    index = device.index or 0

    def call(*inputs: Tensor) -> tuple[Tensor, ...]:
        binding = session.io_binding()
        for name, tensor in zip(in_names, inputs):
            tensor = tensor.contiguous()
            binding.bind_input(name=name, device_type="cuda", device_id=index,
                               element_type=_numpy_type(tensor.dtype),
                               shape=tuple(tensor.shape), buffer_ptr=tensor.data_ptr())
        for name in out_names:
            binding.bind_output(name, "cuda", index)
        torch.cuda.current_stream(device).synchronize()
        session.run_with_iobinding(binding)
        return tuple(torch.from_dlpack(v.to_dlpack()) if hasattr(v, "to_dlpack")
                     else torch.from_numpy(v.numpy()).to(device)
                     for v in binding.get_outputs())

    return call


def _numpy_type(dtype: torch.dtype) -> Any:
    import numpy as np

    return {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}[dtype]


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
        """dtype the compiled backend takes its inputs (and streaming state) in."""
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
        """The network's fresh state, by default on :attr:`device` in :attr:`compute_dtype`
        for the prepared size (the eager dtype for other sizes)."""
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
            if (self._runner.backend != "eager" and self._compiled_for("stream", visible,
                                                                        infrared)
                    and self._state_fits(state, keys)):
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
        shapes = getattr(self.model, "state_shapes", None)
        if not callable(shapes):
            return True
        expected = shapes(self.spec.batch, self.spec.height, self.spec.width)
        return all(tuple(state[k].shape) == tuple(expected[k]) for k in keys)


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
        return _eager_runner(model, config, spec, precision)
    if backend == "inductor":
        return _inductor_runner(model, config, spec, precision)
    if backend == "tensorrt":
        return _tensorrt_runner(model, config, spec, precision, weights())
    return _onnxruntime_runner(model, config, spec, precision, weights())


def _warm_up(runner: _Runner, reference: _Runner | None, model: nn.Module, spec: InputSpec,
             device: torch.device, calls: int, check: bool) -> None:
    """Run ``calls`` steps/clips on random frames; compare with ``reference`` (the eager runner)
    if given. Raises :class:`BackendError` on non-finite output or disagreement."""
    tolerance = PARITY_TOLERANCE[runner.precision]
    generator = torch.Generator().manual_seed(1234)
    state = ref_state = None
    if spec.mode == "stream":
        keys = _state_keys(model, spec)
        init = model.init_state(spec.batch, spec.height, spec.width, device=device,
                                dtype=runner.input_dtype)
        state = [init[k] for k in keys]
        if reference is not None:
            init = model.init_state(spec.batch, spec.height, spec.width, device=device,
                                    dtype=reference.input_dtype)
            ref_state = [init[k] for k in keys]
    with _plain_mode():
        for index in range(calls):
            visible = torch.rand(spec.frame_shape, generator=generator).to(device)
            infrared = torch.rand(spec.frame_shape, generator=generator).to(device)
            args = [visible.to(runner.input_dtype), infrared.to(runner.input_dtype)]
            out = runner.call(*args, *(state or []))
            fused = out[0]
            if state is not None:
                state = list(out[1:])
            if tuple(fused.shape) != spec.frame_shape:
                raise BackendError(f"{runner.backend}: warm-up output has shape "
                                   f"{tuple(fused.shape)}, expected {spec.frame_shape}")
            if not torch.isfinite(fused.float()).all():
                raise BackendError(f"{runner.backend}: warm-up output is not finite "
                                   f"({runner.precision} overflow?)")
            if check and reference is not None:
                dtype = reference.input_dtype
                ref_out = reference.call(visible.to(dtype), infrared.to(dtype),
                                         *(ref_state or []))
                if ref_state is not None:
                    ref_state = list(ref_out[1:])
                ref = ref_out[0].float()
                error = (fused.float() - ref).abs().max().item()
                bound = tolerance * max(1.0, ref.abs().max().item())
                if not error <= bound:
                    raise BackendError(f"{runner.backend}: warm-up frame {index} differs from "
                                       f"eager by {error:.3g} (> {bound:.3g})")
        if device.type == "cuda":
            torch.cuda.synchronize(device)


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
    eager = _eager_runner(model, config, spec, _effective_precision("eager", config,
                                                                    eager_notes))
    chain = config.chain()
    errors: list[str] = []
    for position, backend in enumerate(chain):
        backend_notes: list[str] = []
        start = time.perf_counter()
        try:
            if backend == "eager":
                runner = eager
                backend_notes.extend(eager_notes)
            else:
                runner = _build_runner(backend, model, config, spec, weights, backend_notes)
            calls = config.warmup if backend == "eager" else max(1, config.warmup)
            if backend == "inductor" and device.type == "cuda" and config.cuda_graphs:
                calls = max(3, calls)  # CUDA graphs are recorded on the first calls
            reference = eager if (config.check_parity and backend != "eager") else None
            _warm_up(runner, reference, model, spec, device, calls, config.check_parity)
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
