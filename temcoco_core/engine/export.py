# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
r"""``temcoco export``: build a TensorRT engine or an ONNX file ahead of deployment.

A Torch-TensorRT build takes minutes (much longer on small Jetsons); doing it here, once, means a
robot never waits for it at start-up::

    temcoco export --backend tensorrt --preset edge --weights edge.safetensors \
        --size 640x480 --precision fp16            # → the engine cache, found automatically
    temcoco export --backend onnx --preset official --weights VideoFusionNet_495000.pth \
        --size 640x480 --mode clip --clip-length 4 --output official-640x480.onnx

Without ``--output`` the file goes into the engine cache (``--cache-dir``, default
``~/.cache/temcoco/engines``) under its :class:`~temcoco_core.engine.cache.EngineKey`, where
:func:`~temcoco_core.engine.backends.prepare_model` (the node, ``temcoco replay``) looks it up
for the same weights, size, precision, GPU and library versions. With ``--output`` pass the path
as the ``engine_path`` backend option. The built file is then loaded and checked against the
eager network on random frames (``--no-verify`` skips this). One JSON object describing the
file is printed on stdout.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import json
import logging
import time
from typing import Any

import torch

from .backends import (
    BackendConfig,
    build_engine_file,
    canonical_backend,
    InputSpec,
    prepare_model,
)

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``temcoco export`` on ``subparsers`` (sets ``func=run``)."""
    from temcoco_core.cli_args import parse_size

    parser = subparsers.add_parser(
        "export", help="build a TensorRT engine or ONNX file ahead of deployment",
        description="Build a Torch-TensorRT engine (.ep) or an ONNX file for one preset, weights, "
                    "frame size and precision, into the engine cache (or --output), and check "
                    "it against the PyTorch network. Prints a JSON description on stdout.")
    parser.add_argument("--backend", required=True, choices=("tensorrt", "onnx", "onnxruntime"),
                        help="tensorrt: Torch-TensorRT engine; onnx: ONNX file for onnxruntime")
    parser.add_argument("--preset", default="edge", help="network preset (default: edge)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", metavar="PATH",
                         help="checkpoint (.pth/.safetensors); default: the preset's own weights")
    weights.add_argument("--random-weights", action="store_true",
                         help="untrained weights, seeded (to test the toolchain; useless for "
                              "deployment)")
    parser.add_argument("--motion-gate", type=float, nargs=2, default=None,
                        metavar=("LOW", "HIGH"),
                        help="edge presets: the motion gate, as the node's motion_gate parameter "
                             "(default: the preset's; 0 0: off), so the node finds the engine")
    parser.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH",
                        help="frame size the engine is built for (default: 640x480)")
    parser.add_argument("--mode", choices=("auto", "stream", "clip"), default="auto",
                        help="stream: the per-frame step of a causal preset; clip: the network "
                             "on clips of --clip-length frames (also window recompute); auto: "
                             "stream where the preset has a step (default)")
    parser.add_argument("--clip-length", type=int, default=4, metavar="T",
                        help="frames per clip in clip mode (default: 4)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default=None,
                        help="default: fp16 for tensorrt, fp32 for onnx")
    parser.add_argument("--device", default=None,
                        help="build device (default: cuda for tensorrt, cpu for onnx)")
    parser.add_argument("--output", metavar="PATH",
                        help="write here (.ep for tensorrt, .onnx for onnx) instead of the cache")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="engine cache (default: $TEMCOCO_ENGINE_CACHE or "
                             "~/.cache/temcoco/engines)")
    parser.add_argument("--rebuild", action="store_true",
                        help="build even if a matching file exists")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default: 18)")
    parser.add_argument("--min-block-size", type=int, default=5,
                        help="Torch-TensorRT: smallest TensorRT subgraph (default: 5)")
    parser.add_argument("--torch-executed-ops", default="", metavar="OPS",
                        help="Torch-TensorRT: comma-separated ATen ops kept in PyTorch, e.g. "
                             "aten.grid_sampler.default")
    parser.add_argument("--require-full-compilation", action="store_true",
                        help="Torch-TensorRT: fail unless the whole graph converts")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip loading the built file and comparing it with PyTorch")
    parser.set_defaults(func=run)
    return parser


def _load_model(args: argparse.Namespace) -> Any:
    from temcoco_core.model import build_model
    from temcoco_core.model.edge import motion_gate_parameter

    gate = getattr(args, "motion_gate", None)
    options = {} if gate is None else {"motion_gate": motion_gate_parameter(gate)}
    if args.weights:
        return build_model(args.preset, weights=args.weights, **options)
    if args.random_weights:
        log.warning("exporting %s with random weights (--random-weights)", args.preset)
        with torch.random.fork_rng():
            torch.manual_seed(0)  # reproducible: the same request finds the same cache entry
            return build_model(args.preset, **options)
    return build_model(args.preset, pretrained=True, **options)


def run(args: argparse.Namespace) -> int:
    """Build, verify and describe one engine (see the module docstring). Returns 0."""
    from tqdm import tqdm

    from .streaming import has_step

    backend = canonical_backend(args.backend)
    if backend not in ("tensorrt", "onnxruntime"):
        raise ValueError(f"export builds tensorrt or onnx files, not '{args.backend}'")
    if args.clip_length < 1 or args.batch < 1:
        raise ValueError("--clip-length and --batch must be >= 1")
    precision = args.precision or ("fp16" if backend == "tensorrt" else "fp32")
    device = args.device or ("cuda" if backend == "tensorrt" else "cpu")
    config = BackendConfig(
        name=backend, device=device, precision=precision, cache_dir=args.cache_dir,
        fallback=(), rebuild=args.rebuild, min_block_size=args.min_block_size,
        torch_executed_ops=tuple(o for o in args.torch_executed_ops.split(",") if o.strip()),
        require_full_compilation=args.require_full_compilation, onnx_opset=args.opset)
    if args.output:
        # Checks the suffix against the backend before minutes of building.
        BackendConfig(name=backend, engine_path=args.output)
    width, height = args.size
    stages = ["model", "build"] + ([] if args.no_verify else ["verify"])
    bar = tqdm(total=len(stages), desc=f"export {backend}", unit="stage")
    try:
        bar.set_postfix_str("loading model")
        model = _load_model(args)
        mode = args.mode
        if mode == "auto":
            mode = "stream" if has_step(model) else "clip"
        if mode == "stream" and not has_step(model):
            raise ValueError(f"preset '{args.preset}' has no streaming step; use --mode clip")
        spec = InputSpec(mode, height, width, args.batch, args.clip_length)
        bar.update()
        bar.set_postfix_str(f"building {spec.tag} (can take minutes)")
        notes: list[str] = []
        artifact = build_engine_file(model, config, spec, output=args.output, notes=notes)
        bar.update()
        result: dict[str, Any] = {"preset": args.preset, "mode": mode, "width": width,
                                  "height": height, "batch": args.batch,
                                  "clip_length": args.clip_length if mode == "clip" else None,
                                  "precision": artifact.key.precision, "device": config.device,
                                  **artifact.as_dict(), "notes": notes}
        if not args.no_verify:
            bar.set_postfix_str("verifying")
            start = time.perf_counter()
            prepared = prepare_model(
                model, replace(config, engine_path=artifact.path, rebuild=False, warmup=2),
                example_shape=(height, width), mode=mode, clip_length=args.clip_length,
                batch=args.batch)
            result["verified"] = prepared.backend == backend
            result["verify_s"] = round(time.perf_counter() - start, 3)
            bar.update()
    finally:
        bar.close()
    print(json.dumps(result, indent=2))
    return 0
