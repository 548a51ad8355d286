# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The command-line options every many-input command shares.

``--workers``, ``--shard``, ``--skip-done``.
"""

from __future__ import annotations

import argparse
from typing import Any

from temcoco_core.fleet.inputs import parse_shard

__all__ = ["add_fleet_arguments", "shard_arg"]


def shard_arg(text: str) -> tuple[int, int]:
    """Argparse type of ``--shard I/N`` (or ``auto``)."""
    try:
        return parse_shard(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_fleet_arguments(p: argparse.ArgumentParser, *, verb: str, noun: str, out: str,
                        done: str) -> Any:
    """Add the shared options in a new group; returns the group (for command-specific ones).

    Args:
        p: the command's parser.
        verb: ``"evaluate"`` -- for the help texts.
        noun: ``"inputs"`` -- for the help texts.
        out: the command's output option (``"--out"``, ``"-o"``).
        done: what ``--skip-done`` keeps (``"the results of inputs already evaluated"``).
    """
    g = p.add_argument_group(f"many {noun} (folders of bags, globs, list files)")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help=f"{verb} the {noun} in N worker processes (default 1)")
    g.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                   help=f"{verb} only every N-th of the {noun} starting at I (0-based): one "
                        f"machine of an array job ('auto': from torchrun's RANK/WORLD_SIZE or "
                        f"a Slurm array); shards may share {out}")
    g.add_argument("--skip-done", action="store_true",
                   help=f"keep {done} in {out} (rerun after an interruption or failures)")
    return g
