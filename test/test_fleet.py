# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Many-input eval and replay: input expansion, shards, the worker pool's failure handling.

And ``temcoco eval --workers / --shard / --merge`` giving the tables of one process.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import cv2
import pytest

from temcoco_core.cli import main
from temcoco_core.fleet.inputs import (
    expand_inputs,
    FleetInput,
    InputError,
    parse_shard,
    select_shard,
)
from temcoco_core.fleet.runner import run_inputs, SetupError
from temcoco_core.io.synthetic import generate_scene, SyntheticSceneConfig, write_synthetic_bag

SCENE = {"width": 48, "height": 32, "frames": 5}


def _dataset(root: Path, names: list[str]) -> Path:
    """A clean-folders dataset (visible/<seq>/*.png + infrared/<seq>/*.png)."""
    for k, name in enumerate(names):
        for i, f in enumerate(generate_scene(SyntheticSceneConfig(**SCENE, seed=k))):
            for stream, img in (("visible", f.visible[:, :, ::-1]), ("infrared", f.thermal)):
                d = root / stream / name
                d.mkdir(parents=True, exist_ok=True)
                if stream == "infrared":
                    lo, hi = float(img.min()), float(img.max())
                    img = ((img - lo) / max(hi - lo, 1e-6) * 255).astype("uint8")
                cv2.imwrite(str(d / f"{i:04d}.png"), img)
    return root


def _bags(folder: Path, n: int) -> list[Path]:
    return [write_synthetic_bag(folder / f"rec{i}", SyntheticSceneConfig(**SCENE, seed=i))
            for i in range(n)]


# ---------------------------------------------------------------------------------- inputs


def test_expand_folders_globs_list_files_and_datasets(tmp_path):
    bags = _bags(tmp_path / "bags", 3)
    data = _dataset(tmp_path / "data", ["s1", "s2"])
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "more.txt").write_text(
        f"# extra recordings\n../bags/rec2\n\n{data}   # the dataset\n")
    got = expand_inputs([str(tmp_path / "bags"), str(tmp_path / "bags" / "rec[01]"),
                         str(tmp_path / "lists" / "more.txt")])
    assert [i.id for i in got] == ["rec0", "rec1", "rec2", "s1", "s2"]   # de-duplicated
    assert [i.kind for i in got] == ["bag"] * 3 + ["sequence"] * 2
    assert got[3].path == str(data) and got[3].sequence == "s1"
    assert [i.id for i in expand_inputs(["@" + str(tmp_path / "lists" / "more.txt")],
                                        sequences=["s2"])] == ["rec2", "s2"]
    # bags only (replay): the dataset root is not an input
    with pytest.raises(InputError, match="no bag in this folder"):
        expand_inputs([str(data)], bags_only=True)
    assert [i.id for i in expand_inputs([str(b) for b in bags], bags_only=True)] == [
        "rec0", "rec1", "rec2"]


