# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco bench``: throughput, latency, memory and FLOP efficiency of the fusion networks.

For each preset × backend × precision × size × mode asked for, the network is prepared with
:func:`~temcoco_core.engine.backends.prepare_model` (compiled, warmed up), then timed on random
frames, batch 1:

* ``stream``: one :meth:`step` per frame (causal presets with a streaming API only);
* ``window``: the network on the last ``T`` frames for every frame, keeping the newest output
  (sliding-window recompute: what a clip network must do for latency 0);
* ``clip``: the network on consecutive clips of ``T`` frames (latency ``T − 1`` frames).

Reported per row: frames/s, latency p50/p99 per call (a call is one frame in stream and window
modes, one clip in clip mode), peak memory (process RSS high-water mark, GPU memory allocated),
GFLOPs per frame (``torch.utils.flop_counter.FlopCounterMode``: 2 per multiply-add; convolutions,
matmuls and attention, not element-wise ops or ``grid_sample``), achieved GFLOP/s and, given a
peak (``--peak-tflops``, or known GPUs), the fraction of the FLOP-bound frame rate. ``costs``
compare one streaming step with one window recompute: the FLOP ratio (target ``≤ 1.25 / T``)
and the measured time ratio per backend.

No number is asserted anywhere: the JSON is the result. A backend that cannot be prepared gives
a row with ``status: "unavailable"`` and the reason (no silent fallback).
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Sequence
import copy
from dataclasses import asdict, dataclass, field
import json
import math
import os
from pathlib import Path
import platform
import resource
import statistics
import sys
import time
from typing import Any

import torch
from torch import nn, Tensor

from temcoco_core.cli_args import add_threads_arg

from .backends import (
    BackendConfig,
    BackendError,
    canonical_backend,
    PRECISIONS,
    prepare_model,
    PreparedModel,
)

__all__ = ["BENCH_MODES", "BenchConfig", "add_parser", "gpu_peak_tflops", "run",
           "run_benchmark"]

BENCH_MODES = ("stream", "window", "clip")

#: Dense fp16/bf16 tensor-core peaks (TFLOP/s) of common GPUs, by a substring of
#: ``torch.cuda.get_device_name``; fp32 uses half (TF32, which cuDNN convolutions use by
#: default). Longest match wins. Pass ``--peak-tflops`` for anything else.
GPU_PEAK_TFLOPS_FP16 = {
    "H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 756.0, "GH200": 989.0,
    "A100": 312.0, "A800": 312.0, "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10": 125.0,
    "A30": 165.0, "RTX 4090": 165.0, "RTX 4080": 97.0, "RTX 3090": 71.0, "RTX 6000 Ada": 364.0,
    "V100": 125.0, "T4": 65.0, "Orin": 42.5,
}


@dataclass(frozen=True)
class BenchConfig:
    """What ``temcoco bench`` measures.

    Attributes:
        presets, backends, precisions: network presets, backends (``eager``, ``inductor``,
            ``tensorrt``, ``onnxruntime``) and precisions; every combination is measured.
        sizes: frame sizes ``(width, height)``.
        modes: subset of :data:`BENCH_MODES`.
        frames: timed frames per row; warmup: untimed calls before them (after the backend's
            own warm-up).
        clip_length: ``T`` for window and clip modes (and the cost ratio).
        device: ``cpu`` or ``cuda[:N]``.
        weights: checkpoint for the presets (random weights otherwise; speed does not depend on
            them).
        cache_dir: engine cache for tensorrt / onnxruntime.
        peak_tflops: the device's peak for the FLOP-bound limit (default: known GPUs only).
        seed: for the random frames and weights.
    """

    presets: tuple[str, ...] = ("edge",)
    backends: tuple[str, ...] = ("eager",)
    precisions: tuple[str, ...] = ("fp32",)
    sizes: tuple[tuple[int, int], ...] = ((320, 256),)
    modes: tuple[str, ...] = BENCH_MODES
    frames: int = 20
    warmup: int = 3
    clip_length: int = 4
    device: str = "cpu"
    weights: str | None = None
    cache_dir: str | None = None
    peak_tflops: float | None = None
    seed: int = 0
    backend_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in BENCH_MODES]
        if unknown:
            raise ValueError(f"unknown bench mode(s) {unknown}; choose from {list(BENCH_MODES)}")
        object.__setattr__(self, "backends", tuple(canonical_backend(b) for b in self.backends))
        if "auto" in self.backends:
            raise ValueError("bench measures named backends, not 'auto'")
        if self.frames < 1 or self.warmup < 0 or self.clip_length < 1:
            raise ValueError(f"frames >= 1, warmup >= 0 and clip length >= 1 needed, got "
                             f"{self.frames}, {self.warmup}, {self.clip_length}")
        if not (self.presets and self.backends and self.precisions and self.sizes and
                self.modes):
            raise ValueError("bench needs at least one preset, backend, precision, size and mode")
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if bad:
            raise ValueError(f"unknown precision(s) {bad}; choose from {list(PRECISIONS)}")
        if self.weights and len(self.presets) != 1:
            raise ValueError("--weights applies to a single preset")


