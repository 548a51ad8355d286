# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""qos_overrides.* parsing and validation (temcoco_core.qos_overrides)."""

import pytest

from temcoco_core.node_config import load_parameter_file, NodeConfig
from temcoco_core.qos_overrides import (
    ENUM_POLICIES,
    parse_qos_overrides,
    POLICIES,
    QosEntity,
    QosOverrideError,
    validate_qos_overrides,
)

ENTITIES = [QosEntity("/fused/image", "publisher", policies=POLICIES),
            QosEntity("/rgb/image_raw", "subscription",
                      policies=tuple(p for p in POLICIES if p != "lifespan")),
            QosEntity("/fused/camera_info", "publisher", entity_id="info")]


def test_yaml_overrides_parse_to_rclpy_parameter_names(tmp_path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("""/**:
  ros__parameters:
    output_depth: 2
    qos_overrides:
      /fused/image:
        publisher:
          reliability: BEST_EFFORT
          depth: 3
          deadline: 100000000
      /rgb/image_raw:
        subscription:
          durability: volatile
      /fused/camera_info:
        publisher_info:
          history: keep_last
""")
    values = load_parameter_file(path)
    NodeConfig.from_mapping(values, strict_types=True)  # the schema ignores qos_overrides
    got = validate_qos_overrides(values, ENTITIES)
    by_name = {o.name: o for o in got}
    o = by_name["qos_overrides./fused/image.publisher.reliability"]
    assert (o.topic, o.kind, o.entity_id, o.policy, o.value) == (
        "/fused/image", "publisher", None, "reliability", "best_effort")
    assert by_name["qos_overrides./fused/image.publisher.depth"].value == 3
    assert by_name["qos_overrides./fused/camera_info.publisher_info.history"].entity_id == "info"
    assert len(got) == 5


@pytest.mark.parametrize("name, value, match", [
    ("qos_overrides./fused/image.publisher.reliabilty", "reliable", "did you mean 'reliability'"),
    ("qos_overrides./fused/image.publisher.reliability", "sometimes", "must be one of"),
    ("qos_overrides./fused/image.publisher.depth", "5", "integer"),
    ("qos_overrides./fused/image.publisher.depth", True, "integer"),
    ("qos_overrides./fused/image.publisher.deadline", 0.1, "nanoseconds"),
    ("qos_overrides./fused/image.publisher.depth", -1, ">= 0"),
    ("qos_overrides./fused/image.writer.depth", 1, "neither publisher nor subscription"),
    ("qos_overrides.fused/image.publisher.depth", 1, "fully qualified"),
    ("qos_overrides./rgb/image_raw.subscription.lifespan", 10, "publisher policy"),
    ("qos_overrides./fused/imgae.publisher.depth", 1, "no publisher on /fused/imgae"),
    ("qos_overrides./fused/camera_info.publisher.depth", 1, "overridable"),
    ("qos_overrides./fused/camera_info.publisher_info.deadline", 1, "not overridable"),
    ("qos_overrides./fused/image.publisher.depth", 0, "depth >= 1"),
])
def test_bad_overrides_are_refused_with_the_parameter_named(name, value, match) -> None:
    with pytest.raises(QosOverrideError, match=match) as err:
        validate_qos_overrides({name: value, "output_depth": 2}, ENTITIES)
    assert err.value.problems[0].startswith(name.rsplit(".", 1)[0])


def test_every_problem_reported_at_once_and_distro_enums() -> None:
    values = {"qos_overrides./a.publisher.depth": 1, "qos_overrides./fused/image.publisher.x": 1}
    with pytest.raises(QosOverrideError, match="2 invalid QoS overrides"):
        validate_qos_overrides(values, ENTITIES)
    humble = {k: tuple(v for v in vals if v != "best_available")
              for k, vals in ENUM_POLICIES.items()}
    name = "qos_overrides./fused/image.publisher.reliability"
    assert validate_qos_overrides({name: "best_available"}, ENTITIES)
    with pytest.raises(QosOverrideError, match="best_available"):
        validate_qos_overrides({name: "best_available"}, ENTITIES, humble)
    overrides, problems = parse_qos_overrides({"rgb_topic": "x", name: "reliable"})
    assert len(overrides) == 1 and not problems
