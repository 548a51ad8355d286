"""Launch the TemCoCo thermal + RGB fusion node.

    ros2 launch temcoco_ros fusion.launch.py rgb_topic:=/camera/color/image_raw \\
        thermal_topic:=/thermal/image_raw
    ros2 launch temcoco_ros fusion.launch.py config:=$(ros2 pkg prefix temcoco_ros)/share/\\
temcoco_ros/config/jetson.yaml
    ros2 launch temcoco_ros fusion.launch.py use_sim_time:=true     # with ros2 bag play --clock
    ros2 launch temcoco_ros fusion.launch.py registration:=registration.yaml  # temcoco calibrate

Parameters come from ``config`` (default: the package's ``config/fusion.yaml``); the topic,
preset, backend and device arguments override the file when given (empty: the file's value
stands). ``registration`` names a second parameter file applied after ``config``: the one
``temcoco calibrate`` writes (thermal → RGB homography).
``ros2 launch temcoco_ros fusion.launch.py --show-args`` lists every argument.
"""

from pathlib import Path

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = "temcoco_ros"

#: Launch arguments that override the node parameter of the same name when not empty.
PARAMETER_ARGUMENTS = {
    "rgb_topic": "RGB image topic to subscribe to (sensor_msgs/Image); empty: from the config "
                 "file (default rgb/image_raw, relative to the namespace).",
    "thermal_topic": "Thermal image topic (mono8, mono16, 16UC1 or 32FC1); empty: from the "
                     "config file (default thermal/image_raw).",
    "fused_topic": "Topic the fused sensor_msgs/Image is published on; empty: from the config "
                   "file (default fused/image).",
    "preset": "Network preset: edge, edge-framewise or official; empty: from the config file.",
    "backend": "Inference backend: auto, eager, inductor, tensorrt or onnxruntime; empty: from "
               "the config file.",
    "device": "Torch device: auto, cpu, cuda or cuda:N; empty: from the config file.",
}


def _default_config() -> str:
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError):  # running from a source checkout
        share = Path(__file__).resolve().parents[1]
    return str(share / "config" / "fusion.yaml")


def _truthy(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError(f"use_sim_time must be true or false, got {text!r}")
    return value in ("true", "1", "yes", "on")


def _launch_node(context, *args, **kwargs):
    """Build the node once the arguments are known: only non-empty overrides are applied."""
    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context).strip()
        if value:
            overrides[name] = ParameterValue(value, value_type=str)
    overrides["use_sim_time"] = _truthy(LaunchConfiguration("use_sim_time").perform(context))
    registration = LaunchConfiguration("registration").perform(context).strip()
    extra_files = [registration] if registration else []
    return [Node(
        package=PACKAGE,
        executable="fusion_node",
        name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("config"), *extra_files, overrides],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
    )]


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument(
            "config", default_value=_default_config(),
            description="ROS 2 parameter file for the node (every parameter is documented in "
                        "config/fusion.yaml; config/jetson.yaml is the Jetson profile)."),
        DeclareLaunchArgument(
            "registration", default_value="",
            description="Parameter file applied after config, e.g. the thermal-to-RGB "
                        "homography written by `temcoco calibrate`; empty: none."),
        DeclareLaunchArgument(
            "namespace", default_value="",
            description="Namespace of the node; relative topic names resolve inside it."),
        DeclareLaunchArgument(
            "node_name", default_value="fusion_node",
            description="Name of the node (several instances need different names or "
                        "namespaces)."),
    ]
    arguments += [DeclareLaunchArgument(name, default_value="", description=text)
                  for name, text in PARAMETER_ARGUMENTS.items()]
    arguments += [
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=["true", "false"],
            description="Use /clock (bag replay with `ros2 bag play --clock`)."),
        DeclareLaunchArgument(
            "log_level", default_value="info",
            choices=["debug", "info", "warn", "error", "fatal"],
            description="Log level of the node."),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node)])
