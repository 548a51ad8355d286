# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Field checks of the live path: what the node's worker does with real-world input, as JSON.

``python -m temcoco_core.fieldcheck [CHECK ...] [--fast]`` drives
:class:`~temcoco_core.worker.FusionWorker` (the node's worker, model-free engine, its own
thread, real time where time matters) and ``temcoco replay`` through:

``clock``
    the thermal camera's clock restarting mid-stream: seconds from the restart to the next
    fused output, resets;
``jitter``
    +-20 ms hardware stamp jitter and single reordered messages over 300 frames: temporal
    resets (target 0) and frames fused;
``stall``
    the thermal driver switching to an unsupported encoding: seconds until the ``output
    liveness`` status WARNs and ERRORs, and its message;
``rss``
    peak RSS handing one 10000x10000 frame (raw rgb8, JPEG, PNG) to the pipeline, each in a
    fresh process;
``corrupt_bag``
    replaying a bag with one undeserialisable message in the middle: frames fused out of the
    readable pairs.

``--fast`` shortens the real-time checks and the bag (for tests).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
from pathlib import Path
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace
from typing import Any

import numpy as np

__all__ = ["CHECKS", "clock_restart", "corrupt_bag", "input_rss", "jitter", "main", "stall"]

MS = 1_000_000
_H, _W = 240, 320


