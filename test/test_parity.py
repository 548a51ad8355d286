# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""One pipeline: the node's ROS-free worker path and ``replay_bag`` give identical results.

The same bag messages go (a) through what ``temcoco_ros/fusion_node.py`` runs --
``NodeConfig.from_yaml`` → ``EngineHandle`` → ``FusionWorker.from_config``, ``offer`` per
message as the subscription callbacks do, ``step`` as the worker thread does -- and (b) through
``temcoco replay`` with the same parameter file. Fused frames (pixels, stamps, frame ids), the
per-frame temporal values and every deterministic ``/diagnostics`` value (pairing counters,
stamp-based rates, resets, engine, metrics) must be identical; only wall-clock latencies differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from temcoco_core.cli_args import NODE_NAME
from temcoco_core.diagnostics import StatusValue
from temcoco_core.engine.factory import EngineHandle
from temcoco_core.frames.image_msg import decode_image
from temcoco_core.io.bag import BagReader, BagWriter, stamp_to_ns
from temcoco_core.io.synthetic import generate_scene, SyntheticSceneConfig
from temcoco_core.node_config import NodeConfig
from temcoco_core.replay import main, replay_bag, ReplayOptions
from temcoco_core.worker import FusionWorker

RGB, THERMAL = "/camera/color/image_raw", "/thermal/image_raw"

PARAMS = f"""\
# a node parameter file as ROS reads it: wildcard entry, then the node's own entry
/**:
  ros__parameters:
    use_sim_time: true
    fusion_engine: model
    preset: edge
    backend: eager
    device: cpu
    metrics: flicker,dirc,flowd
{NODE_NAME}:
  ros__parameters:
    input_width: 48
    input_height: 32
    resize_mode: pad
    thermal_policy: percentile
    thermal_percentiles: [2.0, 98.0]
    sync_max_gap: 0.5
    metrics_max_side: 0
"""


def _bag(path: Path) -> Path:
    """A bag with a 2 s hole (gap reset) and a loop (time going backwards)."""
    frames = list(generate_scene(SyntheticSceneConfig(width=64, height=40, frames=5, seed=3)))
    with BagWriter(path) as w:
        log_t = 0
        for _ in range(2):  # the loop: stamps jump back, log time goes on
            for i, f in enumerate(frames):
                shift = 2 * 10**9 if i >= 3 else 0
                log_t += 10**8
                w.write_image(RGB, f.visible, "rgb8", f.stamp_ns + shift, "cam",
                              log_time_ns=log_t)
                w.write_image(THERMAL, f.thermal, "mono16", f.thermal_stamp_ns + shift,
                              log_time_ns=log_t + 1)
    return path


def _values(status: StatusValue | object) -> tuple[str, int, str, dict[str, str]]:
    """Name, level, message and the deterministic values of one status."""
    if isinstance(status, StatusValue):
        name, level, message, values = (status.name, int(status.level), status.message,
                                        dict(status.values))
    else:  # diagnostic_msgs/DiagnosticStatus read back from the bag
        name, message = status.name, status.message
        level = int.from_bytes(status.level, "little") if isinstance(status.level, bytes) \
            else int(status.level)
        values = {kv.key: kv.value for kv in status.values}
    return name, level, message, {k: v for k, v in values.items() if not k.endswith("_ms")}


def _node_path(bag: Path, cfg: NodeConfig) -> tuple[list, list]:
    handle = EngineHandle(cfg)
    engine = handle.load()
    worker = FusionWorker.from_config(cfg, engine, handle.info, topic_names=(RGB, THERMAL))
    frames, diagnostics = [], []
    with BagReader(bag) as reader:
        for m in reader.messages([RGB, THERMAL]):
            # receive time = the bag's clock, as a node running with use_sim_time sees it
            worker.offer(0 if m.topic == RGB else 1, stamp_to_ns(m.msg.header.stamp), m.msg,
                         m.log_time_ns)
            while (res := worker.step(0.0)) is not None:
                assert res.error == ""
                for out in res.outputs:
                    frames.append(out)
                    diagnostics.append([_values(s) for s in worker.pipeline.statuses()])
    assert worker.queue.dropped == 0
    return frames, diagnostics


@pytest.fixture(scope="module")
def params_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("params") / "fusion.yaml"
    path.write_text(PARAMS)
    return path


def test_parameter_file_is_read_as_ros_reads_it(params_file: Path) -> None:
    cfg = NodeConfig.from_yaml(params_file, node_name=NODE_NAME)
    assert (cfg.backend, cfg.input_width, cfg.resize_mode, cfg.metrics) == (
        "eager", 48, "pad", "flicker,dirc,flowd")
    assert cfg.thermal_percentiles == (2.0, 98.0)
    # flags override single values; everything else stays the file's
    over = NodeConfig.from_sources(params_file, node_name=NODE_NAME,
                                   overrides={"resize_mode": "resize"})
    assert over.resize_mode == "resize" and over.input_width == 48 and over.backend == "eager"
    # entries for other nodes do not apply
    other = params_file.with_name("other.yaml")
    other.write_text(PARAMS + "other_node:\n  ros__parameters:\n    input_width: 96\n")
    assert NodeConfig.from_yaml(other, node_name=NODE_NAME).input_width == 48


def test_node_worker_and_replay_are_one_pipeline(tmp_path: Path, params_file: Path) -> None:
    bag = _bag(tmp_path / "in")
    cfg = NodeConfig.from_yaml(params_file, node_name=NODE_NAME)
    node_frames, node_diag = _node_path(bag, cfg)

    summary = replay_bag(bag, tmp_path / "out", cfg, ReplayOptions(progress=False))
    with BagReader(tmp_path / "out") as r:
        fused = [m.msg for m in r.messages(["/fused/image"])]
        diag = [m.msg for m in r.messages(["/diagnostics"])]

    assert len(node_frames) == len(fused) == summary["frames_written"] == 10
    assert summary["resets"] == {"gap": 2, "time_backwards": 1}
    for ours, msg in zip(node_frames, fused):
        assert stamp_to_ns(msg.header.stamp) == ours.stamp_ns
        assert msg.header.frame_id == ours.frame_id == "cam"
        img, enc = decode_image(msg)
        assert enc == ours.encoding
        np.testing.assert_array_equal(img, ours.image)
    # the per-frame diagnostics: pairing counters, rates, resets, engine, temporal values
    assert len(diag) == len(node_diag)
    for ours, msg in zip(node_diag, diag):
        theirs = [_values(s) for s in msg.status]
        assert theirs == ours
    assert any("flowD" in values for _, _, _, values in node_diag[-1])


def test_replay_command_reads_the_node_parameter_file(tmp_path: Path, params_file: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    bag = _bag(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["replay", str(bag), "-o", str(out), "--params", str(params_file),
                 "--engine", "average", "--json"]) == 0
    text = capsys.readouterr().out
    assert '"engine": "average (model-free)"' in text
    with BagReader(out) as r:
        (first, *_) = [m.msg for m in r.messages(["/fused/image"])]
    # output_size defaults to rgb: the pad to 48x32 is cropped and scaled back to 64x40
    assert decode_image(first)[0].shape == (40, 64, 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    input_width: 48.0\n")
    assert main(["replay", str(bag), "-o", str(tmp_path / "o2"), "--params", str(bad)]) == 1
    assert "input_width" in capsys.readouterr().err
