# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Trainer smoke tests: steps, checkpoints, resume, Ctrl-C, config validation, CLI."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path
import signal

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from temcoco_core.io.datasets import FusionSequence
from temcoco_core.model.vgg import RELU3_1, VGG19
from temcoco_core.train.config import (
    config_from_dict,
    config_to_dict,
    ConfigError,
    load_config,
    TrainConfig,
)
from temcoco_core.train.trainer import add_parser, learning_rate, run, Trainer

REPO = Path(__file__).resolve().parents[1]
TINY_EDGE = {"channels": [4, 8, 8], "semantic_channels": 8, "attention_dim": 8, "num_heads": 1,
             "window": 2, "temporal_heads": 1, "temporal_dim_head": 4, "history": 3,
             "deformable_groups": 2}


class TinyFuser(nn.Module):
    """Same call signature as the presets: (B, T, 3, H, W) x 2 -> (B, T, 3, H, W)."""

    def __init__(self, distill: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv3d(6, 3, (2, 3, 3), padding=(0, 1, 1))
        self.head = nn.Conv2d(6, 256, 4, stride=4) if distill else None
        self.calls = 0
        self.interrupt_at: int | None = None

    def forward(self, visible: torch.Tensor, infrared: torch.Tensor) -> torch.Tensor:
        return self.forward_train(visible, infrared)[0]

    def forward_train(self, visible, infrared):
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)          # as if Ctrl-C arrived mid-step
        x = torch.cat([visible, infrared], 2).transpose(1, 2)          # (B, 6, T, H, W)
        x = nn.functional.pad(x, (0, 0, 0, 0, 1, 0), mode="replicate")  # causal in time
        fused = visible + self.conv(x).transpose(1, 2)
        feats = {}
        if self.head is not None:
            b, t = visible.shape[:2]
            v = self.head(torch.cat([visible, infrared], 2).flatten(0, 1))
            feats = {"visual": {"visible": v, "infrared": v}}
            assert v.shape[0] == b * t
        return fused, feats


def _seqs(n: int = 2, t: int = 8, h: int = 32, w: int = 32) -> list[FusionSequence]:
    rng = np.random.default_rng(0)
    return [FusionSequence(f"s{i}", rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8),
                           rng.integers(0, 256, (t, h, w), dtype=np.uint8)) for i in range(n)]


def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = {"steps": 3, "batch_size": 2, "data": {"clip_len": 3, "crop": 16},
            "out_dir": str(tmp_path / "run"), "eval": {"root": None, "every": 0},
            "teachers": {"vgg19": None}, "checkpoint_every": 2, "log_every": 1, "seed": 1}
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return config_from_dict(base)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_learning_rate_schedule_as_released():
    cfg = TrainConfig()
    assert learning_rate(cfg, 0) == 5e-4 and learning_rate(cfg, 199) == 5e-4
    assert learning_rate(cfg, 200) == pytest.approx(5e-4 * 0.95)
    assert learning_rate(cfg, 1000) == pytest.approx(5e-4 * 0.95**5)


