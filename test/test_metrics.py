# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Fusion and temporal metrics against independent references and hand-computed cases."""

import math

import cv2
import numpy as np
import pytest
import torch

from temcoco_core.metrics import flow as flowmod
from temcoco_core.metrics import fusion as fm
from temcoco_core.metrics import METRIC_INFO, OnlineTemporalMetrics
from temcoco_core.metrics import temporal as tm
from temcoco_core.model.resnet import load_pretrained, resnet18, ResNetWeightsError


def _texture(h=48, w=64, seed=0):
    """Smooth random texture (good for optical flow), uint8 (H, W)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 4, w // 4)).astype(np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, 0, 255).astype(np.uint8)


def _pair(seed=0, h=40, w=56):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w)).astype(np.float64)
    b = np.clip(0.6 * a + rng.normal(0, 30, (h, w)), 0, 255).round()
    return a, b


# ------------------------------------------------------------------------------- fusion


def test_mi_matches_sklearn():
    mutual_info_score = pytest.importorskip(
        "sklearn.metrics", reason="scikit-learn not installed (the 'dev' extra; not a rosdep "
        "dependency)").mutual_info_score

    a, b = _pair(1)
    ref = mutual_info_score(a.ravel().astype(int), b.ravel().astype(int))
    assert fm.mutual_information(a, b) == pytest.approx(ref, rel=1e-9)
    f, _ = _pair(2)
    ref_sum = ref + mutual_info_score(f.ravel().astype(int), b.ravel().astype(int))
    assert fm.mi(b, a, f) == pytest.approx(ref_sum, rel=1e-9)
    # MI of an image with itself is its entropy in nats
    assert fm.mutual_information(a, a) == pytest.approx(fm.entropy(a) * math.log(2), rel=1e-9)


def test_ssim_matches_skimage():
    structural_similarity = pytest.importorskip(
        "skimage.metrics", reason="scikit-image not installed (the 'dev' extra; not a rosdep "
        "dependency)").structural_similarity

    a, b = _pair(3)
    for dr in (255.0, 2.0):
        assert fm.ssim_pair(a, b, data_range=dr) == pytest.approx(
            structural_similarity(a, b, data_range=dr), abs=1e-9)
    assert fm.ssim_pair(a, a) == pytest.approx(1.0)
    assert fm.ssim(a, a, b) == pytest.approx(1.0 + structural_similarity(a, b, data_range=255))


def test_entropy_and_sd_hand_cases():
    img = np.zeros((4, 4))
    img[:, 2:] = 255
    assert fm.entropy(img) == pytest.approx(1.0)  # two equiprobable values: 1 bit
    assert fm.sd(img) == pytest.approx(127.5)
    assert fm.entropy(np.full((5, 5), 7.0)) == 0.0
    four = np.array([[0, 1], [2, 3]], np.float64)
    assert fm.entropy(four) == pytest.approx(2.0)


def _conv2d_same(img, k):
    from scipy.signal import convolve2d

    return convolve2d(img, k, mode="same")


def _qabf_reference(f, a, b):
    """Xydeas-Petrović Qabf restated with scipy (CDDFuse's arithmetic, G=1 for equal g)."""
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)

    def ga(img):
        sx, sy = _conv2d_same(img, h3), _conv2d_same(img, h1)
        g = np.hypot(sx, sy)
        ang = np.full_like(img, math.pi / 2)
        nz = sx != 0
        ang[nz] = np.arctan(sy[nz] / sx[nz])
        return g, ang

    def q(g1, a1, gf, af):
        gr = np.zeros_like(g1)
        m = g1 > gf
        gr[m] = gf[m] / g1[m]
        m = g1 < gf
        gr[m] = g1[m] / gf[m]
        m = (g1 == gf) & (g1 > 0)
        gr[m] = 1.0
        al = 1 - np.abs(a1 - af) / (math.pi / 2)
        g = 0.9994 / (1 + np.exp(-15 * (gr - 0.5)))
        return g * (0.9879 / (1 + np.exp(-22 * (al - 0.8))))

    gA, aA = ga(a)
    gB, aB = ga(b)
    gF, aF = ga(f)
    return float((q(gA, aA, gF, aF) * gA + q(gB, aB, gF, aF) * gB).sum() / (gA + gB).sum())