# ------------------------------------------------------------------------------ memory


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark so far, MiB.

    Read with ``getrusage``, which gives kB on Linux, bytes on macOS.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def current_rss_mb() -> float | None:
    """Resident set size now, MiB (Linux ``/proc/self/statm``; ``None`` elsewhere)."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident * os.sysconf("SC_PAGE_SIZE") / (1024.0 * 1024.0)


def gpu_peak_tflops(device: torch.device, precision: str) -> tuple[float | None, str]:
    """The fp16 peak of ``device`` in TFLOPS and where it came from.

    The peak of :data:`GPU_PEAK_TFLOPS_FP16` for ``device`` (halved for fp32) and where it came
    from; ``(None, reason)`` for CPUs and unknown GPUs.
    """
    if device.type != "cuda":
        return None, "no peak known for CPUs (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    hits = [k for k in GPU_PEAK_TFLOPS_FP16 if k.lower() in name.lower()]
    if not hits:
        return None, f"no peak known for {name} (pass --peak-tflops)"
    key = max(hits, key=len)
    peak = GPU_PEAK_TFLOPS_FP16[key] * (0.5 if precision == "fp32" else 1.0)
    kind = "TF32" if precision == "fp32" else precision
    return peak, f"{name}: dense {kind} tensor-core peak (table entry '{key}')"


# ------------------------------------------------------------------------------- FLOPs


def _flops(model: nn.Module, height: int, width: int, length: int, streaming: bool,
           device: torch.device) -> dict[str, float]:
    """Giga-FLOPs of one step (if ``streaming``) and of one forward on ``length`` frames.

    Counted on a meta-device copy when possible (no memory, no time), else on ``device``.
    """
    from .streaming import count_flops

    def count(net: nn.Module, dev: torch.device) -> dict[str, float]:
        clip = torch.rand(1, length, 3, height, width, device=dev)
        out = {"window": count_flops(net, clip, clip) / 1e9}
        if streaming:
            frame = torch.rand(1, 3, height, width, device=dev)
            state = net.init_state(1, height, width, device=dev, dtype=torch.float32)
            out["step"] = count_flops(net.step, frame, frame, state) / 1e9
        return out

    try:
        return count(copy.deepcopy(model).to("meta"), torch.device("meta"))
    except (NotImplementedError, RuntimeError, TypeError, ValueError):
        return count(model.to(device), device)


# ------------------------------------------------------------------------------ timing


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _time_mode(prepared: PreparedModel, mode: str, frames: list[tuple[Tensor, Tensor]],
               warmup: int, length: int, device: torch.device) -> tuple[list[float], int]:
    """Run ``mode`` over ``frames`` (the first ``warmup`` untimed).

    Returns per-call seconds and the number of frames fused in the timed calls.
    """
    latencies: list[float] = []
    timed_frames = 0
    if mode == "stream":
        height, width = frames[0][0].shape[-2:]
        state = prepared.init_state(1, height, width)
        for index, (vis, ir) in enumerate(frames):
            _sync(device)
            start = time.perf_counter()
            # The first-frame hint, as StreamingFuser gives it (used by the eager backend).
            _, state = prepared.step(vis, ir, state, first=index == 0)
            _sync(device)
            if index >= warmup:
                latencies.append(time.perf_counter() - start)
                timed_frames += 1
    elif mode == "window":
        window: deque[tuple[Tensor, Tensor]] = deque([frames[0]] * length, maxlen=length)
        for index, pair in enumerate(frames):
            _sync(device)
            start = time.perf_counter()
            window.append(pair)
            vis = torch.stack([p[0] for p in window], dim=1)
            ir = torch.stack([p[1] for p in window], dim=1)
            prepared(vis, ir)
            _sync(device)
            if index >= warmup:
                latencies.append(time.perf_counter() - start)
                timed_frames += 1
    else:
        clips = [frames[i:i + length] for i in range(0, len(frames) - length + 1, length)]
        for index, clip in enumerate(clips):
            _sync(device)
            start = time.perf_counter()
            vis = torch.stack([p[0] for p in clip], dim=1)
            ir = torch.stack([p[1] for p in clip], dim=1)
            prepared(vis, ir)
            _sync(device)
            if index >= warmup:
                latencies.append(time.perf_counter() - start)
                timed_frames += length
    return latencies, timed_frames


def _frames_needed(mode: str, frames: int, warmup: int, length: int) -> int:
    if mode == "clip":
        return (warmup + math.ceil(frames / length)) * length
    return warmup + frames


def _random_frames(count: int, height: int, width: int, device: torch.device,
                   generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
    return [(torch.rand(1, 3, height, width, generator=generator).to(device),
             torch.rand(1, 3, height, width, generator=generator).to(device))
            for _ in range(count)]


# ---------------------------------------------------------------------------- benchmark


def _build(preset: str, config: BenchConfig) -> nn.Module:
    from temcoco_core.model import build_model

    torch.manual_seed(config.seed)
    return build_model(preset, weights=config.weights) if config.weights else \
        build_model(preset)


def _row_base(preset: str, backend: str, precision: str, size: tuple[int, int], mode: str,
              config: BenchConfig) -> dict[str, Any]:
    return {"preset": preset, "backend_requested": backend, "backend": None,
            "precision_requested": precision, "precision": None, "device": config.device,
            "width": size[0], "height": size[1], "mode": mode,
            "clip_length": config.clip_length if mode != "stream" else None,
            "frames": 0, "status": "ok", "reason": None}


def run_benchmark(config: BenchConfig, progress: bool = True) -> dict[str, Any]:
    """Measure every combination of ``config``.

    Returns the JSON-ready report ``{"meta": …, "results": [row, …], "costs": [cost, …]}`` (see the
    module docstring).
    """
    from tqdm import tqdm

    from .streaming import has_step

    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available")
    generator = torch.Generator().manual_seed(config.seed)
    rows: list[dict[str, Any]] = []
    costs: list[dict[str, Any]] = []
    total = (len(config.presets) * len(config.backends) * len(config.precisions)
             * len(config.sizes) * len(config.modes))
    bar = tqdm(total=total, desc="bench", unit="run", disable=not progress, file=sys.stderr)
    try:
        for preset in config.presets:
            model = _build(preset, config)
            streaming = has_step(model)
            for width, height in config.sizes:
                bar.set_postfix_str(f"{preset} {width}x{height}: counting FLOPs")
                gflops = _flops(model, height, width, config.clip_length, streaming, device)
                per_frame = {"stream": gflops.get("step"), "window": gflops["window"],
                             "clip": gflops["window"] / config.clip_length}
                timings: dict[tuple[str, str, str], float] = {}
                for backend in config.backends:
                    for precision in config.precisions:
                        prepared: dict[str, PreparedModel | BackendError] = {}
                        for mode in config.modes:
                            bar.set_postfix_str(f"{preset} {backend} {precision} "
                                                f"{width}x{height} {mode}")
                            row = _row_base(preset, backend, precision, (width, height), mode,
                                            config)
                            rows.append(row)
                            if mode == "stream" and not streaming:
                                row.update(status="skipped",
                                           reason=f"{preset} has no streaming step")
                                bar.update()
                                continue
                            kind = "stream" if mode == "stream" else "clip"
                            if kind not in prepared:
                                prepared[kind] = _prepare(model, backend, precision,
                                                          (height, width), kind, config)
                            net = prepared[kind]
                            if isinstance(net, BackendError):
                                row.update(status="unavailable", reason=str(net))
                                bar.update()
                                continue
                            _measure_row(row, net, mode, per_frame[mode], config, device,
                                         generator, (height, width))
                            timings[(backend, precision, mode)] = row["latency_ms_p50"]
                            bar.update()
                if streaming:
                    costs.append(_cost_entry(preset, (width, height), config, gflops, timings))
    finally:
        bar.close()
    return {"meta": _meta(config, device), "results": rows, "costs": costs}


def _prepare(model: nn.Module, backend: str, precision: str, shape: tuple[int, int],
             kind: str, config: BenchConfig) -> PreparedModel | BackendError:
    options = dict(config.backend_options)
    options.setdefault("cache_dir", config.cache_dir)
    backend_config = BackendConfig(name=backend, device=config.device, precision=precision,
                                   fallback=(), warmup=max(1, min(config.warmup, 3)),
                                   **options)
    start = time.perf_counter()
    try:
        net = prepare_model(model, backend_config, example_shape=shape, mode=kind,
                            clip_length=config.clip_length)
    except BackendError as exc:
        return exc
    net.__dict__["_bench_prepare_s"] = time.perf_counter() - start
    return net


def _measure_row(row: dict[str, Any], net: PreparedModel, mode: str, gflops: float | None,
                 config: BenchConfig, device: torch.device, generator: torch.Generator,
                 shape: tuple[int, int]) -> None:
    height, width = shape
    frames = _random_frames(_frames_needed(mode, config.frames, config.warmup,
                                           config.clip_length), height, width, device,
                            generator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    latencies, fused = _time_mode(net, mode, frames, config.warmup, config.clip_length, device)
    elapsed = sum(latencies)
    fps = fused / elapsed if elapsed > 0 else None
    peak, peak_source = (config.peak_tflops, "--peak-tflops") if config.peak_tflops else \
        gpu_peak_tflops(device, net.precision)
    bound_fps = peak * 1e3 / gflops if (peak and gflops) else None
    row.update(
        backend=net.backend, precision=net.precision, frames=fused,
        fps=fps,
        latency_unit="clip" if mode == "clip" else "frame",
        latency_ms_p50=_percentile(latencies, 0.5) * 1e3,
        latency_ms_p99=_percentile(latencies, 0.99) * 1e3,
        latency_ms_mean=statistics.fmean(latencies) * 1e3,
        wall_s=time.perf_counter() - start,
        prepare_s=net.__dict__.get("_bench_prepare_s"),
        gflops_per_frame=gflops,
        achieved_gflops_per_s=gflops * fps if (gflops is not None and fps) else None,
        peak_tflops=peak, peak_tflops_source=peak_source,
        flop_bound_fps=bound_fps,
        fraction_of_flop_bound=fps / bound_fps if (bound_fps and fps) else None,
        rss_peak_mb=peak_rss_mb(), rss_mb=current_rss_mb(),
        gpu_peak_allocated_mb=(torch.cuda.max_memory_allocated(device) / 2**20
                               if device.type == "cuda" else None),
        fallback_log=list(net.fallback_log),
    )


def _cost_entry(preset: str, size: tuple[int, int], config: BenchConfig,
                gflops: dict[str, float], timings: dict[tuple[str, str, str], float]
                ) -> dict[str, Any]:
    length = config.clip_length
    ratio = gflops["step"] / gflops["window"]
    measured = []
    for backend in config.backends:
        for precision in config.precisions:
            step = timings.get((backend, precision, "stream"))
            window = timings.get((backend, precision, "window"))
            if step is not None and window is not None:
                measured.append({"backend": backend, "precision": precision,
                                 "stream_ms_p50": step, "window_ms_p50": window,
                                 "time_ratio": step / window})
    return {"preset": preset, "width": size[0], "height": size[1], "clip_length": length,
            "step_gflops": gflops["step"], "window_gflops": gflops["window"],
            "flop_ratio": ratio, "flop_ratio_times_T": ratio * length,
            "target": 1.25 / length, "meets_target": ratio <= 1.25 / length,
            "measured": measured}


def _meta(config: BenchConfig, device: torch.device) -> dict[str, Any]:
    meta = {"torch": torch.__version__, "python": platform.python_version(),
            "device": str(device), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "machine": platform.machine(),
            "processor": platform.processor() or None,
            "config": {k: v for k, v in asdict(config).items() if k != "backend_options"},
            "flops_note": "FlopCounterMode, 2 FLOPs per multiply-add: convolutions, matmuls and "
                          "attention; element-wise ops and grid_sample are not counted",
            "rss_note": "rss_peak_mb is the process high-water mark up to that row"}
    if device.type == "cuda":
        meta["gpu"] = torch.cuda.get_device_name(device)
        meta["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return meta


# ----------------------------------------------------------------------------------- CLI


def _csv(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``temcoco bench`` on ``subparsers`` (sets ``func=run``)."""
    parser = subparsers.add_parser(
        "bench", help="frames/s, latency, memory and FLOP efficiency per preset and backend",
        description="Time presets × backends × precisions × sizes × modes on random frames and "
                    "print JSON (stdout; also --json-out). Modes: stream (one step per frame, "
                    "causal presets), window (recompute the last T frames per frame), clip "
                    "(clips of T frames).")
    parser.add_argument("--presets", default="edge", help="comma-separated (default: edge)")
    parser.add_argument("--backends", default="eager",
                        help="comma-separated: eager, inductor, tensorrt, onnxruntime "
                             "(default: eager)")
    parser.add_argument("--precision", "--precisions", dest="precisions", default="fp32",
                        help="comma-separated: fp32, fp16, bf16 (default: fp32)")
    parser.add_argument("--sizes", default="320x256", help="comma-separated WxH (default: "
                                                           "320x256)")
    parser.add_argument("--modes", default="stream,window,clip",
                        help="comma-separated: stream, window, clip (default: all)")
    parser.add_argument("--frames", type=int, default=20, help="timed frames (default: 20)")
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed calls before timing (default: 3)")
    parser.add_argument("--clip-length", type=int, default=4, metavar="T",
                        help="frames per window / clip (default: 4)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    parser.add_argument("--weights", metavar="PATH",
                        help="checkpoint for a single preset (default: random weights)")
    parser.add_argument("--cache-dir", metavar="DIR", help="engine cache for tensorrt/onnx")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="device peak for the FLOP-bound limit (default: known GPUs)")
    add_threads_arg(parser)
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the benchmark of ``args`` and print its JSON. Returns 0."""
    from temcoco_core.cli_args import apply_threads, parse_size

    try:
        sizes = tuple(parse_size(s) for s in _csv(args.sizes))
    except argparse.ArgumentTypeError as exc:
        raise ValueError(str(exc)) from None
    threads = apply_threads(args)
    config = BenchConfig(
        presets=_csv(args.presets), backends=_csv(args.backends),
        precisions=_csv(args.precisions), sizes=sizes, modes=_csv(args.modes),
        frames=args.frames, warmup=args.warmup, clip_length=args.clip_length,
        device=args.device, weights=args.weights, cache_dir=args.cache_dir,
        peak_tflops=args.peak_tflops,
        backend_options={"onnx_threads": threads})
    report = run_benchmark(config, progress=not args.no_progress)
    text = json.dumps(report, indent=2)
    if args.json_out:
        path = Path(args.json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    print(text)
    return 0
