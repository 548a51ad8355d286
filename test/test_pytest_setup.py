# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The suite under the conditions of ``colcon test`` with ROS sourced.

launch (imported by launch_testing's pytest plugin) installs a logger class whose loggers do
not propagate; ``caplog`` listens on the root logger. The conftest's fixture must keep the
package's log-checking tests working anyway.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parents[1]

FAKE_LAUNCH = """
import logging

class NonPropagatingLogger(logging.getLoggerClass()):  # what launch.logging installs
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.propagate = False

logging.setLoggerClass(NonPropagatingLogger)
"""

CAPLOG_TEST = """
import logging


def test_sees_a_logger_created_after_launch(caplog):
    log = logging.getLogger("temcoco_core.created_during_the_test")
    with caplog.at_level(logging.WARNING, logger="temcoco_core.created_during_the_test"):
        log.warning("visible")
    assert "visible" in caplog.text
"""


def test_caplog_works_with_launchs_logger_class(tmp_path: Path) -> None:
    (tmp_path / "fake_launch_plugin.py").write_text(FAKE_LAUNCH)
    test_file = REPO / "test" / "test_zz_generated_caplog.py"
    test_file.write_text(CAPLOG_TEST)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("PYTEST_ADDOPTS", None)  # colcon's (junit file, cache dir) are the outer run's
    try:
        # a module logger created at import (after the plugin) and one created in a test
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "fake_launch_plugin",
             "-p", "no:cacheprovider",
             "test/test_losses.py::test_fusion_loss_logs_skipped_teachers", str(test_file)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    finally:
        test_file.unlink()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "2 passed" in run.stdout
