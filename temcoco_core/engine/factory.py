# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Settings → fusion engine: the one place every engine is built.

The node (:mod:`temcoco_ros.fusion_node` through :class:`EngineHandle`), ``temcoco replay``,
``fuse``, ``demo`` and ``eval``'s model methods all call :func:`build_engine` with a
:class:`~temcoco_core.node_config.NodeConfig`, so one configuration runs the same way live and
offline.

Shape. A compiled backend (ONNX Runtime, TensorRT, Inductor) is built for one input size.
:class:`NetworkEngine` prepares it for the size it is really fed: at once when the settings fix
the model size (``input_width``/``input_height``), otherwise from the first frame (the first
message's size). The model and its weights load immediately, so bad weights or an absent
device fail at start-up; only the backend build waits for the first frame.

Failure policy. What the user asked for explicitly either works or is an
:class:`EngineBuildError` (one line, a non-zero exit on the command line, a failed
``configure`` in the node): a named ``backend`` is never replaced by another one, a ``device``
of ``cuda`` never by the CPU, given ``weights`` never by other weights or by the model-free
engine. Only ``auto`` values choose, and every choice is logged and kept in
:attr:`EngineInfo.fallback_log`: ``device: auto`` takes CUDA when present, ``backend: auto``
tries :func:`~temcoco_core.engine.backends.BackendConfig.chain` (``onnxruntime → eager`` on a
CPU, ``tensorrt → inductor → eager`` on CUDA).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import gc
import logging
import os
import time
from typing import Any, TYPE_CHECKING

import torch
from torch import nn, Tensor

from .average import AverageEngine
from .backends import BackendConfig, prepare_model
from .streaming import EngineConfig, has_step, make_streaming_engine

if TYPE_CHECKING:
    from temcoco_core.node_config import NodeConfig
    from temcoco_core.pipeline import Engine

__all__ = [
    "DelayEngine",
    "EngineBuildError",
    "EngineHandle",
    "EngineInfo",
    "NetworkEngine",
    "apply_cpu_threads",
    "build_engine",
    "default_cpu_threads",
    "resolve_device",
]

log = logging.getLogger(__name__)


class EngineBuildError(ValueError):
    """The configured model, weights, backend or device cannot be used.

    Attributes:
        fallback_log: what was tried or chosen before giving up, one line each.
    """

    def __init__(self, message: str, fallback_log: Sequence[str] = ()) -> None:
        self.fallback_log = list(fallback_log)
        super().__init__(message)


@dataclass
class EngineInfo:
    """What is running: reported in the log, in summaries and in ``/diagnostics``.

    ``backend``/``precision``/``shape`` are filled in when the backend is built (at the first
    frame when the model size follows the input).
    """

    kind: str
    preset: str = ""
    backend: str = ""
    precision: str = ""
    device: str = "cpu"
    mode: str = ""
    latency_frames: int = 0
    shape: tuple[int, int] | None = None
    fallback_log: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        if self.kind == "average":
            return "average (model-free)"
        size = f"{self.shape[1]}x{self.shape[0]}" if self.shape else "built at the first frame"
        return (f"{self.preset} {self.backend} {self.precision} on {self.device} ({self.mode}, "
                f"{size}, output latency {self.latency_frames} frames)")

    def as_values(self) -> dict[str, str]:
        return {"engine": self.description, "backend": self.backend or "none",
                "precision": self.precision or "fp32", "device": self.device}


def resolve_device(spec: str) -> str:
    """``auto`` → ``cuda`` when available, else ``cpu``; checks that CUDA devices exist.

    Raises:
        EngineBuildError: a CUDA device is asked for and is not there.
    """
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EngineBuildError(
                f"device {spec!r} requested but CUDA is not available to torch "
                f"{torch.__version__} (CPU-only build, no driver, or CUDA_VISIBLE_DEVICES); "
                "use device auto or cpu")
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise EngineBuildError(f"device {spec!r} requested but only "
                                   f"{torch.cuda.device_count()} CUDA device(s) are visible")
    return spec


def default_cpu_threads() -> int:
    """Inference threads for ``cpu_threads: 0``: half the usable cores, 1 to 4.

    More threads than that spin-wait against each other and against the rest of a robot's
    software on small CPUs (a busy 2-core machine runs a 640x480 frame ~4x slower with torch's
    default of one thread per core than with one thread).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def apply_cpu_threads(threads: int) -> int:
    """Set torch's intra-op threads (``0``: :func:`default_cpu_threads`); returns the count."""
    n = threads if threads > 0 else default_cpu_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class DelayEngine:
    """Wraps an engine and sleeps ``delay_s`` in every push.

    A deliberately slow backend for tests of the drop policy (``simulate_inference_ms``).
    """

    def __init__(self, engine: Engine, delay_s: float) -> None:
        self.engine = engine
        self.delay_s = float(delay_s)

    def push(self, visible: Tensor, infrared: Tensor) -> Tensor | None:
        time.sleep(self.delay_s)
        return self.engine.push(visible, infrared)

    def reset(self) -> None:
        self.engine.reset()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)


