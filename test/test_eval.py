# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco eval``: tables, CSVs and plots from baselines, stored outputs and bad input."""

import argparse
import csv
import importlib.util
import json
import math
from pathlib import Path
import weakref

import cv2
import numpy as np
import pytest
import torch

from temcoco_core.evaluate import (
    add_parser,
    EvalConfig,
    EvalError,
    EvalResult,
    evaluate,
    load_fused_outputs,
    markdown_table,
    run,
)
from temcoco_core.io.datasets import (
    dataset_loaders,
    FusionSequence,
    load_dataset,
    SequenceLoader,
)
from temcoco_core.io.video import VideoWriter, write_frame_folder

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m3svd" / "val"
#: matplotlib is the 'eval' extra, not a rosdep dependency: without it eval says it skipped plots
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", *argv])


def _frames(t, h, w, seed):
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (h // 4, w // 4, 3)).astype(np.float32)
    base = cv2.resize(small, (w + 2 * t, h), interpolation=cv2.INTER_CUBIC)
    base = np.clip(base, 0, 255).astype(np.uint8)
    return np.stack([base[:, i:i + w] for i in range(t)])


def _make_dataset(root, seqs=("s1", "s2"), t=4, h=32, w=48):
    for k, s in enumerate(seqs):
        clean = _frames(t, h, w, seed=k)
        ir = _frames(t, h, w, seed=10 + k)[..., 1]
        blur = np.stack([cv2.GaussianBlur(f, (5, 5), 1.5) for f in clean])
        for sub, data in (("visible_Blur", blur), ("visible_Enhance", clean),
                          ("infrared_noise", ir), ("infrared_Enhance", ir)):
            write_frame_folder(root / sub / s, data)
    return root


def _seq(name="x", t=4, h=32, w=48):
    vis = _frames(t, h, w, 0)
    return FusionSequence(name, vis, vis[..., 0].copy())


def test_cli_on_synthetic_dataset(tmp_path):
    root = _make_dataset(tmp_path / "ds")
    out = tmp_path / "out"
    rc = run(_parse([str(root), "--methods", "average,max,laplacian", "--out", str(out),
                     "--quiet"]))
    assert rc == 0
    with (out / "per_sequence.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["sequence"] for r in rows} == {"s1", "s2"}
    for key in ("EN", "SD", "MI", "SSIM", "Qabf", "VIF", "flowD", "tOF", "dirC", "flicker"):
        assert all(not math.isnan(float(r[key])) for r in rows), key
    with (out / "mean.csv").open() as fh:
        mean = list(csv.DictReader(fh))
    assert [r["method"] for r in mean] == ["average", "max", "laplacian"]
    md = (out / "table.md").read_text()
    assert "MI↑" in md and "flowD↓" in md and "**" in md
    assert "feaCD skipped" in md or "feaCD↓" in md
    assert "DIS" in md and "SEA-RAFT" in md
    if HAVE_MATPLOTLIB:
        for kind in ("brightness", "slices", "frames"):
            for s in ("s1", "s2"):
                p = out / "plots" / f"{kind}_{s}.png"
                assert p.is_file() and p.stat().st_size > 1000
    else:  # a workspace with only the rosdep dependencies: said, not failed
        assert "plots skipped" in md
    res = json.loads((out / "results.json").read_text())
    assert res["methods"] == ["average", "max", "laplacian"]


def test_feacd_with_given_weights_and_fused_outputs(tmp_path):
    torch.manual_seed(0)
    from temcoco_core.model.resnet import resnet18

    weights = tmp_path / "r18.pth"
    torch.save(resnet18().state_dict(), weights)
    seq = _seq(t=3, h=32, w=32)
    vis_dir, ir_dir = tmp_path / "vis", tmp_path / "ir"
    write_frame_folder(vis_dir, seq.visible)
    write_frame_folder(ir_dir, seq.infrared)
    fused_dir = tmp_path / "fused"
    write_frame_folder(fused_dir, seq.visible[::-1])
    out = tmp_path / "out"
    rc = run(_parse(["--visible", str(vis_dir), "--infrared", str(ir_dir), "--name", "pair",
                     "--fused", f"rev={fused_dir}", "--methods", "average", "--out", str(out),
                     "--resnet-weights", str(weights), "--no-plots", "--quiet"]))
    assert rc == 0
    with (out / "per_sequence.csv").open() as fh:
        rows = {r["method"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"average", "rev"}
    assert 0 < float(rows["rev"]["feaCD"]) <= 4 and "feaCD_cos" in rows["rev"]
    assert not (out / "plots").exists()
    # a missing explicit weights file is an error, not a silent skip
    rc = run(_parse(["--visible", str(vis_dir), "--infrared", str(ir_dir), "--out", str(out),
                     "--resnet-weights", str(tmp_path / "nope.pth"), "--quiet"]))
    assert rc == 1


def test_fused_output_errors_name_the_sequence(tmp_path, capsys):
    seqs = [_seq("a"), _seq("b")]
    folder = tmp_path / "fused"
    write_frame_folder(folder / "a", seqs[0].visible)
    write_frame_folder(folder / "b", seqs[1].visible[:3])  # one frame short
    with pytest.raises(EvalError, match="sequence b: .* 3 frames, shorter than its sources"):
        load_fused_outputs(folder, seqs)
    with VideoWriter(folder / "b.mp4", fps=10) as w:  # video per sequence, wrong size
        for f in seqs[1].visible:
            w.write(cv2.resize(f, (40, 32)))
    (folder / "b").rename(folder / "old_b")
    with pytest.raises(EvalError, match="sequence b: .* is 40x32"):
        load_fused_outputs(folder, seqs)
    with pytest.raises(EvalError, match="sequence c: no fused output"):
        load_fused_outputs(folder, [seqs[0], _seq("c")])
    with pytest.raises(EvalError, match="one sequence but 2"):
        load_fused_outputs(folder / "a", seqs)
    with pytest.raises(EvalError, match="fused output not found"):
        load_fused_outputs(tmp_path / "none", seqs)
    with pytest.raises(EvalError, match="sequence a: method short"):
        evaluate([seqs[0]], {"short": lambda s: s.visible[:2]},
                 EvalConfig(plots=False, progress=False, feacd=False))


def test_bad_dataset_input_is_reported(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc = run(_parse([str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet"]))
    assert rc == 1 and "not a recognised dataset" in capsys.readouterr().err
    root = _make_dataset(tmp_path / "ds")
    (root / "infrared_noise" / "s2" / "0003.png").unlink()
    rc = run(_parse([str(root), "--out", str(tmp_path / "o"), "--quiet"]))
    assert rc == 1 and "sequence s2" in capsys.readouterr().err
    rc = run(_parse([str(root), "--methods", "nope", "--out", str(tmp_path / "o"), "--quiet",
                     "--sequences", "s1"]))
    assert rc == 1 and "unknown method 'nope'" in capsys.readouterr().err
    rc = run(_parse([str(root), "--flow", "sea-raft", "--out", str(tmp_path / "o"), "--quiet",
                     "--sequences", "s1"]))
    assert rc == 1 and "unknown flow estimator" in capsys.readouterr().err


def test_nan_metrics_are_reported_not_averaged(tmp_path):
    black = FusionSequence("dark", np.zeros((3, 32, 32, 3), np.uint8),
                           np.zeros((3, 32, 32), np.uint8))
    textured = _seq("lit", t=3, h=32, w=32)
    res, art = evaluate([black, textured], {"average": lambda s: s.visible},
                        EvalConfig(fusion_metrics=("Qabf", "SD"), flow=None, feacd=False,
                                   plots=False, progress=False))
    assert math.isnan(res.mean["average"]["Qabf"]) and not math.isnan(res.mean["average"]["SD"])
    assert any("Qabf is NaN for average on dark" in n for n in res.nan_notes)
    assert "flowD" not in res.metrics and any("--flow none" in n for n in res.notes)
    assert "| NaN |" in markdown_table(res)


def test_markdown_table_bolds_best_per_direction():
    res = EvalResult(
        rows=[], metrics=["MI", "flowD", "bvar"], methods=["a", "b"], sequences=["s"],
        mean={"a": {"MI": 2.0, "flowD": 5.0, "bvar": 1.0, "fuse_s_per_frame": 0.1},
              "b": {"MI": 1.0, "flowD": 3.0, "bvar": 2.0, "fuse_s_per_frame": 0.2}})
    lines = markdown_table(res).splitlines()
    assert lines[0] == "| Method | MI↑ | flowD↓ | bvar | s/frame |"
    assert lines[2] == "| a | **2.0000** | 5.0000 | 1.0000 | 0.1000 |"
    assert lines[3] == "| b | 1.0000 | **3.0000** | 2.0000 | 0.2000 |"


def test_real_m3svd_val_two_sequences(tmp_path):
    if not DATA.is_dir():
        pytest.skip(f"M3SVD val data not present at {DATA}")
    out = tmp_path / "out"
    rc = run(_parse([str(DATA), "--sequences", "0111_1716,0114_1551", "--max-frames", "6",
                     "--methods", "average,max", "--out", str(out), "--no-tof", "--quiet"]))
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    for m in ("average", "max"):
        vals = res["mean"][m]
        assert 5.0 < vals["EN"] < 8.0 and vals["SD"] > 10 and vals["MI"] > 0.3
        assert 0.2 < vals["SSIM"] < 2.0 and 0 < vals["Qabf"] < 1 and vals["flowD"] > 0
    # max keeps more of each source than the plain average (more MI, higher contrast)
    assert res["mean"]["max"]["MI"] > res["mean"]["average"]["MI"]
    assert (out / "plots" / "slices_0114_1551.png").is_file() or not HAVE_MATPLOTLIB


def test_evaluate_holds_one_sequence_at_a_time(tmp_path):
    """Sequences given as loaders are read when their turn comes.

    And each is freed (with the methods' outputs) before the next is read; the numbers are those of
    loaded sequences.
    """
    root = _make_dataset(tmp_path / "ds", seqs=("s1", "s2", "s3"))
    loaders = dataset_loaders(root)
    assert [loader.name for loader in loaders] == ["s1", "s2", "s3"]
    events, alive = [], []

    def watched(loader):
        def load():
            assert all(ref() is None for ref in alive), "previous sequence still in memory"
            seq = loader.load()
            alive.append(weakref.ref(seq))
            events.append(f"load {seq.name}")
            return seq
        return SequenceLoader(loader.name, load)

    def average(seq):
        events.append(f"fuse {seq.name}")
        return ((seq.visible.astype(np.uint16) + seq.infrared[..., None] + 1) // 2
                ).astype(np.uint8)

    cfg = EvalConfig(flow="dis", feacd=False, plots=False, progress=False)
    lazy, art = evaluate([watched(loader) for loader in loaders], {"average": average}, cfg)
    assert events == ["load s1", "fuse s1", "load s2", "fuse s2", "load s3", "fuse s3"]
    eager, _ = evaluate(load_dataset(root), {"average": average}, cfg)
    strip = [{k: v for k, v in r.items() if k != "fuse_s"} for r in lazy.rows]
    assert strip == [{k: v for k, v in r.items() if k != "fuse_s"} for r in eager.rows]
    assert lazy.sequences == ["s1", "s2", "s3"] and lazy.notes == eager.notes
    # the plots' frames are copies, not views that would keep a whole video alive
    assert all(art[s]["average"]["frame"].base is None for s in lazy.sequences)