class _Messages:
    """Duck-typed ``sensor_msgs/Image`` s of one RGB and one mono16 thermal frame."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.rgb = rng.integers(0, 256, (_H, _W, 3), np.uint8).tobytes()
        self.th = rng.integers(29000, 31000, (_H, _W)).astype(np.uint16).tobytes()

    def __call__(self, stamp: int, rgb: bool, encoding: str | None = None) -> Any:
        data, enc, step = (self.rgb, "rgb8", 3 * _W) if rgb else (self.th, "mono16", 2 * _W)
        header = SimpleNamespace(stamp=SimpleNamespace(sec=stamp // 10**9,
                                                       nanosec=stamp % 10**9), frame_id="cam")
        return SimpleNamespace(header=header, encoding=encoding or enc, height=_H, width=_W,
                               step=step, is_bigendian=0, data=data)


def _worker(**settings: Any) -> Any:
    from temcoco_core.engine.factory import build_engine
    from temcoco_core.node_config import NodeConfig
    from temcoco_core.worker import FusionWorker

    cfg = NodeConfig(fusion_engine="average", metrics="", **settings)
    engine, info = build_engine(cfg)
    return FusionWorker.from_config(cfg, engine, info, topic_names=["/rgb", "/thermal"],
                                    name="fieldcheck")


def clock_restart(seconds: float = 6.0, restart_at: float = 3.0, hz: float = 30.0
                  ) -> dict[str, Any]:
    """30 Hz pairs in real time through the worker thread.

    The thermal clock restarts at ``restart_at``.
    """
    msg, w = _Messages(), _worker()
    published: list[float] = []
    w.start(lambda frame: published.append(time.monotonic()))
    t0 = time.monotonic()
    restart_wall: float | None = None
    th_origin = 0
    i = 0
    try:
        while (now := time.monotonic()) - t0 < seconds:
            recv = time.time_ns()
            if now - t0 >= restart_at and restart_wall is None:
                restart_wall, th_origin = now, recv
            th = recv - 8 * MS if restart_wall is None else recv - th_origin + 5 * MS
            w.offer(0, recv - 10 * MS, msg(recv - 10 * MS, True), recv)
            w.offer(1, th, msg(th, False), time.time_ns())
            i += 1
            time.sleep(max(0.0, t0 + i / hz - time.monotonic()))
    finally:
        w.stop()
    after = [t for t in published if restart_wall is not None and t >= restart_wall]
    return {"fused": len(published), "fused_after_restart": len(after),
            "recover_s": round(after[0] - restart_wall, 3) if after and restart_wall else None,
            "resets": dict(w.pipeline.diagnostics.resets)}


def jitter(frames: int = 300, jitter_ms: float = 20.0, reorder_every: int = 41
           ) -> dict[str, Any]:
    """Jittered and reordered stamps on both cameras.

    ``frames`` pairs at 30 Hz with +-``jitter_ms`` stamp jitter on both cameras and one message
    delivered after its successor every ``reorder_every`` messages.
    """
    rng = np.random.default_rng(1)
    msg, w = _Messages(), _worker()
    base = time.time_ns()
    msgs = []
    for i in range(frames):
        for topic in (0, 1):
            t = base + i * 33 * MS + topic * 4 * MS
            msgs.append((topic, t + int(rng.uniform(-jitter_ms, jitter_ms) * MS), t + 15 * MS))
    msgs.sort(key=lambda m: m[2])
    reorders = 0
    for k in range(5, len(msgs) - 2, reorder_every):
        msgs[k], msgs[k + 2] = msgs[k + 2], msgs[k]
        reorders += 1
    fused = 0
    for topic, stamp, recv in msgs:
        w.offer(topic, stamp, msg(stamp, topic == 0), recv)
        while (res := w.step()) is not None:
            fused += len(res.outputs)
    return {"frames": frames, "jitter_ms": jitter_ms, "reorders": reorders, "fused": fused,
            "resets": sum(w.pipeline.diagnostics.resets.values()),
            "thermal_gain_resets": w.pipeline.thermal.stats.resets}


def stall(healthy_s: float = 2.0, seconds: float = 8.0, hz: float = 30.0) -> dict[str, Any]:
    """Healthy pairs, then the thermal driver switches to ``yuv422_yuy2``.

    The output liveness status is read at every pair (the node reads it every
    ``diagnostics_period``).
    """
    from temcoco_core.diagnostics import DiagnosticLevel

    msg, w = _Messages(), _worker(stall_error=5.0)
    w.start(lambda frame: None)
    t0 = time.monotonic()
    bad_since = warn_at = error_at = None
    message = ""
    i = 0
    try:
        while (now := time.monotonic()) - t0 < seconds:
            recv = time.time_ns()
            bad = now - t0 >= healthy_s
            if bad and bad_since is None:
                bad_since = now
            w.offer(0, recv, msg(recv, True), recv)
            w.offer(1, recv + MS, msg(recv + MS, False, "yuv422_yuy2" if bad else None), recv)
            st = next(s for s in w.statuses() if s.name.endswith("output liveness"))
            if bad_since is not None:
                if warn_at is None and st.level >= DiagnosticLevel.WARN:
                    warn_at, message = now - bad_since, st.message
                if error_at is None and st.level == DiagnosticLevel.ERROR:
                    error_at = now - bad_since
            i += 1
            time.sleep(max(0.0, t0 + i / hz - time.monotonic()))
    finally:
        w.stop()
    return {"warn_after_s": None if warn_at is None else round(warn_at, 2),
            "error_after_s": None if error_at is None else round(error_at, 2),
            "warn_seen_with_1hz_diagnostics_by_s": None if warn_at is None else
            round(warn_at + 1.0, 2), "message": message[:200]}


def _rss_child(kind: str, cap: bool) -> dict[str, Any]:
    """In a fresh process: one 10000x10000 pair through the pipeline; peak RSS."""
    import resource

    import cv2

    from temcoco_core.pipeline import AverageEngine, FusionPipeline, PipelineConfig

    n = 10000
    header = SimpleNamespace(stamp=None, frame_id="cam")

    def make(arr: np.ndarray, enc: str) -> Any:
        if kind == "raw":
            return SimpleNamespace(header=header, encoding=enc, height=n, width=n,
                                   step=arr.strides[0], is_bigendian=0, data=arr.tobytes())
        ok, data = cv2.imencode(".jpg" if kind == "jpeg" else ".png", arr)
        return SimpleNamespace(header=header, format=kind, data=data.tobytes())

    rgb = make(np.zeros((n, n, 3), np.uint8), "rgb8")
    th = make(np.zeros((n, n), np.uint8), "mono8")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cfg = PipelineConfig(metrics=False) if cap else PipelineConfig(metrics=False,
                                                                   max_input_pixels=None)
    p = FusionPipeline(AverageEngine(), cfg)
    try:
        p.add_message(0, 10**9, rgb)
        result = f"fused {len(p.add_message(1, 10**9 + 1000, th))}"
    except Exception as exc:
        result = f"{type(exc).__name__}: {str(exc)[:120]}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"input": kind, "max_input_pixels": "default" if cap else "none",
            "messages_mb": round((len(rgb.data) + len(th.data)) / 2**20, 1),
            "rss_before_mb": round(before), "peak_rss_mb": round(peak),
            "growth_mb": round(peak - before), "result": result}


def input_rss(kinds: Sequence[str] = ("raw", "jpeg", "png"), uncapped: bool = False
              ) -> list[dict[str, Any]]:
    """:func:`_rss_child` for each kind (and without the cap when ``uncapped``: ~6 GB)."""
    out = []
    for kind in kinds:
        for cap in (True, False) if uncapped else (True,):
            res = subprocess.run([sys.executable, "-m", "temcoco_core.fieldcheck", "_rss", kind,
                                  "cap" if cap else "nocap"], capture_output=True, text=True,
                                 check=True)
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def corrupt_bag(frames: int = 60, size: tuple[int, int] = (640, 480)) -> dict[str, Any]:
    """A synthetic bag with one undeserialisable RGB record at ``frames // 2``, replayed."""
    from temcoco_core.io.bag import BagWriter
    from temcoco_core.io.synthetic import generate_scene, SyntheticSceneConfig
    from temcoco_core.node_config import NodeConfig
    from temcoco_core.replay import replay_bag, ReplayOptions

    scene = SyntheticSceneConfig(width=size[0], height=size[1], frames=frames, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        rgb = "/camera/color/image_raw"
        with BagWriter(src) as w:
            w.add_topic(rgb, "sensor_msgs/msg/Image")
            for i, f in enumerate(generate_scene(scene)):
                if i == frames // 2:
                    w.write_raw(rgb, f.stamp_ns, b"\x00\x01\x00\x00corrupt record")
                else:
                    w.write_image(rgb, f.visible, "rgb8", f.stamp_ns, "cam")
                w.write_image("/thermal/image_raw", f.thermal, "mono16", f.thermal_stamp_ns)
        s = replay_bag(src, Path(tmp) / "out", NodeConfig(fusion_engine="average"),
                       ReplayOptions(progress=False))
    return {"messages": 2 * frames, "corrupt": 1, "readable_pairs": frames - 1,
            "frames_fused": s["frames_written"], "skipped": s["skipped"]["by_kind"]}


CHECKS = ("clock", "jitter", "stall", "rss", "corrupt_bag")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_rss"]:  # the child of input_rss
        print(json.dumps(_rss_child(argv[1], argv[2] == "cap")))
        return 0
    parser = argparse.ArgumentParser(prog="python -m temcoco_core.fieldcheck",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("checks", nargs="*", metavar="CHECK",
                        help=f"any of {', '.join(CHECKS)} (default: all)")
    parser.add_argument("--fast", action="store_true", help="short runs (tests)")
    parser.add_argument("--uncapped", action="store_true",
                        help="rss also without max_input_pixels (needs ~6 GB)")
    args = parser.parse_args(argv)
    unknown = [c for c in args.checks if c not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s) {unknown}; choose from {', '.join(CHECKS)}")
    import logging

    logging.basicConfig(level=logging.ERROR)
    fast = args.fast
    res: dict[str, Any] = {}
    for check in args.checks or CHECKS:
        if check == "clock":
            res[check] = clock_restart(2.0, 1.0) if fast else clock_restart()
        elif check == "jitter":
            res[check] = jitter(60) if fast else jitter()
        elif check == "stall":
            res[check] = stall(0.5, 2.5) if fast else stall()
        elif check == "rss":
            res[check] = input_rss(("png",) if fast else ("raw", "jpeg", "png"), args.uncapped)
        elif check == "corrupt_bag":
            res[check] = corrupt_bag(8, (64, 48)) if fast else corrupt_bag()
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
