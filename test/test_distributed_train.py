# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Data-parallel training on CPU (gloo, 2 processes).

Parity with one process on the same global batch, identical ranks, resume on another world size,
Ctrl-C and a failing rank.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
import signal
import socket
import traceback

import numpy as np
import pytest
import torch
from torch import nn
import torch.multiprocessing as mp

from temcoco_core.io.datasets import FusionSequence
from temcoco_core.train import distributed
from temcoco_core.train.config import config_from_dict
from temcoco_core.train.distributed import ShardedClipSampler
from temcoco_core.train.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(),
                                reason="torch.distributed is not available")


class TinyFuser(nn.Module):
    """(B, T, 3, H, W) x 2 -> (B, T, 3, H, W); can raise SIGINT or fail at a given call."""

    def __init__(self, interrupt_at: int | None = None, fail_at: int | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv3d(6, 3, (2, 3, 3), padding=(0, 1, 1))
        self.calls = 0
        self.interrupt_at, self.fail_at = interrupt_at, fail_at

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        if self.calls == self.fail_at:
            raise RuntimeError("injected failure")
        x = torch.cat([visible, infrared], 2).transpose(1, 2)
        x = nn.functional.pad(x, (0, 0, 0, 0, 1, 0), mode="replicate")
        return visible + self.conv(x).transpose(1, 2)


def _seqs() -> list[FusionSequence]:
    rng = np.random.default_rng(0)
    return [FusionSequence(f"s{i}", rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
                           rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)) for i in range(2)]


