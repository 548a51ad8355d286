# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Temporal-consistency metrics of fused videos (TemCoCo, ICCV 2025, Sec. 3.2 and Fig. 1).

All sequence inputs are numpy arrays: fused and visible (T, H, W, 3) uint8 RGB, infrared
(T, H, W) uint8 grey (or (T, H, W, 3)). For the degraded protocol pass the *clean* references
as ``visible``/``infrared``. Every sequence metric is built from a per-frame-pair function that
:class:`OnlineTemporalMetrics` (used live by the ROS node) calls too -- one implementation each.

=========  =================================================================  ======
metric     definition                                                         better
=========  =================================================================  ======
flowD      mean_t mean_px || warp(F_{t-1}, flow_vis(t -> t-1)) - F_t ||_2      lower
           (RGB, 0-255; Eq. 18 as the released evaluator computes it)
feaCD      sum_x mean_t mean_k (1 - cos_k(dR_f, dR_x)), x in {vis, ir},       lower
           dR = ResNet18(frame_{t-1}) - ResNet18(frame_t) (Eq. 19, released)
feaCD_cos  the same with the cosine over the whole 1000-d vector (Eq. 19 as    lower
           written)
tOF        mean_t mean_px || flow(F_t -> F_{t-1}) - flow(V_t -> V_{t-1}) ||_2   lower
           (TecoGAN, Chu et al. 2020)
dirC       sum_x mean_t (1 - cos(Y_f^t - Y_f^{t-1}, Y_x^t - Y_x^{t-1})), cosine   lower
           over all pixels (Eq. 16 as a metric), x in {vis, ir}
