# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Per-frame image-fusion quality metrics: MI, SD, EN, SSIM, Qabf, VIF.

Conventions follow the field's common evaluator (MMIF-CDDFuse ``utils/Evaluator.py``, which the
TemCoCo/VideoFusion tables use): every image is a **grey 0-255 float64 array** (H, W); the fused
RGB frame is converted to grey/Y with BT.601 weights and rounded to uint8 first (as reading the
saved fused image with ``cv2.IMREAD_GRAYSCALE`` does); the sources are the clean visible (grey)
and infrared references. Two-source metrics are **sums** over the sources (F with A plus F
with B), as in CDDFuse. Sequence values are frame means (see :func:`fusion_metrics`).

======  ==========================================================  ======  =====
metric  definition                                                  better  range
======  ==========================================================  ======  =====
EN      entropy of F's 256-bin histogram, bits                      higher  0..8
SD      standard deviation of F (population), grey levels           higher  0..128
MI      MI(F, A) + MI(F, B), 256 x 256 joint histogram, nats        higher  >= 0
SSIM    SSIM(F, A) + SSIM(F, B), 7x7 uniform window, K=(.01, .03)   higher  <= 2
Qabf    Xydeas-Petrović edge-preservation (Sobel)                   higher  0..1
VIF     VIF_p(A -> F) + VIF_p(B -> F) (Sheikh-Bovik, pixel domain)  higher  >= 0
salience  thermal contrast of the hottest infrared regions kept by F  higher  ~0..1+
          (C_F / C_IR, :mod:`.salience`; a sequence value over the
          frames that have a warm target, not a per-frame mean)
======  ==========================================================  ======  =====

References: Qu et al., "Information measure for performance of image fusion", Electron. Lett.
2002 (MI); Wang et al., IEEE TIP 2004 (SSIM); Xydeas & Petrović, Electron. Lett. 2000 (Qabf);
Sheikh & Bovik, IEEE TIP 2006 and Han et al., Inf. Fusion 2013 (VIF for fusion); Zhao et al.,
CDDFuse, CVPR 2023 (evaluator conventions).

Deviations from CDDFuse's code, on purpose: SSIM uses ``data_range=255`` (CDDFuse called
scikit-image without it on float 0-255 images, which old scikit-image resolved to 2, i.e.
near-zero stabilising constants; pass ``data_range=2`` to reproduce); VIF returns NaN where it
is undefined (constant reference) instead of CDDFuse's silent 1.0; Qabf treats equal non-zero
gradient magnitudes as ratio 1 (CDDFuse used the magnitude itself, a slip with ~0.06 % effect).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import math

import cv2
import numpy as np

__all__ = [
    "FRAME_METRICS",
    "FUSION_METRICS",
    "SEQUENCE_METRICS",
    "entropy",
    "fusion_metrics",
    "frame_metrics",
    "mi",
    "mutual_information",
    "qabf",
    "sd",
    "ssim",
    "ssim_pair",
    "luma",
    "vif",
    "vif_pair",
]

#: Metric names computed by :func:`frame_metrics`, in report order.
FRAME_METRICS: tuple[str, ...] = ("EN", "SD", "MI", "SSIM", "Qabf", "VIF")
#: Metrics defined over a whole sequence (frames without a value are skipped, not NaN).
SEQUENCE_METRICS: tuple[str, ...] = ("salience",)
#: Everything :func:`fusion_metrics` reports, in report order.
FUSION_METRICS: tuple[str, ...] = FRAME_METRICS + SEQUENCE_METRICS


