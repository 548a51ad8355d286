# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""ament_python package temcoco_ros: TemCoCo thermal+RGB video fusion for ROS 2.

Installs two Python packages: ``temcoco_core`` (no ROS) and ``temcoco_ros`` (the rclpy node).
Works under colcon (ament_python) and with plain ``pip install -e .[dev]`` where no ROS exists.
torch is deliberately not pinned: Jetson users bring NVIDIA's own build.
"""

from glob import glob

from setuptools import find_packages, setup

package_name = "temcoco_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=["temcoco_core", "temcoco_core.*", "temcoco_ros",
                                    "temcoco_ros.*"]),
    package_data={"temcoco_core": ["weights/*.safetensors", "weights/*.json", "weights/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("launch/*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "setuptools",
        "numpy",
        "torch>=2.1",
        "safetensors",
        "opencv-python-headless; platform_machine != 'aarch64'",
        "pyyaml",
        "tqdm",
        "rosbags>=0.10",
    ],
    extras_require={
        "onnx": ["onnx", "onnxruntime", "onnxscript"],
        "tensorrt": ["torch-tensorrt"],
        "train": ["matplotlib"],
        "eval": ["matplotlib"],
        "dinov2": ["transformers"],
        # colcon's pytest step runs when pytest is a test dependency ("test" extra; setuptools
        # >= 72 drops tests_require, and colcon then falls back to unittest and finds nothing)
        "test": ["pytest"],
        # what ament_flake8 / ament_pep257 bring on ROS, for test_flake8.py / test_pep257.py
        "lint": ["flake8", "flake8-builtins", "flake8-comprehensions", "flake8-docstrings",
                 "flake8-import-order", "flake8-quotes", "pydocstyle"],
        "dev": [
            "pytest",
            "ruff",
            # the ament linters' tools (test_flake8.py, test_pep257.py), pinned in .ci
            "flake8",
            "flake8-builtins",
            "flake8-comprehensions",
            "flake8-docstrings",
            "flake8-import-order",
            "flake8-quotes",
            "pydocstyle",
            "catkin_pkg",
            "onnx",
            "onnxruntime",
            "onnxscript",
            "matplotlib",
            "scikit-learn",
            "scikit-image",
            "transformers",
        ],
    },
    zip_safe=True,
    maintainer="temcoco_ros maintainers",
    maintainer_email="temcoco-ros@example.com",
    description="Temporally consistent thermal+RGB video fusion (TemCoCo) as a ROS 2 node, "
                "with offline bag/video replay, training and evaluation.",
    license="MIT",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "temcoco = temcoco_core.cli:main",
            "fusion_node = temcoco_ros.fusion_node:main",
        ],
    },
)
