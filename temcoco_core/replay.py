# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Offline front ends of the fusion pipeline: ``temcoco replay``, ``fuse`` and ``demo``.

Each takes the node's own settings (:class:`~temcoco_core.node_config.NodeConfig`; on the
command line ``--params config/fusion.yaml`` plus single-value flags), builds its engine with
:func:`~temcoco_core.engine.factory.build_engine` and its pipeline with
:meth:`~temcoco_core.pipeline.FusionPipeline.from_settings` -- the node's worker does the same --
and runs :func:`~temcoco_core.driver.run_pipeline` from its source to its sinks.

* :func:`replay_bag` -- a rosbag2 (sqlite3 or MCAP) into a new bag with ``/fused/image`` and
  ``/diagnostics`` (and optionally the source topics): the frames and diagnostic values the node
  publishes for the same messages when it keeps up (``test/test_parity.py``).
* :func:`fuse_videos` -- two videos or frame folders into a fused mp4, a side-by-side preview
  and optionally PNG frames.
* :func:`run_demo` -- a synthetic thermal+RGB scene written as a real bag, replayed with the
  node's default settings; preview mp4/PNG and a JSON summary.
* :func:`benchmark_pipeline` -- the pipeline's own per-frame cost (model-free engine) on
  in-memory messages, from message in to fused message fields out.

``add_parser(subparsers)`` registers the three subcommands on the ``temcoco`` command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
import json
import logging
from pathlib import Path
import sys
import time
from typing import Any

import cv2
import numpy as np

from temcoco_core.cli_args import add_settings_args, apply_threads, parse_size, settings_from_args
from temcoco_core.driver import MessageItem, MetricMeans, ON_ERROR, run_pipeline, RunStats
from temcoco_core.engine.factory import build_engine, EngineInfo
from temcoco_core.fleet import replays as fleet_replay
from temcoco_core.frames.decoder import FrameInput
from temcoco_core.frames.image_msg import numpy_to_image_fields, to_grey
from temcoco_core.frames.preprocess import FrameError
from temcoco_core.io.bag import BagError, BagReader, BagWriter, select_image_topics, stamp_to_ns
from temcoco_core.io.outputs import check_output_path, OutputPathError, prepare_output_parent
from temcoco_core.node_config import NodeConfig
from temcoco_core.pipeline import AverageEngine, Engine, FusedFrame, FusionPipeline

__all__ = [
    "PreviewWriter",
    "ReplayOptions",
    "add_parser",
    "benchmark_pipeline",
    "fuse_videos",
    "replay_bag",
    "run_demo",
]

log = logging.getLogger(__name__)

FUSED_TOPIC = "/fused/image"
DIAGNOSTICS_TOPIC = "/diagnostics"


# ---------------------------------------------------------------------------------- preview
def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.array(img, dtype=np.uint8, copy=True)
    scale = max(0.35, img.shape[0] / 600.0)
    cv2.putText(out, text, (6, int(18 * scale / 0.45)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, int(18 * scale / 0.45)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (255, 255, 255), 1, cv2.LINE_AA)
    return out


def side_by_side(frame: FusedFrame) -> np.ndarray:
    """``(H, 3W, 3)`` uint8 RGB: visible | thermal (normalised) | fused, labelled."""
    fused = frame.image
    if fused.ndim == 2:
        fused = np.repeat(fused[:, :, None], 3, axis=2)
    elif frame.encoding == "bgr8":
        fused = fused[:, :, ::-1]
    h, w = fused.shape[:2]
    vis = frame.visible if frame.visible.shape[:2] == (h, w) else cv2.resize(frame.visible, (w, h))
    ir = frame.infrared
    if ir.shape[:2] != (h, w):
        ir = cv2.resize(ir, (w, h))
    ir = np.repeat(ir[:, :, None], 3, axis=2)
    return np.concatenate([_label(vis, "visible"), _label(ir, "thermal"),
                           _label(fused, "fused")], axis=1)


class PreviewWriter:
    """Side-by-side preview video (and one PNG) written as fused frames arrive."""

    def __init__(self, mp4: Path | None, fps: float, png: Path | None = None,
                 png_index: int = 0) -> None:
        from temcoco_core.io.video import VideoWriter

        self.video = VideoWriter(mp4, fps=fps) if mp4 is not None else None
        self.png = png
        self.png_index = png_index
        self.n = 0
        self._last: np.ndarray | None = None
        self.png_written = False

    def __call__(self, frame: FusedFrame, time_ns: int = 0) -> None:
        """Sink interface of :func:`~temcoco_core.driver.run_pipeline`."""
        self.write(frame)

    def write(self, frame: FusedFrame) -> None:
        img = side_by_side(frame)
        if self.video is not None:
            self.video.write(img)
        if self.png is not None and self.n == self.png_index:
            self._write_png(img)
        self._last = img
        self.n += 1

    def _write_png(self, img: np.ndarray) -> None:
        assert self.png is not None
        self.png.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(self.png), np.ascontiguousarray(img[:, :, ::-1]))
        self.png_written = True

    def close(self) -> None:
        if self.png is not None and not self.png_written and self._last is not None:
            self._write_png(self._last)  # fewer frames than png_index: keep the last one
        if self.video is not None:
            self.video.close()


