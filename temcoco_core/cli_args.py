# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Command-line helpers shared by the ``temcoco`` subcommands (no subcommand imports ``cli``).

* :func:`parse_size`, :func:`parse_floats`: argument types.
* :func:`add_threads_arg` / :func:`apply_threads`: ``--threads`` on every command that runs a
  network.
* :func:`add_settings_args` / :func:`settings_from_args`: the node's settings on the command
  line. ``--params FILE`` reads the node's own ROS 2 parameter file (``config/fusion.yaml``:
  ``ros__parameters`` under the node name or ``/**``), ``-p NAME=VALUE`` sets any parameter, and
  the named flags (``--backend``, ``--model-size`` …) set single ones; flags win over the file,
  the file over the schema's defaults (:class:`~temcoco_core.node_config.NodeConfig`), so
  ``temcoco replay|fuse|demo`` run exactly what the node would.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temcoco_core.node_config import (
    BACKENDS,
    NODE_NAME,
    NodeConfig,
    parameter_specs,
    PRECISIONS,
)

__all__ = [
    "add_settings_args",
    "add_threads_arg",
    "apply_threads",
    "parse_floats",
    "parse_size",
    "settings_from_args",
]


def parse_size(text: str) -> tuple[int, int]:
    """``"640x480"`` → ``(640, 480)`` (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got '{text}'") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got '{text}'")
    return width, height


def parse_floats(n: int) -> Callable[[str], tuple[float, ...]]:
    """An argument type for ``n`` comma-separated numbers."""
    def parse(text: str) -> tuple[float, ...]:
        try:
            vals = tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got "
                                             f"'{text}'") from None
        if len(vals) != n:
            raise argparse.ArgumentTypeError(f"expected {n} comma-separated numbers, got "
                                             f"{len(vals)}")
        return vals
    return parse


def add_threads_arg(parser: argparse.ArgumentParser | Any) -> None:
    """``--threads N``: CPU threads of torch and onnxruntime (default: half the cores, 1-4)."""
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads of torch and onnxruntime (default: half the usable "
                             "cores, 1 to 4; more thrash on a small, busy CPU)")


def apply_threads(args: argparse.Namespace) -> int:
    """Set torch's threads from ``args.threads`` (default as :func:`add_threads_arg` says)."""
    from temcoco_core.engine.factory import apply_cpu_threads

    return apply_cpu_threads(getattr(args, "threads", None) or 0)


def _default(name: str) -> Any:
    return next(s.default for s in parameter_specs() if s.name == name)


def add_settings_args(p: argparse.ArgumentParser, *, pipeline: bool = True) -> None:
    """``--params``, ``-p`` and the named engine (and pipeline) flags.

    Defaults are the node's (``None`` here: unset flags leave the file's or the schema's value).
    """
    g = p.add_argument_group("settings (the node's parameters; flags override --params)")
    g.add_argument("--params", type=Path, action="append", default=None, metavar="YAML",
                   help="the node's ROS 2 parameter file (e.g. config/fusion.yaml); repeat to "
                        "apply more in order, e.g. the registration.yaml of `temcoco "
                        "calibrate` after it")
    g.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                   help="set any node parameter (YAML value), e.g. -p thermal_invert=true; "
                        "repeatable")
    g.add_argument("--engine", dest="fusion_engine", choices=("model", "average"),
                   default=None, help="'model' (the network) or 'average' (model-free) "
                                      f"(default: {_default('fusion_engine')})")
    g.add_argument("--preset", default=None, help=f"network preset (default: "
                                                  f"{_default('preset')})")
    g.add_argument("--weights", default=None, help="checkpoint (default: the preset's weights)")
    g.add_argument("--device", default=None,
                   help="auto, cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--backend", default=None, choices=BACKENDS,
                   help="inference backend, built at the real frame size; only auto falls "
                        "back (logged): onnxruntime -> eager on CPU, tensorrt -> inductor -> "
                        "eager on CUDA (default: auto)")
    g.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="compute precision (default: fp32)")
    add_threads_arg(g)
    if not pipeline:
        return
    g.add_argument("--model-size", type=parse_size, default=None, metavar="WxH",
                   help="run the network at this size (default: the input size)")
    g.add_argument("--resize-mode", choices=("resize", "pad"), default=None,
                   help=f"fit to --model-size: stretch (resize) or keep the aspect and pad "
                        f"(default: {_default('resize_mode')})")
    g.add_argument("--output-size", choices=("rgb", "model"), default=None,
                   help="publish at the RGB size (default) or at the model size")
    g.add_argument("--output-encoding", choices=("rgb8", "bgr8", "mono8"), default=None)
    g.add_argument("--thermal-policy", choices=("percentile", "minmax", "fixed"), default=None,
                   help=f"thermal normalisation (default: {_default('thermal_policy')})")
    g.add_argument("--thermal-range", type=parse_floats(2), default=None, metavar="LO,HI",
                   help="raw range for --thermal-policy fixed")
    g.add_argument("--homography", type=parse_floats(9), default=None, metavar="H11,...,H33",
                   help="3x3 thermal-to-RGB homography, row-major")
    g.add_argument("--resize-thermal", action="store_const", const=True, default=None,
                   help="resize the thermal image to the RGB size when they differ")
    g.add_argument("--no-metrics", action="store_const", const=True, default=None,
                   help="skip the per-frame temporal-consistency values")
    g.add_argument("--slop", type=float, default=None,
                   help=f"pairing slop, seconds (default: {_default('sync_slop')})")
    g.add_argument("--queue-size", type=int, default=None,
                   help=f"pairing queue size (default: {_default('sync_queue_size')})")
    g.add_argument("--max-gap", type=float, default=None,
                   help=f"reset temporal state after a gap longer than this, s (default: "
                        f"{_default('sync_max_gap')}; 0: off)")


#: flag (``args`` attribute) → node parameter, for the flags that map one to one.
_FLAGS = {"fusion_engine": "fusion_engine", "preset": "preset", "weights": "weights",
          "device": "device", "backend": "backend", "precision": "precision",
          "threads": "cpu_threads", "resize_mode": "resize_mode",
          "output_size": "output_size", "output_encoding": "output_encoding",
          "thermal_policy": "thermal_policy", "thermal_range": "thermal_range",
          "homography": "homography", "resize_thermal": "resize_thermal_to_rgb",
          "slop": "sync_slop", "queue_size": "sync_queue_size", "max_gap": "sync_max_gap"}


def _parse_param(text: str) -> tuple[str, Any]:
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"-p expects NAME=VALUE, got {text!r}")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"-p {name}: not a YAML value: {exc}") from None
    return name.strip(), parsed


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters the command line sets (``-p`` first, then the named flags)."""
    values: dict[str, Any] = dict(_parse_param(t) for t in getattr(args, "param", []) or [])
    for flag, name in _FLAGS.items():
        v = getattr(args, flag, None)
        if v is not None:
            values[name] = list(v) if isinstance(v, tuple) else v
    size = getattr(args, "model_size", None)
    if size is not None:
        values["input_width"], values["input_height"] = size
    if getattr(args, "no_metrics", None):
        values["metrics"] = ""
    return values


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> NodeConfig:
    """Schema defaults ← ``--params`` file ← ``-p``/flags ← ``overrides`` (keyword args).

    Raises:
        FileNotFoundError: the parameter file is missing.
        NodeConfigError: (a ``ValueError``) unknown names, bad types or values.
    """
    values = settings_overrides(args)
    values.update(overrides)
    return NodeConfig.from_sources(getattr(args, "params", None), node_name=NODE_NAME,
                                   overrides=values)
