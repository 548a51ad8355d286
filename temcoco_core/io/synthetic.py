# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""A synthetic, seeded thermal + RGB street scene written as a real rosbag2 (the demo's input).

The scene is meant to exercise what matters for temporally consistent fusion, not to look
photographic:

* a textured, cool background (visible: paving, grass and walls with fine texture; thermal:
  low-contrast, differently textured, cooler than the targets);
* warm people and vehicles moving across (people are dressed close to the background colour,
  so they are hard to see in the visible image and bright in the thermal one; vehicles carry a
  hot engine patch);
* camera shake shared by both cameras (a smooth random walk of the crop window);
* visible blur (Gaussian, strength varying over time);
* thermal column-stripe noise (fixed pattern plus slow drift) and per-frame gain/offset flicker
  with occasional AGC jumps;
* thermal stamps a few milliseconds off the RGB stamps (the pairer must use its slop).

Thermal frames are 16-bit raw counts in centi-kelvin (``mono16``) and can also be written as
``mono8`` (camera-AGC'd) or ``32FC1`` (°C).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from temcoco_core.frames.image_msg import encode_compressed

__all__ = ["SyntheticFrame", "SyntheticSceneConfig", "generate_scene", "write_synthetic_bag"]

_KELVIN0 = 27315  # 0 °C in centi-kelvin


@dataclass
class SyntheticSceneConfig:
    """Synthetic scene parameters (sizes ``(W, H)`` in pixels, temperatures in °C).

    Attributes:
        width, height: frame size of both cameras.
        frames: number of frame pairs.
        fps: frame rate (stamps are ``start_ns + i / fps``).
        seed: random seed; same seed, same bag.
        people, vehicles: number of moving warm targets.
        shake_px: standard deviation of the camera shake, pixels.
        blur_sigma: mean Gaussian blur of the visible image, pixels.
        stripe_noise_c: column stripe noise amplitude of the thermal image, °C.
        gain_flicker: relative per-frame thermal gain jitter (plus rare AGC jumps of 5×).
        thermal_skew_ms: thermal stamps lag the RGB stamps by up to this much.
        start_ns: stamp of the first frame.
    """

    width: int = 320
    height: int = 256
    frames: int = 60
    fps: float = 15.0
    seed: int = 0
    people: int = 4
    vehicles: int = 2
    shake_px: float = 1.5
    blur_sigma: float = 1.2
    stripe_noise_c: float = 0.4
    gain_flicker: float = 0.02
    thermal_skew_ms: float = 5.0
    start_ns: int = 1_700_000_000_000_000_000

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"synthetic scene must be at least 32x32, got "
                             f"{self.width}x{self.height}")
        if self.frames < 1 or self.fps <= 0:
            raise ValueError("synthetic scene needs frames >= 1 and fps > 0")


@dataclass
class SyntheticFrame:
    """One frame pair.

    Attributes:
        index: frame number.
        stamp_ns: RGB header stamp; ``thermal_stamp_ns``: thermal header stamp.
        visible: ``(H, W, 3)`` uint8 RGB.
        thermal: ``(H, W)`` uint16 centi-kelvin (raw radiometric counts after gain flicker).
        temperature_c: ``(H, W)`` float32 true scene temperature (before noise and gain).
    """

    index: int
    stamp_ns: int
    thermal_stamp_ns: int
    visible: np.ndarray
    thermal: np.ndarray
    temperature_c: np.ndarray


@dataclass
class _Target:
    kind: str
    x: float
    y: float
    vx: float
    vy: float
    w: int
    h: int
    colour: tuple[int, int, int]
    temp_c: float