flicker    mean_t | dB_f(t) - dB_vis(t) |, B = mean luma of a frame,            lower
           dB(t) = B(t) - B(t-1) (Fig. 1a's brightness variation, relative to the
           visible video's own variation), grey levels
bvar       mean_t | dB_f(t) | (raw brightness variation of the fused video)    --
bright     mean_t (B_f(t) - B_vis(t)), signed brightness offset of the fused     --
           video against the visible one (grey levels; > 0: brighter)
=========  =================================================================  ======

Released-evaluator facts (Meiqi-Gong/TemCoCo ``metrics.py``), followed here where the paper
differs: flowD uses the flow of visible t-1 -> t to bring fused t-1 onto fused t and takes the
per-pixel *Euclidean* norm over the RGB channels (the paper writes an L1 norm) on the 0-255
scale. Its warp helper is missing from the release; we warp by backward sampling with the flow
t -> t-1 (exact for sampling; same frame pair). Its flow is SEA-RAFT at 432 x 960 resized back
without rescaling the vectors; here the default is OpenCV DIS at full resolution with correct
vectors (see :mod:`.flow` for plugging a RAFT-family network). feaCD as released feeds
unnormalised 0-255 RGB to torchvision's ImageNet ResNet-18 and takes its 1000-d logits; its
``cosine_similarity(..., dim=0)`` runs over the batch axis of size 1, so each logit contributes
``1 - sign(dR_f,k * dR_x,k)``: released feaCD = 2 x (fraction of logits whose change has the
opposite sign), summed over vis and ir (range 0..4; the paper's values ~1.8 fit this reading).
``feaCD_cos`` gives the literal vector cosine of Eq. 19.

Zero-motion conventions for cosines: two zero differences count as consistent (1 - cos = 0),
one zero and one non-zero as orthogonal (1 - cos = 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from temcoco_core.metrics.flow import DISFlow, FlowEstimator, warp_backward
from temcoco_core.metrics.fusion import luma

__all__ = [
    "OnlineTemporalMetrics",
    "TEMPORAL_METRICS",
    "TemporalReference",
    "brightness_curve",
    "brightness_offset",
    "brightness_variation",
    "direction_consistency",
    "direction_inconsistency",
    "feacd",
    "feacd_from_features",
    "flicker",
    "flicker_step",
    "flow_warp_error",
    "flowd",
    "frame_brightness",
    "ghosting",
    "prepare_reference",
    "resnet_logits",
    "reference_flows",
    "temporal_metrics",
    "temporal_slice",
    "tof",
]

#: Names :func:`temporal_metrics` may return, in report order.
TEMPORAL_METRICS: tuple[str, ...] = ("flowD", "feaCD", "feaCD_cos", "tOF", "dirC", "flicker",
                                     "bvar", "bright")


# ----------------------------------------------------------------------- per-frame functions


def frame_brightness(frame: np.ndarray) -> float:
    """Mean BT.601 luma of one frame ((H, W, 3) RGB or (H, W) grey), 0-255."""
    return float(luma(frame).mean())


def flicker_step(delta_fused: float, delta_visible: float) -> float:
    """|dB_f - dB_vis| of one frame step (grey levels)."""
    return abs(delta_fused - delta_visible)


def _one_minus_cos(a: np.ndarray, b: np.ndarray) -> float:
    # einsum, not linalg.norm/dot: BLAS threads fight torch's pool on small CPUs (25-50 ms/frame
    # in the node's worker at 160 px, 2.5 ms this way).
    na = float(np.sqrt(np.einsum("i,i->", a, a)))
    nb = float(np.sqrt(np.einsum("i,i->", b, b)))
    if na == 0.0 and nb == 0.0:
        return 0.0
    if na == 0.0 or nb == 0.0:
        return 1.0
    return 1.0 - float(np.einsum("i,i->", a, b)) / (na * nb)


def direction_inconsistency(f_prev: np.ndarray, f_cur: np.ndarray,
                            x_prev: np.ndarray, x_cur: np.ndarray) -> float:
    """1 - cos(Y_f^t - Y_f^{t-1}, Y_x^t - Y_x^{t-1}) over all pixels of one frame step (Eq. 16).

    Inputs are frames of fused (f) and source (x), (H, W, 3) RGB uint8 or (H, W) grey; they are
    converted to grey 0-255. Range [0, 2].
    """
    df = (luma(f_cur) - luma(f_prev)).ravel()
    dx = (luma(x_cur) - luma(x_prev)).ravel()
    if df.shape != dx.shape:
        raise ValueError(f"fused and source frames differ in size: {f_cur.shape[:2]} vs "
                         f"{x_cur.shape[:2]}")
    return _one_minus_cos(df, dx)


def flow_warp_error(f_prev: np.ndarray, f_cur: np.ndarray, flow_cur_to_prev: np.ndarray) -> float:
    """The flowD term of one frame step.

    The mean over pixels of the Euclidean norm over channels of
    ``warp(F_{t-1}, flow) - F_t`` on the 0-255 scale.

    Args:
        f_prev: fused frame t-1, (H, W, 3) or (H, W), uint8 or float 0-255.
        f_cur: fused frame t, the same shape.
        flow_cur_to_prev: (H, W, 2) flow from frame t to frame t-1 (of the visible video).
    """
    prev = np.asarray(f_prev, np.float32)
    cur = np.asarray(f_cur, np.float32)
    if prev.shape != cur.shape:
        raise ValueError(f"fused frames differ in shape: {prev.shape} vs {cur.shape}")
    diff = warp_backward(prev, flow_cur_to_prev) - cur
    if diff.ndim == 2:
        return float(np.abs(diff).mean())
    return float(np.sqrt((diff.astype(np.float64) ** 2).sum(-1)).mean())


# ----------------------------------------------------------------------- sequence functions


def brightness_curve(frames: np.ndarray) -> np.ndarray:
    """Mean luma per frame: (T, H, W, 3) or (T, H, W) -> (T,) float64 (Fig. 1a)."""
    return np.array([frame_brightness(f) for f in frames], np.float64)


def brightness_variation(frames: np.ndarray) -> np.ndarray:
    """Frame-to-frame brightness change dB(t) = B(t) - B(t-1): (T, ...) -> (T-1,)."""
    return np.diff(brightness_curve(frames))


def brightness_offset(fused: np.ndarray, visible: np.ndarray) -> float:
    """Signed brightness offset of a fused video against the visible one, grey levels.

    mean_t (B_f(t) - B_vis(t)), B = mean luma (:func:`frame_brightness`): how much brighter
    (> 0) or darker the fusion makes the scene than the RGB camera shows it -- the "washed-out"
    bias of a fusion that blends stretched infrared into everything. Not a quality score on its
    own (warm objects kept bright raise it a little). NaN for T = 0.
    """
    if _check_len(fused, visible) == 0:
        return float("nan")
    return float(np.mean(brightness_curve(fused) - brightness_curve(visible)))


def _check_len(fused: np.ndarray, *others: np.ndarray) -> int:
    t = len(fused)
    for o in others:
        if len(o) != t:
            raise ValueError(f"frame counts differ: fused has {t}, source has {len(o)}")
        if o.shape[1:3] != fused.shape[1:3]:
            raise ValueError(f"frame sizes differ: fused {fused.shape[1:3]}, source "
                             f"{o.shape[1:3]}")
    return t


def ghosting(streamed: np.ndarray, framewise: np.ndarray, block: int = 16,
             percentile: float = 99.0) -> float:
    """How far a causal network's stream departs from the same network run frame by frame.

    (T, H, W[, 3]) uint8/float videos -> the ``percentile`` over frames and ``block`` × ``block``
    blocks of the blocks' mean ``|luma(streamed) − luma(framewise)|`` (grey levels). Carried
    temporal context that does not belong to the current frame (the earlier position of a
    moving object) shows as a few blocks that differ a lot, so a high percentile of block means,
    not the mean over the image, is what measures the ghost.
    """
    t = _check_len(streamed, framewise)
    a = np.stack([luma(f) for f in streamed]).astype(np.float64)
    b = np.stack([luma(f) for f in framewise]).astype(np.float64)
    h, w = a.shape[1] // block * block, a.shape[2] // block * block
    if t == 0 or h == 0 or w == 0:
        raise ValueError(f"ghosting needs frames of at least {block}x{block}, got {a.shape}")
    d = np.abs(a - b)[:, :h, :w]
    blocks = d.reshape(t, h // block, block, w // block, block).mean(axis=(2, 4))
    return float(np.percentile(blocks, percentile))


def flicker(fused: np.ndarray, visible: np.ndarray | None = None) -> float:
    """Flicker: brightness change of the fused video against the visible one.

    mean_t |dB_f(t) - dB_vis(t)|; 0 for a video whose brightness tracks the visible one (and for a
    constant fused video of a constant scene). Without ``visible`` the reference variation is 0,
    i.e. the raw mean |dB_f(t)| (``bvar``). NaN for T < 2.
    """
    t = _check_len(fused) if visible is None else _check_len(fused, visible)
    if t < 2:
        return float("nan")
    df = brightness_variation(fused)
    dv = np.zeros_like(df) if visible is None else brightness_variation(visible)
    return float(np.mean([flicker_step(a, b) for a, b in zip(df, dv)]))


def direction_consistency(fused: np.ndarray, visible: np.ndarray,
                          infrared: np.ndarray) -> dict[str, float]:
    """Eq. 16 as a metric.

    ``{"dirC_vis", "dirC_ir", "dirC" (= their sum)}``, each the mean over t of
    :func:`direction_inconsistency`. NaN for T < 2.
    """
    t = _check_len(fused, visible, infrared)
    if t < 2:
        nan = float("nan")
        return {"dirC_vis": nan, "dirC_ir": nan, "dirC": nan}
    dv = float(np.mean([direction_inconsistency(fused[i - 1], fused[i], visible[i - 1],
                                                visible[i]) for i in range(1, t)]))
    di = float(np.mean([direction_inconsistency(fused[i - 1], fused[i], infrared[i - 1],
                                                infrared[i]) for i in range(1, t)]))
    return {"dirC_vis": dv, "dirC_ir": di, "dirC": dv + di}


def reference_flows(visible: np.ndarray, estimator: FlowEstimator | None = None,
                    progress: bool = False) -> list[np.ndarray]:
    """Flows of the visible video from frame t to t-1, t = 1..T-1: list of (H, W, 2)."""
    est = estimator or DISFlow()
    it: Iterable[int] = range(1, len(visible))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"flow ({est.name})", unit="pair", leave=False)
    return [est(visible[i], visible[i - 1]) for i in it]


def flowd(fused: np.ndarray, visible: np.ndarray, estimator: FlowEstimator | None = None,
          flows: list[np.ndarray] | None = None) -> float:
    """The flowD metric (Eq. 18, as released).

    Mean over t of :func:`flow_warp_error` with the visible video's flow t ->
    t-1. Pass precomputed ``flows`` (from :func:`reference_flows`) to reuse them across methods.
    NaN for T < 2.
    """
    t = _check_len(fused, visible)
    if t < 2:
        return float("nan")
    if flows is None:
        flows = reference_flows(visible, estimator)
    if len(flows) != t - 1:
        raise ValueError(f"need {t - 1} flows for {t} frames, got {len(flows)}")
    return float(np.mean([flow_warp_error(fused[i - 1], fused[i], flows[i - 1])
                          for i in range(1, t)]))


def tof(fused: np.ndarray, visible: np.ndarray, estimator: FlowEstimator | None = None,
        flows: list[np.ndarray] | None = None) -> float:
    """The tOF metric (TecoGAN).

    tOF (TecoGAN): mean over t and pixels of the Euclidean norm of the difference between the fused
    video's flow and the visible video's flow (both t -> t-1). NaN for T < 2.
    """
    t = _check_len(fused, visible)
    if t < 2:
        return float("nan")
    est = estimator or DISFlow()
    if flows is None:
        flows = reference_flows(visible, est)
    vals = []
    for i in range(1, t):
        d = est(fused[i], fused[i - 1]) - flows[i - 1]
        vals.append(float(np.sqrt((d.astype(np.float64) ** 2).sum(-1)).mean()))
    return float(np.mean(vals))


def resnet_logits(frames: np.ndarray, model, batch_size: int = 4,
                  device: str = "cpu") -> np.ndarray:
    """ResNet-18 logits of each frame as the released feaCD computes them.

    Args:
        frames: (T, H, W, 3) uint8 RGB or (T, H, W) grey (repeated to 3 channels).
        model: a :class:`temcoco_core.model.resnet.ResNet18` (ImageNet weights) in eval mode.

    Returns:
        (T, K) float64 logits of unnormalised 0-255 input.
    """
    import torch

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=3)
    out = []
    with torch.inference_mode():
        for i in range(0, len(frames), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[i:i + batch_size]))
            x = x.permute(0, 3, 1, 2).float().to(device)
            out.append(model(x).double().cpu().numpy())
    return np.concatenate(out, 0)


def feacd_from_features(feat_fused: np.ndarray, feat_vis: np.ndarray, feat_ir: np.ndarray,
                        mode: str = "released") -> float:
    """The feaCD metric from per-frame features, each (T, K).

    ``mode="released"``: per-component ``1 - sign(dR_f,k dR_x,k)`` (0 where either is 0),
    averaged over k and t, summed over x in {vis, ir}. ``mode="cosine"``: ``1 - cos`` of the
    whole K-vectors (zero-motion conventions of the module docstring). NaN for T < 2.
    """
    if not (feat_fused.shape == feat_vis.shape == feat_ir.shape):
        raise ValueError(f"feature shapes differ: {feat_fused.shape}, {feat_vis.shape}, "
                         f"{feat_ir.shape}")
    if len(feat_fused) < 2:
        return float("nan")
    d_f = feat_fused[:-1] - feat_fused[1:]  # released: feature(t-1) - feature(t)
    total = 0.0
    for feat_x in (feat_vis, feat_ir):
        d_x = feat_x[:-1] - feat_x[1:]
        if mode == "released":
            total += float((1.0 - np.sign(d_f * d_x)).mean())
        elif mode == "cosine":
            total += float(np.mean([_one_minus_cos(a, b) for a, b in zip(d_f, d_x)]))
        else:
            raise ValueError(f"unknown feaCD mode {mode!r}; use 'released' or 'cosine'")
    return total


def feacd(fused: np.ndarray, visible: np.ndarray, infrared: np.ndarray, model,
          mode: str = "released", batch_size: int = 4) -> float:
    """The feaCD metric (Eq. 19) with a ResNet-18 ``model`` (see :func:`resnet_logits`)."""
    _check_len(fused, visible, infrared)
    return feacd_from_features(resnet_logits(fused, model, batch_size),
                               resnet_logits(visible, model, batch_size),
                               resnet_logits(infrared, model, batch_size), mode)


def temporal_slice(frames: np.ndarray, row: int | None = None) -> np.ndarray:
    """Row-over-time image of Fig. 7.

    Row ``row`` (default: the middle) of every frame stacked along time: (T, H, W, C) -> (T, W,
    C), or (T, H, W) -> (T, W).
    """
    h = frames.shape[1]
    r = h // 2 if row is None else row
    if not 0 <= r < h:
        raise ValueError(f"row {r} outside 0..{h - 1}")
    return np.ascontiguousarray(frames[:, r])


# ------------------------------------------------------------------ offline, with caching


@dataclass
class TemporalReference:
    """Per-sequence quantities of the sources, computed once and reused for every method.

    Attributes:
        visible: (T, H, W, 3) uint8 reference visible video.
        infrared: (T, H, W) uint8 reference infrared video.
        flows: visible flows t -> t-1 (T-1 of (H, W, 2)) or ``None`` (flowD/tOF skipped).
        flow_name: estimator name for reports.
        feats_vis, feats_ir: (T, 1000) ResNet-18 logits or ``None`` (feaCD skipped).
    """

    visible: np.ndarray
    infrared: np.ndarray
    flows: list[np.ndarray] | None = None
    flow_name: str | None = None
    feats_vis: np.ndarray | None = None
    feats_ir: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def prepare_reference(visible: np.ndarray, infrared: np.ndarray,
                      estimator: FlowEstimator | None = None, resnet=None,
                      batch_size: int = 4, progress: bool = False) -> TemporalReference:
    """Compute the source-side quantities (visible flows, ResNet logits) of a sequence.

    ``estimator=None`` skips flows (flowD/tOF not computed); ``resnet=None`` skips feaCD.
    """
    _check_len(visible, infrared)
    ref = TemporalReference(visible, infrared)
    if estimator is not None and len(visible) >= 2:
        ref.flows = reference_flows(visible, estimator, progress)
        ref.flow_name = estimator.name
    if resnet is not None:
        ref.feats_vis = resnet_logits(visible, resnet, batch_size)
        ref.feats_ir = resnet_logits(infrared, resnet, batch_size)
    return ref


def temporal_metrics(fused: np.ndarray, ref: TemporalReference,
                     estimator: FlowEstimator | None = None, resnet=None,
                     compute_tof: bool = True, batch_size: int = 4) -> dict[str, float]:
    """All temporal metrics of one fused sequence against a :class:`TemporalReference`.

    flowD/tOF need ``ref.flows`` (and ``estimator`` for tOF); feaCD needs ``resnet`` and the
    reference features. Metrics that cannot be computed are absent from the result (the
    caller reports why); metrics undefined for T < 2 are NaN.
    """
    _check_len(fused, ref.visible, ref.infrared)
    out: dict[str, float] = {}
    if ref.flows is not None:
        out["flowD"] = flowd(fused, ref.visible, flows=ref.flows)
    if resnet is not None and ref.feats_vis is not None and ref.feats_ir is not None:
        ff = resnet_logits(fused, resnet, batch_size)
        out["feaCD"] = feacd_from_features(ff, ref.feats_vis, ref.feats_ir, "released")
        out["feaCD_cos"] = feacd_from_features(ff, ref.feats_vis, ref.feats_ir, "cosine")
    if compute_tof and ref.flows is not None and estimator is not None:
        out["tOF"] = tof(fused, ref.visible, estimator, flows=ref.flows)
    out["dirC"] = direction_consistency(fused, ref.visible, ref.infrared)["dirC"]
    out["flicker"] = flicker(fused, ref.visible)
    bv = brightness_variation(fused)
    out["bvar"] = float(np.abs(bv).mean()) if len(bv) else float("nan")
    out["bright"] = brightness_offset(fused, ref.visible)
    return out


# ---------------------------------------------------------------------------------- online


class OnlineTemporalMetrics:
    """Per-frame temporal values for live streams (the ROS node's diagnostics).

    Uses the same per-frame functions as the offline metrics: :func:`frame_brightness`,
    :func:`flicker_step`, :func:`direction_inconsistency`, :func:`flow_warp_error`.

    Args:
        flow_scale: flowD is computed on frames resized by this factor (values are then in
            the reduced resolution's pixels; compare runs with equal scales only).
        compute_flow: compute flowD (one DIS flow per frame at ``flow_scale``).
        estimator: flow estimator for flowD (default DIS "medium").

    ``update`` returns a dict with keys ``brightness``, ``brightness_visible``,
    ``brightness_delta``, ``brightness_delta_visible``, ``flicker``, ``dirC_vis``, ``dirC_ir``,
    ``dirC`` and, with ``compute_flow``, ``flowD``. Frame-pair values are NaN on the first frame
    after :meth:`reset` or after a change of frame size (which starts a new stream).
    """

    def __init__(self, flow_scale: float = 0.25, compute_flow: bool = False,
                 estimator: FlowEstimator | None = None) -> None:
        if not 0 < flow_scale <= 1:
            raise ValueError(f"flow_scale must be in (0, 1], got {flow_scale}")
        self.flow_scale = flow_scale
        self.compute_flow = compute_flow
        self.estimator = estimator if estimator is not None else DISFlow("medium")
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame and the running sums."""
        self._prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._prev_b: tuple[float, float] | None = None
        self._prev_small: tuple[np.ndarray, np.ndarray] | None = None
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self.frames = 0

    def _small(self, img: np.ndarray) -> np.ndarray:
        if self.flow_scale == 1:
            return img
        h, w = img.shape[:2]
        size = (max(8, round(w * self.flow_scale)), max(8, round(h * self.flow_scale)))
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)

    def update(self, fused_rgb_u8: np.ndarray, visible_rgb_u8: np.ndarray,
               infrared_u8: np.ndarray) -> dict[str, float]:
        """Add one frame triple: fused (H, W, 3) uint8 RGB, visible (H, W, 3) uint8 RGB.

        Infrared (H, W) uint8 (or (H, W, 3)). Returns this frame's values.
        """
        f, v, i = (np.asarray(x) for x in (fused_rgb_u8, visible_rgb_u8, infrared_u8))
        if f.shape[:2] != v.shape[:2] or f.shape[:2] != i.shape[:2]:
            raise ValueError(f"frame sizes differ: fused {f.shape[:2]}, visible {v.shape[:2]}, "
                             f"infrared {i.shape[:2]}")
        if self._prev is not None and self._prev[0].shape != f.shape:
            self.reset()
        nan = float("nan")
        bf, bv = frame_brightness(f), frame_brightness(v)
        out = {"brightness": bf, "brightness_visible": bv, "brightness_delta": nan,
               "brightness_delta_visible": nan, "flicker": nan, "dirC_vis": nan,
               "dirC_ir": nan, "dirC": nan}
        if self.compute_flow:
            out["flowD"] = nan
        small = (self._small(f), self._small(v)) if self.compute_flow else None
        if self._prev is not None and self._prev_b is not None:
            pf, pv, pi = self._prev
            out["brightness_delta"] = bf - self._prev_b[0]
            out["brightness_delta_visible"] = bv - self._prev_b[1]
            out["flicker"] = flicker_step(out["brightness_delta"],
                                          out["brightness_delta_visible"])
            out["dirC_vis"] = direction_inconsistency(pf, f, pv, v)
            out["dirC_ir"] = direction_inconsistency(pf, f, pi, i)
            out["dirC"] = out["dirC_vis"] + out["dirC_ir"]
            if small is not None and self._prev_small is not None:
                flow = self.estimator(small[1], self._prev_small[1])
                out["flowD"] = flow_warp_error(self._prev_small[0], small[0], flow)
            for k, val in out.items():
                if k.startswith("brightness"):
                    continue
                self._sums[k] = self._sums.get(k, 0.0) + val
                self._counts[k] = self._counts.get(k, 0) + 1
        self._prev = (f.copy(), v.copy(), i.copy())
        self._prev_b = (bf, bv)
        self._prev_small = small
        self.frames += 1
        return out

    def summary(self) -> dict[str, float]:
        """Running means of the frame-pair values since :meth:`reset`.

        Running means of the frame-pair values since :meth:`reset` (the first frame of a stream,
        where they are undefined, is not counted; any other NaN makes the mean NaN).
        """
        return {k: self._sums[k] / self._counts[k] for k in self._sums}
