# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""What the ROS node does, exercised through the core objects it is made of (no ROS needed).

``temcoco_ros/fusion_node.py`` declares ``parameter_specs()``, reads them into a ``NodeConfig``,
builds the engine with ``EngineHandle`` (configure), runs ``FusionWorker`` (callbacks offer,
the worker thread steps), and releases the engine on deactivate. These tests drive the same
objects the same way; ``test_launch.py`` runs the real node on ROS 2.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from temcoco_core.engine.factory import (
    build_engine,
    default_cpu_threads,
    EngineBuildError,
    EngineHandle,
    NetworkEngine,
)
from temcoco_core.frames.image_msg import numpy_to_image_fields
from temcoco_core.io.bag import get_typestore, make_header
from temcoco_core.node_config import NodeConfig, NodeConfigError, parameter_specs
from temcoco_core.worker import FusionWorker

W, H = 48, 32


def _msg(arr: np.ndarray, encoding: str, stamp_ns: int):
    image_cls = get_typestore().types["sensor_msgs/msg/Image"]
    f = numpy_to_image_fields(arr, encoding)
    return image_cls(header=make_header(stamp_ns, "cam"), height=f.height, width=f.width,
                     encoding=f.encoding, is_bigendian=0, step=f.step, data=f.data)


def _offer_pairs(worker: FusionWorker, n: int, start: int = 0) -> None:
    rng = np.random.default_rng(0)
    for i in range(start, start + n):
        stamp = i * 33_000_000
        worker.offer(0, stamp, _msg(rng.integers(0, 256, (H, W, 3), np.uint8), "rgb8", stamp))
        worker.offer(1, stamp + 1_000_000,
                     _msg(rng.integers(0, 65535, (H, W), np.uint16), "mono16", stamp + 10**6))


class _ThreadRecorder:
    """An engine that records which thread runs inference."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def push(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        self.threads.append(threading.current_thread().name)
        return (visible + infrared) / 2

    def reset(self) -> None:
        pass


def test_callbacks_only_enqueue_and_the_worker_thread_infers() -> None:
    engine = _ThreadRecorder()
    cfg = NodeConfig(fusion_engine="average", metrics="", queue_depth=2)
    worker = FusionWorker.from_config(cfg, engine)
    _offer_pairs(worker, 5)
    assert engine.threads == []  # no inference in the (subscription) callbacks
    assert worker.queue.put_count == 5 and worker.queue.dropped == 3  # latest wins
    published = []
    done = threading.Event()

    def publish(frame) -> None:
        published.append(frame.stamp_ns)
        if len(published) == 2:
            done.set()

    worker.start(publish)
    try:
        assert done.wait(30)
    finally:
        assert worker.stop()
    assert set(engine.threads) == {"temcoco-worker"}
    assert published == [3 * 33_000_000, 4 * 33_000_000]  # the two freshest pairs


def test_lifecycle_release_and_reload_through_the_handle() -> None:
    cfg = NodeConfig(fusion_engine="average", metrics="")
    handle = EngineHandle(cfg)
    worker = FusionWorker.from_config(cfg, handle.load(), handle.info)
    _offer_pairs(worker, 1)
    assert worker.step(0).outputs
    handle.release()  # deactivate
    worker.set_engine(None)
    assert not handle.loaded
    _offer_pairs(worker, 1, start=1)
    res = worker.step(0)
    assert res.outputs == [] and "released" in res.error and worker.engine_errors == 1
    worker.set_engine(handle.load(), handle.info)  # activate again
    assert handle.loads == 2
    _offer_pairs(worker, 1, start=2)
    assert worker.step(0).outputs
    assert worker.pipeline.diagnostics.resets.get("engine_changed") == 2


def test_every_schema_parameter_has_a_ros_type_default_and_description() -> None:
    for spec in parameter_specs():
        assert spec.type in ("string", "integer", "double", "bool", "double_array")
        assert len(spec.description) > 20, spec.name
        if spec.choices:
            assert spec.default in spec.choices, spec.name
    backend = next(s for s in parameter_specs() if s.name == "backend")
    assert "onnxruntime, then eager on a CPU" in backend.description
    assert "no fallback" in backend.description


def test_engine_is_built_at_the_size_it_runs_at() -> None:
    """With input_width/height 0 the backend is prepared from the first frame's size."""
    cfg = NodeConfig(backend="eager", device="cpu", metrics="", cpu_threads=1)
    handle = EngineHandle(cfg)
    engine = handle.load()
    assert isinstance(engine, NetworkEngine) and engine.prepared_shapes == []
    assert "built at the first frame" in handle.info.description
    worker = FusionWorker.from_config(cfg, engine, handle.info)
    _offer_pairs(worker, 2)
    assert len(worker.step(0).outputs) == 1
    assert engine.prepared_shapes == [(H, W)]
    assert handle.info.shape == (H, W) and f"{W}x{H}" in handle.info.description
    values = next(s for s in worker.statuses() if s.name.endswith("worker")).values
    assert values["backend"] == "eager" and f"{W}x{H}" in values["engine"]
    # a fixed model size prepares at configure, at the tensor size the pipeline makes
    fixed = NodeConfig(backend="eager", device="cpu", input_width=64, input_height=48,
                       cpu_threads=1)
    engine, info = build_engine(fixed)
    assert engine.prepared_shapes == [(48, 64)] and info.shape == (48, 64)


