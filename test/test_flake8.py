# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""flake8 as ``ament_flake8`` runs it, with the package's configuration (setup.cfg [flake8]).

ament_flake8's own settings (line length 99, Google import order, its ignores) plus this
package's explicit conventions: double quotes and Google-style docstrings. With ROS sourced
this is ament_flake8 itself; on a PyPI-only machine, flake8 with the same plugins (the 'lint'
extra); without either the test skips and says so.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the flake8 plugins ament_flake8 depends on (ROS 2 Jazzy's package.xml)
PLUGINS = ("flake8_builtins", "flake8_comprehensions", "flake8_docstrings",
           "flake8_import_order", "flake8_quotes")


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # ament_flake8 excludes dot/underscore folders below the cwd
    try:
        from ament_flake8.main import main_with_errors
    except ImportError:
        main_with_errors = None
    if main_with_errors is not None:
        rc, errors = main_with_errors(argv=["--config", str(REPO / "setup.cfg"), "."])
        assert rc == 0, f"Found {len(errors)} code style errors / warnings:\n" + "\n".join(errors)
        return
    missing = [m for m in ("flake8", *PLUGINS) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"neither ament_flake8 (ROS) nor flake8 with ament's plugins is installed "
                    f"(missing: {', '.join(missing)}; pip install -e '.[lint]')")
    run = subprocess.run([sys.executable, "-m", "flake8", "--config", "setup.cfg", "."],
                         cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, f"flake8 found problems:\n{run.stdout}{run.stderr}"
