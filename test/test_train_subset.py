# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training-data subset for GPU sessions (temcoco_core.train.subset, scripts/train_gpu.sh)."""

from __future__ import annotations

import json
import os
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest

from temcoco_core.train.subset import build_subset, main, SubsetError

REPO = Path(__file__).resolve().parents[1]
VAL_FOLDERS = ("visible_Blur", "infrared_noise", "visible_Enhance", "infrared_Enhance")


def _video(path: Path, frames: int, h: int = 64, w: int = 64, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    rng = np.random.default_rng(seed)
    for _ in range(frames):
        out.write(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    out.release()


def _data(root: Path, pairs: dict[str, int], val: tuple[str, ...] = ("a", "b", "c")) -> None:
    for i, (name, frames) in enumerate(pairs.items()):
        _video(root / "test" / "visible" / f"{name}.mp4", frames, seed=i)
        _video(root / "test" / "infrared" / f"{name}.mp4", frames, seed=10 + i)
    rng = np.random.default_rng(1)
    for seq in val:
        for folder in VAL_FOLDERS:
            d = root / "val" / folder / seq
            d.mkdir(parents=True)
            for t in range(4):
                shape = (64, 64) if folder.startswith("infrared") else (64, 64, 3)
                cv2.imwrite(str(d / f"{t:04d}.png"), rng.integers(0, 256, shape, np.uint8))


def test_subset_copies_pairs_and_val_frames_within_budget(tmp_path):
    _data(tmp_path, {"s1": 6, "s2": 6})
    out = tmp_path / "subset"
    man = build_subset(out, [tmp_path / "test"], tmp_path / "val", val_count=2, val_frames=2,
                       exclude=("a",))
    assert man.train_sequences == ["s1", "s2"] and man.val_sequences == ["b", "c"]
    assert (out / "train" / "visible" / "s1.mp4").read_bytes() == \
        (tmp_path / "test" / "visible" / "s1.mp4").read_bytes()
    assert sorted(p.name for p in (out / "val" / "infrared_noise" / "b").iterdir()) == \
        ["0000.png", "0001.png"]
    assert not (out / "val" / "visible_Blur" / "a").exists()
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".json")
    assert man.total_bytes == disk <= man.max_bytes
    saved = json.loads((out / "manifest.json").read_text())
    assert set(saved["files"]) == {str(p.relative_to(out)) for p in out.rglob("*")
                                   if p.is_file() and p.name != "manifest.json"}
    # the subset is a valid training source and val root
    from temcoco_core.io.datasets import load_m3svd_val
    from temcoco_core.train.data import DataSource, load_sources

    seqs = load_sources([DataSource(str(out / "train"), kind="videos")], progress=False)
    assert [s.num_frames for s in seqs] == [6, 6]
    assert [s.name for s in load_m3svd_val(out / "val")] == ["b", "c"]


def test_subset_budget_skips_whole_pairs_and_refuses_overwrite(tmp_path):
    _data(tmp_path, {"small": 2, "big": 40})
    pair = {n: sum((tmp_path / "test" / m / f"{n}.mp4").stat().st_size
                   for m in ("visible", "infrared")) for n in ("small", "big")}
    out = tmp_path / "subset"
    man = build_subset(out, [tmp_path / "test"], None, max_bytes=pair["small"] + 10)
    assert man.train_sequences == ["small"] and "big" in man.skipped[0]
    with pytest.raises(SubsetError, match="not empty"):
        build_subset(out, [tmp_path / "test"], None)
    with pytest.raises(SubsetError, match="fits"):
        build_subset(out, [tmp_path / "test"], None, max_bytes=100, overwrite=True)
    with pytest.raises(SubsetError, match="video-pair root"):
        build_subset(tmp_path / "x", [tmp_path / "val"], None)
    assert main(["--out", str(tmp_path / "y"), "--train", str(tmp_path / "nothing"),
                 "--val", "none"]) == 2


def test_train_gpu_script_dry_run_trains_resumes_and_evaluates(tmp_path):
    _data(tmp_path, {"s1": 6})
    subset = tmp_path / "subset"
    build_subset(subset, [tmp_path / "test"], tmp_path / "val", val_count=1, val_frames=3)
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path / "run"),
           "SUBSET": str(subset), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "scripts" / "train_gpu.sh"), "--dry-run"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "dry run: resumed to step 4" in proc.stdout
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 4
    mean = (tmp_path / "run" / "eval_dry" / "mean.csv").read_text()
    assert "salience" in mean.splitlines()[0]
    # without a subset the script says how to build one
    env["SUBSET"] = str(tmp_path / "missing")
    bad = subprocess.run(["bash", str(REPO / "scripts" / "train_gpu.sh")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "temcoco_core.train.subset" in bad.stderr