def test_qabf_matches_reference_and_hand_case():
    a, b = _pair(4)
    f = np.round(0.5 * a + 0.5 * b)
    assert fm.qabf(f, a, b) == pytest.approx(_qabf_reference(f, a, b), rel=1e-9)
    # F = A = B: every edge kept exactly (G = 1, orientation match 1)
    perfect = (0.9994 / (1 + math.exp(-15 * 0.5))) * (0.9879 / (1 + math.exp(-22 * 0.2)))
    assert fm.qabf(a, a, a) == pytest.approx(perfect, rel=1e-9)
    assert fm.qabf(np.zeros_like(a), a, b) < 0.05  # a flat fused image keeps no edges
    # zero-padded Sobel: only all-zero references are edge-free -> undefined
    assert math.isnan(fm.qabf(a, np.zeros_like(a), np.zeros_like(a)))


def _vif_reference(ref, dist):
    """VIF_p restated with scipy.signal.convolve2d (the common MATLAB-port code)."""
    from scipy.signal import convolve2d

    sigma_nsq, eps, num, den = 2.0, 1e-10, 0.0, 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        sd_ = n / 5.0
        m = (n - 1) / 2
        y, x = np.ogrid[-m:m + 1, -m:m + 1]
        win = np.exp(-(x * x + y * y) / (2 * sd_ * sd_))
        win[win < np.finfo(float).eps * win.max()] = 0
        win /= win.sum()
        w = np.rot90(win, 2)
        if scale > 1:
            ref = convolve2d(ref, w, mode="valid")[::2, ::2]
            dist = convolve2d(dist, w, mode="valid")[::2, ::2]
        mu1, mu2 = convolve2d(ref, w, mode="valid"), convolve2d(dist, w, mode="valid")
        s1 = convolve2d(ref * ref, w, mode="valid") - mu1 ** 2
        s2 = convolve2d(dist * dist, w, mode="valid") - mu2 ** 2
        s12 = convolve2d(ref * dist, w, mode="valid") - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1 + s1 / sigma_nsq))
    return num / den


def test_vif_matches_reference():
    a = _texture(72, 80, seed=5).astype(np.float64)
    b = np.clip(0.7 * a + np.random.default_rng(0).normal(0, 10, a.shape), 0, 255)
    assert fm.vif_pair(a, b) == pytest.approx(_vif_reference(a, b), rel=1e-6)
    assert fm.vif_pair(a, a) == pytest.approx(1.0, rel=1e-9)
    assert math.isnan(fm.vif_pair(np.full_like(a, 5.0), a))  # no information: NaN, not 1.0


def test_frame_metrics_grey_conversion_and_errors():
    rgb = np.stack([_texture(seed=i) for i in range(3)], axis=-1)
    ir = _texture(seed=9)
    out = fm.frame_metrics(rgb, rgb, ir)
    assert set(out) == set(fm.FRAME_METRICS)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert out["SD"] == pytest.approx(float(np.std(grey.astype(float))))
    assert out["SSIM"] == pytest.approx(1.0 + fm.ssim_pair(grey.astype(float), ir.astype(float)))
    with pytest.raises(ValueError, match="differ in shape"):
        fm.frame_metrics(rgb, rgb, ir[:-1])
    with pytest.raises(ValueError, match="unknown fusion metric"):
        fm.frame_metrics(rgb, rgb, ir, metrics=["PSNR"])


def test_fusion_metrics_nan_is_not_averaged_away():
    t = 3
    fused = np.stack([np.stack([_texture(seed=i)] * 3, -1) for i in range(t)])
    vis = fused.copy()
    ir = np.stack([_texture(seed=10 + i) for i in range(t)])
    ok = fm.fusion_metrics(fused, vis, ir, metrics=["Qabf"])
    assert not math.isnan(ok["Qabf"])
    vis[1] = 0  # frame 1: both references black, no edges -> Qabf undefined on that frame
    ir[1] = 0
    bad = fm.fusion_metrics(fused, vis, ir, metrics=["Qabf", "SD"])
    assert math.isnan(bad["Qabf"]) and not math.isnan(bad["SD"])
    with pytest.raises(ValueError, match="frame counts differ"):
        fm.fusion_metrics(fused, vis[:2], ir)


