# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Pluggable dense optical flow and backward warping for the temporal metrics.

A flow estimator is any callable ``est(src, dst) -> flow`` with ``src``, ``dst`` (H, W, 3)
uint8 RGB and ``flow`` (H, W, 2) float32 ``(dx, dy)`` in pixels such that
``src[y, x] ≈ dst[y + dy, x + dx]`` (flow *from* ``src`` *to* ``dst``).

* :class:`DISFlow` (default, CPU, no weights): OpenCV's Dense Inverse Search
  (Kroeger et al., ECCV 2016). It replaces SEA-RAFT (Wang et al., ECCV 2024), the estimator of
  the released TemCoCo evaluator, which needs network weights and a GPU to be practical.
* :class:`FarnebackFlow`: OpenCV Farnebäck (the estimator of TecoGAN's tOF).
* :class:`TorchFlowEstimator`: adapter for a RAFT-family ``nn.Module`` whose weights you have
  (SEA-RAFT, RAFT...): ``module(img1, img2)`` on (1, 3, h, w) float 0-255 tensors returning
  (1, 2, h, w) flow or a list of iterative predictions (the last is used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

__all__ = [
    "DISFlow",
    "FarnebackFlow",
    "FlowEstimator",
    "FlowError",
    "TorchFlowEstimator",
    "available_flow_estimators",
    "get_flow_estimator",
    "warp_backward",
]


class FlowError(ValueError):
    """Bad input to a flow estimator, or an unknown estimator name."""


@runtime_checkable
class FlowEstimator(Protocol):
    """An optical flow estimator.

    ``(src (H, W, 3) uint8 RGB, dst (H, W, 3) uint8 RGB) -> (H, W, 2) float32`` flow from ``src``
    to ``dst``; ``name`` says which estimator (for reports).
    """

    name: str

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray: ...


def _grey(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        raise FlowError(f"flow input must be uint8, got {img.dtype}")
    if img.ndim == 2:
        return img
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    raise FlowError(f"flow input must be (H, W, 3) RGB or (H, W) grey, got {img.shape}")


def _check_pair(src: np.ndarray, dst: np.ndarray) -> None:
    if src.shape[:2] != dst.shape[:2]:
        raise FlowError(f"flow inputs differ in size: {src.shape[:2]} vs {dst.shape[:2]}")


def _resize_flow(flow: np.ndarray, size_hw: tuple[int, int], rescale: bool) -> np.ndarray:
    h, w = size_hw
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    if rescale:
        out[..., 0] *= w / fw
        out[..., 1] *= h / fh
    return out


@dataclass
class DISFlow:
    """OpenCV DIS optical flow on grey images.

    Args:
        preset: ``"ultrafast"``, ``"fast"`` or ``"medium"`` (accuracy/speed trade-off).
        scale: compute at this fraction of the input size (vectors are rescaled back).
    """

    preset: str = "medium"
    scale: float = 1.0

    def __post_init__(self) -> None:
        presets = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
                   "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                   "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
        if self.preset not in presets:
            raise FlowError(f"unknown DIS preset {self.preset!r}; use one of {list(presets)}")
        if not 0 < self.scale <= 1:
            raise FlowError(f"scale must be in (0, 1], got {self.scale}")
        self._dis = cv2.DISOpticalFlow_create(presets[self.preset])
        self.name = f"DIS-{self.preset}" + (f"@{self.scale:g}" if self.scale != 1 else "")

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        _check_pair(src, dst)
        a, b = _grey(src), _grey(dst)
        h, w = a.shape
        if self.scale != 1:
            size = (max(8, round(w * self.scale)), max(8, round(h * self.scale)))
            a = cv2.resize(a, size, interpolation=cv2.INTER_AREA)
            b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
        flow = self._dis.calc(a, b, None)
        return _resize_flow(flow.astype(np.float32), (h, w), rescale=True)


@dataclass
class FarnebackFlow:
    """OpenCV Farnebäck flow with TecoGAN's tOF parameters (0.5, 3, 15, 3, 5, 1.2)."""

    name: str = "Farneback"

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        _check_pair(src, dst)
        flow = cv2.calcOpticalFlowFarneback(_grey(src), _grey(dst), None,
                                            0.5, 3, 15, 3, 5, 1.2, 0)
        return flow.astype(np.float32)


class TorchFlowEstimator:
    """Run a RAFT-family network (weights supplied by the caller) as a flow estimator.

    Args:
        module: ``module(img1, img2)`` with (1, 3, h, w) float tensors on 0-255 RGB returning
            (1, 2, h, w) flow, or a list/tuple whose last element is that (RAFT's iterations),
            or a dict with key ``"flow"`` (list or tensor).
        input_size: (h, w) the network runs at, e.g. (432, 960) as the released SEA-RAFT
            evaluator; ``None`` keeps the frame size (padded to a multiple of 8).
        rescale_vectors: scale flow vectors when resizing back. The released evaluator resized
            the flow field without rescaling the vectors; ``False`` reproduces that.
        device: torch device string.
        name: label for reports.
    """

    def __init__(self, module: Callable, input_size: tuple[int, int] | None = None,
                 rescale_vectors: bool = True, device: str = "cpu",
                 name: str = "torch-flow") -> None:
        self.module = module
        self.input_size = input_size
        self.rescale_vectors = rescale_vectors
        self.device = device
        self.name = name

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        _check_pair(src, dst)
        h, w = src.shape[:2]

        def prep(img: np.ndarray) -> torch.Tensor:
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()
            return t.to(self.device)

        a, b = prep(src), prep(dst)
        if self.input_size is not None:
            a = F.interpolate(a, size=self.input_size, mode="bilinear", align_corners=False)
            b = F.interpolate(b, size=self.input_size, mode="bilinear", align_corners=False)
        ph, pw = a.shape[-2:]
        pad_h, pad_w = (-ph) % 8, (-pw) % 8
        if pad_h or pad_w:
            a = F.pad(a, (0, pad_w, 0, pad_h), mode="replicate")
            b = F.pad(b, (0, pad_w, 0, pad_h), mode="replicate")
        with torch.inference_mode():
            out = self.module(a, b)
        if isinstance(out, dict):
            out = out["flow"]
        if isinstance(out, list | tuple):
            out = out[-1]
        if not (hasattr(out, "shape") and out.dim() == 4 and out.shape[1] == 2):
            raise FlowError(f"{self.name}: expected (1, 2, h, w) flow, got "
                            f"{getattr(out, 'shape', type(out))}")
        flow = out[0, :, :ph, :pw].permute(1, 2, 0).float().cpu().numpy()
        return _resize_flow(np.ascontiguousarray(flow), (h, w), rescale=self.rescale_vectors)


_FLOW_FACTORIES: dict[str, Callable[[], FlowEstimator]] = {
    "dis": lambda: DISFlow("medium"),
    "dis-medium": lambda: DISFlow("medium"),
    "dis-fast": lambda: DISFlow("fast"),
    "dis-ultrafast": lambda: DISFlow("ultrafast"),
    "farneback": FarnebackFlow,
}


def available_flow_estimators() -> list[str]:
    """Names accepted by :func:`get_flow_estimator`."""
    return sorted(_FLOW_FACTORIES)


def get_flow_estimator(name: str = "dis") -> FlowEstimator:
    """Build a flow estimator by name (see :func:`available_flow_estimators`)."""
    key = name.lower()
    if key not in _FLOW_FACTORIES:
        raise FlowError(f"unknown flow estimator {name!r}; available: "
                        f"{', '.join(available_flow_estimators())} (or pass a "
                        f"TorchFlowEstimator in Python)")
    return _FLOW_FACTORIES[key]()


def warp_backward(img: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``img`` at ``x + flow(x)``.

    Out[y, x] = img[y + dy, x + dx] (bilinear, border replicated).

    With ``flow`` the flow from frame t to frame t-1, ``warp_backward(f[t-1], flow)`` predicts
    frame t from frame t-1.

    Args:
        img: (H, W) or (H, W, C) image (any dtype OpenCV remaps; float recommended).
        flow: (H, W, 2) float32 (dx, dy).

    Returns:
        Warped image, same shape and dtype as ``img``.
    """
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[:2] != img.shape[:2]:
        raise FlowError(f"flow {flow.shape} does not fit image {img.shape}")
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = gx + flow[..., 0].astype(np.float32)
    map_y = gy + flow[..., 1].astype(np.float32)
    return cv2.remap(img, map_x, map_y, interpolation=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
