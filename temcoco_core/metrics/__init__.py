# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Fusion-quality and temporal-consistency metrics of fused videos.

* :mod:`.fusion` -- per-frame image metrics (EN, SD, MI, SSIM, Qabf, VIF), CDDFuse conventions.
* :mod:`.salience` -- target salience: thermal contrast of warm objects kept by the fusion.
* :mod:`.temporal` -- flowD, feaCD, tOF, frame-difference direction consistency (Eq. 16),
  brightness variation / flicker (Fig. 1a), and :class:`OnlineTemporalMetrics` for live use.
* :mod:`.flow` -- pluggable optical flow (OpenCV DIS by default) and backward warping.

:data:`METRIC_INFO` says for every reported metric whether higher is better, for tables.
"""

from dataclasses import dataclass

from .flow import DISFlow, FlowEstimator, get_flow_estimator, TorchFlowEstimator, warp_backward
from .fusion import FUSION_METRICS, fusion_metrics
from .temporal import (
    OnlineTemporalMetrics,
    prepare_reference,
    TEMPORAL_METRICS,
    temporal_metrics,
    TemporalReference,
)


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: ``higher_is_better`` (``None``: neither, informational)."""

    name: str
    higher_is_better: bool | None
    description: str


METRIC_INFO: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("EN", True, "entropy of the fused image (bits)"),
    MetricInfo("SD", True, "standard deviation of the fused image (0-255)"),
    MetricInfo("MI", True, "MI(F, vis) + MI(F, ir), nats"),
    MetricInfo("SSIM", True, "SSIM(F, vis) + SSIM(F, ir)"),
    MetricInfo("Qabf", True, "edge preservation (Xydeas-Petrovic)"),
    MetricInfo("VIF", True, "VIF_p(vis -> F) + VIF_p(ir -> F)"),
    MetricInfo("salience", True, "thermal contrast of the hottest infrared regions against "
               "their surroundings kept by F, C_F / C_IR (1 = as in the infrared)"),
    MetricInfo("flowD", False, "flow-warp error against the visible video's motion (0-255)"),
    MetricInfo("feaCD", False, "ResNet-18 change-direction disagreement, released form (0-4)"),
    MetricInfo("feaCD_cos", False, "ResNet-18 change-direction 1 - cos, Eq. 19 as written"),
    MetricInfo("tOF", False, "flow difference fused vs visible (pixels)"),
    MetricInfo("dirC", False, "frame-difference direction inconsistency, Eq. 16 (0-4)"),
    MetricInfo("flicker", False, "|brightness change - visible brightness change| (0-255)"),
    MetricInfo("bvar", None, "mean |brightness change| of the fused video (0-255)"),
    MetricInfo("bright", None, "mean brightness of F minus that of the visible (grey levels, "
               "> 0: brighter)"),
)}

__all__ = [
    "FUSION_METRICS",
    "METRIC_INFO",
    "TEMPORAL_METRICS",
    "DISFlow",
    "FlowEstimator",
    "MetricInfo",
    "OnlineTemporalMetrics",
    "TemporalReference",
    "TorchFlowEstimator",
    "fusion_metrics",
    "get_flow_estimator",
    "prepare_reference",
    "temporal_metrics",
    "warp_backward",
]
