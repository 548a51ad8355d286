# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The node's parameter schema (temcoco_core.node_config), without ROS."""

from __future__ import annotations

import array
import math
from pathlib import Path

import pytest

from temcoco_core.frames.pairing import PairingConfig
from temcoco_core.node_config import (
    load_parameter_file,
    markdown_parameter_table,
    METRIC_NAMES,
    NodeConfig,
    NodeConfigError,
    PARAMETER_GROUPS,
    parameter_specs,
)
from temcoco_core.pipeline import PipelineConfig

REPO = Path(__file__).resolve().parents[1]

_PY_TYPES = {"bool": bool, "integer": int, "double": float, "string": str, "double_array": tuple}


def test_every_parameter_is_documented_typed_and_its_default_valid():
    specs = parameter_specs()
    names = [s.name for s in specs]
    assert len(names) == len(set(names)) > 40
    for s in specs:
        assert len(s.description) > 20, s.name
        assert s.group in PARAMETER_GROUPS, s.name
        assert isinstance(s.default, _PY_TYPES[s.type]), s.name
        assert s.name == s.name.lower() and " " not in s.name  # ROS parameter names
        if s.choices is not None:
            assert s.type == "string" and s.default in s.choices, s.name
        if s.range is not None:
            lo, hi = s.range
            assert s.type in ("integer", "double") and lo <= s.default <= hi, s.name
    NodeConfig()  # the defaults validate


def test_issue_parameters_exist():
    names = {s.name for s in parameter_specs()}
    required = {"rgb_topic", "thermal_topic", "fused_topic", "sync_queue_size", "sync_slop",
                "input_reliability", "input_depth", "preset", "weights", "backend",
                "precision", "device", "engine_cache_dir", "buffer_mode", "buffer_length",
                "thermal_policy", "thermal_range", "homography", "output_size",
                "output_encoding", "diagnostics_period", "metrics", "queue_depth"}
    assert required <= names
    for metric in METRIC_NAMES:
        assert {f"{metric}_warn", f"{metric}_error"} <= names


def test_defaults_follow_the_field_conventions():
    cfg = NodeConfig()
    assert cfg.input_reliability == "best_effort"  # REP-2003: subscribers best effort
    assert cfg.queue_depth == 1  # latest wins
    assert cfg.output_reliability == "reliable"


def test_unknown_names_are_reported_with_a_suggestion():
    with pytest.raises(NodeConfigError) as err:
        NodeConfig.from_mapping({"sync_slope": 0.1, "rgb_topik": "a"})
    assert err.value.problems == ["sync_slope: unknown parameter (did you mean 'sync_slop'?)",
                                  "rgb_topik: unknown parameter (did you mean 'rgb_topic'?)"]


def test_ros_builtins_are_ignored():
    cfg = NodeConfig.from_mapping({"use_sim_time": True,
                                   "qos_overrides./rgb.subscription.depth": 3})
    assert cfg == NodeConfig()


def test_strict_types_follow_ros():
    # ROS refuses an integer for a double parameter and cannot type an empty list
    with pytest.raises(NodeConfigError, match=r"sync_slop: .*write 1.0"):
        NodeConfig.from_mapping({"sync_slop": 1}, strict_types=True)
    with pytest.raises(NodeConfigError, match="homography: an empty list"):
        NodeConfig.from_mapping({"homography": []}, strict_types=True)
    with pytest.raises(NodeConfigError, match="thermal_range: expected a list of doubles"):
        NodeConfig.from_mapping({"thermal_range": [0, 100]}, strict_types=True)
    # lenient mode (Python callers, values already typed by rclpy) coerces
    cfg = NodeConfig.from_mapping({"sync_slop": 1, "thermal_range": [0, 100],
                                   "homography": array.array("d", [1, 0, 0, 0, 1, 0, 0, 0, 1])})
    assert cfg.sync_slop == 1.0 and isinstance(cfg.sync_slop, float)
    assert cfg.thermal_range == (0.0, 100.0)
    assert len(cfg.homography) == 9


