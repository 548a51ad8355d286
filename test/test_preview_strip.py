# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""scripts/preview_strip.py: the docs preview strip (visible | thermal | fused ...)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "preview_strip.py"


def _module():
    spec = importlib.util.spec_from_file_location("preview_strip", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_strip_panels_in_order_scaled_and_labelled():
    mod = _module()
    vis = np.full((96, 128, 3), 10, np.uint8)
    ir = np.full((96, 128), 200, np.uint8)
    a = np.full((96, 128, 3), 90, np.uint8)
    b = np.full((96, 128, 3), 160, np.uint8)
    strip = mod.build_strip(vis, ir, [("old", a), ("new", b)], scale=0.5)
    assert strip.shape == (48, 4 * 64, 3)
    bottom = strip[-1]                                   # below the label bar
    assert [int(bottom[x, 0]) for x in (5, 69, 133, 197)] == [10, 200, 90, 160]
    assert strip[2, 2].tolist() == [0, 0, 0]             # the label bar
    with pytest.raises(ValueError, match="panel 'bad'"):
        mod.build_strip(vis, ir, [("bad", a[:10])])