def _smooth_noise(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Band-limited noise in about ``[-1, 1]``, ``(h, w)`` float32."""
    small = rng.standard_normal((max(2, int(h / scale)), max(2, int(w / scale)))).astype(
        np.float32)
    big = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return big / (np.abs(big).max() + 1e-6)


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Visible RGB float ``(h, w, 3)`` in [0, 255] and temperature ``(h, w)`` in °C."""
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    horizon = 0.35
    sky = yy < horizon
    vis = np.empty((h, w, 3), np.float32)
    # sky: bright blue gradient; walls and ground: textured greys/greens
    vis[..., 0] = np.where(sky, 150 + 60 * yy, 110)
    vis[..., 1] = np.where(sky, 180 + 40 * yy, 115)
    vis[..., 2] = np.where(sky, 230 - 20 * yy, 105)
    fine = _smooth_noise(rng, h, w, 2.0)
    mid = _smooth_noise(rng, h, w, 12.0)
    coarse = _smooth_noise(rng, h, w, 60.0)
    ground = ~sky
    tex = 25 * fine + 20 * mid + 15 * coarse
    grass = (coarse > 0.2) & ground
    vis[..., 0] += np.where(ground, tex, 4 * fine)
    vis[..., 1] += np.where(ground, tex + 30 * grass, 4 * fine)
    vis[..., 2] += np.where(ground, tex - 10 * grass, 4 * fine)
    # buildings on the horizon
    x = 0
    while x < w:
        bw = int(rng.integers(w // 12, w // 5))
        top = int(h * (horizon - rng.uniform(0.05, 0.25)))
        shade = rng.uniform(70, 140)
        vis[top:int(h * horizon), x:x + bw] = (shade, shade * 0.95, shade * 0.9)
        for wy in range(top + 4, int(h * horizon) - 4, 8):  # windows
            for wx in range(x + 3, min(x + bw, w) - 3, 7):
                vis[wy:wy + 3, wx:wx + 3] = (200, 200, 160)
        x += bw + int(rng.integers(2, w // 20 + 3))
    temp = np.where(sky, -5.0 - 10 * (horizon - yy), 12.0).astype(np.float32)
    temp = temp + ground * (2.5 * mid + 1.5 * coarse - 2.0 * grass) + 0.3 * fine
    walls = (vis[..., 0] < 145) & sky
    temp = np.where(walls, 14.0 + 1.0 * mid, temp).astype(np.float32)
    return np.clip(vis, 0, 255), temp


def _make_targets(rng: np.random.Generator, cfg: SyntheticSceneConfig, cw: int, ch: int,
                  bg: np.ndarray) -> list[_Target]:
    targets: list[_Target] = []
    s = cfg.height / 256.0
    for i in range(cfg.people + cfg.vehicles):
        person = i < cfg.people
        w = int((10 if person else 44) * s * rng.uniform(0.85, 1.2))
        h = int((26 if person else 20) * s * rng.uniform(0.85, 1.2))
        y = rng.uniform(0.45, 0.85) * ch
        speed = rng.uniform(0.8, 1.8) * s if person else rng.uniform(2.5, 4.0) * s
        direction = 1.0 if rng.random() < 0.5 else -1.0
        x = rng.uniform(0, cw)
        yi, xi = int(min(y, ch - 1)), int(min(x, cw - 1))
        if person:  # dressed like the ground behind them: hidden in the visible image
            colour = tuple(int(c) for c in np.clip(bg[yi, xi] + rng.normal(0, 12, 3), 0, 255))
        else:
            colour = tuple(int(c) for c in rng.integers(40, 220, 3))
        temp = rng.uniform(26.0, 31.0) if person else rng.uniform(15.0, 19.0)
        targets.append(_Target("person" if person else "vehicle", x, y, direction * speed,
                               rng.uniform(-0.2, 0.2) * s, w, h, colour, temp))
    return targets


def _draw(vis: np.ndarray, temp: np.ndarray, t: _Target) -> None:
    x0, y0 = int(round(t.x - t.w / 2)), int(round(t.y - t.h))
    if t.kind == "person":
        cx, cy = x0 + t.w // 2, y0 + t.h // 2
        axes = (max(1, t.w // 2), max(1, t.h // 2))
        cv2.ellipse(vis, (cx, cy), axes, 0, 0, 360, t.colour, -1, cv2.LINE_AA)
        cv2.ellipse(temp, (cx, cy), axes, 0, 0, 360, float(t.temp_c), -1, cv2.LINE_AA)
        head = (cx, y0 - max(1, t.w // 4))
        cv2.circle(vis, head, max(1, t.w // 3), (190, 150, 120), -1, cv2.LINE_AA)
        cv2.circle(temp, head, max(1, t.w // 3), float(t.temp_c + 2.0), -1, cv2.LINE_AA)
    else:
        cv2.rectangle(vis, (x0, y0), (x0 + t.w, y0 + t.h), t.colour, -1)
        cv2.rectangle(vis, (x0 + 3, y0 + 2), (x0 + t.w - 3, y0 + t.h // 2), (60, 70, 80), -1)
        cv2.rectangle(temp, (x0, y0), (x0 + t.w, y0 + t.h), float(t.temp_c), -1)
        front = x0 + (t.w - t.w // 4 if t.vx > 0 else 0)
        cv2.rectangle(temp, (front, y0 + t.h // 3), (front + t.w // 4, y0 + t.h),
                      float(t.temp_c + 20.0), -1)  # hot engine
        for wx in (x0 + t.w // 5, x0 + 4 * t.w // 5):  # warm tyres
            cv2.circle(vis, (wx, y0 + t.h), max(2, t.h // 4), (20, 20, 20), -1)
            cv2.circle(temp, (wx, y0 + t.h), max(2, t.h // 4), float(t.temp_c + 8.0), -1)


def generate_scene(cfg: SyntheticSceneConfig | None = None) -> Iterator[SyntheticFrame]:
    """Yield ``cfg.frames`` synthetic frame pairs (deterministic for a given seed)."""
    cfg = cfg or SyntheticSceneConfig()
    rng = np.random.default_rng(cfg.seed)
    w, h = cfg.width, cfg.height
    margin = int(4 * cfg.shake_px) + 4
    cw, ch = w + 2 * margin, h + 2 * margin
    bg_vis, bg_temp = _background(rng, ch, cw)
    targets = _make_targets(rng, cfg, cw, ch, bg_vis)
    stripes_fixed = rng.standard_normal(w).astype(np.float32) * cfg.stripe_noise_c
    drift_phase = rng.uniform(0, 2 * np.pi, w).astype(np.float32)
    shake = np.zeros(2)
    gain, offset = 1.0, 0.0
    period_ns = 1e9 / cfg.fps
    for i in range(cfg.frames):
        vis = bg_vis.copy()
        temp = bg_temp.copy()
        for t in sorted(targets, key=lambda t: t.y):  # far (higher) targets first
            _draw(vis, temp, t)
            t.x += t.vx
            t.y = float(np.clip(t.y + t.vy, 0.4 * ch, 0.95 * ch))
            if t.x < -t.w:
                t.x = cw + t.w
            elif t.x > cw + t.w:
                t.x = -t.w
        shake = 0.8 * shake + rng.normal(0.0, cfg.shake_px * 0.6, 2)
        dx, dy = np.clip(shake, -margin + 1, margin - 1)
        m = np.float32([[1, 0, -(margin + dx)], [0, 1, -(margin + dy)]])
        vis_c = cv2.warpAffine(vis, m, (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        temp_c = cv2.warpAffine(temp, m, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
        sigma = cfg.blur_sigma * (0.6 + 0.8 * (0.5 + 0.5 * np.sin(i / 7.0)))
        if sigma > 0.05:
            vis_c = cv2.GaussianBlur(vis_c, (0, 0), sigma)
        vis_c = vis_c + rng.normal(0, 2.0, vis_c.shape).astype(np.float32)
        visible = np.clip(vis_c + 0.5, 0, 255).astype(np.uint8)

        # thermal camera: stripes, noise, gain/offset flicker with rare AGC jumps
        stripes = stripes_fixed + 0.5 * cfg.stripe_noise_c * np.sin(drift_phase + i / 15.0)
        noisy = temp_c + stripes[None, :] + rng.normal(0, 0.08, temp_c.shape).astype(np.float32)
        if rng.random() < 0.08:
            gain = float(np.clip(gain * (1 + rng.normal(0, 5 * cfg.gain_flicker)), 0.7, 1.3))
            offset += float(rng.normal(0, 1.5))
        g = gain * (1 + rng.normal(0, cfg.gain_flicker))
        counts = (noisy * g + offset) * 100.0 + _KELVIN0
        thermal = np.clip(counts + 0.5, 0, 65535).astype(np.uint16)

        stamp = cfg.start_ns + round(i * period_ns)
        skew = round(rng.uniform(0.0, cfg.thermal_skew_ms) * 1e6)
        yield SyntheticFrame(i, stamp, stamp + skew, visible, thermal, temp_c.astype(np.float32))


def _thermal_as(encoding: str, thermal: np.ndarray) -> np.ndarray:
    if encoding in ("mono16", "16UC1"):
        return thermal
    if encoding == "32FC1":
        return ((thermal.astype(np.float32) - _KELVIN0) / 100.0).astype(np.float32)
    if encoding == "mono8":  # a camera's own per-frame AGC
        lo, hi = np.percentile(thermal[::4, ::4], (1, 99))
        return np.clip((thermal.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1.0)), 0,
                       255).astype(np.uint8)
    raise ValueError(f"synthetic thermal encoding must be mono16, 16UC1, 32FC1 or mono8, got "
                     f"{encoding!r}")


def _visible_as(encoding: str, rgb: np.ndarray) -> np.ndarray:
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding in ("rgba8", "bgra8"):
        base = rgb if encoding == "rgba8" else rgb[:, :, ::-1]
        return np.concatenate([base, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=2)
    if encoding == "mono8":
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    raise ValueError(f"synthetic visible encoding must be rgb8, bgr8, rgba8, bgra8 or mono8, "
                     f"got {encoding!r}")


def write_synthetic_bag(path: str | Path, cfg: SyntheticSceneConfig | None = None, *,
                        storage: str = "sqlite3",
                        rgb_topic: str = "/camera/color/image_raw",
                        thermal_topic: str = "/thermal/image_raw",
                        rgb_encoding: str = "rgb8", thermal_encoding: str = "mono16",
                        compressed_rgb: bool = False, overwrite: bool = False,
                        progress: bool = False) -> Path:
    """Render the scene into a rosbag2 bag.

    Render the scene into a rosbag2 bag (``frame_id`` ``camera_color_optical_frame`` and
    ``thermal_optical_frame``; log time = header stamp).

    Args:
        path: bag directory to create.
        cfg: scene parameters.
        storage: ``"sqlite3"`` or ``"mcap"``.
        rgb_encoding: ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` or ``mono8``.
        thermal_encoding: ``mono16``, ``16UC1``, ``32FC1`` or ``mono8``.
        compressed_rgb: write the RGB topic as ``sensor_msgs/CompressedImage`` (JPEG) on
            ``<rgb_topic>/compressed``.
        progress: show a tqdm bar.

    Returns:
        The bag path.
    """
    from tqdm import tqdm

    from temcoco_core.io.bag import BagWriter

    cfg = cfg or SyntheticSceneConfig()
    path = Path(path)
    frames = generate_scene(cfg)
    with BagWriter(path, storage, overwrite=overwrite) as writer:
        for f in tqdm(frames, total=cfg.frames, desc="synthetic scene", unit="frame",
                      disable=not progress, leave=False):
            if compressed_rgb:
                data, fmt = encode_compressed(f.visible, "rgb8", "jpeg", quality=92)
                writer.write_compressed(f"{rgb_topic}/compressed", data, fmt, f.stamp_ns,
                                        "camera_color_optical_frame")
            else:
                writer.write_image(rgb_topic, _visible_as(rgb_encoding, f.visible), rgb_encoding,
                                   f.stamp_ns, "camera_color_optical_frame")
            writer.write_image(thermal_topic, _thermal_as(thermal_encoding, f.thermal),
                               thermal_encoding, f.thermal_stamp_ns, "thermal_optical_frame")
    return path
