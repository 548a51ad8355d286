# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco calibrate``: estimate the thermal → RGB registration of a camera rig from data.

::

    temcoco calibrate recording/                       # a bag: topics detected as in replay
    temcoco calibrate rec.mcap --rgb-topic /cam/color/image_raw --thermal-topic /lwir/image
    temcoco calibrate visible.mp4 thermal.mp4 --model affine -o config/registration.yaml

Reads up to ``--frames`` frame pairs spread over the input (a bag is paired exactly like
``temcoco replay`` pairs it), estimates the map with
:func:`temcoco_core.frames.calibration.estimate_registration`, and writes

* a ROS 2 parameter file with the registration parameter only (``homography``), loaded by
  the node after its main config
  (``ros2 launch temcoco_ros fusion.launch.py registration:=registration.yaml``) and by
  ``temcoco replay/fuse/eval --params registration.yaml`` (after ``--params fusion.yaml``);
* an overlay PNG: thermal edges (red) and the thermal image outline (yellow) on the RGB image,
  before (left) and after (right) the estimated registration;
* the score, residual and any warnings on stdout (``--json``: one JSON document).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
import datetime
import json
import logging
from pathlib import Path
import sys
from typing import Any

import cv2
import numpy as np

from temcoco_core.frames.calibration import (
    CalibrationConfig,
    CalibrationError,
    CalibrationResult,
    edge_overlay,
    estimate_registration,
    GrayPair,
    MODELS,
    prepare_pair,
)

__all__ = ["add_parser", "calibrate", "read_bag_pairs", "read_video_pairs",
           "render_overlay", "write_parameter_file"]

log = logging.getLogger(__name__)

#: Decoded pair kept for the preview: (thermal as decoded, RGB uint8).
RawPair = tuple[np.ndarray, np.ndarray]


# ---------------------------------------------------------------------------------- sources
def _spread_indices(total: int, k: int) -> list[int]:
    if total <= k:
        return list(range(total))
    return sorted({round(i * (total - 1) / (k - 1)) for i in range(k)}) if k > 1 else [0]


def read_bag_pairs(path: str | Path, frames: int, *, rgb_topic: str | None = None,
                   thermal_topic: str | None = None, slop: float = 0.05,
                   queue_size: int = 10) -> tuple[list[RawPair], dict[str, Any]]:
    """Up to ``frames`` decoded (thermal, RGB) pairs spread over a bag.

    Topics are chosen and messages paired exactly as ``temcoco replay`` does
    (:func:`~temcoco_core.io.bag.select_image_topics`, approximate-time pairing with ``slop``
    seconds and ``queue_size``); undecodable pairs are skipped and counted.

    Returns:
        ``(pairs, info)``: pairs in time order; info names the topics and counts.
    """
    from temcoco_core.frames.image_msg import decode_image, to_grey, to_rgb
    from temcoco_core.frames.pairing import ApproximatePairer, PairingConfig
    from temcoco_core.frames.preprocess import FrameError
    from temcoco_core.io.bag import BagReader, select_image_topics, stamp_to_ns

    with BagReader(path) as reader:
        rgb, thermal = select_image_topics(reader.topics, rgb_topic, thermal_topic,
                                           source=str(path))
        expected = min(reader.topics[rgb].count, reader.topics[thermal].count)
        keep = set(_spread_indices(expected, frames))
        pairer = ApproximatePairer(2, PairingConfig(queue_size=queue_size, slop=slop,
                                                    max_gap_s=None), (rgb, thermal))
        index = {rgb: 0, thermal: 1}
        pairs: list[RawPair] = []
        n_pairs = failed = 0
        for m in reader.messages([rgb, thermal]):
            header = getattr(m.msg, "header", None)
            stamp = stamp_to_ns(header.stamp) if header is not None else m.log_time_ns
            res = pairer.add(index[m.topic], stamp, m.msg)
            if res.pair is None:
                continue
            n_pairs += 1
            if n_pairs - 1 not in keep:
                continue
            rgb_msg, th_msg = res.pair.payloads
            try:
                rgb_arr, rgb_enc = decode_image(rgb_msg)
                th_arr, th_enc = decode_image(th_msg)
                pairs.append((to_grey(th_arr, th_enc), to_rgb(rgb_arr, rgb_enc)))
            except FrameError as exc:
                failed += 1
                log.warning("pair %d does not decode: %s", n_pairs - 1, exc)
    info = {"input": str(path), "rgb_topic": rgb, "thermal_topic": thermal,
            "pairs_in_input": n_pairs, "decode_failures": failed}
    if not pairs:
        raise CalibrationError(f"{path}: no decodable {rgb} + {thermal} pairs (slop {slop} s)")
    return pairs, info