# ------------------------------------------------------------------------------- flow


class ShiftFlow:
    """Oracle estimator: the true constant flow of a known shift."""

    name = "oracle"

    def __init__(self, dx, dy):
        self.dx, self.dy = dx, dy

    def __call__(self, src, dst):
        f = np.zeros((*src.shape[:2], 2), np.float32)
        f[..., 0], f[..., 1] = self.dx, self.dy
        return f


def test_warp_backward_known_shift():
    img = _texture().astype(np.float32)
    flow = np.zeros((*img.shape, 2), np.float32)
    flow[..., 0] = 3  # out[y, x] = img[y, x + 3]
    out = flowmod.warp_backward(img, flow)
    assert np.allclose(out[:, :-3], img[:, 3:])
    with pytest.raises(flowmod.FlowError):
        flowmod.warp_backward(img, flow[:-1])


def _moving_video(t=4, shift=2, h=48, w=64):
    """Content moving right by ``shift`` px per frame: frame_t(x) = base(x - shift*t)."""
    base = _texture(h, w + shift * t + 8, seed=3)
    base[:, : 8 + shift * (t + 1)] = 128  # flat where content enters: border replication exact
    rgb = np.stack([base] * 3, -1)
    return np.stack([rgb[:, 8 + shift * (t - i): 8 + shift * (t - i) + w] for i in range(t)])


def test_flowd_near_zero_for_known_shift_and_large_without_motion_model():
    vis = _moving_video()
    fused = vis.copy()
    # flow t -> t-1 of content moving right by 2 px/frame is (-2, 0)
    exact = tm.flowd(fused, vis, ShiftFlow(-2, 0))
    assert exact < 1e-3
    wrong = tm.flowd(fused, vis, ShiftFlow(0, 0))  # no motion compensation
    assert wrong > 5
    dis = tm.flowd(fused, vis, flowmod.DISFlow("medium"))
    assert dis < 0.25 * wrong
    # an independent per-frame change of the fused video is measured
    noisy = np.clip(fused.astype(int) + np.random.default_rng(0).integers(-20, 21, fused.shape),
                    0, 255).astype(np.uint8)
    assert tm.flowd(noisy, vis, ShiftFlow(-2, 0)) > 10
    assert math.isnan(tm.flowd(fused[:1], vis[:1], ShiftFlow(0, 0)))


def test_dis_recovers_shift_and_torch_adapter():
    vis = _moving_video(t=2, shift=3)
    f = flowmod.DISFlow("medium")(vis[1], vis[0])
    assert np.median(f[8:-8, 8:-8, 0]) == pytest.approx(-3, abs=0.3)
    half = flowmod.DISFlow("medium", scale=0.5)(vis[1], vis[0])
    assert half.shape == f.shape and np.median(half[8:-8, 8:-8, 0]) == pytest.approx(-3, abs=0.6)

    class Const(torch.nn.Module):
        def forward(self, a, b):
            out = torch.zeros(a.shape[0], 2, *a.shape[-2:])
            out[:, 0] = 2.0
            return [out * 0, out]  # RAFT style: list of iterations, last is final

    est = flowmod.TorchFlowEstimator(Const(), input_size=(24, 64))
    fl = est(vis[0], vis[1])
    assert fl.shape == (48, 64, 2)
    assert np.allclose(fl[..., 0], 2.0) and np.allclose(fl[..., 1], 0.0)  # width unchanged
    est2 = flowmod.TorchFlowEstimator(Const(), input_size=(48, 32))  # width halved
    assert np.allclose(est2(vis[0], vis[1])[..., 0], 4.0)
    est3 = flowmod.TorchFlowEstimator(Const(), input_size=(48, 32), rescale_vectors=False)
    assert np.allclose(est3(vis[0], vis[1])[..., 0], 2.0)  # the released evaluator's habit
    with pytest.raises(flowmod.FlowError, match="unknown flow estimator"):
        flowmod.get_flow_estimator("sea-raft")


def test_tof_zero_when_fused_moves_like_visible():
    vis = _moving_video(t=3)
    assert tm.tof(vis, vis, flowmod.DISFlow()) == pytest.approx(0.0, abs=1e-6)
    still = np.repeat(vis[:1], 3, axis=0)
    assert tm.tof(still, vis, flowmod.DISFlow()) > 1.0


