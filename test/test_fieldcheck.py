# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The field-check benchmark (python -m temcoco_core.fieldcheck) on small sizes."""

from __future__ import annotations

import json

import pytest

from temcoco_core.fieldcheck import main


def test_fieldcheck_fast_prints_the_issue_11_numbers(capsys: pytest.CaptureFixture) -> None:
    assert main(["jitter", "corrupt_bag", "rss", "--fast"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["jitter"]["resets"] == 0 and res["jitter"]["reorders"] > 0
    assert res["corrupt_bag"]["frames_fused"] == res["corrupt_bag"]["readable_pairs"] == 7
    assert res["rss"][0]["result"].startswith("FrameTooLargeError")
    assert res["rss"][0]["growth_mb"] < 100
    with pytest.raises(SystemExit):
        main(["nonsense"])
