# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training-curve plot and summary (temcoco_core.train.curves)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from temcoco_core.train.curves import curve_summary, main, plot_curves, read_log, smooth


def _run(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    lines = ["step,lr,sec_per_it,total,salience"]
    for s in range(10, 210, 10):
        lines.append(f"{s},0.0003,0.5,{10 - s / 40},{1 / s}")
    lines.append("200,0.0003,0.5,4.0,0.004")         # a resumed run repeating step 200
    (d / "train_log.csv").write_text("\n".join(lines) + "\n")
    (d / "eval_log.csv").write_text("step,MI,framewise_MI,flicker\n100,1.4,1.5,0.5\n"
                                    "200,1.9,1.8,\n")
    return d


def test_read_log_orders_dedups_and_keeps_blanks(tmp_path):
    d = _run(tmp_path)
    log = read_log(d / "train_log.csv")
    assert log["step"][0] == 10 and log["step"][-1] == 200 and len(log["step"]) == 20
    assert log["total"][-1] == 4.0                     # the later row of step 200 wins
    ev = read_log(d / "eval_log.csv")
    assert math.isnan(ev["flicker"][1])
    with pytest.raises(ValueError, match="step"):
        (d / "bad.csv").write_text("a,b\n1,2\n")
        read_log(d / "bad.csv")


def test_smooth_is_a_trailing_mean_ignoring_nan():
    v = np.array([1.0, 3.0, np.nan, 5.0])
    assert np.allclose(smooth(v, 2), [1.0, 2.0, 3.0, 5.0])
    assert np.array_equal(smooth(v, 1), v, equal_nan=True)


def test_plot_and_summary(tmp_path):
    d = _run(tmp_path)
    png = plot_curves(d, window=3)
    assert png == d / "curves.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = curve_summary(d, window=1)
    assert s["steps"] == 200
    assert s["train"]["total"]["first"] == pytest.approx(9.75)
    assert s["train"]["total"]["last"] == 4.0 and s["train"]["total"]["min"] == 4.0
    assert "lr" not in s["train"]
    assert s["eval"]["MI"] == {"steps": [100, 200], "values": [1.4, 1.9]}
    assert main([str(d), "--out", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").is_file()
    assert main([str(tmp_path / "nothing")]) == 2