@pytest.mark.parametrize("values, message", [
    ({"queue_depth": True}, "queue_depth: expected an integer"),
    ({"autostart": "yes"}, "autostart: expected a bool"),
    ({"rgb_topic": 3}, "rgb_topic: expected a string"),
    ({"input_reliability": "best-effort"}, "input_reliability: must be one of best_effort"),
    ({"queue_depth": 0}, r"queue_depth: must be in \[1, 64\]"),
    ({"sync_slop": math.nan}, "sync_slop: must be in"),
    ({"device": "gpu"}, "device: must be auto, cpu, cuda or cuda:N"),
    ({"preset": "nope"}, "preset: unknown preset 'nope'; available:"),
    ({"input_width": 320}, "give both or neither"),
    ({"thermal_range": [5.0, 1.0]}, "thermal_range: needs"),
    ({"thermal_range": [1.0, 2.0, 3.0]}, "thermal_range: needs"),
    ({"thermal_percentiles": [99.0, 1.0]}, "thermal_percentiles: needs"),
    ({"motion_gate": [0.3, 0.1]}, "motion_gate: needs"),
    ({"motion_gate": [-0.1, 0.2]}, "motion_gate: needs"),
    ({"motion_gate": [0.1, 0.2, 0.3]}, "motion_gate: needs"),
    ({"homography": [1.0] * 9}, "homography: homography is singular"),
    ({"homography": [1.0, 0.0]}, "homography: homography needs 9 values"),
    ({"metrics": "flicker,tof"}, "metrics: unknown metric"),
    ({"flicker_warn": 9.0, "flicker_error": 2.0}, "flicker_warn: 9 is above flicker_error 2"),
    ({"latency_warn_ms": 900.0, "latency_error_ms": 100.0}, "latency_warn_ms"),
])
def test_bad_values_name_the_parameter(values, message):
    with pytest.raises(NodeConfigError, match=message):
        NodeConfig.from_mapping(values)


def test_every_problem_is_reported_at_once():
    with pytest.raises(NodeConfigError) as err:
        NodeConfig.from_mapping({"queue_depth": 0, "device": "tpu", "metrics": "x"},
                                source="my.yaml")
    assert len(err.value.problems) == 3
    assert str(err.value).startswith("my.yaml: 3 invalid node parameters")
    assert isinstance(err.value, ValueError)


def test_unknown_preset_is_fine_without_the_network():
    assert NodeConfig(fusion_engine="average", preset="whatever").preset == "whatever"


def test_motion_gate_reaches_the_edge_network():
    """The motion_gate parameter sets the edge presets' gate ([0, 0]: off), not other presets'."""
    from temcoco_core.baselines import _model_method
    from temcoco_core.engine.factory import build_engine
    from temcoco_core.model.edge import EdgeConfig

    assert NodeConfig().model_options() == {"motion_gate": EdgeConfig().motion_gate}
    assert NodeConfig(motion_gate=(0.2, 0.5)).model_options() == {"motion_gate": (0.2, 0.5)}
    assert NodeConfig(preset="official").model_options() == {}
    for gate, expected in (((0.0, 0.0), None), ((0.2, 0.5), (0.2, 0.5))):
        cfg = NodeConfig(motion_gate=gate, backend="eager", device="cpu", cpu_threads=1)
        engine, _ = build_engine(cfg)
        assert engine.model.config.motion_gate == expected
        # temcoco eval's clip-mode model methods (--clip-len) follow the same parameter
        method = _model_method("edge", 4, 0, "cpu", settings=cfg)
        assert method.model.config.motion_gate == expected


def test_zero_disables_a_threshold_level():
    cfg = NodeConfig(flicker_warn=0.0, flicker_error=2.0, latency_warn_ms=500.0,
                     latency_error_ms=0.0)
    assert cfg.flicker_warn == 0.0 and cfg.latency_error_ms == 0.0


