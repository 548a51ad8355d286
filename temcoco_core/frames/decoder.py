# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Image messages → decoded frame pairs: the one conversion path of the node and replay.

:class:`FrameDecoder` turns one ``sensor_msgs/Image`` or ``CompressedImage`` (any duck-typed
object) into ``(array, encoding)``, through cv_bridge where that is faithful and
:func:`~temcoco_core.frames.image_msg.decode_image` otherwise; :func:`pair_to_frame` turns a
matched (RGB, thermal) set into the pipeline's :class:`FrameInput`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import logging
from typing import Any

import numpy as np

from temcoco_core.frames.image_msg import decode_image, to_grey, to_rgb
from temcoco_core.frames.pairing import MatchedSet

__all__ = [
    "BRIDGE_ENCODINGS",
    "FrameDecoder",
    "FrameInput",
    "ImageConversionError",
    "make_decoder",
    "pair_to_frame",
]

log = logging.getLogger(__name__)


@dataclass
class FrameInput:
    """A decoded frame pair entering the pipeline.

    Attributes:
        stamp_ns: header stamp of the RGB frame (the output carries it).
        visible: ``(H, W, 3)`` RGB, uint8/uint16/float.
        infrared: ``(h, w)`` raw thermal (any of uint8/uint16/float32), before normalisation.
        frame_id: header frame_id of the RGB frame.
        infrared_stamp_ns: stamp of the thermal frame (``None``: same as ``stamp_ns``).
        t_received: ``time.perf_counter()`` when the newest message of the pair arrived
            (latency origin); ``None``: when processing starts.
    """

    stamp_ns: int
    visible: np.ndarray
    infrared: np.ndarray
    frame_id: str = ""
    infrared_stamp_ns: int | None = None
    t_received: float | None = None


def pair_to_frame(pair: MatchedSet,
                  decode: Callable[[Any], tuple[np.ndarray, str]] = decode_image) -> FrameInput:
    """A matched (RGB, thermal) set with ``(msg, t_received)`` payloads → :class:`FrameInput`.

    ``decode(msg) -> (array, encoding)`` is core's :func:`decode_image` by default (the node
    passes its cv_bridge-or-core decoder). The output carries the RGB message's stamp and
    ``frame_id``; the latency origin is the arrival of the later message.

    Raises:
        FrameError: a message does not decode.
    """
    (rgb_msg, t_rgb), (th_msg, t_th) = pair.payloads
    rgb_arr, rgb_enc = decode(rgb_msg)
    th_arr, th_enc = decode(th_msg)
    header = getattr(rgb_msg, "header", None)
    frame_id = str(getattr(header, "frame_id", "")) if header is not None else ""
    return FrameInput(pair.stamps_ns[0], to_rgb(rgb_arr, rgb_enc), to_grey(th_arr, th_enc),
                      frame_id, pair.stamps_ns[1], max(t_rgb, t_th))


#: Encodings cv_bridge converts faithfully; everything else (``mono16``, ``16UC1``, ``32FC1``,
#: Bayer, 16-bit colour, compressed) always goes through :func:`~temcoco_core.frames.image_msg.
#: decode_image`, which keeps the bit depth.
BRIDGE_ENCODINGS = frozenset({"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "8UC3", "8UC4"})


class ImageConversionError(ValueError):
    """``image_conversion=cv_bridge`` was asked for but cv_bridge does not work here."""


class FrameDecoder:
    """Image message → ``(array, encoding)``: cv_bridge where it is safe, core otherwise.

    Args:
        bridge: ``bridge(msg) -> ndarray`` in the message's own encoding (the node passes
            ``lambda m: CvBridge().imgmsg_to_cv2(m, "passthrough")``), or ``None``: core only.
        note: why there is no bridge (logged by :meth:`describe`).

    A bridge that raises (cv_bridge built against NumPy 1 fails at the first conversion under
    NumPy 2 with ``_ARRAY_API not found``) is disabled for good and the frame is decoded by
    core instead: counted in ``bridge_failures``, reason in ``note``.
    """

    def __init__(self, bridge: Callable[[Any], np.ndarray] | None = None, note: str = "") -> None:
        self.bridge = bridge
        self.note = note
        self.bridge_frames = 0
        self.core_frames = 0
        self.bridge_failures = 0

    def decode(self, msg: Any) -> tuple[np.ndarray, str]:
        """Decode a raw or compressed image message.

        Raises:
            FrameError: unsupported encoding, truncated data (from the core decoder).
        """
        encoding = getattr(msg, "encoding", None)
        if self.bridge is not None and encoding in BRIDGE_ENCODINGS:
            try:
                arr = np.asarray(self.bridge(msg))
            except Exception as exc:  # any bridge failure falls back to core
                self.bridge_failures += 1
                self.bridge = None
                self.note = f"cv_bridge failed ({type(exc).__name__}: {exc}); using core"
                log.warning("image conversion: %s", self.note)
            else:
                self.bridge_frames += 1
                return arr, str(encoding)
        self.core_frames += 1
        return decode_image(msg)

    def describe(self) -> str:
        """One line for the log and diagnostics: which conversion is in use."""
        if self.bridge is not None:
            return (f"cv_bridge for {', '.join(sorted(BRIDGE_ENCODINGS))}; temcoco_core for "
                    "mono16, 16UC1, 32FC1, 16-bit colour, Bayer and compressed")
        return "temcoco_core for all encodings" + (f" ({self.note})" if self.note else "")

    def decode_pair(self, pair: MatchedSet) -> FrameInput:
        """Decode a matched (RGB, thermal) set.

        A matched (RGB, thermal) set → :class:`FrameInput` through this decoder
        (:func:`pair_to_frame`).
        """
        return pair_to_frame(pair, self.decode)


def make_decoder(mode: str, load_bridge: Callable[[], Callable[[Any], np.ndarray]]
                 ) -> FrameDecoder:
    """The decoder for ``image_conversion`` = ``auto``, ``cv_bridge`` or ``core``.

    Args:
        mode: the parameter value.
        load_bridge: imports cv_bridge and returns the conversion function (may raise anything:
            ``ImportError``, or cv_bridge's NumPy ABI errors, when it probes a conversion).

    Raises:
        ImageConversionError: ``mode="cv_bridge"`` and the bridge does not load.
    """
    if mode == "core":
        return FrameDecoder(None, "image_conversion=core")
    if mode not in ("auto", "cv_bridge"):
        raise ValueError(f"image_conversion must be auto, cv_bridge or core, got {mode!r}")
    try:
        bridge = load_bridge()
    except Exception as exc:  # ImportError, NumPy ABI errors, ...
        why = f"cv_bridge unavailable: {type(exc).__name__}: {exc}"
        if mode == "cv_bridge":
            raise ImageConversionError(
                f"image_conversion=cv_bridge but {why}; cv_bridge built against NumPy 1 fails "
                "under NumPy 2 -- use image_conversion:=auto or core") from exc
        return FrameDecoder(None, why)
    return FrameDecoder(bridge)
