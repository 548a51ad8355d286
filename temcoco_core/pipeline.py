# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The fusion loop shared by the ROS node, the bag replay and the video front end.

::

    source ─► pairing ─► decode ─► thermal gain ─► registration ─► to tensor ─► engine
           ─► to image ─► temporal metrics ─► sink          (+ diagnostics at every step)

:class:`FusionPipeline` owns everything between the source and the sink. Front ends feed it in
one of three ways:

* :meth:`FusionPipeline.add_message` -- one image message (``sensor_msgs/Image`` or
  ``CompressedImage``, any duck-typed object) of topic 0 (RGB) or 1 (thermal): pairing,
  decoding and fusion in one call (bag replay);
* :meth:`FusionPipeline.offer` then :meth:`FusionPipeline.process` -- pairing in the
  subscription callbacks, decoding and fusion in a worker thread that only takes the latest
  pair (the node);
* :meth:`FusionPipeline.fuse_frames` -- already decoded numpy frames (video files).

The engine is any object with ``push(visible, infrared) -> fused | None`` on ``(3, H, W)``
float tensors in ``[0, 1]`` and ``reset()`` (the streaming network engines, or the model-free
:class:`AverageEngine`). An engine that buffers clips returns ``None`` while it fills and then
one output per input, oldest first, and hands the rest over on ``drain()`` at the end; the
pipeline matches outputs to inputs with a FIFO, so a fused frame always carries the stamp and
``frame_id`` of the RGB frame it shows.

Temporal state (engine, thermal gain, online metrics) is reset whenever time jumps (the pairer's
``time_backwards``/``gap`` events) or the frame size changes, and every reset is counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
import functools
import logging
import time
from typing import Any, Protocol, TYPE_CHECKING, TypeVar

import cv2
import numpy as np
import torch

from temcoco_core.diagnostics import FusionDiagnostics, StatusValue
from temcoco_core.engine.average import AverageEngine
from temcoco_core.frames.decoder import FrameInput, pair_to_frame
from temcoco_core.frames.image_msg import decode_image, DEFAULT_MAX_INPUT_PIXELS
from temcoco_core.frames.pairing import (
    AddResult,
    ApproximatePairer,
    MatchedSet,
    PairingConfig,
    TimeEvent,
)
from temcoco_core.frames.preprocess import (
    ArrayPool,
    compute_geometry,
    FrameError,
    FrameGeometry,
    PreprocessConfig,
    resize_image,
    to_model_tensor,
    to_output_frame,
)
from temcoco_core.frames.registration import RegistrationConfig, ThermalRegistration
from temcoco_core.frames.thermal import ThermalConfig, ThermalNormalizer
from temcoco_core.health import failure_kind, FailureCounter, ThrottledLog
from temcoco_core.metrics import OnlineTemporalMetrics
from temcoco_core.metrics.alignment import AlignmentConfig, AlignmentMonitor

if TYPE_CHECKING:
    from temcoco_core.node_config import NodeConfig

