# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Thermal → RGB registration estimation (temcoco_core.frames.calibration, temcoco calibrate).

The real-data cases take the pixel-aligned M3SVD infrared frames, warp them by a known
thermal → RGB homography ``H`` (the thermal camera then sees ``IR(H · x)`` at its pixel ``x``)
and estimate ``H`` back against the *visible* frames: a cross-modal problem, as on a rig.

Ground truth: the known warp ``H`` alone (the dataset's pairs are pixel-aligned). The
calibrator's own estimate ``B`` on the unwarped pairs is printed too (``-s``), with the error
against ``B · H``: ``B`` is 1-1.5 px from the identity on these sequences (the floor of a
cross-modal estimate here: the same code recovers a warped copy of the *same* modality to
0.1-0.2 px, and intensity mutual information also puts the pairs 1-2 px apart).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from temcoco_core.frames.calibration import (
    CalibrationConfig,
    CalibrationError,
    estimate_registration,
    fit_model,
    MODELS,
    prepare_pair,
    scale_matrix,
    structure_map,
    to_grey_unit,
)

SEQ = "0111_1716"
N_FRAMES = 8


# ---------------------------------------------------------------------------------- helpers
def _apply(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    q = np.c_[pts, np.ones(len(pts))] @ h.T
    return q[:, :2] / q[:, 2:3]


def _corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0.0, 0.0], [w - 1.0, 0.0], [w - 1.0, h - 1.0], [0.0, h - 1.0]])


def corner_error(h_est: np.ndarray, h_true: np.ndarray, thermal_size: tuple[int, int]) -> float:
    """Mean distance, RGB pixels, between the thermal corners mapped by the two maps."""
    c = _corners(thermal_size)
    return float(np.linalg.norm(_apply(h_est, c) - _apply(h_true, c), axis=1).mean())


