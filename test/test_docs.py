# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""docs/ros.md is the one source of the ROS documentation, and its parameter tables are current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from temcoco_core.node_config import markdown_parameter_table

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "ros.md"


def _update_tool():
    spec = importlib.util.spec_from_file_location("update_ros_docs",
                                                  REPO / "tools" / "update_ros_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_tables_are_generated_from_the_schema():
    text = DOCS.read_text()
    assert _update_tool().render(text, markdown_parameter_table()) == text, \
        "docs/ros.md is out of date: run python3 tools/update_ros_docs.py"


def _paragraphs(text: str) -> set[str]:
    out = set()
    for block in text.split("\n\n"):
        flat = " ".join(block.split())
        if len(flat) > 80 and not flat.startswith(("|", "```", "#")):
            out.add(flat)
    return out


def test_readme_points_to_the_ros_docs_without_copying_them():
    readme = (REPO / "README.md").read_text()
    assert "docs/ros.md" in readme
    shared = _paragraphs(readme) & _paragraphs(DOCS.read_text())
    assert not shared, f"README repeats docs/ros.md: {sorted(shared)[:2]}"
    assert "### Parameters" not in readme and "| `sync_slop` |" not in readme


def test_ros_docs_cover_the_ros_features():
    text = DOCS.read_text()
    for needle in ("camera_info", "compressed", "qos_overrides", "autostart", "respawn",
                   "hardware_id", "fusion_perception.launch.py", "colcon test",
                   "--system-site-packages", "Jetson"):
        assert needle in text, needle
