# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Output path safety (temcoco_core.io.outputs + BagWriter), issue 11 case 8."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from temcoco_core.io.bag import BagError, BagReader, BagWriter
from temcoco_core.io.outputs import (
    check_output_path,
    is_temcoco_bag,
    OutputPathError,
    WRITER_KEY,
)


def _bag(path: Path, ours: bool = True) -> Path:
    if ours:
        with BagWriter(path) as w:
            w.write_image("/x", np.zeros((4, 4), np.uint8), "mono8", 1)
    else:  # a bag somebody else recorded (no temcoco marker)
        from rosbags.rosbag2 import Writer

        from temcoco_core.io.bag import get_typestore
        with Writer(path, version=8) as w:
            w.add_connection("/x", "std_msgs/msg/String", typestore=get_typestore())
    return path


def test_our_bags_are_marked_and_recognised(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "out")
    assert WRITER_KEY in (bag / "metadata.yaml").read_text()
    assert is_temcoco_bag(bag) == (True, "")
    with BagReader(bag) as r:  # still an ordinary, readable bag
        assert r.message_count == 1
    assert is_temcoco_bag(_bag(tmp_path / "foreign", ours=False))[0] is False


def test_overwrite_replaces_only_a_bag_written_by_us(tmp_path: Path) -> None:
    bag = _bag(tmp_path / "out")
    with BagWriter(bag, overwrite=True) as w:
        w.write_image("/y", np.zeros((4, 4), np.uint8), "mono8", 2)
    with BagReader(bag) as r:
        assert set(r.topics) == {"/y"}


@pytest.mark.parametrize("what", ["foreign_bag", "user_folder", "our_bag_with_user_file",
                                  "plain_file"])
def test_overwrite_refuses_everything_else_and_deletes_nothing(tmp_path: Path,
                                                               what: str) -> None:
    target = tmp_path / "target"
    if what == "foreign_bag":
        _bag(target, ours=False)
    elif what == "user_folder":
        target.mkdir()
        (target / "thesis.tex").write_text("years of work")
        (target / "sub").mkdir()
    elif what == "our_bag_with_user_file":
        _bag(target)
        (target / "notes.txt").write_text("mine")
    else:
        target.write_text("a file")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(BagError, match="refusing to overwrite|not a bag"):
        BagWriter(target, overwrite=True)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_output_may_not_be_contain_or_sit_inside_an_input(tmp_path: Path) -> None:
    src = _bag(tmp_path / "data" / "in")
    for out in (src, tmp_path / "data", tmp_path / "data" / "in" / "sub"):
        with pytest.raises(BagError, match="the input"):
            BagWriter(out, overwrite=True, inputs=[src])
    assert is_temcoco_bag(src)[0]
    with pytest.raises(OutputPathError, match="is the input"):
        check_output_path(Path(os.path.relpath(src)), inputs=[src], overwrite=True)


def test_unusable_parent_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BagError, match="is a file, not a folder") as err:
        BagWriter(tmp_path / "afile" / "out")
    assert "\n" not in str(err.value)
    if os.geteuid() != 0:  # root writes everywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(BagError, match="not writable"):
            BagWriter(ro / "out")
    # a missing parent is created
    with BagWriter(tmp_path / "new" / "deeper" / "out") as w:
        w.write_image("/x", np.zeros((2, 2), np.uint8), "mono8", 1)
