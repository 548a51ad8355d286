# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
r"""Example: feed the fused image and its camera_info into a downstream perception node.

    ros2 launch temcoco_ros fusion_perception.launch.py \
        rgb_topic:=/camera/color/image_raw thermal_topic:=/thermal/image_raw

Starts the fusion node (``fusion.launch.py``, all its arguments pass through) and a component
container with one downstream node, wired to ``<namespace>/fused/image`` and
``<namespace>/fused/camera_info`` purely by remapping. The default downstream node is
image_proc's ``ResizeNode`` (an image_transport camera subscriber: image + camera_info, exactly
synchronised), which scales the fused image to a network input size and publishes
``<namespace>/perception/resize/image_raw`` with a matching camera_info -- the front of a
typical DNN pipeline. Any other component that takes an image and a camera_info works the same
way, e.g. Isaac ROS DNN image encoder::

    ros2 launch temcoco_ros fusion_perception.launch.py \
        perception_package:=isaac_ros_dnn_image_encoder \
        perception_plugin:=nvidia::isaac_ros::dnn_inference::DnnImageEncoderNode \
        image_remap:=image camera_info_remap:=camera_info

(its own parameters then go in ``perception_params``, a parameter file).
"""

from pathlib import Path

from launch.actions import (
    DeclareLaunchArgument,
    GroupAction,
    IncludeLaunchDescription,
    OpaqueFunction,
)
from launch.launch_description import LaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import ComposableNodeContainer
from launch_ros.descriptions import ComposableNode

#: Arguments of fusion.launch.py passed through unchanged (see its --show-args).
FUSION_ARGUMENTS = ("config", "namespace", "node_name", "rgb_topic", "thermal_topic",
                    "rgb_transport", "thermal_transport", "camera_info_url", "hardware_id",
                    "fusion_engine", "preset", "weights", "backend", "precision", "device",
                    "input_width", "input_height", "autostart", "respawn", "use_sim_time",
                    "log_level")

#: Arguments of this file: name -> (default, description).
ARGUMENTS = {
    "namespace": ("", "Namespace of the fusion node and the container."),
    "fused_topic": ("fused/image", "The fusion node's output topic (its camera_info is "
                                   "published beside it: fused/camera_info)."),
    "perception_package": ("image_proc", "Package of the downstream component."),
    "perception_plugin": ("image_proc::ResizeNode", "Downstream component (an image + "
                                                    "camera_info subscriber)."),
    "image_remap": ("image/image_raw", "The downstream node's image topic, remapped to the "
                                       "fused image."),
    "camera_info_remap": ("image/camera_info", "The downstream node's camera_info topic, "
                                               "remapped to the fused camera_info."),
    "perception_width": ("640", "Output width of the default ResizeNode."),
    "perception_height": ("512", "Output height of the default ResizeNode."),
    "perception_params": ("", "Parameter file of the downstream component (replaces the "
                              "ResizeNode size parameters)."),
}


def _fusion_launch_file() -> str:
    try:
        from ament_index_python.packages import get_package_share_directory

        return str(Path(get_package_share_directory("temcoco_ros")) / "launch"
                   / "fusion.launch.py")
    except (ImportError, LookupError):  # running from a source checkout
        return str(Path(__file__).resolve().parent / "fusion.launch.py")


def _absolute(namespace: str, topic: str) -> str:
    """``topic`` resolved in ``namespace`` the way the fusion node resolves it."""
    if topic.startswith("/"):
        return topic
    return "/" + "/".join(p for p in (namespace.strip("/"), topic) if p)


def _camera_info_topic(image_topic: str) -> str:
    """image_transport's camera_info topic beside an image topic."""
    return image_topic.rsplit("/", 1)[0] + "/camera_info"


def _launch(context, *args, **kwargs):
    """The fusion launch file (non-empty arguments only) and the perception container."""
    passed = {name: value for name in FUSION_ARGUMENTS
              if (value := LaunchConfiguration(name).perform(context).strip())}
    namespace = LaunchConfiguration("namespace").perform(context)
    fused_topic = LaunchConfiguration("fused_topic").perform(context)
    passed["fused_topic"] = fused_topic
    # scoped, not forwarding: the included file sees only the arguments given, so its own
    # defaults apply to the ones left empty here
    fusion = GroupAction([IncludeLaunchDescription(
        PythonLaunchDescriptionSource(_fusion_launch_file()),
        launch_arguments=passed.items())], scoped=True, forwarding=False)
    fused = _absolute(namespace, fused_topic)
    params = LaunchConfiguration("perception_params").perform(context).strip()
    width = int(LaunchConfiguration("perception_width").perform(context))
    height = int(LaunchConfiguration("perception_height").perform(context))
    parameters = [params] if params else [{"use_scale": False, "width": width,
                                           "height": height}]
    node = ComposableNode(
        package=LaunchConfiguration("perception_package"),
        plugin=LaunchConfiguration("perception_plugin"),
        name="perception",
        namespace=namespace,
        parameters=parameters,
        remappings=[(LaunchConfiguration("image_remap").perform(context), fused),
                    (LaunchConfiguration("camera_info_remap").perform(context),
                     _camera_info_topic(fused))],
    )
    container = ComposableNodeContainer(
        name="perception_container", namespace=namespace, package="rclcpp_components",
        executable="component_container", composable_node_descriptions=[node],
        output="screen")
    return [fusion, container]


def generate_launch_description() -> LaunchDescription:
    arguments = [DeclareLaunchArgument(name, default_value="", description=f"{name} of "
                                       "fusion.launch.py; empty: its default.")
                 for name in FUSION_ARGUMENTS if name != "namespace"]
    arguments += [DeclareLaunchArgument(name, default_value=default, description=text)
                  for name, (default, text) in ARGUMENTS.items()]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch)])
