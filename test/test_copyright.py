# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Copyright and license headers as ``ament_copyright`` checks them.

Every Python file starts with the short MIT header ament_copyright knows (its ``mit`` license,
second file header), pointing at the LICENSE file. With ROS sourced this is ament_copyright
itself; elsewhere the same rule is checked here directly.
"""

from __future__ import annotations

import os
from pathlib import Path
import re

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the file header (after the copyright line) of ament_copyright's MIT license
MIT_HEADER = ("Use of this source code is governed by an MIT-style license that can be found in "
              "the LICENSE file or at https://opensource.org/licenses/MIT.")
COPYRIGHT = re.compile(r"^# Copyright(?: \(c\))? \d{4}(?:-\d{4})?(?:, ?\d{4})* \S.*$")


def python_files() -> list[Path]:
    """Every .py file of the package (folders starting with "." or "_" skipped, as ament)."""
    out = []
    for root, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        out += [Path(root) / f for f in sorted(files) if f.endswith(".py")]
    return out


def header_problem(path: Path) -> str:
    """``""`` when ``path`` starts (after a shebang) with a copyright line and the header."""
    lines = path.read_text().splitlines()
    if not any(line.strip() for line in lines):
        return ""  # empty files need no header (ament: "file empty", not an error)
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    block = []
    for line in lines:
        if not line.startswith("#"):
            break
        block.append(line)
    if not block or not COPYRIGHT.match(block[0]):
        return "could not find copyright notice in the first comment block"
    text = " ".join(line.lstrip("#").strip() for line in block[1:] if line.strip("# "))
    if MIT_HEADER not in text:
        return "no MIT license header after the copyright line"
    return ""


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    try:
        from ament_copyright.main import main
    except ImportError:
        main = None
    if main is not None:
        assert main(argv=["."]) == 0, "Found errors (see the output above)"
    problems = [f"{p.relative_to(REPO)}: {why}" for p in python_files()
                if (why := header_problem(p))]
    assert not problems, "\n".join(problems)
    assert "Permission is hereby granted, free of charge" in (REPO / "LICENSE").read_text()
    assert "under the MIT license" in (REPO / "CONTRIBUTING.md").read_text()
