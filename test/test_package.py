# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""ROS packaging checked with the real off-ROS tools.

Catkin_pkg parses and validates package.xml; setup.py installs what ament_python expects.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROS_EXEC_DEPENDS = {
    "rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "cv_bridge", "message_filters",
    "launch", "launch_ros", "python3-numpy", "python3-opencv",
}


def test_package_xml_is_valid_format_3():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    package = catkin_pkg.parse_package(str(REPO / "package.xml"))
    package.validate()
    assert package.package_format == 3
    assert package.name == "temcoco_ros"
    assert package.get_build_type() == "ament_python"
    exec_depends = {d.name for d in package.exec_depends}
    assert ROS_EXEC_DEPENDS <= exec_depends
    assert "launch_testing" in {d.name for d in package.test_depends}


def test_versions_agree():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    import temcoco_core

    package = catkin_pkg.parse_package(str(REPO / "package.xml"))
    setup_src = (REPO / "setup.py").read_text()
    assert f'version="{package.version}"' in setup_src
    assert temcoco_core.__version__ == package.version


def _setup_call() -> ast.Call:
    tree = ast.parse((REPO / "setup.py").read_text())
    return next(n for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")


def test_setup_py_has_ament_index_marker_and_entry_points():
    call = _setup_call()
    keywords = {k.arg: k.value for k in call.keywords}
    data_files = ast.unparse(keywords["data_files"])
    assert "share/ament_index/resource_index/packages" in data_files
    assert (REPO / "resource" / "temcoco_ros").is_file()
    for needle in ("package.xml", "launch/*.launch.py", "config/*.yaml"):
        assert needle in data_files
    scripts = ast.unparse(keywords["entry_points"])
    assert "temcoco = temcoco_core.cli:main" in scripts
    assert "fusion_node = temcoco_ros.fusion_node:main" in scripts
    assert "torch==" not in (REPO / "setup.py").read_text()  # Jetson brings its own torch


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    text = (REPO / "setup.cfg").read_text()
    assert "script_dir=$base/lib/temcoco_ros" in text
    assert "install_scripts=$base/lib/temcoco_ros" in text


def test_core_never_imports_ros():
    forbidden = ("rclpy", "rosidl", "sensor_msgs", "std_msgs", "diagnostic_msgs",
                 "message_filters", "cv_bridge", "launch", "launch_ros")
    offenders = []
    for path in (REPO / "temcoco_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert not offenders