def test_explicit_backend_never_falls_back() -> None:
    """A named backend works or fails with the reason; only auto chooses."""
    cfg = NodeConfig(backend="tensorrt", device="cpu", input_width=64, input_height=48)
    with pytest.raises(EngineBuildError, match="tensorrt") as err:
        build_engine(cfg)
    assert "eager" not in str(err.value).split("tensorrt", 1)[0]
    # the same request with a lazily built engine fails at the first frame, every time,
    # without retrying the build
    lazy = NodeConfig(backend="tensorrt", device="cpu", metrics="")
    handle = EngineHandle(lazy)
    worker = FusionWorker.from_config(lazy, handle.load(), handle.info)
    _offer_pairs(worker, 2)
    res = worker.step(0)
    assert "EngineBuildError" in res.error and "tensorrt" in res.error
    assert worker.engine_errors == 1
    status = next(s for s in worker.statuses() if s.name.endswith("worker"))
    assert int(status.level) == 2 and "tensorrt" in status.message


def test_auto_is_the_only_value_that_chooses() -> None:
    if torch.cuda.is_available():
        pytest.skip("the CPU chain is checked on a CPU-only machine")
    engine, info = build_engine(NodeConfig(backend="auto", device="auto", cpu_threads=0))
    assert "device auto -> cpu" in info.fallback_log
    assert f"cpu_threads auto -> {default_cpu_threads()}" in info.fallback_log
    assert engine.backend.chain() == ("onnxruntime", "eager")
    assert engine.backend.onnx_threads == default_cpu_threads() == torch.get_num_threads()
    for name in ("eager", "onnxruntime", "tensorrt", "inductor"):
        engine, _ = build_engine(NodeConfig(backend=name, device="cpu", cpu_threads=1))
        assert engine.backend.chain() == (name,)


def test_explicit_device_and_weights_fail_with_one_line() -> None:
    if not torch.cuda.is_available():
        with pytest.raises(EngineBuildError, match="CUDA is not available"):
            build_engine(NodeConfig(device="cuda", backend="eager"))
    with pytest.raises(EngineBuildError, match="nope.safetensors") as err:
        build_engine(NodeConfig(weights="/nope.safetensors", backend="eager", device="cpu"))
    assert "\n" not in str(err.value)
    with pytest.raises(NodeConfigError, match="cpu_threads"):
        NodeConfig(cpu_threads=-1)


def test_diagnostics_say_the_engine_is_being_prepared(monkeypatch: pytest.MonkeyPatch) -> None:
    """While the first frame's backend is built, the worker status says so (no silence)."""
    from temcoco_core.engine import factory

    cfg = NodeConfig(backend="eager", device="cpu", metrics="", cpu_threads=1)
    handle = EngineHandle(cfg)
    worker = FusionWorker.from_config(cfg, handle.load(), handle.info)
    during: list = []
    real = factory.prepare_model

    def watched(*args, **kwargs):
        during.append(next(s for s in worker.statuses() if s.name.endswith("worker")))
        return real(*args, **kwargs)

    monkeypatch.setattr(factory, "prepare_model", watched)
    _offer_pairs(worker, 1)
    assert worker.step(0).outputs
    (status,) = during
    assert int(status.level) == 1 and f"preparing the eager engine for {W}x{H}" in status.message
    after = next(s for s in worker.statuses() if s.name.endswith("worker"))
    assert int(after.level) == 0 and after.message == "running"
