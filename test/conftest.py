# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Shared pytest fixtures and hooks.

Fixtures: paths to the real data beside the repo, small deterministic tensors, loggers that
propagate. Hooks: launch_testing's test collection (its own pytest plugin is disabled in
setup.cfg because it cannot load on pytest 9; see :func:`pytest_pycollect_makemodule`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _engine_cache(tmp_path_factory):
    """Engines built by the tests (ONNX Runtime is the CPU default) go to a temporary folder.

    Never into the user's ~/.cache/temcoco/engines.
    """
    previous = os.environ.get("TEMCOCO_ENGINE_CACHE")
    os.environ["TEMCOCO_ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engines"))
    yield
    if previous is None:
        os.environ.pop("TEMCOCO_ENGINE_CACHE", None)
    else:
        os.environ["TEMCOCO_ENGINE_CACHE"] = previous


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One intra-op thread for the whole suite.

    The tensors are tiny, and on a small CPU shared with other jobs OpenMP threads spin-waiting on
    each other slow them down many times over.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (the shared folder beside the repo)")
    return SHARED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data {DATA} is absent (see ../shared/data/README.md)")
    return DATA


@pytest.fixture(autouse=True)
def _propagating_loggers():
    """Loggers of this package propagate to the root logger, where ``caplog`` listens.

    ``launch`` (imported by every launch test, and by launch_testing's plugin whenever ROS is
    sourced) installs a logger class whose loggers do not propagate, so a ``temcoco_core``
    logger created after that import would be invisible to ``caplog``.
    """
    previous_class = logging.getLoggerClass()
    if previous_class is not logging.Logger:
        logging.setLoggerClass(logging.Logger)
    changed = [lg for name, lg in list(logging.Logger.manager.loggerDict.items())
               if isinstance(lg, logging.Logger) and not lg.propagate
               and name.split(".")[0] in ("temcoco_core", "temcoco_ros")]
    for lg in changed:
        lg.propagate = True
    yield
    for lg in changed:
        lg.propagate = False
    if previous_class is not logging.Logger:
        logging.setLoggerClass(previous_class)


# ------------------------------------------------------------------ launch_testing collection
# launch_testing's plugin (entry point "launch_testing") implements pytest_pycollect_makemodule
# with the py.path ``path`` argument that pytest 9 removed: pytest refuses to start at all with
# it installed. setup.cfg disables it (and launch_testing_ros's, which needs its hook spec);
# this hook collects ``@pytest.mark.launch_test`` / ``rostest`` modules with their classes.

_PYTEST_MAJOR = int(pytest.__version__.split(".")[0])


def _launch_test_module(path: Path, parent):
    """A launch_testing module for a file defining a marked ``generate_test_description``."""
    if path.suffix != ".py" or not path.name.startswith("test_"):
        return None
    try:
        if "generate_test_description" not in path.read_text(errors="ignore"):
            return None
        from launch_testing.pytest.hooks import find_launch_test_entrypoint, LaunchTestModule
    except (OSError, ImportError):
        return None
    try:  # imports the module; one that skips itself (no rclpy) is left to pytest to report
        entrypoint = find_launch_test_entrypoint(
            path if _PYTEST_MAJOR >= 7 else parent.fspath.__class__(str(path)))
    except (Exception, pytest.skip.Exception):
        return None
    marks = getattr(entrypoint, "pytestmark", []) if entrypoint is not None else []
    names = {m.name for m in marks}
    if "rostest" in names:
        from launch_testing_ros.pytest.hooks import LaunchROSTestModule as module_class
    elif "launch_test" in names:
        module_class = LaunchTestModule
    else:
        return None
    if _PYTEST_MAJOR >= 7:
        module = module_class.from_parent(parent=parent, path=path)
    else:
        module = module_class.from_parent(parent=parent, fspath=parent.fspath.__class__(
            str(path)))
    for mark in marks:
        module.add_marker(getattr(pytest.mark, mark.name).with_args(*mark.args, **mark.kwargs))
    return module


if _PYTEST_MAJOR >= 7:
    def pytest_pycollect_makemodule(module_path, parent):
        """Collect launch_testing modules (pytest >= 7 hook signature)."""
        return _launch_test_module(Path(module_path), parent)
else:
    def pytest_pycollect_makemodule(path, parent):
        """Collect launch_testing modules (pytest 6, ROS 2 Humble)."""
        return _launch_test_module(Path(str(path)), parent)


def pytest_addoption(parser):
    """launch_testing's option, which its test items read."""
    with contextlib.suppress(ValueError):  # launch_testing's own plugin loaded after all
        parser.addoption("--launch-args", action="append", nargs="*", default=[],
                         help="One or more Launch test arguments")
