# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Issue 11: the node's worker and `temcoco replay` keep fusing through what real cameras.

Drivers and clocks do (clock restarts, jitter, unstamped drivers, bad frames, huge frames, corrupt
bag records), and say why when they cannot.
"""

from __future__ import annotations

from pathlib import Path
import time
from types import SimpleNamespace as NS

import cv2
import numpy as np
import pytest

from temcoco_core.diagnostics import DiagnosticLevel
from temcoco_core.engine.factory import build_engine
from temcoco_core.frames.preprocess import FrameError
from temcoco_core.io.bag import BagReader, BagWriter, stamp_to_ns
from temcoco_core.io.synthetic import generate_scene, SyntheticSceneConfig
from temcoco_core.node_config import NodeConfig
from temcoco_core.replay import main, replay_bag, ReplayOptions
from temcoco_core.worker import FusionWorker

MS = 1_000_000
H, W = 24, 32
RGB, THERMAL = "/camera/color/image_raw", "/thermal/image_raw"
QUIET = ReplayOptions(progress=False)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _msg(stamp_ns: int, arr: np.ndarray, encoding: str):
    arr = np.ascontiguousarray(arr)
    return NS(header=NS(stamp=NS(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                        frame_id="cam"),
              encoding=encoding, height=arr.shape[0], width=arr.shape[1], step=arr.strides[0],
              is_bigendian=0, data=arr.tobytes())


def _rgb(stamp_ns: int, i: int = 0):
    return _msg(stamp_ns, np.random.default_rng(i).integers(0, 256, (H, W, 3), np.uint8),
                "rgb8")


def _thermal(stamp_ns: int, i: int = 0):
    base = np.random.default_rng(1000 + i).integers(29000, 31000, (H, W)).astype(np.uint16)
    return _msg(stamp_ns, base, "mono16")


def _worker(clock=time.monotonic, **cfg) -> FusionWorker:
    settings = NodeConfig(fusion_engine="average", metrics="", **cfg)
    engine, info = build_engine(settings)
    return FusionWorker.from_config(settings, engine, info, topic_names=["/rgb", "/thermal"],
                                    name="n", clock=clock)


def _status(w: FusionWorker, suffix: str):
    return next(s for s in w.statuses() if s.name.endswith(suffix))


# ---------------------------------------------------------------------------------- time
def test_thermal_clock_restart_recovers_within_a_second():
    """Case 1: a thermal reboot restarts its clock; output used to stop for good."""
    clock = FakeClock()
    w = _worker(clock)
    period, base = 33 * MS, 1_700_000_000 * 10**9
    restart_at, first_after = 150, None
    outputs = 0
    for i in range(300):
        clock.t += period / 1e9
        recv = base + i * period + 12 * MS
        th = base + i * period + 2 * MS if i < restart_at else (i - restart_at) * period + MS
        w.offer(0, base + i * period, _rgb(base + i * period, i), recv)
        w.offer(1, th, _thermal(th, i), recv + 3 * MS)
        while (res := w.step()) is not None:
            outputs += len(res.outputs)
            if res.outputs and i >= restart_at and first_after is None:
                first_after = i
    assert first_after is not None and (first_after - restart_at) * period / 1e9 < 1.0
    assert outputs >= 298
    assert w.pipeline.diagnostics.resets == {"time_backwards": 1}
    assert w.pipeline.pairer.summary()["topics"]["/thermal"]["clock_jumps"] == 1


def test_jitter_and_reorders_do_not_reset_the_temporal_state():
    """Case 2: +-20 ms hardware stamp jitter and single reorders: 0 resets over 300 frames."""
    rng = np.random.default_rng(5)
    w = _worker()
    period, base = 33 * MS, 10**15
    msgs = []
    for i in range(300):
        for topic in (0, 1):
            t = base + i * period + topic * 4 * MS
            msgs.append((topic, t + int(rng.uniform(-20, 20) * MS), t + 15 * MS, i))
    msgs.sort(key=lambda m: m[2])
    for k in range(5, len(msgs) - 2, 41):
        msgs[k], msgs[k + 2] = msgs[k + 2], msgs[k]
    outputs = 0
    for topic, stamp, recv, i in msgs:
        msg = _rgb(stamp, i) if topic == 0 else _thermal(stamp, i)
        w.offer(topic, stamp, msg, recv)
        while (res := w.step()) is not None:
            outputs += len(res.outputs)
    assert w.pipeline.diagnostics.resets == {}
    assert w.pipeline.thermal.stats.resets == 0
    assert outputs >= 280


def test_unstamped_driver_keeps_fusing_and_is_named():
    """Case 3: a driver that never sets stamps got one frame, then nothing."""
    w = _worker()
    outputs = 0
    for i in range(20):
        recv = 10**15 + i * 33 * MS
        w.offer(0, recv - 2 * MS, _rgb(recv - 2 * MS, i), recv)
        w.offer(1, 0, _thermal(0, i), recv + MS)
        while (res := w.step()) is not None:
            outputs += len(res.outputs)
    assert outputs == 20
    pairing = _status(w, ": pairing")
    assert pairing.level == DiagnosticLevel.WARN and "/thermal publishes unstamped" in \
        pairing.message


# ---------------------------------------------------------------------------------- liveness
def test_stall_warns_within_two_seconds_and_names_the_decode_error():
    """Cases 1 and 4: inputs arrive, nothing is published -> WARN within 2 s, ERROR later.

    Naming the reason (the first WARN used to come after ~31 s, or never).
    """
    clock = FakeClock()
    w = _worker(clock, stall_error=4.0)
    base = 10**15
    for i in range(30):  # a healthy second
        clock.t += 1 / 30
        offer = base + i * 33 * MS
        w.offer(0, offer, _rgb(offer, i), offer)
        w.offer(1, offer + MS, _thermal(offer + MS, i), offer + MS)
        w.step()
    assert _status(w, "output liveness").level == DiagnosticLevel.OK
    t_stop, warn_at, error_at = clock.t, None, None
    for i in range(30, 30 + 30 * 6):
        clock.t += 1 / 30
        offer = base + i * 33 * MS
        bad = _thermal(offer + MS, i)
        bad.encoding = "yuv422_yuy2"  # the thermal driver switched to an unsupported encoding
        w.offer(0, offer, _rgb(offer, i), offer)
        w.offer(1, offer + MS, bad, offer + MS)
        w.step()
        if i % 3 == 0:  # the diagnostics timer
            st = _status(w, "output liveness")
            if warn_at is None and st.level >= DiagnosticLevel.WARN:
                warn_at = clock.t - t_stop
            if error_at is None and st.level == DiagnosticLevel.ERROR:
                error_at = clock.t - t_stop
    assert warn_at is not None and warn_at <= 2.0
    assert error_at is not None and error_at <= 4.5
    st = _status(w, "output liveness")
    assert "decode_error" in st.message and "yuv422_yuy2" in st.message
    assert st.values["failed decode_error"] == "180"


def test_stall_without_frame_errors_names_the_stamp_offset():
    clock = FakeClock()
    w = _worker(clock, stall_warn=1.0)
    for i in range(60):  # stamps 3600 s apart, no receive times: nothing pairs
        clock.t += 1 / 30
        t = 10**15 + i * 33 * MS
        w.offer(0, t, _rgb(t, i))
        w.offer(1, t + 3600 * 10**9, _thermal(t + 3600 * 10**9, i))
    st = _status(w, "output liveness")
    assert st.level == DiagnosticLevel.WARN and "no fused output yet" in st.message
    assert "+3600.000 s" in st.message


def test_huge_frame_is_not_decoded_in_the_callback_and_is_rejected_by_size():
    """Case 5: a 10000x10000 frame allocated 6.4 GB and blocked the callback for 2 s."""
    w = _worker()
    big = NS(header=NS(stamp=NS(sec=1, nanosec=0), frame_id="cam"), encoding="rgb8",
             height=10000, width=10000, step=30000, is_bigendian=0,
             data=np.zeros(16, np.uint8))  # the cap fires before the data is ever read
    w.offer(1, 10**9, _thermal(10**9), 10**9)
    t0 = time.perf_counter()
    assert w.offer(0, 10**9, big, 10**9)
    assert time.perf_counter() - t0 < 0.05
    res = w.step()
    assert "too_large" in res.error and "10000x10000" in res.error
    assert w.pipeline.failures.counts == {"too_large": 1}


# ---------------------------------------------------------------------------------- replay
def _write_bag(path: Path, frames: int = 12, bad: dict[int, str] | None = None,
               repeat_stamps: bool = False, compressed: bool = False) -> Path:
    """A synthetic bag; ``bad[i]`` replaces frame i's message.

    ``"corrupt"`` (RGB record that does not deserialise), ``"nan"``/``"1e20"`` (32FC1 thermal),
    ``"jpeg65500"`` (RGB JPEG whose header claims 65500^2 pixels).
    """
    bad = bad or {}
    scene = list(generate_scene(SyntheticSceneConfig(width=48, height=32, frames=frames, seed=4)))
    with BagWriter(path) as w:
        w.add_topic(RGB, "sensor_msgs/msg/Image")
        for i, f in enumerate(scene):
            copies = 2 if repeat_stamps else 1
            for c in range(copies):
                log_t = f.stamp_ns + c * 5 * MS
                kind = bad.get(i)
                if kind == "corrupt":
                    w.write_raw(RGB, log_t, b"\x00\x01\x00\x00 not an image")
                elif compressed:
                    ok, data = cv2.imencode(".jpg", f.visible[:, :, ::-1])
                    data = bytearray(data.tobytes())
                    if kind == "jpeg65500":
                        k = data.index(b"\xff\xc0")
                        data[k + 5:k + 9] = (65500).to_bytes(2, "big") * 2
                    w.write_compressed(RGB + "/compressed", np.frombuffer(bytes(data), np.uint8),
                                       "rgb8; jpeg compressed bgr8", f.stamp_ns,
                                       log_time_ns=log_t)
                else:
                    w.write_image(RGB, f.visible, "rgb8", f.stamp_ns, "cam", log_time_ns=log_t)
                th = f.thermal.astype(np.float32) / 100.0
                if kind == "nan":
                    th[3, 3] = np.nan
                elif kind == "1e20":
                    th[:] = 1e20
                w.write_image(THERMAL, th, "32FC1", f.thermal_stamp_ns, log_time_ns=log_t + 1)
    return path


def test_replay_skips_one_corrupt_message_and_fuses_every_readable_pair(tmp_path: Path):
    """Case 6: one undeserialisable message used to end the whole replay."""
    src = _write_bag(tmp_path / "in", bad={6: "corrupt"})
    s = replay_bag(src, tmp_path / "out", NodeConfig(fusion_engine="average"), QUIET)
    assert s["frames_written"] == 11  # 12 thermal, 11 readable RGB
    assert s["skipped"]["by_kind"] == {"corrupt_message": 1}
    assert "does not deserialise" in s["skipped"]["first_errors"][0]
    with BagReader(tmp_path / "out") as r:
        assert r.topics["/fused/image"].count == 11


@pytest.mark.parametrize("kind,first", [("nan", 0), ("1e20", 0), ("nan", 5), ("1e20", 7)])
def test_replay_skips_non_finite_and_absurd_thermal_frames(tmp_path: Path, kind: str,
                                                           first: int):
    """Case 6: NaN in the first thermal frame.

    Or a 32FC1 frame of 1e20 (ZeroDivisionError) ended the replay.
    """
    src = _write_bag(tmp_path / "in", bad={first: kind})
    s = replay_bag(src, tmp_path / "out", NodeConfig(fusion_engine="average"), QUIET)
    assert s["frames_written"] == 11 and s["skipped"]["by_kind"] == {"non_finite": 1}


def test_replay_skips_a_jpeg_claiming_65500_squared_pixels(tmp_path: Path):
    """Case 6: ... or a JPEG whose header claims 65500^2 pixels (cv2.error) ended it."""
    src = _write_bag(tmp_path / "in", bad={4: "jpeg65500"}, compressed=True)
    s = replay_bag(src, tmp_path / "out", NodeConfig(fusion_engine="average"), QUIET)
    assert s["frames_written"] == 11 and s["skipped"]["by_kind"] == {"too_large": 1}
    assert f"{RGB}/compressed: JPEG image is 65500x65500" in s["skipped"]["first_errors"][0]
    # without a cap, OpenCV refuses it itself: still one skipped frame, not a crash
    s = replay_bag(src, tmp_path / "o2", NodeConfig(fusion_engine="average", max_input_pixels=0),
                   QUIET)
    assert s["frames_written"] == 11 and s["skipped"]["total"] == 1


def test_replay_fuses_repeated_stamps(tmp_path: Path):
    """Case 6: a recording whose stamps repeat dropped every repeated frame."""
    src = _write_bag(tmp_path / "in", frames=6, repeat_stamps=True)
    s = replay_bag(src, tmp_path / "out", NodeConfig(fusion_engine="average"), QUIET)
    assert s["frames_written"] == 12
    assert s["pairing"]["events"]["duplicate_stamp"] == 12
    with BagReader(tmp_path / "out") as r:
        stamps = [stamp_to_ns(m.msg.header.stamp) for m in r.messages(["/fused/image"])]
    assert stamps[0] == stamps[1] and len(set(stamps)) == 6


def test_on_error_stop_and_cli_lines(tmp_path: Path, capsys: pytest.CaptureFixture):
    src = _write_bag(tmp_path / "in", bad={3: "nan"})
    with pytest.raises(FrameError, match="NaN"):
        replay_bag(src, tmp_path / "out", NodeConfig(fusion_engine="average"),
                   ReplayOptions(progress=False, on_error="stop"))
    assert main(["replay", str(src), "-o", str(tmp_path / "o2"), "--engine",
                 "average", "--on-error", "stop", "--json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN" in err[0]
    assert main(["replay", str(src), "-o", str(tmp_path / "o3"), "--engine", "average",
                 "--json"]) == 0
    assert '"non_finite": 1' in capsys.readouterr().out


def test_overwrite_never_removes_the_input_or_user_files(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture):
    """Case 8: --overwrite ran rmtree on whatever -o named (the input bag, user folders)."""
    data = tmp_path / "data"
    src = _write_bag(data / "in", frames=3)
    (data / "notes.txt").write_text("mine")
    for out in (src, data):
        assert main(["replay", str(src), "-o", str(out), "--overwrite", "--engine",
                     "average", "--json"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "input" in err[0]
    assert (data / "notes.txt").read_text() == "mine"
    with BagReader(src) as r:
        assert r.message_count == 6
    (tmp_path / "afile").write_text("x")
    assert main(["replay", str(src), "-o", str(tmp_path / "afile" / "out"), "--engine",
                 "average", "--json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0]


def test_fuse_output_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture):
    """Case 8: an unwritable or file-typed output parent gave a Python traceback."""
    vis, ir = tmp_path / "v", tmp_path / "i"
    vis.mkdir()
    ir.mkdir()
    for k in range(2):
        cv2.imwrite(str(vis / f"{k:03d}.png"), np.zeros((32, 48, 3), np.uint8))
        cv2.imwrite(str(ir / f"{k:03d}.png"), np.zeros((32, 48), np.uint8))
    (tmp_path / "afile").write_text("x")
    cases = [(["-o", str(tmp_path / "afile" / "o.mp4")], "is a file, not a folder"),
             (["-o", str(tmp_path / "o.mp4"), "--frames-dir", str(tmp_path / "afile")],
              "is a file, not a folder"),
             (["-o", str(vis)], "is the input"),
             (["-o", str(tmp_path / "o.mp4"), "--preview", str(tmp_path / "afile" / "p.mp4")],
              "is a file, not a folder")]
    for extra, match in cases:
        assert main(["fuse", str(vis), str(ir), "--engine", "average", "--json", *extra]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
    assert len(list(vis.iterdir())) == 2


def test_engine_build_for_the_first_frame_is_the_named_reason_and_only_a_warn():
    clock = FakeClock()
    w = _worker(clock)

    class Building:
        building = (480, 640)

        def push(self, visible, infrared):
            return None  # still building: nothing comes out

        def reset(self):
            pass

    w.pipeline.engine = Building()
    for i in range(30 * 8):
        clock.t += 1 / 30
        t = 10**15 + i * 33 * MS
        w.offer(0, t, _rgb(t, i), t)
        w.offer(1, t + MS, _thermal(t + MS, i), t + MS)
        w.step()
    st = _status(w, "output liveness")
    assert st.level == DiagnosticLevel.WARN and "preparing the engine for 640x480" in st.message


@pytest.mark.parametrize("content", [b"\x00" * 64, b"not a checkpoint at all"])
def test_explicit_corrupt_weights_are_an_error_not_a_fallback(tmp_path: Path, content: bytes,
                                                              capsys: pytest.CaptureFixture):
    """Case 8: an explicit corrupt --weights is an error.

    Case 8: an explicit corrupt --weights with the default engine fused with the average and exited
    0.
    """
    src = _write_bag(tmp_path / "in", frames=3)
    weights = tmp_path / "edge.safetensors"
    weights.write_bytes(content)
    assert main(["replay", str(src), "-o", str(tmp_path / "out"), "--weights", str(weights),
                 "--json"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(weights) in err[0]
    assert not (tmp_path / "out").exists()