class NetworkEngine:
    """The network on its backend, prepared for the frame size it is really fed.

    ``push``/``reset``/``drain`` like :class:`~temcoco_core.engine.streaming.StreamingFuser`
    and :class:`~temcoco_core.engine.streaming.ClipBuffer`, which it wraps: the first push of
    a ``(3, H, W)`` size prepares the backend for ``(H, W)`` (``prepare_model``: build or
    load the cached engine, warm up, check parity) and the streaming/clip engine on top.
    The last ``keep`` sizes stay prepared. A build failure is raised as
    :class:`EngineBuildError` and raised again on every later push of that size (never
    retried frame after frame, never replaced by another backend unless ``auto``).

    Args:
        model: the fusion network (fp32, weights loaded).
        backend: backend, device, precision, cache and fallback chain.
        mode: ``stream``, ``clip`` or ``window`` (resolved, not ``auto``).
        length: frames per clip/window.
        info: updated with the backend that was built.
        shape: ``(H, W)`` to prepare now, or ``None``: at the first push.
    """

    def __init__(self, model: nn.Module, backend: BackendConfig, mode: str, length: int,
                 info: EngineInfo, shape: tuple[int, int] | None = None, keep: int = 2) -> None:
        self.model = model
        self.backend = backend
        self.mode = mode
        self.length = length
        self.info = info
        self.keep = max(1, keep)
        self._engines: OrderedDict[tuple[int, int], Any] = OrderedDict()
        self._errors: dict[tuple[int, int], EngineBuildError] = {}
        self._current: Any = None
        self._shape: tuple[int, int] | None = None
        #: ``(H, W)`` being prepared right now (diagnostics say so while outputs wait), or None
        self.building: tuple[int, int] | None = None
        if shape is not None:
            self._select(shape)

    @property
    def latency_frames(self) -> int:
        return self.length - 1 if self.mode == "clip" else 0

    @property
    def prepared_shapes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of the engines built so far (most recent last)."""
        return list(self._engines)

    def _select(self, shape: tuple[int, int]) -> None:
        if shape in self._errors:
            raise self._errors[shape]
        engine = self._engines.get(shape)
        if engine is None:
            engine = self._prepare(shape)
            self._engines[shape] = engine
            while len(self._engines) > self.keep:
                self._engines.popitem(last=False)
        else:
            self._engines.move_to_end(shape)
            engine.reset()
        self._current, self._shape = engine, shape

    def _prepare(self, shape: tuple[int, int]) -> Any:
        h, w = shape
        cfg = self.backend
        log.info("preparing the %s backend for %dx%d frames (%s, %s)", cfg.name, w, h,
                 cfg.precision, cfg.device)
        self.building = shape
        try:
            prepared = prepare_model(self.model, cfg, example_shape=shape,
                                     mode="stream" if self.mode == "stream" else "clip",
                                     clip_length=self.length)
        except (ValueError, OSError, RuntimeError) as exc:
            err = EngineBuildError(
                f"cannot prepare backend {cfg.name} ({cfg.precision}, {cfg.device}) for "
                f"{w}x{h} frames: {exc}", self.info.fallback_log)
            self._errors[shape] = err
            raise err from exc
        finally:
            self.building = None
        self.info.backend, self.info.precision, self.info.shape = (
            prepared.backend, prepared.precision, shape)
        self.info.fallback_log.extend(str(line) for line in prepared.fallback_log)
        for line in prepared.fallback_log:
            log.info("backend: %s", line)
        return make_streaming_engine(prepared, EngineConfig(
            mode=self.mode, length=self.length, device=cfg.device, dtype="float32"))

    def push(self, visible: Tensor, infrared: Tensor) -> Tensor | None:
        shape = (int(visible.shape[-2]), int(visible.shape[-1]))
        if shape != self._shape:
            self._select(shape)
        return self._current.push(visible, infrared)

    def reset(self) -> None:
        if self._current is not None:
            self._current.reset()

    def drain(self) -> list[Tensor]:
        return self._current.drain() if self._current is not None else []


def _model_shape(cfg: NodeConfig) -> tuple[int, int] | None:
    """``(H, W)`` of the tensors the engine will see when the settings fix it."""
    if cfg.model_size is None:
        return None
    from temcoco_core.frames.preprocess import compute_geometry

    w, h = compute_geometry(cfg.model_size, cfg.pipeline_config().preprocess).tensor_size
    return (h, w)


def _build_network(cfg: NodeConfig, fallback: list[str]) -> tuple[Engine, EngineInfo]:
    from temcoco_core.model import build_model

    device = resolve_device(cfg.device)
    if cfg.device == "auto":
        fallback.append(f"device auto -> {device}")
    weights = cfg.weights or None
    try:
        model = build_model(cfg.preset, pretrained=weights is None, weights=weights,
                            **cfg.model_options())
    except (ValueError, OSError, RuntimeError) as exc:
        what = f"weights {cfg.weights!r}" if weights else f"the {cfg.preset!r} default weights"
        raise EngineBuildError(f"cannot load preset {cfg.preset!r} with {what}: {exc}",
                               fallback) from exc
    mode = cfg.buffer_mode
    if mode == "auto":
        mode = "stream" if has_step(model) else "clip"
    threads = cfg.cpu_threads if cfg.cpu_threads > 0 else default_cpu_threads()
    try:
        backend = BackendConfig(
            name=cfg.backend, device=device, precision=cfg.precision,
            cache_dir=cfg.engine_cache_dir or None, engine_path=cfg.engine_path or None,
            rebuild=cfg.rebuild_engine, onnx_threads=threads,
            # the one failure policy: only `auto` chooses; a named backend works or fails
            **({} if cfg.backend == "auto" else {"fallback": ()}))
    except ValueError as exc:
        raise EngineBuildError(str(exc), fallback) from exc
    described = mode if mode == "stream" else f"{mode} of {cfg.buffer_length} frames"
    info = EngineInfo("model", cfg.preset, backend.name, backend.precision, device, described,
                      cfg.buffer_length - 1 if mode == "clip" else 0, None, fallback)
    engine = NetworkEngine(model, backend, mode, cfg.buffer_length, info, _model_shape(cfg))
    return engine, info


def build_engine(cfg: NodeConfig) -> tuple[Engine, EngineInfo]:
    """The fusion engine ``cfg`` asks for.

    It follows ``fusion_engine``, ``preset``, ``weights``, ``backend``, ``precision``,
    ``device``, ``buffer_mode``/``buffer_length``, the engine cache and ``cpu_threads``;
    ``simulate_inference_ms`` wraps it in a :class:`DelayEngine`.

    Sets torch's CPU threads to ``cpu_threads`` (0: :func:`default_cpu_threads`).

    Raises:
        EngineBuildError: unusable preset, weights, device or (for a fixed model size)
            backend; ``fallback_log`` lists what was tried.
    """
    fallback: list[str] = []
    threads = apply_cpu_threads(cfg.cpu_threads)
    if cfg.cpu_threads == 0:
        fallback.append(f"cpu_threads auto -> {threads}")
    if cfg.fusion_engine == "average":
        engine: Engine = AverageEngine()
        info = EngineInfo("average", backend="none", precision="fp32", device="cpu",
                          mode="stateless", fallback_log=fallback)
    else:
        engine, info = _build_network(cfg, fallback)
    if cfg.simulate_inference_ms > 0:
        engine = DelayEngine(engine, cfg.simulate_inference_ms / 1e3)
        info.mode += f", +{cfg.simulate_inference_ms:g} ms simulated"
    return engine, info


class EngineHandle:
    """Owns the engine across the node's lifecycle transitions.

    :meth:`load` builds it (configure), :meth:`release` drops it and returns its device memory
    to the driver (deactivate), and the next :meth:`load` builds it again (activate; cached
    TensorRT/ONNX engines make that fast).

    Args:
        factory: returns ``(engine, info)``; default :func:`build_engine` of ``cfg``.
    """

    def __init__(self, cfg: NodeConfig,
                 factory: Callable[[NodeConfig], tuple[Engine, EngineInfo]] = build_engine
                 ) -> None:
        self.cfg = cfg
        self._factory = factory
        self.engine: Engine | None = None
        self.info: EngineInfo | None = None
        self.loads = 0

    @property
    def loaded(self) -> bool:
        return self.engine is not None

    def load(self) -> Engine:
        """The engine, built if needed. Raises :class:`EngineBuildError`."""
        if self.engine is None:
            self.engine, self.info = self._factory(self.cfg)
            self.loads += 1
        return self.engine

    def release(self) -> int:
        """Drop the engine; returns the CUDA bytes freed (0 on CPU)."""
        if self.engine is None:
            return 0
        cuda = torch.cuda.is_available()
        before = torch.cuda.memory_allocated() if cuda else 0
        self.engine = None
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            return max(0, before - torch.cuda.memory_allocated())
        return 0
