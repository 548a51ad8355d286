# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco``: the command line of temcoco_ros (works without ROS).

Subcommands: ``info`` (parameters and GFLOPs of a preset) and, as they are registered below,
``demo``, ``replay``, ``fuse``, ``calibrate``, ``eval``, ``train``, ``export`` and ``bench``.
Each subcommand module exposes ``add_parser(subparsers)`` and sets ``func`` on its parser; the
helpers they share (sizes, ``--threads``, the node's settings) are in :mod:`temcoco_core.cli_args`,
so no module imports this one back.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import logging
import sys

from .cli_args import parse_size

__all__ = ["main", "build_parser"]

log = logging.getLogger("temcoco")


def _run_info(args: argparse.Namespace) -> int:
    from .model import build_model
    from .model.flops import measure_cost

    width, height = args.size
    rows = []
    for preset in args.preset.split(","):
        model = build_model(preset.strip())
        rows.append(measure_cost(model, width, height, args.frames, preset.strip()).as_dict())
    if args.json:
        print(json.dumps(rows if len(rows) > 1 else rows[0], indent=2))
        return 0
    print(f"{'preset':<16}{'parameters':>14}{'GFLOPs/frame':>15}  (at {width}x{height}, "
          f"{args.frames} frame(s) per pass)")
    for row in rows:
        print(f"{row['preset']:<16}{row['parameters']:>14,}{row['gflops_per_frame']:>15.2f}")
    return 0


def _add_info_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info", help="parameters and GFLOPs per frame of a network preset",
        description="Count parameters and FLOPs (torch FlopCounterMode, 2 per multiply-add) of "
                    "one forward pass; several presets may be given comma-separated.")
    parser.add_argument("--preset", default="official",
                        help="preset name(s), comma-separated (default: official)")
    parser.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH",
                        help="frame size (default: 640x480)")
    parser.add_argument("--frames", type=int, default=4,
                        help="frames per forward pass T (default: 4)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=_run_info)


def build_parser() -> argparse.ArgumentParser:
    """The ``temcoco`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="temcoco",
        description="TemCoCo thermal+RGB video fusion: demo, replay, fuse, evaluate, train, "
                    "export and benchmark (no ROS needed).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_info_parser(subparsers)
    for register in _subcommand_registrars():
        register(subparsers)
    return parser


def _subcommand_registrars() -> list:
    """``add_parser`` functions of the subcommand modules, in help order."""
    from . import calibrate_cmd, evaluate, replay
    from .engine import bench, export
    from .train import trainer

    return [replay.add_parser, calibrate_cmd.add_parser, evaluate.add_parser, trainer.add_parser,
            export.add_parser, bench.add_parser]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
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
