# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
r"""Launch the TemCoCo thermal + RGB fusion node (a managed lifecycle node).

    ros2 launch temcoco_ros fusion.launch.py rgb_topic:=/camera/color/image_raw \
        thermal_topic:=/thermal/image_raw
    ros2 launch temcoco_ros fusion.launch.py preset:=edge input_width:=320 input_height:=256 \
        backend:=onnxruntime device:=cpu
    ros2 launch temcoco_ros fusion.launch.py config:=$(ros2 pkg prefix temcoco_ros)/share/\
temcoco_ros/config/jetson.yaml
    ros2 launch temcoco_ros fusion.launch.py use_sim_time:=true     # with ros2 bag play --clock
    ros2 launch temcoco_ros fusion.launch.py autostart:=false       # a lifecycle manager drives it
    ros2 launch temcoco_ros fusion.launch.py registration:=registration.yaml  # temcoco calibrate

Parameters come from ``config`` (default: the package's ``config/fusion.yaml``); the topic,
model and engine arguments override the file when given (empty: the file's value stands).
``registration`` names a second parameter file applied after ``config``: the one ``temcoco
calibrate`` writes (thermal → RGB homography). ``ros2 launch temcoco_ros fusion.launch.py
--show-args`` lists every argument.

The node is started with launch_ros's ``LifecycleNode`` action. With ``autostart:=true``
(default) this launch file drives it through ``configure`` and ``activate`` with lifecycle
events, again after every respawn, and shuts the launch down with an error when a transition
fails (unusable weights, engine or device); with ``autostart:=false`` it stays ``unconfigured``
for an external lifecycle manager (nav2_lifecycle_manager, ``ros2 lifecycle set``). The node's
own ``autostart`` parameter (for ``ros2 run``) is always off under this launch file, so the two
never race. ``respawn:=true`` restarts the node after it dies.
"""

from pathlib import Path

from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.event_handlers import OnProcessStart
from launch.events import matches_action, Shutdown
from launch.launch_description import LaunchDescription
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

PACKAGE = "temcoco_ros"

#: Launch arguments that override the node parameter of the same name when not empty.
PARAMETER_ARGUMENTS = {
    "rgb_topic": "RGB image topic to subscribe to (sensor_msgs/Image); empty: from the config "
                 "file (default rgb/image_raw, relative to the namespace).",
    "thermal_topic": "Thermal image topic (mono8, mono16, 16UC1 or 32FC1); empty: from the "
                     "config file (default thermal/image_raw).",
    "fused_topic": "Topic the fused sensor_msgs/Image is published on; empty: from the config "
                   "file (default fused/image).",
    "rgb_transport": "raw or compressed (subscribe to <rgb_topic>/compressed, JPEG/PNG); "
                     "empty: from the config file (default raw).",
    "thermal_transport": "raw or compressed (a 16-bit PNG keeps the thermal depth); empty: "
                         "from the config file (default raw).",
    "camera_info_url": "Calibration file of the RGB camera for /fused/camera_info (file://, "
                       "package:// or a path); empty: from the config file (default: the RGB "
                       "camera's camera_info topic).",
    "hardware_id": "hardware_id of the diagnostics (e.g. the cameras' serial numbers); empty: "
                   "from the config file.",
    "fusion_engine": "model (the TemCoCo network) or average (model-free bring-up); empty: "
                     "from the config file.",
    "preset": "Network preset: edge, edge-framewise or official; empty: from the config file.",
    "weights": "Checkpoint file (.safetensors or .pth); empty: from the config file (default: "
               "the preset's packaged weights).",
    "backend": "Inference backend: auto, eager, inductor, tensorrt or onnxruntime; empty: from "
               "the config file.",
    "precision": "Inference precision: fp32, fp16 or bf16; empty: from the config file.",
    "device": "Torch device: auto, cpu, cuda or cuda:N; empty: from the config file.",
    "input_width": "Model input width in pixels (model size; 0 with input_height 0: the RGB "
                   "image's size); empty: from the config file.",
    "input_height": "Model input height in pixels (multiples of 16 suit the network); empty: "
                    "from the config file.",
}
#: Parameters among them that are integers (the others are strings).
INTEGER_PARAMETERS = ("input_width", "input_height")


