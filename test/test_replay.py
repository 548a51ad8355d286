# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The fusion pipeline and its offline front ends: replay, fuse, demo (temcoco_core.replay)."""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from temcoco_core.engine.factory import build_engine
from temcoco_core.frames.image_msg import decode_image
from temcoco_core.frames.preprocess import FrameError, to_output_frame
from temcoco_core.frames.thermal import ThermalNormalizer
from temcoco_core.io.bag import BagError, BagReader, BagWriter, stamp_to_ns
from temcoco_core.io.synthetic import generate_scene, SyntheticSceneConfig, write_synthetic_bag
from temcoco_core.node_config import NodeConfig
from temcoco_core.pipeline import (
    AverageEngine,
    FrameInput,
    FusionPipeline,
    PipelineConfig,
)
from temcoco_core.replay import (
    add_parser,
    benchmark_pipeline,
    fuse_videos,
    main,
    replay_bag,
    ReplayOptions,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SCENE = SyntheticSceneConfig(width=64, height=48, frames=6, seed=2)
RGB, THERMAL = "/camera/color/image_raw", "/thermal/image_raw"
QUIET = ReplayOptions(progress=False)


AVERAGE = NodeConfig(fusion_engine="average")


def _read(bag: Path, topic: str) -> list:
    with BagReader(bag) as r:
        return [m.msg for m in r.messages([topic])] if topic in r.topics else []


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_replay_writes_fused_images_and_diagnostics(tmp_path: Path, storage: str) -> None:
    src = write_synthetic_bag(tmp_path / "in", SCENE, storage=storage)
    out = tmp_path / "out"
    summary = replay_bag(src, out, AVERAGE, QUIET)
    assert summary["rgb_topic"] == RGB and summary["thermal_topic"] == THERMAL
    assert summary["frames_written"] == 6 and summary["pairing"]["pairs"] == 6
    assert not summary["interrupted"]
    assert (out / f"out.{'db3' if storage == 'sqlite3' else 'mcap'}").exists()
    fused = _read(out, "/fused/image")
    frames = list(generate_scene(SCENE))
    assert [stamp_to_ns(m.header.stamp) for m in fused] == [f.stamp_ns for f in frames]
    assert {m.header.frame_id for m in fused} == {"camera_color_optical_frame"}
    # frame 0 is exactly (visible + normalised thermal) / 2
    ir = ThermalNormalizer()(frames[0].thermal, frames[0].thermal_stamp_ns)
    vis = torch.from_numpy(frames[0].visible.transpose(2, 0, 1) / np.float32(255.0))
    expected = to_output_frame((vis + torch.from_numpy(ir)[None]) / 2)
    got, enc = decode_image(fused[0])
    assert enc == "rgb8"
    assert np.abs(got.astype(int) - expected).max() <= 1
    diags = _read(out, "/diagnostics")
    assert len(diags) == 6
    names = {s.name for s in diags[-1].status}
    assert names >= {"temcoco_fusion: pairing", "temcoco_fusion: output"}
    out_status = next(s for s in diags[-1].status if s.name.endswith("output"))
    values = {kv.key: kv.value for kv in out_status.values}
    assert values["frames"] == "6" and float(values["mean_ms"]) > 0


@pytest.mark.parametrize("rgb_enc,th_enc", [
    ("rgb8", "mono16"), ("bgr8", "mono16"), ("rgba8", "mono16"), ("bgra8", "mono16"),
    ("mono8", "mono16"), ("rgb8", "16UC1"), ("rgb8", "32FC1"), ("rgb8", "mono8"),
])
def test_replay_every_encoding(tmp_path: Path, rgb_enc: str, th_enc: str) -> None:
    cfg = SyntheticSceneConfig(width=48, height=32, frames=3, seed=1)
    src = write_synthetic_bag(tmp_path / "in", cfg, rgb_encoding=rgb_enc,
                              thermal_encoding=th_enc)
    out = tmp_path / "out"
    summary = replay_bag(src, out, NodeConfig(fusion_engine="average", output_encoding="bgr8"),
                         QUIET)
    assert summary["frames_written"] == 3
    img, enc = decode_image(_read(out, "/fused/image")[0])
    assert enc == "bgr8" and img.shape == (32, 48, 3)


def test_replay_bayer_and_compressed_input(tmp_path: Path) -> None:
    frames = list(generate_scene(SyntheticSceneConfig(width=48, height=32, frames=3)))
    src = tmp_path / "in"
    with BagWriter(src, "mcap") as w:
        for f in frames:
            mosaic = np.zeros((32, 48), np.uint8)  # RGGB mosaic of the visible frame
            mosaic[0::2, 0::2] = f.visible[0::2, 0::2, 0]
            mosaic[0::2, 1::2] = f.visible[0::2, 1::2, 1]
            mosaic[1::2, 0::2] = f.visible[1::2, 0::2, 1]
            mosaic[1::2, 1::2] = f.visible[1::2, 1::2, 2]
            w.write_image_fields("/cam/bayer", height=32, width=48, encoding="bayer_rggb8",
                                 is_bigendian=0, step=48, data=mosaic, stamp_ns=f.stamp_ns)
            w.write_image("/ir", f.thermal, "mono16", f.thermal_stamp_ns)
    s = replay_bag(src, tmp_path / "o1", AVERAGE, opts=ReplayOptions(
        rgb_topic="/cam/bayer", thermal_topic="/ir", progress=False))
    assert s["frames_written"] == 3
    src2 = write_synthetic_bag(tmp_path / "in2", SyntheticSceneConfig(width=48, height=32,
                                                                      frames=3),
                               compressed_rgb=True)
    s = replay_bag(src2, tmp_path / "o2", AVERAGE, QUIET)
    assert s["rgb_topic"] == RGB + "/compressed" and s["frames_written"] == 3


def test_looped_bag_resets_temporal_state(tmp_path: Path) -> None:
    frames = list(generate_scene(SCENE))
    src = tmp_path / "in"
    with BagWriter(src) as w:
        for loop in range(2):  # a looped recording: stamps jump back, log time goes on
            for f in frames:
                log_t = f.stamp_ns + loop * 10**9
                w.write_image(RGB, f.visible, "rgb8", f.stamp_ns, log_time_ns=log_t)
                w.write_image(THERMAL, f.thermal, "mono16", f.thermal_stamp_ns,
                              log_time_ns=log_t + 1)
    s = replay_bag(src, tmp_path / "out", AVERAGE, QUIET)
    assert s["frames_written"] == 12
    assert s["resets"] == {"time_backwards": 1}
    assert s["pairing"]["events"]["time_backwards"] == 1
    stamps = [stamp_to_ns(m.header.stamp) for m in _read(tmp_path / "out", "/fused/image")]
    assert stamps == [f.stamp_ns for f in frames] * 2


def test_gaps_and_duplicates_are_counted(tmp_path: Path) -> None:
    frames = list(generate_scene(SCENE))
    src = tmp_path / "in"
    with BagWriter(src) as w:
        for i, f in enumerate(frames):
            shift = 5 * 10**9 if i >= 3 else 0  # a 5 s hole after frame 2
            w.write_image(RGB, f.visible, "rgb8", f.stamp_ns + shift)
            w.write_image(THERMAL, f.thermal, "mono16", f.thermal_stamp_ns + shift)
            if i == 1:  # the thermal driver repeats a stamp
                w.write_image(THERMAL, f.thermal, "mono16", f.thermal_stamp_ns + shift,
                              log_time_ns=f.thermal_stamp_ns + 2)
    s = replay_bag(src, tmp_path / "out", AVERAGE, QUIET)
    assert s["frames_written"] == 6 and s["resets"] == {"gap": 1}
    assert s["pairing"]["topics"][THERMAL]["duplicates"] == 1


def test_missing_topic_lists_the_bag(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = write_synthetic_bag(tmp_path / "in", SCENE)
    with pytest.raises(BagError, match=r"'/flir' not in bag; it has: /camera/color/image_raw "):
        replay_bag(src, tmp_path / "out", opts=ReplayOptions(thermal_topic="/flir",
                                                             progress=False))
    assert main(["replay", str(src), "-o", str(tmp_path / "o2"), "--thermal-topic", "/x",
                 "--engine", "average"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'/x' not in bag" in err[0] and "/thermal/image_raw" in err[0]


def test_corrupt_input_bag_is_an_error(tmp_path: Path) -> None:
    src = write_synthetic_bag(tmp_path / "in", SCENE, storage="mcap")
    f = next(src.glob("*.mcap"))
    f.write_bytes(f.read_bytes()[:2000])
    with pytest.raises(BagError, match=str(src)):
        replay_bag(src, tmp_path / "out", AVERAGE, QUIET)
    assert not (tmp_path / "out").exists()


def test_unsupported_encoding_is_named(tmp_path: Path) -> None:
    src = tmp_path / "in"
    with BagWriter(src) as w:
        for i in range(2):
            w.write_image_fields(RGB, height=2, width=2, encoding="yuv422", is_bigendian=0,
                                 step=4, data=np.zeros(8, np.uint8), stamp_ns=i * 10**8)
            w.write_image(THERMAL, np.zeros((2, 2), np.uint16), "mono16", i * 10**8)
    with pytest.raises(FrameError, match="'yuv422'"):
        replay_bag(src, tmp_path / "out", AVERAGE, QUIET)
    assert _read(tmp_path / "out", "/fused/image") == []  # a valid, empty output bag


class _FailingEngine(AverageEngine):
    def __init__(self, after: int, exc: BaseException) -> None:
        self.n, self.after, self.exc = 0, after, exc

    def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        self.n += 1
        if self.n > self.after:
            raise self.exc
        return super().push(visible, infrared)


@pytest.mark.parametrize("exc", [RuntimeError("CUDA out of memory"), KeyboardInterrupt()])
def test_output_bag_stays_valid_when_stopped_midway(tmp_path: Path, exc: BaseException) -> None:
    src = write_synthetic_bag(tmp_path / "in", SCENE)
    with pytest.raises(type(exc)):
        replay_bag(src, tmp_path / "out", opts=QUIET, engine=_FailingEngine(3, exc))
    fused = _read(tmp_path / "out", "/fused/image")
    assert len(fused) == 3
    assert len(_read(tmp_path / "out", "/diagnostics")) == 3


class _DelayEngine:
    """A clip-buffer-like engine: returns the input pushed ``delay`` pushes earlier."""

    def __init__(self, delay: int = 2) -> None:
        self.delay, self.buf = delay, []

    def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor | None:
        self.buf.append(visible)
        return self.buf.pop(0) if len(self.buf) > self.delay else None

    def drain(self) -> list[torch.Tensor]:
        out, self.buf = self.buf, []
        return out

    def reset(self) -> None:
        self.buf = []


def test_delayed_engine_outputs_carry_their_own_stamps(tmp_path: Path) -> None:
    src = write_synthetic_bag(tmp_path / "in", SCENE)
    s = replay_bag(src, tmp_path / "out", NodeConfig(thermal_policy="fixed"), QUIET,
                   engine=_DelayEngine(2))
    assert s["frames_written"] == 6 and s["flushed"] == 0
    fused = _read(tmp_path / "out", "/fused/image")
    frames = list(generate_scene(SCENE))
    for m, f in zip(fused, frames):
        assert stamp_to_ns(m.header.stamp) == f.stamp_ns
        np.testing.assert_array_equal(decode_image(m)[0], f.visible)  # the delayed visible


def test_pipeline_resets_on_size_change_and_counts_failures() -> None:
    p = FusionPipeline(_DelayEngine(1), PipelineConfig(metrics=False))
    small = FrameInput(0, np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint16))
    big = FrameInput(1, np.zeros((16, 16, 3), np.uint8), np.zeros((16, 16), np.uint16))
    assert p.fuse_frames(small) == []
    assert p.fuse_frames(big) == []  # reset dropped the pending small frame
    assert p.summary()["resets"] == {"size_change": 1} and p.flushed == 1
    with pytest.raises(FrameError):
        p.fuse_frames(FrameInput(2, np.zeros((16, 16), np.uint8), np.zeros((16, 16))))
    assert p.frames_failed == 1 and p.diagnostics.errors == 1
    (out,) = p.finish()
    assert out.stamp_ns == 1 and out.image.shape == (16, 16, 3)


def test_copy_sources_and_model_size_output(tmp_path: Path) -> None:
    src = write_synthetic_bag(tmp_path / "in", SCENE)
    cfg = NodeConfig(fusion_engine="average", input_width=32, input_height=24,
                     output_size="model", output_encoding="mono8")
    replay_bag(src, tmp_path / "out", cfg, ReplayOptions(
        copy_sources=True, storage="mcap", progress=False, diagnostics_every=4))
    with BagReader(tmp_path / "out") as r:
        assert {t: i.count for t, i in r.topics.items()} == {
            RGB: 6, THERMAL: 6, "/fused/image": 6, "/diagnostics": 2}
    img, enc = decode_image(_read(tmp_path / "out", "/fused/image")[0])
    assert enc == "mono8" and img.shape == (24, 32)


def test_cli_registration_and_json_summary(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_parser(sub)
    for cmd in (["replay", "a", "-o", "b"], ["fuse", "v", "i"], ["demo"]):
        assert callable(parser.parse_args(cmd).func)
    src = write_synthetic_bag(tmp_path / "in", SCENE)
    assert main(["replay", str(src), "-o", str(tmp_path / "out"), "--engine", "average",
                 "--json", "--slop", "0.02"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames_written"] == 6 and "stage_ms_per_frame" in summary
    assert main(["replay", str(src), "-o", str(tmp_path / "out"), "--engine", "average"]) == 1
    assert "exists" in capsys.readouterr().err


def test_fuse_frame_folders(tmp_path: Path) -> None:
    vis_dir, ir_dir = tmp_path / "vis", tmp_path / "ir"
    vis_dir.mkdir()
    ir_dir.mkdir()
    for f in generate_scene(SyntheticSceneConfig(width=48, height=32, frames=4)):
        cv2.imwrite(str(vis_dir / f"{f.index}.png"), f.visible[:, :, ::-1])
        cv2.imwrite(str(ir_dir / f"{f.index}.png"), (f.thermal >> 8).astype(np.uint8))
    s = fuse_videos(vis_dir, ir_dir, tmp_path / "fused.mp4", AVERAGE, fps=10,
                    frames_dir=tmp_path / "frames", preview=tmp_path / "preview.mp4",
                    progress=False)
    assert s["frames_written"] == 4
    assert (tmp_path / "fused.mp4").stat().st_size > 0
    assert (tmp_path / "preview.mp4").stat().st_size > 0
    pngs = sorted((tmp_path / "frames").glob("*.png"))
    assert len(pngs) == 4 and cv2.imread(str(pngs[0])).shape == (32, 48, 3)
    with pytest.raises(FileNotFoundError):
        fuse_videos(tmp_path / "nope", ir_dir, None, progress=False)


@pytest.mark.slow
def test_fuse_real_videos(tmp_path: Path) -> None:
    vis = DATA / "m3svd" / "test" / "visible" / "0111_1716.mp4"
    ir = DATA / "m3svd" / "test" / "infrared" / "0111_1716.mp4"
    if not vis.exists() or not ir.exists():
        pytest.skip(f"real data not found at {DATA}")
    s = fuse_videos(vis, ir, tmp_path / "f.mp4", AVERAGE, max_frames=3, progress=False)
    assert s["frames_written"] == 3 and s["fps"] > 0


def test_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out), "--frames", "5", "--size", "64x48",
                 "--engine", "average"]) == 0
    text = capsys.readouterr().out
    for name in ("input_bag", "fused_bag", "preview.mp4", "preview.png", "summary.json"):
        assert (out / name).exists() and str(out / name) in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_written"] == 5 and summary["scene"]["width"] == 64
    png = cv2.imread(str(out / "preview.png"))
    assert png.shape == (48, 3 * 64, 3)
    assert len(_read(out / "fused_bag", "/fused/image")) == 5


def test_engine_glue_and_benchmark() -> None:
    engine, info = build_engine(AVERAGE)
    assert isinstance(engine, AverageEngine) and "model-free" in info.description
    with pytest.raises(ValueError, match="backend"):
        NodeConfig(backend="tensorrt-magic")
    res = benchmark_pipeline((32, 24), frames=3, warmup=1)
    assert res["size"] == "32x24" and res["frames"] == 3
    assert res["ms_per_frame"] > 0 and set(res["stage_ms_per_frame"]) >= {"thermal", "engine"}


def test_replay_through_the_network_engines(tmp_path: Path) -> None:
    streaming = pytest.importorskip("temcoco_core.engine.streaming")
    from temcoco_core.model import build_model

    torch.manual_seed(0)
    model = build_model("edge")  # untrained: this checks plumbing, not quality
    src = write_synthetic_bag(tmp_path / "in", SyntheticSceneConfig(width=48, height=32,
                                                                    frames=4))
    cfg = NodeConfig(resize_mode="pad", metrics="")
    for i, engine in enumerate([streaming.make_streaming_engine(model, mode="stream"),
                                streaming.make_streaming_engine(model, mode="clip", length=3)]):
        s = replay_bag(src, tmp_path / f"out{i}", cfg, QUIET, engine=engine)
        assert s["frames_written"] == 4 and s["flushed"] == 0
        fused = _read(tmp_path / f"out{i}", "/fused/image")
        assert [decode_image(m)[0].shape for m in fused] == [(32, 48, 3)] * 4


def test_engine_error_keeps_outputs_aligned() -> None:
    class Picky(_DelayEngine):
        def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor | None:
            if float(visible.mean()) > 0.9:
                raise FrameError("too bright")
            return super().push(visible, infrared)

    p = FusionPipeline(Picky(1), PipelineConfig(metrics=False))
    frames = [FrameInput(i, np.full((8, 8, 3), v, np.uint8), np.zeros((8, 8), np.uint16))
              for i, v in enumerate([10, 250, 20, 30])]
    outs = []
    for f in frames:
        with contextlib.suppress(FrameError):
            outs += p.fuse_frames(f)
    outs += p.finish()
    assert [o.stamp_ns for o in outs] == [0, 2, 3]
    assert [int(o.image[0, 0, 0]) for o in outs] == [10, 20, 30]
    assert p.frames_failed == 1 and p.frames_in == 3


@pytest.mark.slow
def test_demo_command_default_engine(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``temcoco demo`` as a new user runs it.

    No ``--engine``, so the default engine (the edge network on the default backend, built for the
    frames' real size), at a tiny size and frame count.
    """
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out), "--frames", "3", "--size", "64x48"]) == 0
    text = capsys.readouterr().out
    for name in ("input_bag", "fused_bag", "preview.mp4", "preview.png", "summary.json"):
        assert (out / name).exists() and str(out / name) in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"].startswith("edge ") and "64x48" in summary["engine"]
    assert summary["frames_written"] == 3 and summary["frames_failed"] == 0
    fused = _read(out / "fused_bag", "/fused/image")
    assert len(fused) == 3
    frames = [decode_image(m)[0] for m in fused]
    assert all(f.shape[:2] == (48, 64) for f in frames)
    assert all(np.isfinite(f.astype(np.float64)).all() and f.std() > 0 for f in frames)
