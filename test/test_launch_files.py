# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The launch files, checked without a ROS install (parsed with ``ast``).

The launch_testing tests in test_launch.py and test_launch_pipeline.py run them on a real ROS 2.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "fusion.launch.py"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                out.append(node)
    return out


def test_launch_drives_the_lifecycle_and_never_races_the_nodes_autostart():
    """Autostart:=true: configure on every process start, activate once inactive.

    The node's own autostart parameter is always off under the launch file.
    """
    src = LAUNCH.read_text()
    tree = _tree(LAUNCH)
    assert 'overrides["autostart"] = False' in src
    changes = [ast.unparse(c) for c in _calls(tree, "change_state")]
    assert "change_state(Transition.TRANSITION_CONFIGURE)" in changes
    assert "change_state(Transition.TRANSITION_ACTIVATE)" in changes
    (start,) = _calls(tree, "OnProcessStart")
    assert "TRANSITION_CONFIGURE" in ast.unparse(start)
    goals = {ast.literal_eval(k.value) for c in _calls(tree, "OnStateTransition")
             for k in c.keywords if k.arg == "goal_state"}
    assert {"inactive", "unconfigured"} <= goals


def test_perception_example_remaps_fused_image_and_camera_info():
    path = REPO / "launch" / "fusion_perception.launch.py"
    tree = _tree(path)
    (node,) = _calls(tree, "ComposableNode")
    remaps = ast.unparse(next(k.value for k in node.keywords if k.arg == "remappings"))
    assert "fused" in remaps and "_camera_info_topic(fused)" in remaps
    (container,) = _calls(tree, "ComposableNodeContainer")
    assert "rclcpp_components" in ast.unparse(container)
    ns = {}
    exec(compile(ast.Module(body=[n for n in tree.body if isinstance(n, ast.FunctionDef)
                                  and n.name in ("_absolute", "_camera_info_topic")],
                            type_ignores=[]), str(path), "exec"), ns)
    assert ns["_absolute"]("cam", "fused/image") == "/cam/fused/image"
    assert ns["_absolute"]("", "fused/image") == "/fused/image"
    assert ns["_camera_info_topic"]("/cam/fused/image") == "/cam/fused/camera_info"