# ---------------------------------------------------------------------------------- replay
@dataclass
class ReplayOptions:
    """Options of :func:`replay_bag` besides the pipeline configuration.

    Attributes:
        rgb_topic, thermal_topic: input topics; ``None``: detected.
        storage: output storage (``"sqlite3"``/``"mcap"``); ``None``: same as the input.
        copy_sources: also write the two source topics (raw copies) into the output bag.
        diagnostics_every: write ``/diagnostics`` every N fused frames (1: per frame).
        overwrite: replace an existing output bag.
        max_frames: stop after this many fused frames.
        progress: tqdm progress bar.
        preview: side-by-side preview mp4 path.
        preview_png: one side-by-side PNG (frame ``preview_png_index``).
        on_error: a bad message or frame (corrupt, undecodable, non-finite, absurd, too
            large): ``"skip"`` it (counted in the summary's ``skipped``) or ``"stop"``.
    """

    rgb_topic: str | None = None
    thermal_topic: str | None = None
    storage: str | None = None
    copy_sources: bool = False
    diagnostics_every: int = 1
    overwrite: bool = False
    max_frames: int | None = None
    progress: bool = True
    preview: Path | None = None
    preview_png: Path | None = None
    preview_png_index: int = 0
    fused_topic: str = FUSED_TOPIC
    diagnostics_topic: str = DIAGNOSTICS_TOPIC
    extra: dict[str, Any] = field(default_factory=dict)
    on_error: str = "skip"


def _storage_of(path: Path) -> str:
    if path.is_dir():
        return "mcap" if any(path.glob("*.mcap")) else "sqlite3"
    return "mcap" if path.suffix == ".mcap" else "sqlite3"


def _estimate_fps(reader: BagReader, topic: str) -> float:
    n = reader.topics[topic].count
    dur = reader.duration_s
    if dur > 0 and n > 1:
        return float(min(max((n - 1) / dur, 1.0), 120.0))
    return 15.0


def _engine_for(settings: NodeConfig, engine: Engine | None
                ) -> tuple[Engine, EngineInfo | str]:
    """``engine`` as given (tests, custom engines), else the one ``settings`` ask for."""
    if engine is not None:
        return engine, type(engine).__name__
    return build_engine(settings)


