"""Model → backend → engine: the one place a network engine is built.

Used by the ROS node's worker (:mod:`temcoco_core.worker`) and by replay/fuse/demo
(:func:`temcoco_core.pipeline.make_engine`), so a given configuration runs the same way live
and offline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .backends import BackendConfig, prepare_model
from .streaming import EngineConfig, has_step, make_engine

__all__ = ["NetworkEngineSpec", "NetworkEngine", "build_network_engine"]


@dataclass(frozen=True)
class NetworkEngineSpec:
    """What to build.

    Attributes:
        preset, weights: network (``build_model(preset, weights=…)``; ``weights=None`` loads the
            preset's default weights).
        device, backend, precision: see :class:`~temcoco_core.engine.backends.BackendConfig`.
        mode: ``auto`` (stream for causal networks, else clip), ``stream``, ``clip``, ``window``.
        length: frames of a clip / window (clip networks).
        example_shape: ``(H, W)`` the compiled backends are built for (other sizes run eager).
        cache_dir, engine_path, rebuild: engine cache options of the backends.
    """

    preset: str = "edge"
    weights: str | None = None
    device: str = "cpu"
    backend: str = "auto"
    precision: str = "fp32"
    mode: str = "auto"
    length: int = 8
    example_shape: tuple[int, int] = (256, 320)
    cache_dir: str | None = None
    engine_path: str | None = None
    rebuild: bool = False


@dataclass
class NetworkEngine:
    """A built engine (``push``/``reset``/``drain``) and what it runs on."""

    engine: object
    preset: str
    backend: str
    precision: str
    device: str
    mode: str
    latency_frames: int
    fallback_log: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (f"model preset={self.preset} ({self.mode}, backend {self.backend}, "
                f"{self.precision}, {self.device})")


def build_network_engine(spec: NetworkEngineSpec) -> NetworkEngine:
    """Build the network, prepare it on a backend (with its fallback chain) and wrap it in the
    streaming or clip engine.

    Raises:
        ValueError: unknown preset, missing/corrupt weights (``CheckpointError``), no usable
            backend (``BackendError``), bad options.
    """
    from temcoco_core.model import build_model

    model = build_model(spec.preset, pretrained=spec.weights is None, weights=spec.weights)
    mode = spec.mode
    if mode == "auto":
        mode = "stream" if has_step(model) else "clip"
    backend_cfg = BackendConfig(name=spec.backend, device=spec.device, precision=spec.precision,
                                cache_dir=spec.cache_dir, engine_path=spec.engine_path,
                                rebuild=spec.rebuild)
    prepared = prepare_model(model, backend_cfg, example_shape=spec.example_shape,
                             mode="stream" if mode == "stream" else "clip",
                             clip_length=spec.length)
    engine = make_engine(prepared, EngineConfig(mode=mode, length=spec.length,
                                                device=spec.device, dtype="float32"))
    described = mode if mode == "stream" else f"{mode} of {spec.length} frames"
    return NetworkEngine(engine, spec.preset, prepared.backend, prepared.precision, spec.device,
                         described, int(getattr(engine, "latency_frames", 0)),
                         [str(line) for line in prepared.fallback_log])
