#!/usr/bin/env python3
# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Mutual information and ghosting of an edge checkpoint under several motion gates.

Runs the network on M3SVD val sequences in clip mode (one clip per sequence, the raw infrared
input scaled by 1/255, as ``temcoco_core.baselines.ModelMethod`` without thermal settings) for
each gate, and frame by frame, and prints a JSON list: per gate the mean MI(F, visible) +
MI(F, infrared) against the clean references over all frames, and the ghosting
(:func:`temcoco_core.metrics.temporal.ghosting` against the frame-by-frame run, from frame
``--ghost-from`` on, mean over sequences)::

    python scripts/motion_gate_sweep.py --sequences 0111_1716 \
        --gates none,0.05:0.15,0.1:0.25,0.15:0.3,0.2:0.4
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from temcoco_core.baselines import ModelMethod
from temcoco_core.io.datasets import load_m3svd_val
from temcoco_core.metrics.fusion import luma, mi
from temcoco_core.metrics.temporal import ghosting
from temcoco_core.model import build_model


def _gate(text: str) -> tuple[float, float] | None:
    if text == "none":
        return None
    low, sep, high = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"gate {text!r} is not LOW:HIGH or none")
    return (float(low), float(high))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--val", default="../shared/data/m3svd/val", help="M3SVD val root")
    p.add_argument("--sequences", required=True, help="comma-separated sequence names")
    p.add_argument("--weights", default=None, help="edge checkpoint (default: the shipped one)")
    p.add_argument("--gates", default="none,0.1:0.25", help="comma-separated LOW:HIGH or none")
    p.add_argument("--max-frames", type=int, default=None, help="first N frames per sequence")
    p.add_argument("--ghost-from", type=int, default=3, help="first frame of the ghosting")
    args = p.parse_args(argv)
    seqs = load_m3svd_val(args.val, sequences=args.sequences.split(","),
                          max_frames=args.max_frames)
    rows = []
    names = args.gates.split(",") + ["framewise"]
    for name in names:
        gate = None if name == "framewise" else _gate(name)
        model = build_model("edge", pretrained=args.weights is None, weights=args.weights,
                            motion_gate=gate)
        fused = [ModelMethod(model, clip_len=1 if name == "framewise" else s.num_frames,
                             overlap=0)(s) for s in seqs]
        rows.append({"gate": name, "fused": fused})
    framewise = rows[-1]["fused"]
    for row in rows:
        mis = [mi(luma(f), luma(v), i) for s, out in zip(seqs, row["fused"])
               for f, v, i in zip(out, s.vis_ref, s.ir_ref)]
        ghost = [ghosting(out[args.ghost_from:], fw[args.ghost_from:])
                 for out, fw in zip(row.pop("fused"), framewise)]
        row.update(MI=round(float(np.mean(mis)), 4), ghosting=round(float(np.mean(ghost)), 2),
                   frames=len(mis))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
