"""Static checks of the ROS front end that need no ROS install: the node module and the launch
file are parsed with ``ast`` (never imported), the parameter files are validated through the
schema with ROS's typing rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from temcoco_core.node_config import NodeConfig, load_parameter_file, parameter_specs

REPO = Path(__file__).resolve().parents[1]
NODE = REPO / "temcoco_ros" / "fusion_node.py"
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


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef:
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name)


def _module_assign(tree: ast.Module, name: str) -> ast.expr:
    for n in tree.body:
        if isinstance(n, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in n.targets):
            return n.value
        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and \
                n.target.id == name and n.value is not None:
            return n.value
    raise AssertionError(f"{name} is not assigned at module level")


# ---------------------------------------------------------------------------------- node


def test_node_declares_every_schema_parameter_from_the_schema():
    """The node declares its parameters by looping over ``parameter_specs()`` (every branch
    passing ``spec.name`` and a descriptor built from the spec), so no parameter can be
    missing or described differently, and it declares no parameter by a literal name."""
    init = _method(_class(_tree(NODE), "FusionNode"), "__init__")
    loops = [n for n in ast.walk(init) if isinstance(n, ast.For)
             and isinstance(n.iter, ast.Call) and getattr(n.iter.func, "id", "") ==
             "parameter_specs"]
    assert len(loops) == 1, "expected one `for spec in parameter_specs():` loop in __init__"
    loop = loops[0]
    var = loop.target.id
    declares = _calls(loop, "declare_parameter")
    assert len(declares) >= 2  # typed-only arrays and everything else
    for call in declares:
        assert ast.unparse(call.args[0]) == f"{var}.name"
        assert ast.unparse(call.args[2]) == f"_descriptor({var})"
    all_declares = _calls(init, "declare_parameter") + _calls(init, "declare_parameters")
    assert len(all_declares) == len(declares), "parameters declared outside the schema loop"


def test_node_reads_only_schema_parameters_by_name():
    names = {s.name for s in parameter_specs()}
    literal = [c.args[0].value for c in _calls(_tree(NODE), "get_parameter")
               if c.args and isinstance(c.args[0], ast.Constant)]
    assert set(literal) <= names


def test_descriptor_carries_description_constraints_and_ranges():
    fn = next(n for n in _tree(NODE).body
              if isinstance(n, ast.FunctionDef) and n.name == "_descriptor")
    src = ast.unparse(fn)
    for needle in ("description=spec.description",
                   "additional_constraints=spec.additional_constraints",
                   "floating_point_range", "integer_range"):
        assert needle in src


def test_input_qos_defaults_to_best_effort():
    spec = next(s for s in parameter_specs() if s.name == "input_reliability")
    assert spec.default == "best_effort"
    tree = _tree(NODE)
    mapping = _module_assign(tree, "_RELIABILITY")
    assert isinstance(mapping, ast.Dict)
    pairs = {k.value: ast.unparse(v) for k, v in zip(mapping.keys, mapping.values)}
    assert pairs["best_effort"] == "ReliabilityPolicy.BEST_EFFORT"
    activate = ast.unparse(_method(_class(tree, "FusionNode"), "on_activate"))
    assert "reliability=_RELIABILITY[cfg.input_reliability]" in activate
    assert "depth=cfg.input_depth" in activate
    # message_filters' Subscriber defaults to depth-10 reliable: the QoS must be passed
    subscribers = [c for c in _calls(tree, "Subscriber")]
    assert subscribers and all(
        any(k.arg == "qos_profile" for k in c.keywords) for c in subscribers)


def test_node_is_thin():
    """No tensors, images or fusion logic in the node: those live in temcoco_core."""
    tree = _tree(NODE)
    imported = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            imported |= {a.name.split(".")[0] for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module:
            imported.add(n.module)
    assert not imported & {"torch", "cv2", "numpy"}
    core = {m for m in imported if m.startswith("temcoco_core")}
    assert core <= {"temcoco_core.node_config", "temcoco_core.worker",
                    "temcoco_core.diagnostics", "temcoco_core.frames.image_msg",
                    "temcoco_core.pipeline"}
    assert "message_filters" in imported
    assert len(NODE.read_text().splitlines()) < 500


def test_node_main_exits_cleanly_on_ctrl_c():
    main = next(n for n in _tree(NODE).body if isinstance(n, ast.FunctionDef) and n.name == "main")
    handlers = [ast.unparse(h.type) for n in ast.walk(main) if isinstance(n, ast.Try)
                for h in n.handlers if h.type is not None]
    assert "(KeyboardInterrupt, ExternalShutdownException)" in handlers
    assert any(isinstance(n, ast.Try) and n.finalbody for n in ast.walk(main))


def test_node_is_a_lifecycle_node_with_every_transition():
    cls = _class(_tree(NODE), "FusionNode")
    assert [ast.unparse(b) for b in cls.bases] == ["LifecycleNode"]
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    assert {"on_configure", "on_activate", "on_deactivate", "on_cleanup",
            "on_shutdown"} <= methods
    src = ast.unparse(_method(cls, "_stop_processing"))
    assert "release()" in src  # deactivate frees the engine's GPU memory


def test_inference_never_runs_in_a_subscription_callback():
    cls = _class(_tree(NODE), "FusionNode")
    for name in ("_on_image", "_on_image_counted", "_on_pair"):
        src = ast.unparse(_method(cls, name))
        assert "step(" not in src and "fuse" not in src and "push(" not in src


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
    assert ast.unparse(kw["parameters"]) == "[LaunchConfiguration('config'), overrides]"
    assert "--log-level" in ast.unparse(kw["arguments"])
    assert "fusion_node = temcoco_ros.fusion_node:main" in (REPO / "setup.py").read_text()


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