def rig_homography(tsize: tuple[int, int], scale: float, angle_deg: float,
                   shift: tuple[float, float], persp: tuple[float, float] = (0.0, 0.0),
                   rgb_size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """Thermal → RGB: rotate about the thermal centre, scale, tilt.

    Centre on the RGB centre plus ``shift``.
    """
    tw, th = tsize
    centre = np.array([[1, 0, -(tw - 1) / 2], [0, 1, -(th - 1) / 2], [0, 0, 1.0]])
    a = math.radians(angle_deg)
    rot = np.array([[scale * math.cos(a), -scale * math.sin(a), 0],
                    [scale * math.sin(a), scale * math.cos(a), 0], [0, 0, 1.0]])
    tilt = np.array([[1, 0, 0], [0, 1, 0], [persp[0] / tw, persp[1] / th, 1.0]])
    place = np.array([[1, 0, (rgb_size[0] - 1) / 2 + shift[0]],
                      [0, 1, (rgb_size[1] - 1) / 2 + shift[1]], [0, 0, 1.0]])
    h = place @ rot @ tilt @ centre
    return h / h[2, 2]


def thermal_view(ir: np.ndarray, h: np.ndarray, tsize: tuple[int, int]) -> np.ndarray:
    """What a thermal camera of ``tsize`` sees.

    What a thermal camera of ``tsize`` whose pixels map to the IR frame by ``h`` sees (anti-aliased
    when it is coarser than the IR frame).
    """
    c = np.array([[(tsize[0] - 1) / 2, (tsize[1] - 1) / 2]])
    p = _apply(h, np.r_[c, c + [1.0, 0.0], c + [0.0, 1.0]])
    density = math.sqrt(abs(np.linalg.det(np.c_[p[1] - p[0], p[2] - p[0]])))
    src = ir.astype(np.float32)
    if density > 1.2:
        src = cv2.GaussianBlur(src, (0, 0), 0.45 * density)
    footprint = _apply(h, _corners(tsize))
    assert (footprint >= -0.5).all() and (footprint[:, 0] <= ir.shape[1] - 0.5).all() and \
        (footprint[:, 1] <= ir.shape[0] - 0.5).all(), "test case leaves the IR frame"
    out = cv2.warpPerspective(src, h, tsize, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def stairs(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """``N_FRAMES`` (visible RGB, infrared grey) frames spread over the stairs sequence."""
    from temcoco_core.io.video import read_video

    root = data_dir / "m3svd" / "test"
    vis = read_video(root / "visible" / f"{SEQ}.mp4")
    ir = read_video(root / "infrared" / f"{SEQ}.mp4")[..., 0]
    idx = np.linspace(0, min(len(vis), len(ir)) - 1, N_FRAMES).round().astype(int)
    return vis[idx], ir[idx]


@pytest.fixture(scope="module")
def base(stairs) -> np.ndarray:
    """The dataset's own infrared → visible registration as calibrate measures it."""
    vis, ir = stairs
    res = estimate_registration([prepare_pair(i, v) for v, i in zip(vis, ir, strict=True)])
    dev = corner_error(res.homography, np.eye(3), (640, 480))
    print(f"\n[{SEQ}] dataset base registration: corners move {dev:.2f} px from identity; "
          f"score {res.score:.3f}, residual {res.residual_px:.2f} px")
    assert dev < 3.0, "the M3SVD pair is not as aligned as assumed"
    assert res.frames_used == res.frames_total
    return res.homography


CASES = {
    # name: thermal size, scale (RGB px per thermal px), rotation°, shift, perspective
    "shift": ((560, 420), 1.0, 0.0, (23.0, -17.0), (0.0, 0.0)),
    "scale3x": ((200, 150), 3.0, 0.0, (6.0, 4.0), (0.0, 0.0)),
    "scale2x_5to4_rot": ((256, 205), 1.9, -2.0, (-14.0, 9.0), (0.0, 0.0)),
    "rot5": ((480, 360), 1.15, 5.0, (-10.0, -2.0), (0.0, 0.0)),
    "perspective": ((320, 256), 1.7, -2.0, (12.0, -6.0), (0.04, -0.03)),
}

# mean corner error allowed against the known warp alone, RGB px. A 3x coarser thermal image
# keeps only coarse structure, whose thermal and visible positions differ more on these
# scenes: measured 1.4-1.6 px there (1.0-1.4 px on the other cases), hence 2.0 for it.
LIMIT_PX = {"scale3x": 2.0}


@pytest.mark.parametrize("name", list(CASES))
def test_calibrate_recovers_known_homography(name: str, stairs, base) -> None:
    tsize, scale, angle, shift, persp = CASES[name]
    h = rig_homography(tsize, scale, angle, shift, persp)
    vis, ir = stairs
    pairs = [prepare_pair(thermal_view(i, h, tsize), v) for v, i in zip(vis, ir, strict=True)]
    res = estimate_registration(pairs, CalibrationConfig(model="homography"))
    err = corner_error(res.homography, h, tsize)
    vs_base = corner_error(res.homography, base @ h, tsize)
    print(f"\n[{SEQ}] {name}: thermal {tsize[0]}x{tsize[1]}, mean corner error {err:.2f} px "
          f"(vs B·H {vs_base:.2f} px); score {res.score:.3f} (before "
          f"{res.score_before:.3f}), residual {res.residual_px:.2f} px, "
          f"{res.frames_used}/{res.frames_total} pairs")
    assert err <= LIMIT_PX.get(name, 1.5)
    assert res.score > res.score_before + 0.1
    assert res.residual_px < 1.5
    assert not res.warnings


@pytest.fixture(scope="module")
def val_frames(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Clean M3SVD validation frames (PNG folders) of another scene: every other of 20."""
    from temcoco_core.io.video import read_frame_folder

    root = data_dir / "m3svd" / "val"
    vis = read_frame_folder(root / "visible_Enhance" / "0111_1753")[::2]
    ir = read_frame_folder(root / "infrared_Enhance" / "0111_1753", grey=True)[::2]
    return vis, ir


@pytest.mark.parametrize("name", ["scale3x", "perspective"])
def test_calibrate_on_validation_frames(name: str, val_frames) -> None:
    vis, ir = val_frames
    base_res = estimate_registration([prepare_pair(i, v) for v, i in zip(vis, ir, strict=True)])
    assert corner_error(base_res.homography, np.eye(3), (640, 480)) < 3.0
    tsize, scale, angle, shift, persp = CASES[name]
    h = rig_homography(tsize, scale, angle, shift, persp)
    pairs = [prepare_pair(thermal_view(i, h, tsize), v) for v, i in zip(vis, ir, strict=True)]
    res = estimate_registration(pairs)
    err = corner_error(res.homography, h, tsize)
    print(f"\n[val 0111_1753] {name}: mean corner error {err:.2f} px (vs B·H "
          f"{corner_error(res.homography, base_res.homography @ h, tsize):.2f} px)")
    assert err <= LIMIT_PX.get(name, 1.5) and not res.warnings


@pytest.mark.parametrize("model", ["affine", "similarity", "translation"])
def test_fewer_degrees_of_freedom(model: str, stairs) -> None:
    angle = 0.0 if model == "translation" else 3.0
    tsize = (320, 240)
    h = rig_homography(tsize, 1.8, angle, (-9.0, 6.0))
    vis, ir = stairs
    pairs = [prepare_pair(thermal_view(i, h, tsize), v) for v, i in zip(vis, ir, strict=True)]
    res = estimate_registration(pairs[:6], CalibrationConfig(model=model))
    # the estimate lies in the model's family
    m = res.homography
    assert np.allclose(m[2], [0, 0, 1])
    if model in ("similarity", "translation"):
        assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])
    if model == "translation":
        assert m[0, 1] == 0.0
    err = corner_error(m, fit_model(_corners(tsize), _apply(h, _corners(tsize)), model), tsize)
    print(f"\n[{SEQ}] model {model}: mean corner error {err:.2f} px")
    assert err <= 1.5


def test_blank_frames_fail_with_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    pairs = [prepare_pair(np.zeros((120, 160), np.uint8), rng.integers(0, 255, (240, 320, 3),
                                                                       dtype=np.uint8))] * 3
    with pytest.raises(CalibrationError):
        estimate_registration(pairs)


# ---------------------------------------------------------------------------------- units
def test_scale_matrix_matches_cv2_resize() -> None:
    img = np.zeros((40, 60), np.float32)
    img[17, 23] = 1.0
    small = cv2.resize(cv2.GaussianBlur(img, (0, 0), 3), (20, 13), interpolation=cv2.INTER_AREA)
    peak = np.unravel_index(np.argmax(small), small.shape)
    expect = _apply(scale_matrix(20 / 60, 13 / 40), np.array([[23.0, 17.0]]))[0]
    assert abs(peak[1] - expect[0]) <= 0.5 and abs(peak[0] - expect[1]) <= 0.5


@pytest.mark.parametrize("model", MODELS)
def test_fit_model_is_exact_within_its_family(model: str) -> None:
    src = np.array([[0, 0], [100, 0], [100, 80], [0, 80], [50, 40], [20, 70]], float)
    h = rig_homography((101, 81), 2.0, 0.0 if model == "translation" else 4.0, (5.0, -3.0),
                       (0.05, 0.02) if model == "homography" else (0.0, 0.0))
    if model == "affine":
        h = h @ np.array([[1.0, 0.1, 0.0], [0.0, 1.0, 0.0], [0, 0, 1]])
    dst = _apply(h, src)
    assert np.allclose(fit_model(src, dst, model), h, atol=1e-6)


def test_grey_and_structure_are_intensity_invariant() -> None:
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.random((64, 80)).astype(np.float32), (0, 0), 2)
    a = structure_map(to_grey_unit(img))
    b = structure_map(to_grey_unit((img * 40000 + 1000).astype(np.uint16)))
    inv = structure_map(to_grey_unit(1.0 - img))  # contrast reversal (hot-black)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99
    assert np.corrcoef(a.ravel(), inv.ravel())[0, 1] > 0.99


# ---------------------------------------------------------------------------------- command
def _rig(stairs, n: int = 6):
    """A 16-bit 240x192 thermal camera (5:4) beside the 640x480 RGB camera."""
    tsize = (240, 192)
    h = rig_homography(tsize, 2.2, 1.5, (8.0, -5.0))
    vis, ir = stairs
    thermal = [(thermal_view(i, h, tsize).astype(np.uint16) * 40 + 27000) for i in ir[:n]]
    return h, tsize, list(vis[:n]), thermal


def test_calibrate_command_on_a_bag(tmp_path: Path, stairs) -> None:
    from temcoco_core.cli import main as cli
    from temcoco_core.io.bag import BagWriter
    from temcoco_core.node_config import NodeConfig

    h, tsize, vis, thermal = _rig(stairs)
    bag = tmp_path / "rig"
    with BagWriter(bag, "mcap") as w:
        for k, (v, t) in enumerate(zip(vis, thermal, strict=True)):
            stamp = 10**9 + k * 100_000_000
            w.write_image("/camera/color/image_raw", v, "rgb8", stamp)
            w.write_image("/lwir/image_raw", t, "mono16", stamp + 3_000_000)
            w.write_image("/camera/depth/image_raw", v[:, :, 0], "mono8", stamp)
    out = tmp_path / "cfg" / "registration.yaml"
    assert cli(["calibrate", str(bag), "-o", str(out), "--frames", "6"]) == 0
    assert out.is_file() and (tmp_path / "cfg" / "registration_overlay.png").is_file()
    text = out.read_text()
    assert "/lwir/image_raw" in text and "thermal 240x192 -> RGB 640x480" in text
    cfg = NodeConfig.from_yaml(out, strict_types=True)  # loads as the node loads it
    est = np.array(cfg.homography).reshape(3, 3)
    assert corner_error(est, h, tsize) <= 1.5
    reg = cfg.pipeline_config().registration
    assert reg.enabled and np.allclose(np.reshape(reg.homography, (3, 3)), est)
    overlay = cv2.imread(str(tmp_path / "cfg" / "registration_overlay.png"))
    assert overlay.shape[1] > 2 * 640 * 0.7  # before | after, side by side


def test_calibrate_command_on_frame_folders_json(tmp_path: Path, stairs, capsys) -> None:
    import json

    from temcoco_core.cli import main as cli

    h, tsize, vis, thermal = _rig(stairs, 5)
    vdir, tdir = tmp_path / "visible", tmp_path / "thermal"
    vdir.mkdir()
    tdir.mkdir()
    for k, (v, t) in enumerate(zip(vis, thermal, strict=True)):
        cv2.imwrite(str(vdir / f"{k:04d}.png"), cv2.cvtColor(v, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tdir / f"{k:04d}.png"), t)  # 16-bit PNG, read unchanged
    out = tmp_path / "reg.yaml"
    code = cli(["calibrate", str(vdir), str(tdir), "-o", str(out), "--model", "similarity",
                "--preview", str(tmp_path / "o.png"), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "similarity" and summary["frames_used"] >= 4
    assert summary["score"] > summary["score_before"]
    est = np.array(summary["homography"])
    ref = fit_model(_corners(tsize), _apply(h, _corners(tsize)), "similarity")
    assert corner_error(est, ref, tsize) <= 1.5
    # a missing input is one clear line, not a traceback
    assert cli(["calibrate", str(vdir), str(tmp_path / "nope"), "-o", str(out)]) == 1
    assert "nope" in capsys.readouterr().err


def test_calibrated_file_drives_replay_and_the_live_score(tmp_path: Path, stairs, capsys
                                                          ) -> None:
    """Calibrate, then replay with the registration file.

    calibrate → registration.yaml → `temcoco replay --params fusion.yaml --params
    registration.yaml`: the replay registers the 240x192 thermal camera into the 640x480 RGB frame
    at the model size and its live alignment score says so; the same bag with the thermal image
    merely stretched onto the RGB frame scores as misregistered.
    """
    import json

    from temcoco_core.cli import main as cli
    from temcoco_core.io.bag import BagWriter

    _, _, vis, thermal = _rig(stairs, 8)
    bag = tmp_path / "rig"
    with BagWriter(bag) as w:
        for k, (v, t) in enumerate(zip(vis, thermal, strict=True)):
            stamp = 10**9 + k * 100_000_000
            w.write_image("/rgb/image_raw", v, "rgb8", stamp)
            w.write_image("/thermal/image_raw", t, "mono16", stamp)
    reg = tmp_path / "registration.yaml"
    assert cli(["calibrate", str(bag), "-o", str(reg), "--no-preview", "--json"]) == 0
    capsys.readouterr()
    fusion_yaml = Path(__file__).resolve().parents[1] / "config" / "fusion.yaml"
    common = ["--engine", "average", "--model-size", "320x240", "-p", "alignment_every=1",
              "--json"]
    assert cli(["replay", str(bag), "-o", str(tmp_path / "out1"), "--params", str(fusion_yaml),
                "--params", str(reg), *common]) == 0
    registered = json.loads(capsys.readouterr().out)["alignment"]
    assert cli(["replay", str(bag), "-o", str(tmp_path / "out2"), "--params", str(fusion_yaml),
                "--resize-thermal", *common]) == 0
    stretched = json.loads(capsys.readouterr().out)["alignment"]
    print(f"\nreplay alignment score: registered {registered['alignment_score_mean']:.2f}, "
          f"stretched {stretched['alignment_score_mean']:.2f}")
    assert registered["alignment_readings"] == 8 and registered["alignment_warn_share"] == 0.0
    assert registered["alignment_score_mean"] > 0.9
    assert stretched["alignment_warn_share"] >= 0.5 and stretched["alignment_score_mean"] < 0.6