def luma(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB or (H, W) uint8/float -> (H, W) float64 on 0-255.

    RGB is converted with BT.601 luma (Y = .299R + .587G + .114B) and rounded to uint8, as
    OpenCV's grey read of a saved fused image does.
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 3:
        if img.dtype != np.uint8:
            raise ValueError(f"RGB frames must be uint8, got {img.dtype}")
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    elif img.ndim != 2:
        raise ValueError(f"expected (H, W, 3) RGB or (H, W) grey, got shape {img.shape}")
    return img.astype(np.float64)


def _check_same(*imgs: np.ndarray) -> None:
    shapes = {i.shape for i in imgs}
    if len(shapes) != 1:
        raise ValueError(f"images differ in shape: {sorted(shapes)}")


def _as_u8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def entropy(img: np.ndarray) -> float:
    """EN = -sum_i p_i log2 p_i over the 256-bin histogram of round(F) (bits)."""
    a = _as_u8(img).ravel()
    p = np.bincount(a, minlength=256) / a.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sd(img: np.ndarray) -> float:
    """SD = sqrt(mean((F - mean F)^2)) on the 0-255 scale (population std, ``np.std``)."""
    return float(np.std(np.asarray(img, np.float64)))


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information of two images, in nats.

    MI(a, b) = sum_{i,j} p_ij ln(p_ij / (p_i p_j)) over the 256 x 256 joint histogram of the
    rounded 0-255 values, in nats (equals ``sklearn.metrics.mutual_info_score`` on the flattened
    integer images).
    """
    _check_same(a, b)
    x = _as_u8(a).ravel().astype(np.int64)
    y = _as_u8(b).ravel().astype(np.int64)
    joint = np.bincount(x * 256 + y, minlength=65536).reshape(256, 256).astype(np.float64)
    joint /= x.size
    px, py = joint.sum(1), joint.sum(0)
    nz = joint > 0
    outer = px[:, None] * py[None, :]
    return float(max(0.0, (joint[nz] * np.log(joint[nz] / outer[nz])).sum()))


def mi(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MI = MI(F, A) + MI(F, B) (nats)."""
    return mutual_information(fused, a) + mutual_information(fused, b)


def ssim_pair(x: np.ndarray, y: np.ndarray, data_range: float = 255.0,
              win_size: int = 7) -> float:
    """Mean SSIM of two grey images (Wang et al. 2004) with scikit-image's defaults.

    Per pixel,
    ``S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``,
    local statistics from a ``win_size`` x ``win_size`` uniform window with sample covariance
    (N/(N-1)), C1 = (0.01 L)^2, C2 = (0.03 L)^2, L = ``data_range``; the mean excludes the
    (win_size-1)/2 border, as ``skimage.metrics.structural_similarity`` does.
    """
    _check_same(x, y)
    if win_size % 2 != 1 or min(x.shape) < win_size:
        raise ValueError(f"win_size must be odd and <= image size, got {win_size} for {x.shape}")
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = win_size * win_size
    cov_norm = n / (n - 1)

    def box(img: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(img, cv2.CV_64F, (win_size, win_size), normalize=True,
                             borderType=cv2.BORDER_REFLECT)

    ux, uy = box(x), box(y)
    vx = cov_norm * (box(x * x) - ux * ux)
    vy = cov_norm * (box(y * y) - uy * uy)
    vxy = cov_norm * (box(x * y) - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    p = (win_size - 1) // 2
    return float(s[p:-p, p:-p].mean())


def ssim(fused: np.ndarray, a: np.ndarray, b: np.ndarray, data_range: float = 255.0) -> float:
    """SSIM = SSIM(F, A) + SSIM(F, B)."""
    return ssim_pair(fused, a, data_range) + ssim_pair(fused, b, data_range)


# Sobel kernels as written in the Qabf reference code (used with true convolution).
_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


def _conv_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``scipy.signal.convolve2d(img, kernel, mode='same')`` with zero fill (odd kernels)."""
    return cv2.filter2D(img, cv2.CV_64F, np.ascontiguousarray(kernel[::-1, ::-1]),
                        borderType=cv2.BORDER_CONSTANT)


def _grad_angle(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = _conv_same(img, _SOBEL_X)
    sy = _conv_same(img, _SOBEL_Y)
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(sx == 0, math.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
    return g, a


def _q_edge(ga: np.ndarray, aa: np.ndarray, gf: np.ndarray, af: np.ndarray) -> np.ndarray:
    tg, kg, dg = 0.9994, -15.0, 0.5
    ta, ka, da = 0.9879, -22.0, 0.8
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(ga > gf, gf / ga, np.where(ga < gf, ga / gf, np.where(ga > 0, 1.0, 0.0)))
    alpha = 1 - np.abs(aa - af) / (math.pi / 2)
    qg = tg / (1 + np.exp(kg * (g - dg)))
    qa = ta / (1 + np.exp(ka * (alpha - da)))
    return qg * qa


def qabf(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Qabf (Xydeas & Petrović 2000): edge information of A and B preserved in F.

    Sobel magnitude g and orientation alpha = arctan(s_y / s_x) (pi/2 where s_x = 0) per pixel;
    relative strength G = min(g_A, g_F)/max(g_A, g_F), orientation match
    A = 1 - |alpha_A - alpha_F| / (pi/2); Q^{AF} = Tg/(1+e^{kg(G-Dg)}) * Ta/(1+e^{ka(A-Da)})
    with (Tg, kg, Dg) = (0.9994, -15, 0.5), (Ta, ka, Da) = (0.9879, -22, 0.8);
    Qabf = sum(Q^{AF} g_A + Q^{BF} g_B) / sum(g_A + g_B). NaN if A and B have no edges.
    """
    _check_same(fused, a, b)
    ga, aa = _grad_angle(np.asarray(a, np.float64))
    gb, ab = _grad_angle(np.asarray(b, np.float64))
    gf, af = _grad_angle(np.asarray(fused, np.float64))
    den = float((ga + gb).sum())
    if den == 0:
        return float("nan")
    num = float((_q_edge(ga, aa, gf, af) * ga + _q_edge(gb, ab, gf, af) * gb).sum())
    return num / den


def _gauss_window(n: int) -> np.ndarray:
    sd_ = n / 5.0
    m = (n - 1) / 2.0
    y, x = np.ogrid[-m:m + 1, -m:m + 1]
    h = np.exp(-(x * x + y * y) / (2 * sd_ * sd_))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def _filter_valid(img: np.ndarray, win: np.ndarray) -> np.ndarray:
    """``convolve2d(img, rot90(win, 2), mode='valid')`` (= correlation with ``win``)."""
    r = (win.shape[0] - 1) // 2
    out = cv2.filter2D(img, cv2.CV_64F, win, borderType=cv2.BORDER_CONSTANT)
    return out[r:img.shape[0] - r, r:img.shape[1] - r]


def vif_pair(ref: np.ndarray, dist: np.ndarray, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain VIF (VIF_p, Sheikh & Bovik 2006) of ``dist`` against ``ref``.

    Four scales; at scale s a Gaussian window of N = 2^(5-s)+1 taps (sigma = N/5) gives local
    means/variances (after low-pass filtering and 2x decimation for s > 1);
    g = s_rd / s_r^2, s_v^2 = s_d^2 - g s_rd, and
    VIF = sum log10(1 + g^2 s_r^2 / (s_v^2 + sigma_n^2)) / sum log10(1 + s_r^2 / sigma_n^2)
    with sigma_n^2 = 2, the clamping rules of the reference implementation, eps = 1e-10.
    NaN when the reference carries no information (denominator 0).
    """
    _check_same(ref, dist)
    eps = 1e-10
    ref = np.asarray(ref, np.float64)
    dist = np.asarray(dist, np.float64)
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        win = _gauss_window(n)
        if scale > 1:
            if min(ref.shape) < n:
                break
            ref = _filter_valid(ref, win)[::2, ::2]
            dist = _filter_valid(dist, win)[::2, ::2]
        if min(ref.shape) < n:
            break
        mu1, mu2 = _filter_valid(ref, win), _filter_valid(dist, win)
        s1 = _filter_valid(ref * ref, win) - mu1 * mu1
        s2 = _filter_valid(dist * dist, win) - mu2 * mu2
        s12 = _filter_valid(ref * dist, win) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        small1 = s1 < eps
        g[small1] = 0
        sv[small1] = s2[small1]
        s1[small1] = 0
        small2 = s2 < eps
        g[small2] = 0
        sv[small2] = 0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0
        sv[sv <= eps] = eps
        num += float(np.log10(1 + g * g * s1 / (sv + sigma_nsq)).sum())
        den += float(np.log10(1 + s1 / sigma_nsq).sum())
    return num / den if den > 0 else float("nan")


def vif(fused: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIF = VIF_p(A -> F) + VIF_p(B -> F)."""
    return vif_pair(a, fused) + vif_pair(b, fused)


_FUNCS = {
    "EN": lambda f, a, b: entropy(f),
    "SD": lambda f, a, b: sd(f),
    "MI": mi,
    "SSIM": ssim,
    "Qabf": qabf,
    "VIF": vif,
}


def frame_metrics(fused: np.ndarray, a: np.ndarray, b: np.ndarray,
                  metrics: Iterable[str] = FRAME_METRICS) -> dict[str, float]:
    """Metrics of one frame.

    Args:
        fused: (H, W, 3) uint8 RGB or (H, W) grey fused frame.
        a: visible source/reference, (H, W, 3) uint8 RGB or (H, W) grey.
        b: infrared source/reference, (H, W) grey.
        metrics: names from :data:`FRAME_METRICS`.
    """
    f, ga, gb = luma(fused), luma(a), luma(b)
    _check_same(f, ga, gb)
    out = {}
    for name in metrics:
        if name not in _FUNCS:
            raise ValueError(f"unknown fusion metric {name!r} (per frame); known: "
                             f"{list(FRAME_METRICS)}")
        out[name] = float(_FUNCS[name](f, ga, gb))
    return out


def fusion_metrics(fused: np.ndarray, visible: np.ndarray, infrared: np.ndarray,
                   metrics: Sequence[str] = FUSION_METRICS,
                   progress: bool = False) -> dict[str, float]:
    """Frame-averaged fusion metrics of a sequence.

    Args:
        fused: (T, H, W, 3) uint8 RGB.
        visible: (T, H, W, 3) uint8 RGB reference (clean visible).
        infrared: (T, H, W) uint8 reference (clean infrared).
        metrics: names from :data:`FUSION_METRICS`.
        progress: tqdm bar over frames.

    Returns:
        ``{name: mean over frames}``; a metric that is NaN on any frame is NaN for the sequence
        (never averaged over the remaining frames). ``salience`` is the sequence value of
        :func:`temcoco_core.metrics.salience.target_salience` (NaN without a warm target).
    """
    if not (len(fused) == len(visible) == len(infrared)):
        raise ValueError(f"frame counts differ: fused {len(fused)}, visible {len(visible)}, "
                         f"infrared {len(infrared)}")
    if len(fused) == 0:
        raise ValueError("empty sequence")
    it: Iterable[int] = range(len(fused))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="fusion metrics", unit="frame", leave=False)
    unknown = [m for m in metrics if m not in FUSION_METRICS]
    if unknown:
        raise ValueError(f"unknown fusion metric(s) {unknown}; known: {list(FUSION_METRICS)}")
    per_frame = [m for m in metrics if m in _FUNCS]
    rows = [frame_metrics(fused[t], visible[t], infrared[t], per_frame) for t in it]
    out = {m: float(np.mean([r[m] for r in rows])) for m in per_frame}
    if "salience" in metrics:
        from .salience import target_salience

        out["salience"] = target_salience(fused, infrared)
    return {m: out[m] for m in metrics}