def replay_bag(in_bag: str | Path, out_bag: str | Path, settings: NodeConfig | None = None,
               opts: ReplayOptions | None = None, *, engine: Engine | None = None
               ) -> dict[str, Any]:
    """Replay a bag through the node's pipeline into a new bag.

    The pipeline is built from ``settings`` -- the node's parameters, e.g.
    ``NodeConfig.from_yaml("config/fusion.yaml")`` -- by the same
    :meth:`FusionPipeline.from_settings` and :func:`~temcoco_core.engine.factory.build_engine`
    the node's worker uses, so ``/fused/image`` holds the frames the node would publish for
    the same messages when it keeps up with them (the node drops pairs it cannot keep up
    with, latest wins; a replay fuses every pair). ``/fused/image`` carries the header stamp
    and frame_id of the RGB message, written at the log time of the message that completed
    the frame; ``/diagnostics`` (``diagnostic_msgs/DiagnosticArray``) the pipeline's
    statuses: pairing counters, rates, latency, resets, engine and the per-frame
    temporal-consistency values. The output bag is closed -- hence valid and readable -- even
    when the replay stops on an error or Ctrl-C; the summary then has ``"interrupted": True``
    and the exception is re-raised.

    Args:
        in_bag: input bag (directory, ``.db3`` or ``.mcap``).
        out_bag: output bag directory.
        settings: the node's parameters (default: the node's defaults).
        opts: topics, storage, preview and other options.
        engine: use this engine instead of building the one ``settings`` ask for.

    A bad message (one that does not deserialise or decode, a non-finite, absurd or too large
    frame) is skipped and counted, and the replay goes on; the summary's ``skipped`` says what
    was skipped and why (``opts.on_error="stop"``: the first one raises instead).

    Returns:
        Summary: topics, frames, pairing counters, resets, skipped frames by kind, wall fps,
        per-stage ms per frame, latency and the mean of every per-frame metric.

    Raises:
        BagError: missing/corrupt input bag, missing topic, existing output.
        EngineBuildError: the engine ``settings`` ask for cannot be built.
        FrameError: no frame could be fused because every one was bad (the error names the
            kinds), or ``on_error="stop"`` and a frame was bad.
    """
    from tqdm import tqdm

    settings = settings or NodeConfig()
    opts = opts or ReplayOptions()
    in_bag, out_bag = Path(in_bag), Path(out_bag)
    if out_bag.resolve() == in_bag.resolve():
        raise BagError(f"{out_bag}: output bag must differ from the input bag")
    reader = BagReader(in_bag)
    stats: RunStats | None = None
    summary: dict[str, Any] = {"input": str(in_bag), "output": str(out_bag)}
    writer: BagWriter | None = None
    preview: PreviewWriter | None = None
    pipeline: FusionPipeline | None = None
    means = MetricMeans()
    written = [0]
    last_time = [0]
    t_start = time.perf_counter()
    try:
        rgb, thermal = select_image_topics(reader.topics, opts.rgb_topic, opts.thermal_topic,
                                           source=str(in_bag))
        summary.update(rgb_topic=rgb, thermal_topic=thermal)
        log.info("replaying %s: RGB %s, thermal %s", in_bag, rgb, thermal)
        engine, info = _engine_for(settings, engine)
        storage = opts.storage or _storage_of(in_bag)
        writer = BagWriter(out_bag, storage, overwrite=opts.overwrite, inputs=[in_bag])
        writer.add_topic(opts.fused_topic, "sensor_msgs/msg/Image")
        writer.add_topic(opts.diagnostics_topic, "diagnostic_msgs/msg/DiagnosticArray")
        if opts.copy_sources:
            for conn in reader.connections:
                if conn.topic in (rgb, thermal):
                    writer.copy_topic(conn)
        if opts.preview is not None or opts.preview_png is not None:
            preview = PreviewWriter(opts.preview, _estimate_fps(reader, rgb), opts.preview_png,
                                    opts.preview_png_index)
        pipeline = FusionPipeline.from_settings(settings, engine, (rgb, thermal),
                                                engine_description=info)
        index = {rgb: 0, thermal: 1}
        bar = tqdm(total=reader.topics[rgb].count, desc="replay", unit="frame",
                   disable=not opts.progress, dynamic_ncols=True)
        every = max(1, opts.diagnostics_every)

        def write_frame(frame: FusedFrame, log_time_ns: int) -> None:
            assert writer is not None and pipeline is not None
            writer.write_image(opts.fused_topic, frame.image, frame.encoding, frame.stamp_ns,
                               frame.frame_id, log_time_ns=log_time_ns)
            written[0] += 1
            if written[0] % every == 0:
                writer.write_diagnostics(pipeline.statuses(), frame.stamp_ns,
                                         opts.diagnostics_topic, log_time_ns=log_time_ns)

        def source() -> Iterator[MessageItem]:
            for m in reader.messages([rgb, thermal], bad_messages="yield"):
                last_time[0] = m.log_time_ns
                if opts.copy_sources:
                    assert writer is not None
                    writer.write_raw(m.topic, m.log_time_ns, m.raw)
                stamp = stamp_to_ns(m.msg.header.stamp) if m.msg is not None else 0
                yield MessageItem(index[m.topic], stamp, m.msg, m.log_time_ns, m.topic,
                                  error=m.error, receive_ns=m.log_time_ns)

        def progress(item: MessageItem | FrameInput, stats: RunStats) -> None:
            if isinstance(item, MessageItem) and item.topic_index == 0:
                bar.update(1)
                elapsed = time.perf_counter() - t_start
                bar.set_postfix(fps=f"{stats.frames / max(elapsed, 1e-9):.1f}", refresh=False)

        sinks: list[Any] = [write_frame, means]
        if preview is not None:
            sinks.append(preview)
        stats = run_pipeline(pipeline, source(), sinks, max_frames=opts.max_frames,
                             on_item=progress, where=str(in_bag), on_error=opts.on_error)
        bar.close()
        if written[0] and written[0] % every != 0:
            writer.write_diagnostics(pipeline.statuses(), last_time[0], opts.diagnostics_topic,
                                     log_time_ns=last_time[0])
        summary["interrupted"] = False
        if not written[0] and stats.skipped:
            raise FrameError(f"{in_bag}: no frame could be fused: {_describe_skips(stats)}")
    except BaseException:
        summary["interrupted"] = True
        raise
    finally:
        elapsed = time.perf_counter() - t_start
        if writer is not None:
            writer.close()
        if preview is not None:
            preview.close()
        reader.close()
        if pipeline is not None:
            summary.update(pipeline.summary())
        if stats is not None:
            summary["skipped"] = stats.skip_summary()
        summary.update(frames_written=written[0], wall_s=elapsed,
                       fps=written[0] / elapsed if elapsed > 0 else float("nan"),
                       metrics=means.means())
        if writer is not None:
            summary["output_counts"] = dict(writer.counts)
        if summary.get("interrupted") and writer is not None:
            log.warning("replay stopped early; %s holds the %d fused frames written so far",
                        out_bag, written[0])
    return summary