def test_three_steps_checkpoint_then_resume(tmp_path):
    torch.manual_seed(0)
    model = TinyFuser()
    result = Trainer(_cfg(tmp_path), model=model, sequences=_seqs(), progress=False).fit()
    run_dir = tmp_path / "run"
    assert result.step == 3 and not result.interrupted
    for name in ("model.safetensors", "optimizer.pt", "checkpoint.json", "train_log.csv"):
        assert (run_dir / name).is_file(), name
    info = json.loads((run_dir / "checkpoint.json").read_text())
    assert info["step"] == 3 and info["complete"] is True
    assert info["config"]["data"]["clip_len"] == 3 and "total" in info["losses"]
    rows = _rows(run_dir / "train_log.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    assert {"lr", "sec_per_it", "total", "ssim", "temporal_infrared"} <= set(rows[0])
    from temcoco_core.model.checkpoint import read_state_dict

    saved = read_state_dict(run_dir / "model.safetensors")
    assert set(saved) == set(model.state_dict())
    assert torch.equal(saved["conv.weight"], model.conv.weight.detach())

    # resume: continue the step count to 5 with a fresh model object
    torch.manual_seed(123)                               # different init: must be overwritten
    resumed = Trainer(_cfg(tmp_path, steps=5), model=TinyFuser(), sequences=_seqs(),
                      progress=False)
    out = resumed.fit(resume=True)
    assert out.step == 5
    assert json.loads((run_dir / "checkpoint.json").read_text())["step"] == 5
    assert [r["step"] for r in _rows(run_dir / "train_log.csv")] == ["1", "2", "3", "4", "5"]

    # the resumed run equals an uninterrupted 5-step run (same clips, same optimizer state)
    torch.manual_seed(0)
    straight = Trainer(_cfg(tmp_path, steps=5, out_dir=str(tmp_path / "straight")),
                       model=TinyFuser(), sequences=_seqs(), progress=False)
    straight.fit()
    for (k, a), b in zip(resumed.model.state_dict().items(),
                         straight.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_ctrl_c_writes_usable_checkpoint(tmp_path):
    model = TinyFuser()
    model.interrupt_at = 2
    trainer = Trainer(_cfg(tmp_path, steps=10, checkpoint_every=100), model=model,
                      sequences=_seqs(), progress=False)
    # what was installed before (Python's default_int_handler, or SIG_IGN when the test run
    # itself was started in the background by a non-interactive shell)
    before = signal.getsignal(signal.SIGINT)
    result = trainer.fit()
    assert result.interrupted and result.step == 2
    info = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert info["step"] == 2 and info["complete"] is False
    assert signal.getsignal(signal.SIGINT) is before                    # handler restored
    again = Trainer(_cfg(tmp_path, steps=3), model=TinyFuser(), sequences=_seqs(),
                    progress=False)
    assert again.fit(resume=True).step == 3


def test_distillation_with_tiny_vgg_teacher(tmp_path):
    torch.manual_seed(0)
    vgg = VGG19(num_feature_layers=RELU3_1).state_dict()
    path = tmp_path / "vgg19-tiny.pth"
    torch.save(vgg, path)
    cfg = _cfg(tmp_path, steps=2, teachers={"vgg19": str(path)})
    trainer = Trainer(cfg, model=TinyFuser(distill=True), sequences=_seqs(), progress=False)
    assert trainer.distill
    trainer.fit()
    rows = _rows(tmp_path / "run" / "train_log.csv")
    assert "distill_visual_visible" in rows[0] and float(rows[0]["distill_visual_visible"]) > 0


def test_unknown_config_keys_rejected_by_name(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("bogus: 1\nsteps: 3\ndata:\n  crop_size: 64\n  degrade:\n    blurr: 2\n"
                    "loss:\n  composition: paper\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "bogus" in msg and "data.crop_size" in msg and "data.degrade.blurr" in msg
    with pytest.raises(ConfigError, match="steps"):
        config_from_dict({"steps": "ten"})
    with pytest.raises(ConfigError, match="amp_dtype"):
        config_from_dict({"amp_dtype": "int8"})
    with pytest.raises(ConfigError, match=r"data\.sources\[0\]\.rooot"):
        config_from_dict({"data": {"sources": [{"rooot": "x"}]}})


def test_exponent_numbers_that_yaml_reads_as_strings_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-4 as the string "1e-4"; 1.0e-4 is a float
    path = tmp_path / "lr.yaml"
    path.write_text("lr: 1e-4\nloss:\n  warm_threshold: 6E-2\n")
    cfg = load_config(path, overrides=["weight_decay=1e-5"])
    assert cfg.lr == 1e-4 and cfg.loss.warm_threshold == 0.06 and cfg.weight_decay == 1e-5
    for bad in ("e-4", "1e", "1e-4x", "one"):
        with pytest.raises(ConfigError, match="expected a number"):
            config_from_dict({"lr": bad})


def test_shipped_config_loads_and_round_trips():
    cfg = load_config(REPO / "config" / "train_edge.yaml")
    assert cfg.preset == "edge" and cfg.loss.composition == "released"
    assert cfg.data.degrade.blur_kernel == 12 and cfg.data.degrade.blur_sigma == (0.5, 3.5)
    assert cfg.data.sources[0].kind == "videos"
    again = config_from_dict(json.loads(json.dumps(config_to_dict(cfg))))
    assert again == cfg
    over = load_config(REPO / "config" / "train_edge.yaml",
                       ["data.crop=96", "loss.weights={temporal_visible: 0.5}"])
    assert over.data.crop == 96 and over.loss.weights == {"temporal_visible": 0.5}


def _edge_available() -> bool:
    try:
        from temcoco_core.model import build_model

        build_model("edge", **TINY_EDGE)
        return True
    except (ImportError, ValueError, KeyError):
        return False


needs_edge = pytest.mark.skipif(not _edge_available(), reason="edge preset not available")


@needs_edge
def test_edge_preset_distill_checkpoint_loads_for_inference(tmp_path):
    from temcoco_core.model import build_model

    torch.manual_seed(0)
    vgg_path = tmp_path / "vgg.pth"
    torch.save(VGG19(num_feature_layers=RELU3_1).state_dict(), vgg_path)
    cfg = _cfg(tmp_path, steps=2, batch_size=1, model=TINY_EDGE,
               teachers={"vgg19": str(vgg_path)}, eval={"frames": 3, "every": 0})
    eval_seqs = [s.head(3) for s in _seqs(1, h=16, w=32)]
    trainer = Trainer(cfg, sequences=_seqs(), eval_sequences=eval_seqs, progress=False)
    assert trainer.distill
    result = trainer.fit()
    assert result.step == 2
    assert {"val_loss", "framewise_val_loss", "MI", "SD", "flicker",
            "framewise_flicker"} <= set(result.evaluation)
    run_dir = tmp_path / "run"
    assert (run_dir / "extra.safetensors").is_file()            # the distillation heads
    model = build_model("edge", weights=run_dir / "model.safetensors", **TINY_EDGE)
    assert isinstance(model, nn.Module)
    assert (run_dir / "eval_log.csv").is_file()


@needs_edge
def test_reinit_keeps_the_fresh_input_skip_and_loads_the_rest(tmp_path):
    from safetensors.torch import save_file

    from temcoco_core.model import build_model

    torch.manual_seed(0)
    source = build_model("edge", **TINY_EDGE)             # average skip, random elsewhere
    with torch.no_grad():
        source.reconstruction.to_rgb.weight.normal_()
    init = tmp_path / "init.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, init)

    model = {**TINY_EDGE, "input_skip": "visible"}
    cfg = _cfg(tmp_path, model=model, init_weights=str(init), reinit=["input_skip."])
    trainer = Trainer(cfg, sequences=_seqs(), progress=False)
    state = trainer.model.state_dict()
    fresh = build_model("edge", **model).state_dict()
    torch.testing.assert_close(state["input_skip.weight"], fresh["input_skip.weight"])
    assert not torch.equal(state["input_skip.weight"], source.state_dict()["input_skip.weight"])
    torch.testing.assert_close(state["reconstruction.to_rgb.weight"],
                               source.state_dict()["reconstruction.to_rgb.weight"])

    plain = Trainer(_cfg(tmp_path, model=model, init_weights=str(init)), sequences=_seqs(),
                    progress=False)
    torch.testing.assert_close(plain.model.state_dict()["input_skip.weight"],
                               source.state_dict()["input_skip.weight"])
    with pytest.raises(ValueError, match="matches no parameter"):
        Trainer(_cfg(tmp_path, model=model, init_weights=str(init), reinit=["input_skp."]),
                sequences=_seqs(), progress=False)
    with pytest.raises(ValueError, match="reinit needs init_weights"):
        _cfg(tmp_path, reinit=["input_skip."])


def test_warm_target_from_the_visible_input_reaches_the_loss(tmp_path, monkeypatch):
    # loss.warm_visible "input": the trainer hands the loss the visible the network saw
    from temcoco_core.train import losses

    seen = []
    real = losses.unsharp_mask

    def spy(y, amount, sigma=1.0):
        seen.append((y.detach().clone(), amount, sigma))
        return real(y, amount, sigma)

    monkeypatch.setattr(losses, "unsharp_mask", spy)
    loss = {"composition": "edge", "weights": {"intensity_warm": 1.0},
            "warm_visible": "input", "warm_sharpen": 0.5}
    cfg = _cfg(tmp_path, steps=1, loss=loss, data={"degrade": {"visible_blur": True}})
    trainer = Trainer(cfg, model=TinyFuser(), sequences=_seqs(), progress=False)
    batch = next(iter(trainer._loader()))
    trainer.train_step(batch)
    y_in, amount, sigma = seen[-1]
    assert (amount, sigma) == (0.5, 1.0)
    expected = losses.rgb_to_ycbcr(batch["visible"].flatten(0, 1))[0]
    torch.testing.assert_close(y_in, expected)
    assert not torch.allclose(y_in, losses.rgb_to_ycbcr(batch["visible_ref"].flatten(0, 1))[0])


def _frame_dataset(root: Path, t: int = 6, h: int = 32, w: int = 32) -> None:
    rng = np.random.default_rng(0)
    for sub in ("visible", "infrared"):
        d = root / sub / "seq0"
        d.mkdir(parents=True)
        for i in range(t):
            img = rng.integers(0, 256, (h, w, 3) if sub == "visible" else (h, w), np.uint8)
            cv2.imwrite(str(d / f"{i:04d}.png"), img)


@needs_edge
def test_cli_train_and_resume(tmp_path, capsys):
    _frame_dataset(tmp_path / "data")
    cfg = tmp_path / "train.yaml"
    cfg.write_text(json.dumps({
        "preset": "edge", "model": TINY_EDGE, "steps": 2, "batch_size": 1,
        "data": {"sources": [{"root": str(tmp_path / "data")}], "clip_len": 2, "crop": 16},
        "eval": {"root": None}, "teachers": {"vgg19": None},
        "out_dir": str(tmp_path / "run"), "threads": 1,
    }))
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--config", str(cfg), "--no-progress"])
    assert args.func is run
    assert run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 2 and not summary["interrupted"]
    args = parser.parse_args(["train", "--resume", str(tmp_path / "run"), "--steps", "3",
                              "--no-progress"])
    assert run(args) == 0
    assert json.loads((tmp_path / "run" / "checkpoint.json").read_text())["step"] == 3
    bad = parser.parse_args(["train", "--config", str(cfg), "--set", "data.cropp=3"])
    with pytest.raises(ConfigError, match="data.cropp"):
        run(bad)


class _Payload:
    def __reduce__(self):  # would run at unpickling time
        return (os.system, (f"touch {os.environ['TEMCOCO_PWNED']}",))


@pytest.mark.parametrize("content", ["malicious", "garbage", "not_a_dict"])
def test_resume_with_a_bad_optimizer_file_is_a_clean_error(tmp_path, monkeypatch, content):
    """Issue 11 case 8: a malicious optimizer.pt gave an unpickling traceback."""
    import pickle

    from temcoco_core.train.trainer import ResumeError

    torch.manual_seed(0)
    Trainer(_cfg(tmp_path), model=TinyFuser(), sequences=_seqs(), progress=False).fit()
    opt = tmp_path / "run" / "optimizer.pt"
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("TEMCOCO_PWNED", str(pwned))
    if content == "malicious":
        torch.save({"optimizer": _Payload()}, opt)
    elif content == "garbage":
        opt.write_bytes(b"\x80\x04not really a pickle")
    else:
        opt.write_bytes(pickle.dumps([1, 2, 3]))
    resumed = Trainer(_cfg(tmp_path, steps=5), model=TinyFuser(), sequences=_seqs(),
                      progress=False)
    with pytest.raises(ResumeError, match="optimizer") as err:
        resumed.fit(resume=True)
    assert "\n" not in str(err.value) and not pwned.exists()


def test_time_limit_stops_with_resumable_checkpoint(tmp_path):
    cfg = _cfg(tmp_path, steps=50, time_limit_s=1e-9)   # expires after the first step
    result = Trainer(cfg, model=TinyFuser(), sequences=_seqs(), progress=False).fit()
    assert result.step == 1 and result.interrupted
    info = json.loads((tmp_path / "run" / "checkpoint.json").read_text())
    assert info["step"] == 1 and info["complete"] is False
    cont = Trainer(_cfg(tmp_path, steps=3), model=TinyFuser(), sequences=_seqs(),
                   progress=False).fit(resume=True)
    assert cont.step == 3 and not cont.interrupted
    with pytest.raises(ConfigError, match="time_limit_s"):
        _cfg(tmp_path, time_limit_s=-1)


@pytest.mark.parametrize("name", ["finetune_edge.yaml", "train_edge_gpu.yaml"])
def test_edge_recipe_configs_load(name):
    cfg = load_config(REPO / "config" / name)
    assert cfg.preset == "edge" and cfg.loss.composition == "edge"
    assert cfg.data.degrade.infrared_minmax_scope == "frame"
    assert cfg.eval.exclude == ["0111_1716"]             # a string, not YAML's base-60 int
    assert cfg.init_weights == "temcoco_core/weights/edge.safetensors"
    assert (REPO / cfg.init_weights).is_file()
    if name == "train_edge_gpu.yaml":
        assert cfg.device == "cuda" and cfg.amp and cfg.amp_dtype == "bfloat16"
        assert 0 < cfg.time_limit_s <= 540 and cfg.batch_size >= 8
        assert cfg.data.crop % 32 == 0


def test_warm_target_recipe_config_loads():
    from temcoco_core.train.losses import loss_weights

    cfg = load_config(REPO / "config" / "finetune_edge_warm.yaml")
    assert cfg.preset == "edge" and cfg.loss.composition == "edge"
    w = loss_weights(cfg.loss)
    assert w.intensity_warm > 0 and w.intensity_max == 0 and w.salience == 0
    assert w.temporal_warm > 0 and w.temporal_infrared == 0 and w.temporal_visible == 0
    assert cfg.loss.warm_sigma > 0 and cfg.loss.warm_gain >= 1
    assert cfg.ema_decay > 0 and cfg.eval.exclude == ["0111_1716"]
    assert cfg.data.frame_stride[1] > 1
    # the run it continues travels with the repository, and loads into the preset
    from temcoco_core.model import build_model
    from temcoco_core.model.checkpoint import load_checkpoint

    assert (REPO / cfg.init_weights).is_file()
    load_checkpoint(build_model("edge"), REPO / cfg.init_weights)
    # the GPU recipe says it trains this loss and data: the copy must not drift
    gpu = load_config(REPO / "config" / "train_edge_gpu.yaml")
    assert gpu.loss == cfg.loss and gpu.data.degrade == cfg.data.degrade
    assert gpu.data.frame_stride == cfg.data.frame_stride
    # both have the visible input skip; the GPU recipe restarts the shipped weights' average one
    assert cfg.model == gpu.model == {"input_skip": "visible"}
    assert gpu.reinit == ["input_skip."] and gpu.init_weights.endswith("edge.safetensors")
    assert cfg.loss.warm_visible == "input" and cfg.loss.warm_sharpen > 0


def test_weight_ema_update_rule_and_swap():
    from temcoco_core.train.ema import WeightEMA

    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = WeightEMA(model, decay=0.5)
    for value, d in ((3.0, 0.1), (5.0, 2 / 11), (7.0, 0.25)):  # warm-up (1+n)/(10+n)
        before = float(ema.state_dict()["weight"])
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        assert float(ema.state_dict()["weight"]) == pytest.approx(d * before + (1 - d) * value)
    for _ in range(40):
        ema.update(model)
    assert ema.current_decay() == 0.5 and float(ema.state_dict()["weight"]) == pytest.approx(7.0)
    with torch.no_grad():
        ema.state_dict()["weight"].fill_(2.0)
    with ema.applied(model):
        assert float(model.weight.detach()) == 2.0
    assert float(model.weight.detach()) == 7.0  # its own weights are back
    with pytest.raises(ValueError, match="decay"):
        WeightEMA(model, decay=1.0)
    with pytest.raises(ValueError, match="do not fit"):
        ema.load({"weight": torch.zeros(2, 2)}, 3)


def test_ema_checkpoint_resume_and_evaluation(tmp_path):
    from temcoco_core.model.checkpoint import read_state_dict

    torch.manual_seed(0)
    first = Trainer(_cfg(tmp_path, ema_decay=0.9), model=TinyFuser(), sequences=_seqs(),
                    progress=False)
    first.fit()
    run_dir = tmp_path / "run"
    averaged = read_state_dict(run_dir / "model_ema.safetensors")
    trained = read_state_dict(run_dir / "model.safetensors")
    assert set(averaged) == set(trained)
    assert not torch.equal(averaged["conv.weight"], trained["conv.weight"])
    assert json.loads((run_dir / "checkpoint.json").read_text())["ema_updates"] == 3

    # the evaluation runs on the averaged weights and leaves the trained ones in place
    seen = []
    first.model.register_forward_hook(lambda m, i, o: seen.append(m.conv.weight.clone()))
    first.eval_sequences = _seqs(1, t=4)
    first.evaluate()
    assert seen and all(torch.equal(w, averaged["conv.weight"]) for w in seen)
    assert torch.equal(first.model.conv.weight.detach(), trained["conv.weight"])

    # resume continues the average: equal to an uninterrupted 5-step run
    resumed = Trainer(_cfg(tmp_path, steps=5, ema_decay=0.9), model=TinyFuser(),
                      sequences=_seqs(), progress=False)
    resumed.fit(resume=True)
    torch.manual_seed(0)
    straight = Trainer(_cfg(tmp_path, steps=5, ema_decay=0.9,
                            out_dir=str(tmp_path / "straight")),
                       model=TinyFuser(), sequences=_seqs(), progress=False)
    straight.fit()
    assert resumed.ema.updates == straight.ema.updates == 5
    for k, v in straight.ema.state_dict().items():
        assert torch.allclose(resumed.ema.state_dict()[k], v, atol=1e-6), k