def _default_config() -> str:
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE))
    except (ImportError, LookupError):  # running from a source checkout
        share = Path(__file__).resolve().parents[1]
    return str(share / "config" / "fusion.yaml")


def _truthy(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise ValueError(f"launch argument {name} must be true or false, got {text!r}")
    return value in ("true", "1", "yes", "on")


def _overrides(context) -> dict:
    """Non-empty parameter arguments, typed as the node declares them."""
    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context).strip()
        if not value:
            continue
        if name in INTEGER_PARAMETERS:
            try:
                overrides[name] = int(value)
            except ValueError:
                raise ValueError(f"launch argument {name} must be an integer, got "
                                 f"{value!r}") from None
        else:
            overrides[name] = ParameterValue(value, value_type=str)
    overrides["use_sim_time"] = _truthy(
        "use_sim_time", LaunchConfiguration("use_sim_time").perform(context))
    overrides["autostart"] = False  # this launch file drives the lifecycle (or a manager does)
    return overrides


def _launch_node(context, *args, **kwargs):
    """Build the node once the arguments are known: only non-empty overrides are applied."""
    overrides = _overrides(context)
    autostart = _truthy("autostart", LaunchConfiguration("autostart").perform(context))
    respawn = _truthy("respawn", LaunchConfiguration("respawn").perform(context))
    respawn_delay = float(LaunchConfiguration("respawn_delay").perform(context))
    registration = LaunchConfiguration("registration").perform(context).strip()
    extra_files = [registration] if registration else []
    node = LifecycleNode(
        package=PACKAGE,
        executable="fusion_node",
        name=LaunchConfiguration("node_name"),
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("config"), *extra_files, overrides],
        arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        output="screen",
        emulate_tty=True,
        respawn=respawn,
        respawn_delay=respawn_delay,
    )
    if not autostart:
        return [node]

    def change_state(transition_id: int) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node),
                                           transition_id=transition_id))

    def on_failure(step: str, shutdown: int = Transition.TRANSITION_UNCONFIGURED_SHUTDOWN
                   ) -> list:
        if respawn:  # the node exits once finalized, and launch starts it again
            return [LogInfo(msg=f"fusion node: {step} failed (see its log above); shutting it "
                                "down to respawn"),
                    change_state(shutdown)]
        return [LogInfo(msg=f"fusion node: {step} failed (see its log above); stopping"),
                EmitEvent(event=Shutdown(reason=f"fusion node {step} failed"))]

    return [
        # configure on every start (also after a respawn), activate once configured
        RegisterEventHandler(OnProcessStart(
            target_action=node, on_start=[change_state(Transition.TRANSITION_CONFIGURE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
            entities=[change_state(Transition.TRANSITION_ACTIVATE)])),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state="configuring", goal_state="unconfigured",
            entities=on_failure("configure"))),
        RegisterEventHandler(OnStateTransition(
            target_lifecycle_node=node, start_state="activating", goal_state="inactive",
            entities=on_failure("activate", Transition.TRANSITION_INACTIVE_SHUTDOWN))),
        RegisterEventHandler(OnStateTransition(  # a transition raised: error processing
            target_lifecycle_node=node, start_state="errorprocessing", goal_state="unconfigured",
            entities=on_failure("a lifecycle transition"))),
        node,
    ]


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
            "autostart", default_value="true", choices=["true", "false"],
            description="Configure and activate the node through lifecycle events as soon as "
                        "it starts (and after every respawn); false: leave it unconfigured "
                        "for an external lifecycle manager."),
        DeclareLaunchArgument(
            "respawn", default_value="false", choices=["true", "false"],
            description="Restart the node when its process dies."),
        DeclareLaunchArgument(
            "respawn_delay", default_value="2.0",
            description="Seconds to wait before a respawn."),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", choices=["true", "false"],
            description="Use /clock (bag replay with `ros2 bag play --clock`)."),
        DeclareLaunchArgument(
            "log_level", default_value="info",
            choices=["debug", "info", "warn", "error", "fatal"],
            description="Log level of the node."),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_launch_node)])