def _read_thermal_file(path: Path) -> np.ndarray:
    from temcoco_core.io.video import VideoError

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps 16-bit thermal PNG/TIFF
    if img is None:
        raise VideoError(f"cannot decode image file: {path}")
    return img if img.ndim == 2 else cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)


def _frames(path: Path, indices: list[int], thermal: bool) -> Iterator[np.ndarray]:
    from temcoco_core.io.video import iter_video, list_frame_files, read_image

    if path.is_dir():
        files = list_frame_files(path)
        for i in indices:
            if i < len(files):
                yield _read_thermal_file(files[i]) if thermal else read_image(files[i])
        return
    want = set(indices)
    for i, frame in enumerate(iter_video(path, max_frames=max(indices) + 1 if indices else 0)):
        if i in want:
            yield frame[:, :, 0] if thermal else frame


def _length(path: Path) -> int:
    from temcoco_core.io.video import list_frame_files, video_info

    return len(list_frame_files(path)) if path.is_dir() else video_info(path).frame_count


def read_video_pairs(visible: str | Path, infrared: str | Path, frames: int
                     ) -> tuple[list[RawPair], dict[str, Any]]:
    """Up to ``frames`` (thermal, RGB) pairs spread over two videos or frame folders.

    Up to ``frames`` (thermal, RGB) pairs spread over two videos or frame folders (frame ``i`` of
    one pairs with frame ``i`` of the other).
    """
    visible, infrared = Path(visible), Path(infrared)
    n = min(_length(visible), _length(infrared))
    if n <= 0:
        raise CalibrationError(f"{visible} / {infrared}: no frames")
    idx = _spread_indices(n, frames)
    pairs = list(zip(_frames(infrared, idx, True), _frames(visible, idx, False), strict=False))
    if not pairs:
        raise CalibrationError(f"{visible} / {infrared}: no frames could be read")
    return pairs, {"visible": str(visible), "infrared": str(infrared), "pairs_in_input": n}