def test_pipeline_config_carries_every_core_setting():
    cfg = NodeConfig.from_mapping({
        "sync_queue_size": 4, "sync_slop": 0.02, "sync_max_gap": 0.0,
        "input_width": 320, "input_height": 240, "resize_mode": "pad",
        "resize_thermal_to_rgb": True, "thermal_policy": "fixed",
        "thermal_range": [27315.0, 31315.0], "thermal_percentiles": [2.0, 98.0],
        "thermal_smoothing": 0.5, "thermal_track_gain": False, "thermal_invert": True,
        "homography": [1.0, 0.0, 5.0, 0.0, 1.0, -3.0, 0.0, 0.0, 1.0],
        "registration_border": "replicate", "output_size": "model",
        "output_encoding": "bgr8", "metrics_max_side": 0})
    p = cfg.pipeline_config()
    assert isinstance(p, PipelineConfig)
    assert p.pairing == PairingConfig(queue_size=4, slop=0.02, max_gap_s=None)
    assert p.preprocess.model_size == (320, 240)
    assert p.preprocess.resize_mode == "pad"
    assert p.preprocess.resize_infrared_to_visible
    t = p.thermal
    assert (t.policy, t.fixed_range, t.percentiles) == ("fixed", (27315.0, 31315.0), (2.0, 98.0))
    assert (t.smoothing_s, t.track_gain, t.invert) == (0.5, False, True)
    assert p.registration.enabled and p.registration.border == "replicate"
    assert (p.output_size, p.output_encoding) == ("model", "bgr8")
    assert p.metrics and p.metrics_max_side is None


def test_metrics_selection_and_thresholds():
    cfg = NodeConfig(metrics=" FlowD , flicker ", flowd_warn=4.0, flowd_error=9.0)
    assert cfg.metric_names == ("flowd", "flicker")
    th = cfg.metric_thresholds()
    assert [(t.key, t.warn, t.error) for t in th] == [("flowD", 4.0, 9.0),
                                                      ("flicker", 1.5, 5.0)]
    off = NodeConfig(metrics="")
    assert off.metric_names == () and off.metric_thresholds() == []
    assert not off.pipeline_config().metrics


def test_as_dict_round_trips():
    cfg = NodeConfig(homography=(2.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 1.0), queue_depth=3)
    d = cfg.as_dict()
    assert d["homography"][0] == 2.0 and isinstance(d["homography"], list)
    assert NodeConfig.from_mapping(d) == cfg


def test_parameter_file_loading(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "/**:\n  ros__parameters:\n    queue_depth: 2\n    use_sim_time: true\n"
        "/robot/fusion_node:\n  ros__parameters:\n    sync_slop: 0.01\n"
        "other_node:\n  ros__parameters:\n    sync_slop: 0.2\n")
    assert load_parameter_file(path, "fusion_node") == {"queue_depth": 2, "use_sim_time": True,
                                                        "sync_slop": 0.01}
    cfg = NodeConfig.from_yaml(path, node_name="fusion_node")
    assert (cfg.queue_depth, cfg.sync_slop) == (2, 0.01)
    # nested keys flatten with dots, as in ROS: not a schema name, so an error naming it
    path.write_text("/**:\n  ros__parameters:\n    sync:\n      slop: 0.1\n")
    with pytest.raises(NodeConfigError, match="sync.slop: unknown parameter"):
        NodeConfig.from_yaml(path)


@pytest.mark.parametrize("text, message", [
    ("queue_depth: 2\n", "ros__parameters"),
    ("[1, 2]\n", "expected"),
    ("/**: {ros__parameters: {queue_depth: [}\n", "not valid YAML"),
])
def test_malformed_parameter_files(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(NodeConfigError, match=message):
        NodeConfig.from_yaml(path)


def test_markdown_table_lists_every_parameter():
    table = markdown_parameter_table()
    for s in parameter_specs():
        assert f"| `{s.name}` |" in table
    for title in PARAMETER_GROUPS.values():
        assert f"**{title}**" in table


def test_docs_mention_every_parameter():
    docs = REPO / "docs" / "ros.md"
    if not docs.is_file():
        pytest.skip("docs/ros.md not present")
    text = docs.read_text()
    missing = [s.name for s in parameter_specs() if f"`{s.name}`" not in text]
    assert not missing