def _describe_skips(stats: RunStats) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(stats.skipped_by_kind.items()))
    first = f"; first: {stats.errors[0]}" if stats.errors else ""
    return f"{stats.skipped} skipped ({kinds}){first}"


# ---------------------------------------------------------------------------------- fuse
def _frame_source(path: Path, max_frames: int | None) -> Iterator[np.ndarray]:
    from temcoco_core.io.video import iter_video, list_frame_files, read_image, VideoError

    if path.is_dir():
        files = list_frame_files(path)
        if not files:
            raise VideoError(f"{path}: no image files")
        for f in files[:max_frames]:
            yield read_image(f)
    else:
        yield from iter_video(path, max_frames=max_frames)


class _FramesDir:
    """Sink: fused frames as numbered PNGs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.n = 0
        folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, frame: FusedFrame, time_ns: int = 0) -> None:
        img = frame.image
        bgr = img if img.ndim == 2 else np.ascontiguousarray(
            img if frame.encoding == "bgr8" else img[:, :, ::-1])
        cv2.imwrite(str(self.folder / f"{self.n:05d}.png"), bgr)
        self.n += 1


def fuse_videos(visible: str | Path, infrared: str | Path, out: str | Path | None,
                settings: NodeConfig | None = None, *, engine: Engine | None = None,
                fps: float | None = None, frames_dir: str | Path | None = None,
                preview: str | Path | None = None, max_frames: int | None = None,
                progress: bool = True, on_error: str = "skip") -> dict[str, Any]:
    """Fuse a visible and an infrared video (or frame folders), frame i with frame i.

    Through the node's pipeline (``settings``: the node's parameters, default its defaults).

    Args:
        visible, infrared: video files or folders of numbered images.
        out: fused mp4 path (``None``: no video).
        engine: use this engine instead of building the one ``settings`` ask for.
        fps: output frame rate; default the visible video's, or 30 for folders.
        frames_dir: also write the fused frames as PNGs here.
        preview: side-by-side (visible | thermal | fused) mp4 path.
        max_frames: stop after this many frames.
        on_error: ``"skip"`` a bad frame pair (counted in ``skipped``) or ``"stop"``.

    Returns:
        Summary with frames, fps, s/frame, the engine, skipped pairs and the mean per-frame
        metrics.
    """
    from tqdm import tqdm

    from temcoco_core.io.video import video_info, VideoWriter

    visible, infrared = Path(visible), Path(infrared)
    for p in (visible, infrared):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such video file or frame folder")
    for target in (out, preview):
        if target is not None:  # outputs checked before any work: one clear line
            check_output_path(target, inputs=(visible, infrared), overwrite=True, bag=False)
    if frames_dir is not None:
        if Path(frames_dir).exists() and not Path(frames_dir).is_dir():
            raise OutputPathError(f"{frames_dir}: --frames-dir is a file, not a folder")
        prepare_output_parent(Path(frames_dir) / "x.png")
    if fps is None:
        fps = video_info(visible).fps if visible.is_file() else 30.0
        fps = fps if fps and fps > 0 else 30.0
    settings = settings or NodeConfig()
    engine, info = _engine_for(settings, engine)
    pipeline = FusionPipeline.from_settings(settings, engine, ("visible", "infrared"),
                                            engine_description=info)
    total = video_info(visible).frame_count or None if visible.is_file() else None
    if max_frames is not None:
        total = min(total or max_frames, max_frames)
    writer = VideoWriter(out, fps=fps) if out is not None else None
    prev = PreviewWriter(Path(preview), fps) if preview is not None else None
    means = MetricMeans()
    sinks: list[Any] = [means]
    if writer is not None:
        sinks.append(lambda f, _t: writer.write(f.image[:, :, ::-1] if f.encoding == "bgr8"
                                                else f.image))
    if prev is not None:
        sinks.append(prev)
    if frames_dir is not None:
        sinks.append(_FramesDir(Path(frames_dir)))
    period = round(1e9 / fps)
    vis_it = _frame_source(visible, max_frames)
    ir_it = _frame_source(infrared, max_frames)

    def source() -> Iterator[FrameInput]:
        for n, (v, i) in enumerate(zip(vis_it, ir_it)):
            yield FrameInput(n * period, v, i if i.ndim == 2 else to_grey(i, "rgb8"))

    bar = tqdm(total=total, desc="fuse", unit="frame", disable=not progress,
               dynamic_ncols=True)
    try:
        stats = run_pipeline(pipeline, source(), sinks, on_item=lambda _i, _s: bar.update(1),
                             where=f"{visible} + {infrared}", on_error=on_error)
        if not stats.frames and stats.skipped:
            raise FrameError(f"{visible} + {infrared}: no frame could be fused: "
                             f"{_describe_skips(stats)}")
        leftover = next(vis_it, None) is not None or next(ir_it, None) is not None
        if leftover and max_frames is None:
            log.warning("%s and %s have different lengths; stopped after %d frames", visible,
                        infrared, stats.items)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if prev is not None:
            prev.close()
    n_out = stats.frames
    return {"visible": str(visible), "infrared": str(infrared),
            "output": str(out) if out is not None else None,
            "preview": str(preview) if preview is not None else None,
            "frames_in": stats.items, "frames_written": n_out, "wall_s": stats.wall_s,
            "skipped": stats.skip_summary(),
            "fps": n_out / stats.wall_s if stats.wall_s > 0 else float("nan"),
            "s_per_frame": stats.wall_s / n_out if n_out else float("nan"),
            "stage_ms_per_frame": pipeline.summary()["stage_ms_per_frame"],
            "engine": pipeline.engine_description, "metrics": means.means(),
            "alignment": pipeline.summary()["alignment"]}


# ---------------------------------------------------------------------------------- demo
def run_demo(out_dir: str | Path = "temcoco_demo", *, frames: int = 60,
             size: tuple[int, int] = (320, 256), seed: int = 0,
             settings: NodeConfig | None = None, storage: str = "sqlite3",
             progress: bool = True) -> dict[str, Any]:
    """The built-in demo: synthetic bag → replay → fused bag, preview mp4/PNG, summary JSON.

    The replay runs through the node's pipeline with ``settings`` (default: the node's defaults).

    Everything is written under ``out_dir`` (replacing an earlier demo's files):
    ``input_bag/``, ``fused_bag/``, ``preview.mp4``, ``preview.png``, ``summary.json``.

    Returns:
        The summary (also written to ``summary.json``), with the paths under ``"paths"``.
    """
    from temcoco_core.io.synthetic import SyntheticSceneConfig, write_synthetic_bag

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scene = SyntheticSceneConfig(width=size[0], height=size[1], frames=frames, seed=seed)
    t0 = time.perf_counter()
    in_bag = write_synthetic_bag(out / "input_bag", scene, storage=storage, overwrite=True,
                                 progress=progress)
    t_scene = time.perf_counter() - t0
    paths = {"input_bag": out / "input_bag", "fused_bag": out / "fused_bag",
             "preview_mp4": out / "preview.mp4", "preview_png": out / "preview.png",
             "summary": out / "summary.json"}
    opts = ReplayOptions(storage=storage, overwrite=True, progress=progress,
                         preview=paths["preview_mp4"], preview_png=paths["preview_png"],
                         preview_png_index=frames // 2, copy_sources=True)
    summary = replay_bag(in_bag, paths["fused_bag"], settings, opts)
    summary["scene"] = {"width": size[0], "height": size[1], "frames": frames, "seed": seed,
                        "generate_s": t_scene}
    summary["paths"] = {k: str(v) for k, v in paths.items()}
    paths["summary"].write_text(json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary


# ---------------------------------------------------------------------------------- benchmark
def benchmark_pipeline(size: tuple[int, int] = (640, 480), frames: int = 200, *,
                       metrics: bool = False, thermal_encoding: str = "mono16",
                       warmup: int = 10, threads: int | None = None,
                       progress: bool = False) -> dict[str, Any]:
    """Per-frame cost of the pipeline itself with the model-free engine.

    In-memory rosbags messages (``rgb8`` RGB, ``thermal_encoding`` thermal, 5 ms apart) go
    through the replay driver (pairing, decoding, thermal gain, tensors, the average engine,
    the output frame) and a sink that builds the output ``sensor_msgs/Image`` fields --
    everything the node and replay do per frame besides bag/DDS I/O and the network.

    Args:
        threads: torch intra-op threads during the run (restored after); ``None``: unchanged.

    Returns:
        ``{"size", "frames", "ms_per_frame", "overhead_ms_per_frame" (everything but the
        engine), "fps", "stage_ms_per_frame", ...}``.
    """
    import torch
    from tqdm import tqdm

    from temcoco_core.io.bag import get_typestore, make_header

    w, h = size
    rng = np.random.default_rng(0)
    ts = get_typestore()
    image_cls = ts.types["sensor_msgs/msg/Image"]
    vis = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if thermal_encoding in ("mono16", "16UC1"):
        th = rng.integers(28000, 31000, (h, w), dtype=np.uint16)
    elif thermal_encoding == "32FC1":
        th = rng.uniform(5, 35, (h, w)).astype(np.float32)
    else:
        th = rng.integers(0, 256, (h, w), dtype=np.uint8)

    def msg(arr: np.ndarray, enc: str, stamp: int) -> Any:
        f = numpy_to_image_fields(arr, enc)
        return image_cls(header=make_header(stamp, "cam"), height=f.height, width=f.width,
                         encoding=f.encoding, is_bigendian=0, step=f.step, data=f.data)

    period = 33_333_333
    msgs = [(msg(vis, "rgb8", i * period), msg(th, thermal_encoding, i * period + 5_000_000))
            for i in range(2)]
    settings = NodeConfig(fusion_engine="average", metrics="flicker,dirc" if metrics else "")
    pipeline = FusionPipeline.from_settings(settings, AverageEngine(), ("rgb", "thermal"),
                                            engine_description="average (model-free)")
    n_total = warmup + frames
    t_start = [0.0]

    def source() -> Iterator[MessageItem]:
        for i in range(n_total):
            if i == warmup:
                pipeline.timings = dict.fromkeys(pipeline.timings, 0.0)
                pipeline.frames_in = 0
                t_start[0] = time.perf_counter()
            rgb_msg, th_msg = msgs[i % 2]
            stamp = i * period
            rgb_msg.header.stamp = make_header(stamp).stamp
            th_msg.header.stamp = make_header(stamp + 5_000_000).stamp
            yield MessageItem(0, stamp, rgb_msg)
            yield MessageItem(1, stamp + 5_000_000, th_msg)

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    bar = tqdm(total=n_total, desc="benchmark", unit="frame", disable=not progress)
    try:
        run_pipeline(pipeline, source(),
                     [lambda f, _t: numpy_to_image_fields(f.image, f.encoding),
                      lambda _f, _t: bar.update(1)])
        elapsed = time.perf_counter() - t_start[0]
    finally:
        bar.close()
        torch.set_num_threads(old_threads)
    stages = pipeline.summary()["stage_ms_per_frame"]
    ms = elapsed * 1e3 / frames
    return {"size": f"{w}x{h}", "frames": frames, "thermal_encoding": thermal_encoding,
            "metrics": metrics and pipeline.metrics is not None,
            "torch_threads": torch.get_num_threads() if threads is None else threads,
            "ms_per_frame": ms, "overhead_ms_per_frame": ms - stages["engine"],
            "fps": frames / elapsed, "stage_ms_per_frame": stages}


# ---------------------------------------------------------------------------------- CLI
def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _print_summary(summary: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=_json_default))
        return
    lines = [f"{title}: {summary.get('frames_written', 0)} fused frames in "
             f"{summary.get('wall_s', 0.0):.1f} s ({summary.get('fps', float('nan')):.1f} "
             f"frames/s), engine {summary.get('engine', '?')}"]
    pairing = summary.get("pairing")
    if pairing:
        lines.append(f"  pairs {pairing['pairs']}; events " + ", ".join(
            f"{k} {v}" for k, v in pairing["events"].items()))
        for topic, c in pairing["topics"].items():
            lines.append(f"  {topic}: received {c['received']}, paired {c['paired']}, dropped "
                         f"{c['dropped']}, unmatched {c['unmatched']}")
    skipped = summary.get("skipped") or {}
    if skipped.get("total"):
        lines.append(f"  skipped {skipped['total']} bad message(s)/frame(s): " + ", ".join(
            f"{k} {v}" for k, v in skipped["by_kind"].items()))
        lines += [f"    {e}" for e in skipped.get("first_errors", [])[:3]]
    if summary.get("resets"):
        lines.append("  temporal resets: " + ", ".join(f"{k} {v}"
                                                       for k, v in summary["resets"].items()))
    if summary.get("latency"):
        lat = summary["latency"]
        lines.append(f"  latency mean {lat['mean_ms']:.1f} ms, p95 {lat['p95_ms']:.1f} ms")
    stages = summary.get("stage_ms_per_frame")
    if stages:
        lines.append("  ms/frame: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    if summary.get("metrics"):
        lines.append("  metrics (mean): " + ", ".join(f"{k} {v:.4g}"
                                                      for k, v in summary["metrics"].items()))
    align = summary.get("alignment") or {}
    if align.get("alignment_readings"):
        lines.append(f"  thermal/RGB alignment score: mean {align['alignment_score_mean']:.2f}, "
                     f"last {align['alignment_score_last']:.2f}, below the WARN level in "
                     f"{align['alignment_warn_share']:.0%} of {align['alignment_readings']:.0f} "
                     f"readings ({align['alignment_skipped']:.0f} without structure)")
    print("\n".join(lines))


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.benchmark:
        threads = apply_threads(args)
        res = benchmark_pipeline(args.size, args.frames, metrics=not args.no_metrics,
                                 threads=threads, progress=not args.json)
        if args.json:
            print(json.dumps(res, indent=2))
        else:
            print(f"pipeline at {res['size']} (model-free): {res['ms_per_frame']:.2f} ms/frame "
                  f"({res['fps']:.0f} frames/s), {res['overhead_ms_per_frame']:.2f} ms without "
                  "the engine")
            print("  " + ", ".join(f"{k} {v:.2f}" for k, v in res["stage_ms_per_frame"].items()))
        return 0
    inputs = [str(b) for b in args.in_bag or []]
    if fleet_replay.uses_fleet(args, inputs):  # many bags, --workers, --shard
        return fleet_replay.run(args, inputs)
    args.in_bag = Path(inputs[0]) if inputs else None
    if args.in_bag is None or args.output is None:
        raise ValueError("replay needs IN_BAG and -o OUT_BAG (or --benchmark)")
    settings = settings_from_args(args)
    opts = ReplayOptions(rgb_topic=args.rgb_topic, thermal_topic=args.thermal_topic,
                         storage=args.storage, copy_sources=args.copy_sources,
                         diagnostics_every=args.diagnostics_every, overwrite=args.overwrite,
                         max_frames=args.max_frames, progress=not args.json,
                         preview=args.preview, on_error=args.on_error)
    summary: dict[str, Any] = {}
    try:
        summary = replay_bag(args.in_bag, args.output, settings, opts)
    except KeyboardInterrupt:
        print(f"interrupted; {args.output} holds the frames fused so far", file=sys.stderr)
        return 130
    _print_summary(summary, args.json, "replay")
    return 0


def _cmd_fuse(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    out = Path(args.output)
    preview = None if args.no_preview else (Path(args.preview) if args.preview else
                                            out.with_name(out.stem + "_preview.mp4"))
    summary = fuse_videos(args.visible, args.infrared, out, settings, fps=args.fps,
                          frames_dir=args.frames_dir, preview=preview,
                          max_frames=args.max_frames, progress=not args.json,
                          on_error=args.on_error)
    _print_summary(summary, args.json, "fuse")
    if not args.json:
        print(f"  fused video: {out}" + (f"\n  preview: {preview}" if preview else ""))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        summary = run_demo(args.out_dir, frames=args.frames, size=args.size, seed=args.seed,
                           settings=settings, storage=args.storage, progress=not args.json)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2, default=_json_default))
        return 0
    _print_summary(summary, False, "demo")
    p = summary["paths"]
    print(f"  input bag:   {p['input_bag']}\n  fused bag:   {p['fused_bag']}\n"
          f"  preview:     {p['preview_mp4']}\n  preview PNG: {p['preview_png']}\n"
          f"  summary:     {p['summary']}")
    print(f"  try: ros2 bag play {p['fused_bag']}   (or open it in Foxglove)")
    return 0


def _add_on_error(p: argparse.ArgumentParser) -> None:
    p.add_argument("--on-error", choices=ON_ERROR, default="skip",
                   help="a bad message or frame (corrupt, undecodable, non-finite, too large): "
                        "skip it and count it in the summary (default), or stop")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``replay``, ``fuse`` and ``demo`` on the ``temcoco`` command line."""
    # replay ------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "replay", help="fuse a rosbag2 (sqlite3/mcap) into a new bag",
        description="Replay a bag through the fusion pipeline the node uses, with the node's "
                    "settings (--params config/fusion.yaml, flags override single values), "
                    "and write a new bag "
                    "with /fused/image and /diagnostics. Topics are detected by type, encoding "
                    "and name unless given. --benchmark measures the pipeline's own per-frame "
                    "cost instead (model-free, in memory).")
    p.add_argument("in_bag", nargs="*", type=Path, help="input bag (directory, .db3 or .mcap); "
                   "several bags, folders of bags, globs and list files: see --workers")
    p.add_argument("-o", "--output", type=Path, help="output bag directory (a folder of "
                   "output bags for several inputs)")
    p.add_argument("--rgb-topic", default=None, help="RGB image topic (default: detected)")
    p.add_argument("--thermal-topic", default=None,
                   help="thermal image topic (default: detected)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default=None,
                   help="output storage (default: as the input)")
    p.add_argument("--copy-sources", action="store_true",
                   help="also write the RGB and thermal topics to the output bag")
    p.add_argument("--diagnostics-every", type=int, default=1, metavar="N",
                   help="write /diagnostics every N fused frames (default: 1)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N fused frames")
    p.add_argument("--preview", type=Path, default=None, help="side-by-side preview mp4")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output bag (only one written by temcoco)")
    _add_on_error(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--benchmark", action="store_true",
                   help="measure the pipeline overhead per frame (model-free) and exit")
    p.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH",
                   help="--benchmark frame size (default: 640x480)")
    p.add_argument("--frames", type=int, default=200, help="--benchmark frames (default: 200)")
    add_settings_args(p)
    fleet_replay.add_arguments(p)
    p.set_defaults(func=_cmd_replay)

    # fuse --------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "fuse", help="fuse two videos or frame folders into an mp4",
        description="Fuse a visible and an infrared video (or folders of numbered frames), "
                    "frame i with frame i, into a fused mp4 plus a side-by-side preview.")
    p.add_argument("visible", type=Path, help="visible video or frame folder")
    p.add_argument("infrared", type=Path, help="infrared video or frame folder")
    p.add_argument("-o", "--output", type=Path, default=Path("fused.mp4"),
                   help="fused mp4 (default: fused.mp4)")
    p.add_argument("--frames-dir", type=Path, default=None, help="also write PNG frames here")
    p.add_argument("--preview", type=Path, default=None,
                   help="preview mp4 (default: <output>_preview.mp4)")
    p.add_argument("--no-preview", action="store_true", help="no preview video")
    p.add_argument("--fps", type=float, default=None, help="output fps (default: input's)")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_on_error(p)
    add_settings_args(p)
    p.set_defaults(func=_cmd_fuse)

    # demo --------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "demo", help="synthetic thermal+RGB bag → fused bag, preview and metrics (offline)",
        description="Generate a synthetic thermal+RGB scene as a rosbag2, replay it through "
                    "the default model and write the fused bag, a preview mp4/PNG and a "
                    "metrics summary. No arguments and no network needed.")
    p.add_argument("--out-dir", type=Path, default=Path("temcoco_demo"),
                   help="output folder (default: ./temcoco_demo)")
    p.add_argument("--frames", type=int, default=60, help="frames (default: 60)")
    p.add_argument("--size", type=parse_size, default=(320, 256), metavar="WxH",
                   help="frame size (default: 320x256)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_settings_args(p)
    p.set_defaults(func=_cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry (``python -m temcoco_core.replay replay ...``)."""
    parser = argparse.ArgumentParser(prog="temcoco")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        # Bad input (a missing file, a corrupt checkpoint, an unknown preset ...): one line.
        print(f"temcoco {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # any other file-system failure: one line, no traceback
        from temcoco_core.io.outputs import describe_os_error

        print(f"temcoco {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
