# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The launch files and the parameter files, checked without a ROS install.

``launch/fusion.launch.py`` and ``launch/fusion_perception.launch.py`` are parsed with ``ast``
(``launch`` is not importable here; the launch_testing tests in ``test_launch.py`` and
``test_launch_pipeline.py`` run them on a real ROS 2), the parameter files are
validated through the schema with ROS's typing rules. The node's behaviour is tested through
core in ``test_node_behaviour.py`` and ``test_parity.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from temcoco_core.node_config import load_parameter_file, NodeConfig, parameter_specs

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch" / "fusion.launch.py"
PARAM_FILES = [REPO / "config" / "fusion.yaml", REPO / "config" / "jetson.yaml"]
ISSUE_LAUNCH_ARGUMENTS = {"config", "namespace", "rgb_topic", "thermal_topic", "fused_topic",
                          "preset", "backend", "device", "use_sim_time", "log_level",
                          "autostart", "respawn", "input_width", "input_height", "precision",
                          "fusion_engine"}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    """Calls of ``name(...)`` or ``x.name(...)``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == name) or (
                    isinstance(f, ast.Attribute) and f.attr == name):
                out.append(node)
    return out


def _module_assign(tree: ast.Module, name: str) -> ast.expr:
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in n.targets):
            return n.value
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and \
                n.target.id == name and n.value is not None:
            return n.value
    raise AssertionError(f"{name} is not assigned at module level")


# ---------------------------------------------------------------------------------- launch


def _launch_arguments() -> dict[str, str]:
    """Launch argument name → description, from the launch file's AST."""
    tree = _tree(LAUNCH)
    out: dict[str, str] = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        desc = next((k.value for k in call.keywords if k.arg == "description"), None)
        name = call.args[0]
        if isinstance(name, ast.Constant):
            assert isinstance(desc, ast.Constant), f"{name.value}: no literal description"
            out[name.value] = desc.value
        else:  # generated from PARAMETER_ARGUMENTS
            assert ast.unparse(desc) == "text" and ast.unparse(name) == "name"
            table = ast.literal_eval(_module_assign(tree, "PARAMETER_ARGUMENTS"))
            comps = [n for n in ast.walk(tree) if isinstance(n, ast.ListComp)
                     and ast.unparse(n.generators[0].iter) == "PARAMETER_ARGUMENTS.items()"]
            assert comps, "PARAMETER_ARGUMENTS must drive the generated arguments"
            out.update(table)
    return out


def test_launch_declares_the_issue_arguments_with_descriptions():
    args = _launch_arguments()
    assert ISSUE_LAUNCH_ARGUMENTS <= set(args)
    for name, desc in args.items():
        assert isinstance(desc, str) and len(desc) > 15, name


def test_launch_overrides_are_schema_parameters():
    tree = _tree(LAUNCH)
    table = ast.literal_eval(_module_assign(tree, "PARAMETER_ARGUMENTS"))
    assert set(table) <= {s.name for s in parameter_specs()}
    assert {"rgb_topic", "thermal_topic", "fused_topic", "preset", "backend", "device"} <= set(
        table)


def test_launch_starts_the_installed_executable_with_yaml_then_overrides():
    tree = _tree(LAUNCH)
    assert not _calls(tree, "Node"), "the node is a managed lifecycle node: LifecycleNode"
    (node,) = _calls(tree, "LifecycleNode")
    kw = {k.arg: k.value for k in node.keywords}
    package = kw["package"]
    if isinstance(package, ast.Name):
        package = _module_assign(tree, package.id)
    assert ast.literal_eval(package) == "temcoco_ros"
    assert ast.literal_eval(kw["executable"]) == "fusion_node"
    assert {"name", "namespace", "respawn", "respawn_delay"} <= set(kw)
    assert ast.unparse(kw["parameters"]) == ("[LaunchConfiguration('config'), *extra_files, "
                                             "overrides]")
    assert "--log-level" in ast.unparse(kw["arguments"])
    assert "fusion_node = temcoco_ros.fusion_node:main" in (REPO / "setup.py").read_text()


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


# ---------------------------------------------------------------------------------- yaml


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.name)
def test_parameter_files_parse_and_validate_with_ros_typing(path):
    doc = yaml.safe_load(path.read_text())
    assert list(doc) == ["/**"] and set(doc["/**"]) == {"ros__parameters"}
    values = load_parameter_file(path)
    assert set(values) <= {s.name for s in parameter_specs()}
    NodeConfig.from_yaml(path, strict_types=True)


def test_fusion_yaml_lists_every_parameter_with_a_comment():
    """config/fusion.yaml documents every parameter (unset arrays as commented examples)."""
    text = (REPO / "config" / "fusion.yaml").read_text()
    values = load_parameter_file(REPO / "config" / "fusion.yaml")
    for spec in parameter_specs():
        if spec.type == "double_array" and not spec.default:
            assert f"# {spec.name}: [" in text, spec.name
            continue
        assert spec.name in values, spec.name
    for line in text.splitlines():
        stripped = line.strip()
        if ":" in stripped and not stripped.startswith(("#", "/**", "ros__parameters")):
            assert "#" in stripped, f"undocumented line: {line}"


def test_fusion_yaml_holds_the_schema_defaults():
    assert NodeConfig.from_yaml(REPO / "config" / "fusion.yaml") == NodeConfig()


def test_jetson_profile():
    cfg = NodeConfig.from_yaml(REPO / "config" / "jetson.yaml")
    assert (cfg.backend, cfg.precision, cfg.device) == ("tensorrt", "fp16", "cuda")
    assert cfg.preset.startswith("edge")
    assert cfg.model_size is not None and cfg.model_size[0] * cfg.model_size[1] < 640 * 480
    assert cfg.input_reliability == "best_effort"