# ---------------------------------------------------------------------------------- outputs
def write_parameter_file(path: str | Path, result: CalibrationResult, source: str,
                         node: str = "/**") -> Path:
    """The ``ros__parameters`` file with the registration parameter (see module doc)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tw, th = result.thermal_size
    rw, rh = result.rgb_size
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        f"# thermal -> RGB registration from `temcoco calibrate` ({when})",
        f"# input: {source}",
        f"# thermal {tw}x{th} -> RGB {rw}x{rh} pixels; model {result.model}",
        f"# structure correlation {result.score:.3f} (before {result.score_before:.3f}); "
        f"residual {result.residual_px:.2f} px RMS over {result.frames_used}/"
        f"{result.frames_total} frame pairs",
    ]
    head += [f"# WARNING: {w}" for w in result.warnings]
    head += ["# Load after the main config: ros2 launch temcoco_ros fusion.launch.py "
             "registration:=<this file>",
             "# or: temcoco replay|fuse|eval ... --params fusion.yaml --params <this file>"]
    params = result.parameters()
    body = {node: {"ros__parameters": params}}
    text = yaml.safe_dump(body, default_flow_style=None, sort_keys=False, width=200)
    path.write_text("\n".join(head) + "\n" + text)
    return path


def _label(img: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    scale = max(0.45, img.shape[1] / 1100)
    pad = int(22 * scale / 0.5)
    bar = np.zeros((pad * len(lines) + pad // 3, img.shape[1], 3), np.uint8)
    for i, text in enumerate(lines):
        cv2.putText(bar, text, (6, pad * (i + 1) - pad // 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), max(1, round(scale * 1.6)), cv2.LINE_AA)
    return np.vstack([bar, img])


def render_overlay(thermal: np.ndarray, rgb: np.ndarray, result: CalibrationResult,
                   max_width: int = 960) -> np.ndarray:
    """Before | after panels: thermal edges (red) and outline (yellow) on the RGB image.

    Returns:
        ``(H, W, 3)`` uint8 RGB.
    """
    before = edge_overlay(thermal, rgb, result.initial)
    after = edge_overlay(thermal, rgb, result.homography)
    f = min(1.0, max_width / before.shape[1])
    if f < 1.0:
        size = (round(before.shape[1] * f), round(before.shape[0] * f))
        before = cv2.resize(before, size, interpolation=cv2.INTER_AREA)
        after = cv2.resize(after, size, interpolation=cv2.INTER_AREA)
    what = "--initial map" if result.initial_given else "centred fit (no prior)"
    before = _label(before, [f"BEFORE: {what}", f"structure corr. {result.score_before:.3f}"])
    after = _label(after, [f"AFTER: {result.model}, {result.frames_used}/{result.frames_total}"
                           " pairs", f"structure corr. {result.score:.3f}, residual "
                           f"{result.residual_px:.2f} px"])
    gap = np.full((before.shape[0], 6, 3), 255, np.uint8)
    return np.hstack([before, gap, after])


def _preview_pair(result: CalibrationResult, raw: Sequence[RawPair]) -> RawPair:
    """The inlier pair with the median score (a typical one, not the best)."""
    used = sorted((e.score, e.index) for e in result.frames if e.inlier)
    return raw[used[len(used) // 2][1]] if used else raw[0]


# ---------------------------------------------------------------------------------- command
def calibrate(pairs: Sequence[RawPair], cfg: CalibrationConfig, *, output: Path | None,
              preview: Path | None, source: str, progress: bool = True,
              node: str = "/**") -> tuple[CalibrationResult, dict[str, Any]]:
    """Estimate, write the parameter file and the overlay; returns the result and a summary."""
    from tqdm import tqdm

    prepared: list[GrayPair] = [prepare_pair(t, r) for t, r in pairs]
    bar = tqdm(total=len(prepared), desc="calibrate", unit="pair", disable=not progress,
               dynamic_ncols=True)

    def step(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = estimate_registration(prepared, cfg, progress=step)
    finally:
        bar.close()
    summary: dict[str, Any] = result.summary()
    if output is not None:
        summary["parameter_file"] = str(write_parameter_file(output, result, source, node))
    if preview is not None:
        thermal, rgb = _preview_pair(result, pairs)
        img = render_overlay(thermal, rgb, result)
        preview.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(preview), cv2.cvtColor(img, cv2.COLOR_RGB2BGR)):
            raise CalibrationError(f"cannot write the preview {preview}")
        summary["preview"] = str(preview)
    return result, summary


def _parse_initial(text: str) -> np.ndarray:
    from temcoco_core.frames.registration import parse_homography
    from temcoco_core.node_config import load_parameter_file

    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        values = load_parameter_file(path).get("homography")
        if not values:
            raise argparse.ArgumentTypeError(f"{path}: has no homography parameter")
        return parse_homography(values)
    try:
        return parse_homography([float(v) for v in text.replace(" ", "").split(",")])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--initial: {exc}") from None


def _parse_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH, got {text!r}") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"need 0 < LOW <= HIGH, got {text!r}")
    return lo, hi


def _print_text(summary: dict[str, Any], info: dict[str, Any]) -> None:
    src = info.get("input") or f"{info.get('visible')} + {info.get('infrared')}"
    topics = (f" (RGB {info['rgb_topic']}, thermal {info['thermal_topic']})"
              if "rgb_topic" in info else "")
    tw, th = summary["thermal_size"]
    rw, rh = summary["rgb_size"]
    print(f"calibrated {src}{topics}: thermal {tw}x{th} -> RGB {rw}x{rh}, model "
          f"{summary['model']}")
    print(f"  frame pairs used   {summary['frames_used']} of {summary['frames_total']}")
    print(f"  structure corr.    {summary['score']:.3f} (before: {summary['score_before']:.3f})")
    print(f"  residual           {summary['residual_px']:.2f} px RMS (standard error "
          f"{summary['standard_error_px']:.2f} px)")
    print("  homography         " + json.dumps(
        [[float(f"{v:.6g}") for v in row] for row in summary["homography"]]))
    corners = ", ".join(f"({x:.0f}, {y:.0f})" for x, y in summary["thermal_corners_in_rgb"])
    print(f"  thermal corners in RGB: {corners}")
    for k in ("parameter_file", "preview"):
        if k in summary:
            print(f"  {k.replace('_', ' '):<18} {summary[k]}")
    for w in summary["warnings"]:
        print(f"  WARNING: {w}")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    inputs: list[Path] = args.inputs
    if len(inputs) == 1:
        pairs, info = read_bag_pairs(inputs[0], args.frames, rgb_topic=args.rgb_topic,
                                     thermal_topic=args.thermal_topic, slop=args.slop,
                                     queue_size=args.queue_size)
        source = f"{inputs[0]} ({info['rgb_topic']} + {info['thermal_topic']})"
    elif len(inputs) == 2:
        if args.rgb_topic or args.thermal_topic:
            raise ValueError("--rgb-topic/--thermal-topic apply to a bag, not to two videos")
        pairs, info = read_video_pairs(inputs[0], inputs[1], args.frames)
        source = f"{inputs[0]} + {inputs[1]}"
    else:
        raise ValueError("give one bag, or a visible and an infrared video/frame folder")
    cfg = CalibrationConfig(model=args.model, initial=args.initial, search=not args.no_search,
                            scale_range=args.scale_range, max_side=args.max_side)
    preview = None if args.no_preview else (
        args.preview or args.output.with_name(args.output.stem + "_overlay.png"))
    _, summary = calibrate(pairs, cfg, output=args.output, preview=preview, source=source,
                           progress=not args.json and sys.stderr.isatty(), node=args.node)
    summary["source"] = info
    if args.json:
        print(json.dumps(summary, indent=2, default=_json_default))
    else:
        _print_text(summary, info)
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``calibrate`` on the ``temcoco`` command line."""
    p = subparsers.add_parser(
        "calibrate", help="estimate the thermal-to-RGB registration from a bag or two videos",
        description="Estimate the thermal -> RGB pixel map (homography or fewer degrees of "
                    "freedom) from frame pairs of a bag (topics as in `temcoco replay`) or of "
                    "a visible and an infrared video/frame folder. Writes a ROS 2 parameter "
                    "file with the registration parameters and a before/after edge overlay "
                    "PNG; prints the structure correlation (quality) and the residual in "
                    "pixels.")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                   help="a bag (directory, .db3 or .mcap), or VISIBLE INFRARED videos/folders")
    p.add_argument("-o", "--output", type=Path, default=Path("registration.yaml"),
                   help="parameter file to write (default: registration.yaml)")
    p.add_argument("--preview", type=Path, default=None,
                   help="overlay PNG (default: <output stem>_overlay.png)")
    p.add_argument("--no-preview", action="store_true", help="no overlay PNG")
    p.add_argument("--model", choices=MODELS, default="homography",
                   help="homography (8 DOF, default), affine (6), similarity (rotation, scale, "
                        "shift: 4) or translation (scale and shift: 3)")
    p.add_argument("--frames", type=int, default=30,
                   help="frame pairs used, spread over the input (default: 30)")
    p.add_argument("--rgb-topic", default=None, help="RGB image topic (default: detected)")
    p.add_argument("--thermal-topic", default=None,
                   help="thermal image topic (default: detected)")
    p.add_argument("--slop", type=float, default=0.05,
                   help="pairing: largest stamp difference, seconds (default: 0.05)")
    p.add_argument("--queue-size", type=int, default=10, help="pairing queue size (default 10)")
    p.add_argument("--initial", type=_parse_initial, default=None, metavar="FILE|H11,...,H33",
                   help="start/prior map: a parameter file with `homography` (e.g. the current "
                        "config) or 9 values; it is the overlay's 'before'")
    p.add_argument("--no-search", action="store_true",
                   help="refine --initial only, no global scale/shift search")
    p.add_argument("--scale-range", type=_parse_range, default=(0.5, 2.0), metavar="LO,HI",
                   help="searched resolution ratios relative to the thermal image filling the "
                        "RGB image (default: 0.5,2.0)")
    p.add_argument("--max-side", type=int, default=640,
                   help="thermal longer side at the finest level, pixels (default: 640)")
    p.add_argument("--node", default="/**",
                   help="node name key of the parameter file (default: /**)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_calibrate)