__all__ = [
    "AverageEngine",
    "Engine",
    "FrameInput",
    "FusedFrame",
    "FusionPipeline",
    "PipelineConfig",
    "pair_to_frame",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_OUTPUT_SIZES = ("rgb", "model")


class Engine(Protocol):
    """What the pipeline needs from a fusion engine."""

    def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor | None:
        """Fuse one visible and infrared frame.

        ``(3, H, W)`` visible RGB and infrared grey×3 in ``[0, 1]`` → fused ``(3, H, W)`` (or
        ``None`` while a clip buffer fills).
        """
        ...

    def reset(self) -> None:
        """Forget all temporal state."""
        ...


@dataclass
class PipelineConfig:
    """Everything between the source and the sink.

    Attributes:
        preprocess: model size and resize policy.
        thermal: thermal normalisation policy.
        registration: optional thermal → RGB homography.
        pairing: approximate-time pairing (queue size, slop, gap threshold).
        output_size: ``"rgb"`` (the RGB frame's size) or ``"model"`` (the model's size).
        output_encoding: ``"rgb8"``, ``"bgr8"`` or ``"mono8"``.
        metrics: compute the per-frame temporal-consistency values
            (:class:`temcoco_core.metrics.OnlineTemporalMetrics`).
        metrics_max_side: the metrics run on frames scaled down (area averaging) so that the
            longer side is at most this; ``None``: full output size. Values are only
            comparable between runs with equal settings.
        metrics_flow: also compute ``flowD`` (optical flow between consecutive outputs, at
            the metrics size).
        max_input_pixels: largest ``width * height`` of an input image, checked before it is
            decoded (compressed headers included); ``None``: no cap.
        alignment: live thermal ↔ RGB alignment score
            (:class:`~temcoco_core.metrics.alignment.AlignmentMonitor`); ``None``: off.
    """

    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    thermal: ThermalConfig = field(default_factory=ThermalConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    pairing: PairingConfig = field(default_factory=PairingConfig)
    output_size: str = "rgb"
    output_encoding: str = "rgb8"
    metrics: bool = True
    metrics_max_side: int | None = 160
    metrics_flow: bool = False
    max_input_pixels: int | None = DEFAULT_MAX_INPUT_PIXELS
    alignment: AlignmentConfig | None = field(default_factory=AlignmentConfig)

    def __post_init__(self) -> None:
        if self.max_input_pixels is not None and self.max_input_pixels < 1:
            raise ValueError(f"PipelineConfig.max_input_pixels must be >= 1 or None, got "
                             f"{self.max_input_pixels}")
        if self.output_size not in _OUTPUT_SIZES:
            raise ValueError(f"PipelineConfig.output_size must be one of {_OUTPUT_SIZES}, got "
                             f"{self.output_size!r}")
        if self.output_encoding not in ("rgb8", "bgr8", "mono8"):
            raise ValueError("PipelineConfig.output_encoding must be rgb8, bgr8 or mono8, got "
                             f"{self.output_encoding!r}")


@dataclass
class FusedFrame:
    """One fused output frame.

    Attributes:
        stamp_ns, frame_id: those of the RGB frame this output shows.
        image: ``uint8`` in ``encoding``: ``(H, W, 3)`` or ``(H, W)``.
        encoding: ``"rgb8"``, ``"bgr8"`` or ``"mono8"``.
        latency_ms: from ``t_received`` (or processing start) to this output.
        metrics: per-frame temporal-consistency values (empty without metrics).
        visible: ``(H, W, 3)`` uint8 RGB input at the output size (previews, metrics; may be a
            read-only view of the input message).
        infrared_unit: ``(H, W)`` float32 normalised, registered thermal input in ``[0, 1]`` at
            the output size; :attr:`infrared` is its uint8 version.
        input_size: ``(W, H)`` of the RGB input this output was made from (the fused image
            is that image, scaled to ``image``'s size: its camera_info follows from it).
    """

    stamp_ns: int
    frame_id: str
    image: np.ndarray
    encoding: str
    latency_ms: float
    metrics: dict[str, float]
    visible: np.ndarray
    infrared_unit: np.ndarray
    input_size: tuple[int, int] | None = None

    @functools.cached_property
    def infrared(self) -> np.ndarray:
        """``(H, W)`` uint8 normalised thermal input at the output size."""
        return _to_u8(self.infrared_unit)


@dataclass
class _Pending:
    stamp_ns: int
    frame_id: str
    t0: float
    visible: np.ndarray
    infrared: np.ndarray
    geometry: Any
    out_size: tuple[int, int] | None


def _to_u8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return (img >> 8).astype(np.uint8)
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class FusionPipeline:
    """Pairing → decoding → thermal gain → registration → engine → output, with diagnostics.

    Args:
        engine: fusion engine (see :class:`Engine`).
        cfg: pipeline configuration.
        topic_names: names of the RGB and thermal inputs (counters, diagnostics).
        diagnostics: diagnostics accumulator (a new one by default).
        engine_description: reported in diagnostics and summaries: text, or an object whose
            ``description`` is read each time (an :class:`~temcoco_core.engine.factory.
            EngineInfo` whose backend is known after the first frame).
    """

    def __init__(self, engine: Engine, cfg: PipelineConfig | None = None,
                 topic_names: Sequence[str] = ("rgb", "thermal"),
                 diagnostics: FusionDiagnostics | None = None,
                 engine_description: Any = "") -> None:
        self.cfg = cfg or PipelineConfig()
        self.engine = engine
        self.engine_description = engine_description or type(engine).__name__
        self.topic_names = list(topic_names)
        self.pairer = ApproximatePairer(2, self.cfg.pairing, self.topic_names)
        self.thermal = ThermalNormalizer(self.cfg.thermal)
        self.registration = ThermalRegistration(self.cfg.registration)
        self.diagnostics = diagnostics or FusionDiagnostics()
        self.metrics = (OnlineTemporalMetrics(flow_scale=1.0, compute_flow=self.cfg.metrics_flow)
                        if self.cfg.metrics else None)
        self.alignment = (AlignmentMonitor(self.cfg.alignment)
                          if self.cfg.alignment is not None else None)
        self._pending: deque[_Pending] = deque()
        self._pool = ArrayPool()
        self._last_size: tuple[int, int] | None = None
        self._geometry: FrameGeometry | None = None
        self.frames_in = 0
        self.frames_out = 0
        self.frames_failed = 0
        self.failures = FailureCounter()
        self._failure_log = ThrottledLog(log, 5.0)
        self.flushed = 0
        self.timings: dict[str, float] = {k: 0.0 for k in (
            "decode", "thermal", "preprocess", "engine", "postprocess", "metrics", "alignment")}

    @classmethod
    def from_settings(cls, settings: NodeConfig, engine: Engine,
                      topic_names: Sequence[str] | None = None,
                      diagnostics: FusionDiagnostics | None = None,
                      engine_description: Any = "") -> FusionPipeline:
        """The pipeline the node's parameters describe.

        The one construction path of the node's worker, ``temcoco replay``, ``fuse`` and ``demo``.

        Args:
            settings: the node's parameters (:class:`~temcoco_core.node_config.NodeConfig`).
            engine: the fusion engine (``push(visible, infrared)``).
            topic_names: RGB and thermal input names (default: the configured topics).
            diagnostics: accumulator (default: a new one with ``drop_warn_ratio``).
            engine_description: what the worker status says the engine is.
        """
        names = list(topic_names or (settings.rgb_topic, settings.thermal_topic))
        diag = diagnostics or FusionDiagnostics(max_drop_ratio=settings.drop_warn_ratio)
        return cls(engine, settings.pipeline_config(), names, diag, engine_description)

    @property
    def engine_description(self) -> str:
        d = self._engine_description
        return str(getattr(d, "description", d))

    @engine_description.setter
    def engine_description(self, value: Any) -> None:
        self._engine_description = value

    # ------------------------------------------------------------------ resets
    def reset(self, reason: str) -> None:
        """Reset all temporal state (engine, thermal gain, metrics) and count ``reason``.

        Frames still inside the engine's clip buffer are discarded (counted in ``flushed``).
        """
        self.engine.reset()
        self.thermal.reset()
        if self.metrics is not None:
            self.metrics.reset()
        self.flushed += len(self._pending)
        self._pending.clear()
        self.diagnostics.reset_event(reason)
        log.debug("temporal state reset: %s", reason)

    def handle_events(self, events: Iterable[TimeEvent]) -> None:
        """Apply the pairer's time events (reset on ``time_backwards`` and ``gap``)."""
        for ev in events:
            if ev.reset:
                self.reset(ev.kind)

    def record_failure(self, exc: BaseException, where: str = "") -> str:
        """Count one failed frame by kind, report it in diagnostics and log it throttled.

        Kinds include ``decode_error``, ``too_large``, ``non_finite``, ``size_mismatch`` and
        ``inference_error``. Returns the kind.
        """
        kind = failure_kind(exc)
        text = f"{where}: {exc}" if where else str(exc)
        self.frames_failed += 1
        self.failures.record(kind, text)
        self.diagnostics.error(f"{kind}: {text}")
        level = logging.ERROR if kind == "inference_error" else logging.WARNING
        self._failure_log.log(level, kind, f"skipping a frame ({kind}): {text}")
        return kind

    def decode(self, msg: Any) -> tuple[np.ndarray, str]:
        """Core decoding with this pipeline's ``max_input_pixels`` cap."""
        return decode_image(msg, self.cfg.max_input_pixels)

    def name_errors(self, pair: MatchedSet, fn: Callable[[Any], _T]) -> Callable[[Any], _T]:
        """Run ``fn(msg)``, naming the input topic in its errors.

        ``fn(msg)`` (decoding, a size check) whose :class:`FrameError` s name the input topic of
        the pair's message that failed.
        """
        names = {id(p[0]): n for p, n in zip(pair.payloads, self.topic_names)}

        def named(msg: Any) -> _T:
            try:
                return fn(msg)
            except FrameError as exc:
                name = names.get(id(msg))
                if name is None:
                    raise
                raise type(exc)(f"{name}: {exc}") from None

        return named

    # ------------------------------------------------------------------ message front end
    def offer(self, topic_index: int, stamp_ns: int, msg: Any,
              receive_ns: int | None = None) -> AddResult:
        """Pair one message (0: RGB, 1: thermal); cheap, no decoding.

        The caller passes the result's ``pair`` and ``events`` to :meth:`process`.

        ``receive_ns``: arrival time on the header stamps' clock (node clock, bag log time);
        enables receive-time stamps for unstamped input and clock re-synchronisation.
        """
        self.diagnostics.input(self.topic_names[topic_index], stamp_ns)
        return self.pairer.add(topic_index, stamp_ns, (msg, time.perf_counter()), receive_ns)

    def process(self, pair: MatchedSet | None,
                events: Iterable[TimeEvent] = ()) -> list[FusedFrame]:
        """Decode and fuse one matched (RGB message, thermal message) set.

        Raises:
            FrameError: a message does not decode or the frames do not fit together.
        """
        self.handle_events(events)
        if pair is None:
            return []
        t0 = time.perf_counter()
        try:
            frame = pair_to_frame(pair, self.name_errors(pair, self.decode))
        except FrameError as exc:
            self.record_failure(exc)
            raise
        self.timings["decode"] += time.perf_counter() - t0
        return self.fuse_frames(frame)

    def add_message(self, topic_index: int, stamp_ns: int, msg: Any,
                    receive_ns: int | None = None) -> list[FusedFrame]:
        """:meth:`offer` + :meth:`process`: the whole step for one incoming message."""
        res = self.offer(topic_index, stamp_ns, msg, receive_ns)
        return self.process(res.pair, res.events)

    # ------------------------------------------------------------------ frame front end
    def fuse_frames(self, frame: FrameInput) -> list[FusedFrame]:
        """Fuse one decoded pair; returns the outputs that became ready (0 or 1).

        Only :meth:`finish` may return more.

        Raises:
            FrameError: shapes/dtypes that do not fit (the frame is counted as failed).
        """
        try:
            return self._fuse(frame)
        except FrameError as exc:
            self.record_failure(exc)
            raise

    def _fuse(self, frame: FrameInput) -> list[FusedFrame]:
        cfg = self.cfg
        t0 = frame.t_received if frame.t_received is not None else time.perf_counter()
        visible = np.asarray(frame.visible)
        if visible.ndim != 3 or visible.shape[2] != 3:
            raise FrameError(f"visible frame must be (H, W, 3) RGB, got shape {visible.shape}")
        vh, vw = visible.shape[:2]
        size = (vw, vh)
        if self._last_size is not None and size != self._last_size:
            self.reset("size_change")
        self._last_size = size

        t = time.perf_counter()
        # thermal gain on the camera's own pixels (its statistics must not see the area outside
        # the thermal field of view), then registration straight to the model's content size
        # (the homography is in full-resolution pixels; one resampling instead of two)
        th_native = self.thermal(frame.infrared, frame.infrared_stamp_ns or frame.stamp_ns)
        geom = self._geometry
        if geom is None or geom.input_size != size:  # once per frame size
            geom = self._geometry = compute_geometry(size, cfg.preprocess)
        at_model = self.registration.enabled and geom.content_size != size
        reg_size = geom.content_size if at_model else None
        ir = self.registration(th_native, size, reg_size)
        t1 = time.perf_counter()
        self.timings["thermal"] += t1 - t
        vis_t, ir_t = to_model_tensor(visible, ir, cfg.preprocess, self._pool,
                                      infrared_at_content_size=at_model)
        t2 = time.perf_counter()
        self.timings["preprocess"] += t2 - t1
        if self.alignment is not None:
            th_size = (th_native.shape[1], th_native.shape[0])
            self.alignment.update(visible, ir,
                                  self.registration.valid_mask(th_size, size, reg_size))
            t3 = time.perf_counter()
            self.timings["alignment"] += t3 - t2
            t2 = t3

        out_size = size if cfg.output_size == "rgb" else None
        if cfg.output_size == "rgb":
            vis_u8 = _to_u8(visible)
            ir_out = ir if ir.shape == (vh, vw) else resize_image(ir, size)
        else:
            vis_u8 = _to_u8(resize_image(visible, geom.content_size))
            ir_out = resize_image(ir, geom.content_size)
        self._pending.append(_Pending(frame.stamp_ns, frame.frame_id, t0, vis_u8, ir_out, geom,
                                      out_size))
        try:
            fused = self.engine.push(vis_t, ir_t)
        except BaseException:
            self._pending.pop()  # the engine took nothing in (its documented error policy)
            raise
        self.frames_in += 1
        t3 = time.perf_counter()
        self.timings["engine"] += t3 - t2
        if fused is None:
            return []
        return [self._emit(fused)]

    def _emit(self, fused: torch.Tensor) -> FusedFrame:
        cfg = self.cfg
        t = time.perf_counter()
        meta = self._pending.popleft()
        rgb = to_output_frame(fused, meta.out_size, "rgb8", meta.geometry, self._pool)
        if cfg.output_encoding == "rgb8":
            image = rgb
        elif cfg.output_encoding == "bgr8":
            image = np.ascontiguousarray(rgb[:, :, ::-1])
        else:
            image = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        t1 = time.perf_counter()
        self.timings["postprocess"] += t1 - t
        values: dict[str, float] = {}
        if self.metrics is not None:
            f, v, i = rgb, meta.visible, meta.infrared
            side = cfg.metrics_max_side
            h, w = rgb.shape[:2]
            if side is not None and max(h, w) > side:
                size = (max(1, round(w * side / max(h, w))), max(1, round(h * side / max(h, w))))
                f, v, i = (resize_image(x, size) for x in (f, v, i))
            i = _to_u8(i)
            values = {k: float(v) for k, v in self.metrics.update(f, v, i).items()}
            self.diagnostics.metrics = values
        t2 = time.perf_counter()
        self.timings["metrics"] += t2 - t1
        latency_ms = (t2 - meta.t0) * 1e3
        self.diagnostics.output(meta.stamp_ns, latency_ms)
        self.frames_out += 1
        return FusedFrame(meta.stamp_ns, meta.frame_id, image, cfg.output_encoding, latency_ms,
                          values, meta.visible, meta.infrared,
                          getattr(meta.geometry, "input_size", None))

    # ------------------------------------------------------------------ end of stream
    def finish(self) -> list[FusedFrame]:
        """End of stream: collect the outputs a clip engine still owes, count unpaired messages.

        The owed outputs come from the engine's ``drain()`` (or ``flush()``).
        """
        outs: list[FusedFrame] = []
        drain: Callable[[], Any] | None = (getattr(self.engine, "drain", None)
                                           or getattr(self.engine, "flush", None))
        if callable(drain) and self._pending:
            rest = drain() or []
            if isinstance(rest, torch.Tensor):
                rest = list(rest) if rest.ndim == 4 else [rest]
            for fused in rest:
                if not self._pending:
                    break
                outs.append(self._emit(fused))
        self.flushed += len(self._pending)
        self._pending.clear()
        self.pairer.flush()
        return outs

    # ------------------------------------------------------------------ reporting
    def statuses(self) -> list[StatusValue]:
        """Diagnostic statuses for ``/diagnostics``."""
        extra = {"engine": self.engine_description, "frames_failed": self.frames_failed,
                 "thermal_gain_jumps": self.thermal.stats.gain_jumps,
                 "thermal_stripes_grey": round(self._stripe_grey(), 2)}
        extra.update({f"failed {k}": v for k, v in sorted(self.failures.snapshot().items())})
        out = with_stamp_notes(self.diagnostics.statuses(self.pairer.summary(), extra),
                               self.pairer.notes())
        if self.alignment is not None:
            out.append(self.alignment.status(self.diagnostics.name,
                                             self.diagnostics.hardware_id))
        return out

    def _stripe_grey(self) -> float:
        """RMS of the thermal fixed-pattern offsets being removed, in 8-bit grey levels."""
        return 255.0 * self.thermal.stripes.amplitude

    def summary(self) -> dict[str, Any]:
        """Counters, latency and per-stage time per frame as plain data."""
        n = max(self.frames_in, 1)
        return {
            "engine": self.engine_description,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "frames_failed": self.frames_failed,
            "failures": self.failures.as_dict(),
            "flushed": self.flushed,
            "resets": dict(self.diagnostics.resets),
            "pairing": self.pairer.summary(),
            "latency": self.diagnostics.latency.summary(),
            "stage_ms_per_frame": {k: v * 1e3 / n for k, v in self.timings.items()},
            "thermal_gain_jumps": self.thermal.stats.gain_jumps,
            "thermal_stripes_grey": self._stripe_grey(),
            "alignment": self.alignment.summary() if self.alignment is not None else {},
        }


def with_stamp_notes(statuses: list[StatusValue], notes: Sequence[str]) -> list[StatusValue]:
    """Raise the pairing status to WARN with the timeline's notes (unstamped input, clock jumps).

    So ``/diagnostics`` names the topic.
    """
    if not notes:
        return statuses
    from temcoco_core.diagnostics import DiagnosticLevel

    for st in statuses:
        if st.name.endswith(": pairing"):
            st.level = max(st.level, DiagnosticLevel.WARN)
            st.message = "; ".join(notes) + ("" if st.message == "pairing" else
                                             f"; {st.message}")
            st.values["stamp notes"] = " | ".join(notes)
    return statuses
