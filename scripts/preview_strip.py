#!/usr/bin/env python3
# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Side-by-side preview of one val frame: visible input | thermal input | fused A | fused B ...

Reads the degraded M3SVD val inputs and fused videos written by ``temcoco eval --save-fused``
(``OUT/fused/<method>/<seq>.mp4``), and writes one labelled PNG strip::

    python scripts/preview_strip.py --val ../shared/data/m3svd/val --seq 0114_1551 --frame 10 \
        --fused "old edge=runs/eval_base/fused/edge_edge_v1.safetensors" \
        --fused "new edge=runs/eval_new/fused/edge_model.safetensors" \
        --scale 0.5 --out docs/preview_0114_1551.png
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import cv2
import numpy as np

from temcoco_core.io.datasets import load_m3svd_val
from temcoco_core.io.video import read_video


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    h = max(18, out.shape[0] // 16)
    cv2.rectangle(out, (0, 0), (out.shape[1], h + 6), (0, 0, 0), -1)
    cv2.putText(out, text, (6, h), cv2.FONT_HERSHEY_SIMPLEX, h / 30.0, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def build_strip(visible: np.ndarray, infrared: np.ndarray,
                fused: list[tuple[str, np.ndarray]], scale: float = 0.5) -> np.ndarray:
    """Put the input frames and the labelled fused frames side by side.

    (H, W, 3) RGB visible, (H, W) grey infrared and labelled (H, W, 3) RGB fused frames -> one
    (h, n·w, 3) RGB strip, each panel scaled by ``scale`` and labelled.
    """
    thermal = np.repeat(infrared[..., None], 3, -1)
    panels = [("visible (input)", visible), ("thermal (input)", thermal)]
    panels += fused
    out = []
    for name, img in panels:
        if img.shape[:2] != visible.shape[:2]:
            raise ValueError(f"panel {name!r} is {img.shape[:2]}, visible {visible.shape[:2]}")
        small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        out.append(_label(small, name))
    return np.concatenate(out, axis=1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--val", default="../shared/data/m3svd/val", help="M3SVD val root")
    p.add_argument("--seq", required=True, help="sequence name")
    p.add_argument("--frame", type=int, default=10, help="frame index")
    p.add_argument("--fused", action="append", required=True, metavar="LABEL=DIR",
                   help="label and a folder with <seq>.mp4 (repeatable, in panel order)")
    p.add_argument("--scale", type=float, default=0.5)
    p.add_argument("--out", required=True, help="PNG to write")
    args = p.parse_args(argv)
    seq = load_m3svd_val(args.val, sequences=[args.seq], max_frames=args.frame + 1)[0]
    fused = []
    for spec in args.fused:
        label, sep, folder = spec.partition("=")
        if not sep:
            p.error(f"--fused {spec!r} is not LABEL=DIR")
        video = read_video(Path(folder) / f"{args.seq}.mp4", max_frames=args.frame + 1)
        fused.append((label, video[args.frame]))
    strip = build_strip(seq.visible[args.frame], seq.infrared[args.frame], fused, args.scale)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(args.out, cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        print(f"cannot write {args.out}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