# --------------------------------------------------------------------- brightness / Eq. 16


def test_flicker_and_brightness():
    const = np.full((5, 8, 8, 3), 100, np.uint8)
    assert tm.flicker(const, const) == 0.0
    assert np.allclose(tm.brightness_curve(const), 100)
    ramp = np.stack([np.full((8, 8, 3), 10 * i, np.uint8) for i in range(5)])
    offset = ramp + 5  # tracks the visible brightness exactly
    assert tm.flicker(offset, ramp) == pytest.approx(0.0)
    assert tm.flicker(const, ramp) == pytest.approx(10.0)  # misses every 10-level step
    alt = np.stack([np.full((8, 8, 3), 100 + (4 if i % 2 else 0), np.uint8) for i in range(5)])
    assert tm.flicker(alt, const) == pytest.approx(4.0)
    assert np.allclose(tm.brightness_variation(alt), [4, -4, 4, -4])
    assert math.isnan(tm.flicker(const[:1], const[:1]))
    assert tm.flicker(alt) == pytest.approx(4.0) and tm.flicker(const) == 0.0  # no reference
    # the signed offset: a fusion 5 levels above the visible, whatever the visible does
    assert tm.brightness_offset(offset, ramp) == pytest.approx(5.0)
    assert tm.brightness_offset(const, ramp) == pytest.approx(100 - 20)
    assert tm.brightness_offset(ramp, const) == pytest.approx(20 - 100)
    assert math.isnan(tm.brightness_offset(const[:0], const[:0]))
    ref = tm.prepare_reference(ramp, ramp[..., 0])
    assert tm.temporal_metrics(offset, ref)["bright"] == pytest.approx(5.0)


def test_direction_consistency_hand_cases():
    rng = np.random.default_rng(0)
    vis = rng.integers(50, 200, (3, 8, 8)).astype(np.uint8)
    ir = vis.copy()
    same = tm.direction_consistency(vis, vis, ir)
    assert same["dirC"] == pytest.approx(0.0, abs=1e-12)
    mirrored = (250 - vis.astype(int)).astype(np.uint8)  # every change reversed
    opp = tm.direction_consistency(mirrored, vis, ir)
    assert opp["dirC_vis"] == pytest.approx(2.0) and opp["dirC"] == pytest.approx(4.0)
    # hand case: two pixels, fused change (1, 0), visible change (1, 1) -> 1 - 1/sqrt(2)
    f0 = np.array([[10, 10]], np.uint8)
    val = tm.direction_inconsistency(f0, f0 + np.array([[1, 0]], np.uint8), f0, f0 + 1)
    assert val == pytest.approx(1 - 1 / math.sqrt(2))
    assert tm.direction_inconsistency(f0, f0, f0, f0) == 0.0  # no change anywhere: consistent
    assert tm.direction_inconsistency(f0, f0, f0, f0 + 1) == 1.0  # fused frozen, source moves


# ------------------------------------------------------------------------------- feaCD


def test_feacd_from_features_hand_cases():
    fv = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0]])
    same = tm.feacd_from_features(fv, fv, fv)
    assert same == 0.0
    # fused change agrees in sign on 2 of 3 logits with both sources: 2 * (1/3) per source
    ff = np.array([[0.0, 0.0, 0.0], [3.0, -0.5, -1.0]])
    assert tm.feacd_from_features(ff, fv, fv) == pytest.approx(2 * (2 / 3))
    d_f, d_v = -ff[1], -fv[1]
    cos = d_f @ d_v / (np.linalg.norm(d_f) * np.linalg.norm(d_v))
    assert tm.feacd_from_features(ff, fv, fv, "cosine") == pytest.approx(2 * (1 - cos))
    assert math.isnan(tm.feacd_from_features(ff[:1], fv[:1], fv[:1]))