def test_expand_errors_and_unique_ids(tmp_path):
    with pytest.raises(InputError, match="not found"):
        expand_inputs([str(tmp_path / "nope")])
    with pytest.raises(InputError, match="matches nothing"):
        expand_inputs([str(tmp_path / "x*")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no bag or dataset root"):
        expand_inputs([str(tmp_path / "empty")])
    _bags(tmp_path / "a", 1)
    _bags(tmp_path / "b", 1)
    ids = [i.id for i in expand_inputs([str(tmp_path / "a"), str(tmp_path / "b")])]
    assert ids == ["a_rec0", "b_rec0"]
    with pytest.raises(InputError, match="sequence"):
        expand_inputs([str(tmp_path / "a")], sequences=["missing"])


def test_shards_split_the_list_round_robin():
    items = [FleetInput(f"i{k}", "bag", f"/b/{k}") for k in range(5)]
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "1", "-1/2", "a/b", "0/0"):
        with pytest.raises(ValueError):
            parse_shard(bad)
    assert parse_shard("auto", {"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)      # torchrun
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1",
             "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "3"}  # --array=1-5:2
    assert parse_shard("auto", slurm) == (2, 3)
    with pytest.raises(ValueError, match="RANK/WORLD_SIZE"):
        parse_shard("auto", {})
    parts = [select_shard(items, i, 3) for i in range(3)]
    assert [[x.id for x in p] for p in parts] == [["i0", "i3"], ["i1", "i4"], ["i2"]]
    assert sorted(x.id for p in parts for x in p) == [x.id for x in items]


# ---------------------------------------------------------------------------------- runner


def _setup(config: dict) -> dict:
    if config.get("fail_setup"):
        raise RuntimeError("no such model")
    return {"scale": config["scale"]}


def _task(state: dict, inp: FleetInput) -> dict:
    if inp.id == "bad":
        raise ValueError("corrupt input")
    if inp.id == "crash":
        os._exit(3)                                   # a worker process dying (segfault...)
    return {"frames": state["scale"] * int(inp.path), "pid": os.getpid()}


def test_pool_isolates_failures_and_dead_workers():
    items = [FleetInput(i, "bag", str(n)) for i, n in
             (("a", 1), ("bad", 2), ("b", 3), ("crash", 4), ("c", 5), ("d", 6))]
    seen = []
    outs = run_inputs(items, _setup, _task, {"scale": 10}, workers=2, progress=False,
                      on_outcome=lambda o: seen.append(o.id))
    assert [o.id for o in outs] == [i.id for i in items] and sorted(seen) == sorted(
        i.id for i in items)
    by = {o.id: o for o in outs}
    assert {k for k, o in by.items() if o.ok} == {"a", "b", "c", "d"}
    assert [by[k].frames for k in "abcd"] == [10, 30, 50, 60]
    assert "ValueError: corrupt input" == by["bad"].error and "traceback" in by["bad"].info
    assert "died" in by["crash"].error
    assert by["a"].info["pid"] != os.getpid()          # ran in worker processes


def test_setup_failure_stops_the_run():
    items = [FleetInput("a", "bag", "1")]
    for workers in (1, 2):
        with pytest.raises(SetupError, match="no such model"):
            run_inputs(items, _setup, _task, {"fail_setup": True}, workers=workers,
                       progress=False)


# --------------------------------------------------------------------------------- CLI eval


def _table(out: Path) -> list[dict[str, str]]:
    """per_sequence.csv without the timing column."""
    with (out / "per_sequence.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "fuse_s"} for r in csv.DictReader(f)]


def _md_table(out: Path) -> list[str]:
    """Table.md's table without the s/frame column."""
    return [line.rsplit("|", 2)[0] for line in (out / "table.md").read_text().splitlines()
            if line.startswith("|")]


def _means(out: Path) -> list[dict[str, str]]:
    with (out / "mean.csv").open(newline="") as f:
        return [{k: v for k, v in r.items() if k != "fuse_s_per_frame"}
                for r in csv.DictReader(f)]


EVAL = ["--methods", "average,max", "--no-feacd", "--flow", "dis-ultrafast", "--quiet"]


def test_eval_workers_and_shards_merge_to_the_single_run_table(tmp_path, capsys):
    data = _dataset(tmp_path / "data", ["s1", "s2", "s3", "s4"])
    single = tmp_path / "single"
    assert main(["eval", str(data), *EVAL, "--out", str(single)]) == 0   # the plain path
    assert not (single / "fleet.json").exists()
    reference = _table(single)
    assert [r["sequence"] for r in reference] == ["s1", "s1", "s2", "s2", "s3", "s3", "s4",
                                                  "s4"]

    pooled = tmp_path / "pooled"
    assert main(["eval", str(data), *EVAL, "--workers", "2", "--no-plots",
                 "--out", str(pooled)]) == 0
    assert _table(pooled) == reference and _means(pooled) == _means(single)
    manifest = json.loads((pooled / "fleet.json").read_text())
    assert manifest["ok"] == 4 and manifest["frames"] == 4 * SCENE["frames"]
    assert sorted(p.name for p in (pooled / "inputs").iterdir()) == ["s1", "s2", "s3", "s4"]

    shards = [tmp_path / "shard0", tmp_path / "shard1"]
    for i, d in enumerate(shards):
        assert main(["eval", str(data), *EVAL, "--shard", f"{i}/2", "--no-plots",
                     "--out", str(d)]) == 0
    assert list(json.loads((shards[1] / "fleet-shard1of2.json").read_text())["inputs"]) == [
        "s2", "s4"]
    assert not (shards[1] / "per_sequence.csv").exists()         # reported by --merge
    merged = tmp_path / "merged"
    assert main(["eval", "--merge", *map(str, shards), "--out", str(merged)]) == 0
    assert _table(merged) == reference and _means(merged) == _means(single)
    plots = sorted(p.name for p in (merged / "plots").iterdir())
    assert plots == sorted(p.name for p in (single / "plots").iterdir()) and plots
    assert _md_table(merged) == _md_table(single) and len(_md_table(single)) == 4
    results = [json.loads((d / "results.json").read_text()) for d in (single, merged)]
    assert results[0]["input_alignment"] == results[1]["input_alignment"]
    assert results[0]["notes"] == results[1]["notes"]

    # a missing shard is named, and the exit status says the merge is incomplete
    assert main(["eval", "--merge", str(shards[0]), "--out", str(tmp_path / "part")]) == 1
    assert "shard(s) 1/2 not given" in (tmp_path / "part" / "table.md").read_text()


def test_eval_one_bad_input_does_not_stop_the_others(tmp_path, capsys):
    _bags(tmp_path / "bags", 2)
    (tmp_path / "bags" / "broken").mkdir()
    (tmp_path / "bags" / "broken" / "metadata.yaml").write_text("not: [a bag")
    out = tmp_path / "out"
    rc = main(["eval", str(tmp_path / "bags"), *EVAL, "--no-plots", "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 of 3 input(s) failed" in err and "broken:" in err
    assert [r["sequence"] for r in _table(out)] == ["rec0", "rec0", "rec1", "rec1"]
    manifest = json.loads((out / "fleet.json").read_text())
    assert manifest["inputs"]["broken"]["status"] == "failed"
    assert "broken" in manifest["inputs"]["broken"]["error"]

    # a rerun with --skip-done keeps the finished inputs and tries the failed one again
    assert main(["eval", str(tmp_path / "bags"), *EVAL, "--no-plots", "--out", str(out),
                 "--skip-done"]) == 1
    manifest = json.loads((out / "fleet.json").read_text())
    assert [manifest["inputs"][i].get("reused") for i in ("rec0", "rec1", "broken")] == [
        True, True, None]
    assert manifest["inputs"]["broken"]["status"] == "failed"
    assert [r["sequence"] for r in _table(out)] == ["rec0", "rec0", "rec1", "rec1"]


def test_eval_workers_save_fused_videos(tmp_path, capsys):
    data = _dataset(tmp_path / "data", ["s1", "s2"])
    out = tmp_path / "out"
    assert main(["eval", str(data), *EVAL, "--workers", "1", "--no-plots", "--save-fused",
                 "--out", str(out)]) == 0
    videos = sorted(p.relative_to(out).as_posix() for p in (out / "fused").rglob("*.mp4"))
    assert len(videos) == 4 and {v.rsplit("/", 1)[1] for v in videos} == {"s1.mp4", "s2.mp4"}


# ------------------------------------------------------------------------------- CLI replay


def test_replay_many_bags_one_output_each(tmp_path, capsys):
    _bags(tmp_path / "bags", 3)
    (tmp_path / "list.txt").write_text("bags/rec2\nbags/rec0\n")
    out = tmp_path / "fused"
    rc = main(["replay", str(tmp_path / "list.txt"), str(tmp_path / "bags" / "rec1"),
               "-o", str(out),
               "--engine", "average", "--workers", "2", "--shard", "0/1"])
    assert rc == 0
    for name in ("rec2", "rec0", "rec1"):
        summary = json.loads((out / f"{name}.json").read_text())
        assert summary["frames_written"] == SCENE["frames"]
        assert (out / name / "metadata.yaml").is_file()
    manifest = json.loads((out / "fleet.json").read_text())
    assert [i["id"] for i in manifest["all_inputs"]] == ["rec2", "rec0", "rec1"]
    assert manifest["ok"] == 3 and manifest["frames"] == 3 * SCENE["frames"]
    assert "3/3 bag(s)" in capsys.readouterr().out
    (out / "rec0.json").unlink()                        # as if rec0 had been interrupted
    assert main(["replay", str(tmp_path / "bags"), "-o", str(out), "--engine", "average",
                 "--skip-done"]) == 0
    manifest = json.loads((out / "fleet.json").read_text())
    assert {i: r.get("reused") for i, r in manifest["inputs"].items()} == {
        "rec0": None, "rec1": True, "rec2": True}
    assert json.loads((out / "rec0.json").read_text())["frames_written"] == SCENE["frames"]
