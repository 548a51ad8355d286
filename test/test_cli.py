# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The ``temcoco`` command line: info and error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from temcoco_core.cli import main
from temcoco_core.cli_args import parse_size


def test_info_json_counts_parameters_and_flops(capsys):
    assert main(["info", "--preset", "official", "--size", "64x48", "--frames", "2",
                 "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["parameters"] == 19_213_417
    assert row["width"] == 64 and row["height"] == 48 and row["frames"] == 2
    # FLOPs scale with the area: 640x480 is 100x 64x48; the released net is ~909 GFLOPs there.
    assert 5.0 < row["gflops_per_frame"] < 15.0
    assert row["gflops_per_clip"] == pytest.approx(2 * row["gflops_per_frame"])


def test_info_table(capsys):
    assert main(["info", "--size", "32x32", "--frames", "1"]) == 0
    out = capsys.readouterr().out
    assert "official" in out and "19,213,417" in out


def test_bad_arguments_give_one_line_errors(capsys):
    assert main(["info", "--preset", "nope", "--size", "32x32"]) == 1
    assert "unknown preset 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["info", "--size", "big"])
    with pytest.raises(Exception, match="640x480"):
        parse_size("640")


def test_console_script_module_runs():
    out = subprocess.run([sys.executable, "-m", "temcoco_core.cli", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "info" in out
