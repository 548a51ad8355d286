# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco bench``: runs at a tiny size and prints well-formed JSON (no timed assertions)."""

from __future__ import annotations

import argparse
import json
import sys

import pytest
import torch

from temcoco_core.engine import bench
from temcoco_core.engine.bench import _percentile, BenchConfig, gpu_peak_tflops, run_benchmark

NUMBER = (int, float)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="temcoco")
    bench.add_parser(parser.add_subparsers(dest="command"))
    return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    args = _parser().parse_args([
        "bench", "--presets", "edge", "--backends", "eager", "--sizes", "64x48",
        "--modes", "stream,window,clip", "--frames", "3", "--warmup", "1", "--clip-length", "2",
        "--json-out", str(out), "--no-progress"])
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert args.func(args) == 0
    printed = json.loads(stdout.getvalue())
    assert json.loads(out.read_text()) == printed
    return printed


def test_bench_json_rows(report):
    assert set(report) == {"meta", "results", "costs"}
    assert report["meta"]["device"] == "cpu" and report["meta"]["threads"] >= 1
    rows = {(r["preset"], r["mode"]): r for r in report["results"]}
    assert set(rows) == {("edge", m) for m in ("stream", "window", "clip")}
    for key, row in rows.items():
        assert row["status"] == "ok", row
        assert row["backend"] == "eager" and row["precision"] == "fp32"
        assert (row["width"], row["height"]) == (64, 48)
        for name in ("fps", "latency_ms_p50", "latency_ms_p99", "latency_ms_mean",
                     "gflops_per_frame", "achieved_gflops_per_s", "rss_peak_mb"):
            assert isinstance(row[name], NUMBER), (key, name)
        assert row["fps"] > 0 and row["gflops_per_frame"] > 0
        assert row["latency_ms_p99"] >= row["latency_ms_p50"] > 0
        assert row["gpu_peak_allocated_mb"] is None and row["flop_bound_fps"] is None
        assert row["latency_unit"] == ("clip" if key[1] == "clip" else "frame")
        assert row["frames"] == (4 if key[1] == "clip" else 3)
    # A clip of T frames costs one window recompute, spread over T frames.
    window, clip = rows[("edge", "window")], rows[("edge", "clip")]
    assert clip["gflops_per_frame"] == pytest.approx(window["gflops_per_frame"] / 2)
    assert rows[("edge", "stream")]["gflops_per_frame"] < window["gflops_per_frame"]


def test_clip_network_has_no_stream_row():
    result = run_benchmark(BenchConfig(presets=("official",), sizes=((32, 32),),
                                       modes=("stream",), frames=1, warmup=0), progress=False)
    (row,) = result["results"]
    assert row["status"] == "skipped" and "no streaming step" in row["reason"]
    assert result["costs"] == []


def test_bench_cost_ratio(report):
    (cost,) = report["costs"]  # streaming presets only
    assert cost["preset"] == "edge" and cost["clip_length"] == 2
    assert 0 < cost["step_gflops"] < cost["window_gflops"]
    assert cost["flop_ratio"] == pytest.approx(cost["step_gflops"] / cost["window_gflops"])
    assert cost["target"] == pytest.approx(1.25 / 2)
    assert isinstance(cost["meets_target"], bool)
    (measured,) = cost["measured"]
    assert measured["backend"] == "eager" and measured["time_ratio"] > 0


def test_unavailable_backend_is_a_row_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    result = run_benchmark(BenchConfig(presets=("edge",), backends=("tensorrt",),
                                       sizes=((32, 32),), modes=("stream",), frames=1,
                                       warmup=0), progress=False)
    (row,) = result["results"]
    assert row["status"] == "unavailable" and "torch_tensorrt" in row["reason"]
    assert row["backend"] is None


def test_bench_config_validation():
    for bad in ({"modes": ("batch",)}, {"backends": ("auto",)}, {"frames": 0},
                {"precisions": ("int8",)}, {"weights": "w.pth", "presets": ("edge", "official")},
                {"presets": ()}):
        with pytest.raises(ValueError):
            BenchConfig(**bad)
    assert BenchConfig(backends=("onnx", "trt")).backends == ("onnxruntime", "tensorrt")


def test_helpers():
    assert _percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert _percentile([1.0, 2.0], 0.99) == pytest.approx(1.99)
    assert _percentile([5.0], 0.99) == 5.0
    peak, reason = gpu_peak_tflops(torch.device("cpu"), "fp16")
    assert peak is None and "--peak-tflops" in reason
    assert bench.peak_rss_mb() > 0