def _cfg(out: Path, steps: int, batch: int, **kw):
    base = {"steps": steps, "batch_size": batch, "data": {"clip_len": 3, "crop": 16},
            "out_dir": str(out), "eval": {"root": None, "every": 0}, "teachers": {"vgg19": None},
            "checkpoint_every": 100, "log_every": 1, "seed": 1, "device": "cpu", "lr": 1e-2}
    base.update(kw)
    return config_from_dict(base)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out: str, steps: int,
               model_kw: dict) -> None:
    """One rank, as torchrun would start it (environment variables), writing its outcome."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    status: dict = {"rank": rank}
    try:
        with distributed.session("cpu", timeout_s=60) as ctx:
            torch.manual_seed(0)
            model = TinyFuser(**model_kw.get(rank, {}))
            trainer = Trainer(_cfg(Path(out) / "run", steps, 1), model=model,
                              sequences=_seqs(), progress=False, dist=ctx)
            result = trainer.fit()
            status.update(step=result.step, interrupted=result.interrupted,
                          world_size=result.world_size, samples=trainer.samples)
            torch.save(model.state_dict(), Path(out) / f"params{rank}.pt")
    except Exception as e:  # reported to the test
        status.update(error=f"{type(e).__name__}: {e}", trace=traceback.format_exc())
    status["group_destroyed"] = not torch.distributed.is_initialized()
    (Path(out) / f"status{rank}.json").write_text(json.dumps(status))


def _launch(tmp_path: Path, steps: int, model_kw: dict | None = None) -> list[dict]:
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, str(tmp_path), steps,
                                                  model_kw or {})) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.is_alive():
            p.kill()
            pytest.fail("a rank hung (no clean shutdown)")
    return [json.loads((tmp_path / f"status{r}.json").read_text()) for r in range(2)]


def _log(run: Path) -> list[dict[str, str]]:
    with (run / "train_log.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_sharded_sampler_covers_the_global_batch():
    ranks = [list(ShardedClipSampler(10, 3, 2, r, 2)) for r in range(2)]
    assert ranks[0] == [10, 11, 14, 15, 18, 19] and ranks[1] == [12, 13, 16, 17, 20, 21]
    assert sorted(ranks[0] + ranks[1]) == list(ShardedClipSampler(10, 3, 4))
    with pytest.raises(ValueError):
        ShardedClipSampler(0, 1, 1, 2, 2)


def test_two_gloo_ranks_match_one_process_and_resume_on_one(tmp_path):
    steps = 3
    status = _launch(tmp_path, steps)
    for s in status:
        assert "error" not in s, s.get("trace")
        assert s["step"] == steps and s["world_size"] == 2 and s["group_destroyed"]
    p0 = torch.load(tmp_path / "params0.pt", weights_only=True)
    p1 = torch.load(tmp_path / "params1.pt", weights_only=True)
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k                      # ranks stay identical
    run = tmp_path / "run"
    info = json.loads((run / "checkpoint.json").read_text())
    assert info["world_size"] == 2 and info["backend"] == "gloo"
    assert info["global_batch_size"] == 2 and info["samples"] == 2 * steps
    dist_log = _log(run)
    assert [r["world_size"] for r in dist_log] == ["2"] * steps

    # one process on the same global batch (2 clips per step): same losses, same weights
    torch.manual_seed(0)
    single = Trainer(_cfg(tmp_path / "single", steps, 2), model=TinyFuser(),
                     sequences=_seqs(), progress=False)
    single.fit()
    one_log = _log(tmp_path / "single")
    for a, b in zip(dist_log, one_log, strict=True):
        assert float(a["total"]) == pytest.approx(float(b["total"]), rel=1e-4, abs=1e-6)
    for k, v in single.model.state_dict().items():
        assert torch.allclose(p0[k], v, atol=1e-5), k

    # the 2-process checkpoint resumes on one process (batch 2: the same global batch) and
    # continues the clip stream: identical to the one-process run continued
    torch.manual_seed(5)                                     # overwritten by the checkpoint
    resumed = Trainer(_cfg(run, steps + 2, 2), model=TinyFuser(), sequences=_seqs(),
                      progress=False)
    out = resumed.fit(resume=True)
    assert out.step == steps + 2 and out.world_size == 1 and resumed.samples == 2 * (steps + 2)
    single.config.steps = steps + 2                          # the same object goes on
    single.fit()
    for k, v in single.model.state_dict().items():
        assert torch.allclose(resumed.model.state_dict()[k], v, atol=1e-5), k
    info = json.loads((run / "checkpoint.json").read_text())
    assert info["world_size"] == 1 and info["step"] == steps + 2 and info["complete"]
    assert [r["world_size"] for r in _log(run)] == ["2"] * steps + ["1", "1"]


def test_ctrl_c_on_one_rank_stops_both_after_the_same_step(tmp_path):
    status = _launch(tmp_path, 10, {1: {"interrupt_at": 2}})
    for s in status:
        assert "error" not in s, s.get("trace")
        assert s["interrupted"] and s["step"] == 2 and s["group_destroyed"]
    info = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert info["step"] == 2 and not info["complete"] and info["world_size"] == 2


def test_a_failing_rank_stops_the_other_which_keeps_a_checkpoint(tmp_path):
    status = _launch(tmp_path, 10, {1: {"fail_at": 3}})
    assert "injected failure" in status[1]["error"]
    assert "error" in status[0]                            # rank 0 did not hang or go on
    for s in status:
        assert s["group_destroyed"]
    info = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert info["step"] == 2 and not info["complete"]      # the last completed step


TINY_EDGE = {"channels": [4, 8, 8], "semantic_channels": 8, "attention_dim": 8, "num_heads": 1,
             "window": 2, "temporal_heads": 1, "temporal_dim_head": 4, "history": 3,
             "deformable_groups": 2}


def test_torchrun_cli_trains_the_edge_preset_on_two_processes(tmp_path):
    """The documented command: ``torchrun --nproc_per_node 2 -m temcoco_core.cli train``."""
    import subprocess
    import sys

    import cv2

    rng = np.random.default_rng(0)
    for sub in ("visible", "infrared"):
        d = tmp_path / "data" / sub / "seq0"
        d.mkdir(parents=True)
        for i in range(6):
            cv2.imwrite(str(d / f"{i:04d}.png"),
                        rng.integers(0, 256, (32, 32, 3) if sub == "visible" else (32, 32),
                                     np.uint8))
    cfg = tmp_path / "train.yaml"
    cfg.write_text(json.dumps({
        "preset": "edge", "model": TINY_EDGE, "steps": 2, "batch_size": 1,
        "data": {"sources": [{"root": str(tmp_path / "data")}], "clip_len": 2, "crop": 16},
        "eval": {"root": None}, "teachers": {"vgg19": None}, "device": "cpu",
        "out_dir": str(tmp_path / "run"), "threads": 1, "log_every": 1}))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_port", str(_free_port()), "-m", "temcoco_core.cli", "train",
         "--config", str(cfg), "--no-progress", "--dist-timeout", "60"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])   # printed by rank 0 only
    assert summary["world_size"] == 2 and summary["step"] == 2
    info = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert info["world_size"] == 2 and info["samples"] == 4 and info["complete"]
    assert "world size 2" in proc.stderr