def test_feacd_with_resnet_and_weight_loading(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = resnet18()
    path = tmp_path / "r18.pth"
    sd = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    torch.save(sd, path)  # like torchvision's file: no BN counters
    loaded = load_pretrained(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "r18.safetensors"))
    assert torch.equal(load_pretrained(tmp_path / "r18.safetensors").fc.weight, model.fc.weight)

    hub = tmp_path / "th" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(sd, hub / "resnet18-f37072fd.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert torch.equal(load_pretrained().conv1.weight, model.conv1.weight)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(ResNetWeightsError, match="no ResNet-18 ImageNet weights"):
        load_pretrained()
    with pytest.raises(ResNetWeightsError, match="not found"):
        load_pretrained(tmp_path / "missing.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ResNetWeightsError, match="not a ResNet-18"):
        load_pretrained(tmp_path / "bad.pth")

    vis = _moving_video(t=3, h=32, w=32)
    ir = vis[..., 0]
    assert tm.feacd(vis, vis, vis, loaded) == 0.0
    v = tm.feacd(vis[::-1].copy(), vis, ir, loaded)
    assert 0.0 < v <= 4.0
    assert tm.resnet_logits(ir, loaded).shape == (3, 1000)


# ------------------------------------------------------------------------------ online


def test_online_metrics_match_offline():
    vis = _moving_video(t=5)
    rng = np.random.default_rng(1)
    fused = np.clip(vis.astype(int) + rng.integers(-6, 7, vis.shape), 0, 255).astype(np.uint8)
    ir = vis[..., 1].copy()
    om = OnlineTemporalMetrics(flow_scale=1.0, compute_flow=True, estimator=ShiftFlow(-2, 0))
    rows = [om.update(f, v, i) for f, v, i in zip(fused, vis, ir)]
    assert math.isnan(rows[0]["dirC"]) and math.isnan(rows[0]["flowD"])
    assert not math.isnan(rows[0]["brightness"])
    off = tm.direction_consistency(fused, vis, ir)
    assert np.mean([r["dirC"] for r in rows[1:]]) == pytest.approx(off["dirC"])
    assert np.mean([r["flicker"] for r in rows[1:]]) == pytest.approx(tm.flicker(fused, vis))
    assert np.mean([r["flowD"] for r in rows[1:]]) == pytest.approx(
        tm.flowd(fused, vis, ShiftFlow(-2, 0)))
    summ = om.summary()
    assert summ["dirC"] == pytest.approx(off["dirC"])
    om.reset()
    assert om.summary() == {} and math.isnan(om.update(fused[0], vis[0], ir[0])["flicker"])
    # a new frame size starts a new stream instead of failing
    small = om.update(fused[1, :32, :32], vis[1, :32, :32], ir[1, :32, :32])
    assert math.isnan(small["dirC"])
    with pytest.raises(ValueError, match="frame sizes differ"):
        om.update(fused[0], vis[0], ir[0, :-1])
    quick = OnlineTemporalMetrics()  # defaults: no flow
    assert "flowD" not in quick.update(fused[0], vis[0], ir[0])
    low = OnlineTemporalMetrics(flow_scale=0.25, compute_flow=True)
    low.update(fused[0], vis[0], ir[0])
    assert low.update(fused[1], vis[1], ir[1])["flowD"] >= 0.0


def test_metric_info_covers_all_metrics():
    for m in (*fm.FUSION_METRICS, *tm.TEMPORAL_METRICS):
        assert m in METRIC_INFO
    assert METRIC_INFO["flowD"].higher_is_better is False
    assert METRIC_INFO["MI"].higher_is_better is True


def test_ghosting_is_a_high_percentile_of_block_differences():
    """A 16 px square left behind in 1 of 12 blocks: the 99th percentile sees it, the mean not."""
    framewise = np.full((2, 48, 64), 100, np.uint8)
    streamed = framewise.copy()
    streamed[1, 16:32, 16:32] = 160                       # one block, 60 grey levels off
    assert tm.ghosting(framewise, framewise) == 0.0
    assert tm.ghosting(streamed, framewise, percentile=100) == pytest.approx(60.0)
    assert tm.ghosting(streamed, framewise) == pytest.approx(np.percentile([0] * 23 + [60], 99))
    assert np.abs(streamed.astype(float) - framewise).mean() < 3
    with pytest.raises(ValueError, match="frame counts differ"):
        tm.ghosting(streamed, framewise[:1])
    with pytest.raises(ValueError, match="at least 16x16"):
        tm.ghosting(streamed[:, :8], framewise[:, :8])
