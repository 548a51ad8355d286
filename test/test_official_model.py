# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The official preset: state-dict manifest, call contract, odd sizes and the clip scheduler."""

from __future__ import annotations

import json

import pytest
import torch

from temcoco_core.model import build_model, TemCoCoConfig
from temcoco_core.model.network import pad_to_multiple, TemCoCo
from temcoco_core.model.scheduler import clip_spans, ClipSchedule, run_clips


@pytest.fixture(scope="module")
def official() -> TemCoCo:
    torch.manual_seed(0)
    model = build_model("official")
    # Larger weights than the init so that every path visibly moves the output.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


def test_state_dict_matches_released_manifest(shared_dir):
    manifest = json.loads((shared_dir / "official_state_dict.json").read_text())
    state = build_model("official").state_dict()
    expected = {k: tuple(v) for k, v in manifest["state_dict"].items()}
    assert list(state) == list(expected)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert len(state) == manifest["num_tensors"] == 371
    model = build_model("official")
    assert sum(p.numel() for p in model.parameters()) == manifest["num_parameters"] == 19_213_417


def test_call_contract_shapes_and_no_clamp(official):
    vis, ir = torch.rand(1, 3, 3, 32, 48), torch.rand(1, 3, 3, 32, 48)
    with torch.no_grad():
        out = official(vis, ir)
    assert out.shape == (1, 3, 3, 32, 48)
    assert torch.isfinite(out).all()
    assert out.dtype == torch.float32


@pytest.mark.parametrize("shape", [(1, 1, 16, 16), (2, 2, 32, 32), (1, 3, 21, 37), (1, 2, 9, 5)])
def test_any_size_any_t_any_batch(official, shape):
    b, t, h, w = shape
    vis, ir = torch.rand(b, t, 3, h, w), torch.rand(b, t, 3, h, w)
    with torch.no_grad():
        out = official(vis, ir)
    assert out.shape == (b, t, 3, h, w)
    assert torch.isfinite(out).all()


def test_odd_size_equals_manual_reflect_pad_and_crop(official):
    vis, ir = torch.rand(1, 2, 3, 20, 30), torch.rand(1, 2, 3, 20, 30)
    padded_vis = torch.nn.functional.pad(vis.flatten(0, 1), (0, 2, 0, 12), mode="reflect")
    padded_ir = torch.nn.functional.pad(ir.flatten(0, 1), (0, 2, 0, 12), mode="reflect")
    with torch.no_grad():
        out = official(vis, ir)
        ref = official(padded_vis.view(1, 2, 3, 32, 32), padded_ir.view(1, 2, 3, 32, 32))
    torch.testing.assert_close(out, ref[..., :20, :30])


def test_pad_to_multiple_is_noop_on_multiples():
    x = torch.rand(1, 2, 3, 32, 16)
    padded, h, w = pad_to_multiple(x, 16)
    assert padded is x and (h, w) == (32, 16)


def test_reshape_quirk_kept_and_switchable(official):
    """The release reshapes (B*T, C, H, W) straight to (B, C, T, H, W).

    With T > 1 frames and channels are mixed. The official preset keeps it (the checkpoint needs
    it); the switch gives the permuted (correct) layout, which must then differ from the quirk.
    """
    fixed = build_model("official", faithful_reshape=False)
    fixed.load_state_dict(official.state_dict())
    x = torch.rand(1, 2, 3, 32, 32)
    with torch.no_grad():
        assert (official(x, x) - fixed(x, x)).abs().max() > 0
        # Batch items stay independent with the quirk: it only scrambles within a clip.
        both = torch.cat([x, torch.rand_like(x)])
        torch.testing.assert_close(official(both, both)[:1], official(x, x), atol=1e-6, rtol=1e-5)


def test_quirk_is_identity_for_single_frame(official):
    fixed = build_model("official", faithful_reshape=False)
    fixed.load_state_dict(official.state_dict())
    x = torch.rand(1, 1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(official(x, x), fixed(x, x))


def test_alignment_is_causal_but_network_is_not(official):
    """Frame 0's output depends on later frames, as in the release.

    Frame 0's output changes when a later frame changes (3-D convs and temporal attention look
    ahead), as in the release.
    """
    vis, ir = torch.rand(1, 4, 3, 32, 32), torch.rand(1, 4, 3, 32, 32)
    changed = vis.clone()
    changed[:, 3] = torch.rand_like(changed[:, 3])
    with torch.no_grad():
        diff = (official(vis, ir)[:, 0] - official(changed, ir)[:, 0]).abs().max()
    assert diff > 0  # bitwise identical if frame 3 did not reach frame 0


def test_forward_train_returns_distillation_features(official):
    vis, ir = torch.rand(2, 2, 3, 64, 64), torch.rand(2, 2, 3, 64, 64)
    with torch.no_grad():
        fused, feats = official.forward_train(vis, ir)
        plain = official(vis, ir)
    torch.testing.assert_close(fused, plain)
    assert feats["semantic"]["visible"].shape == (4, 1024, 4, 4)
    assert feats["semantic"]["infrared"].shape == (4, 1024, 4, 4)
    assert feats["visual"]["visible"].shape == (2, 256, 2, 16, 16)
    assert set(feats["visual"]) == {"visible", "infrared"}


def test_bad_inputs_raise_clear_errors(official):
    with pytest.raises(ValueError, match="visible must be"):
        official(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="differ in shape"):
        official(torch.rand(1, 2, 3, 32, 32), torch.rand(1, 2, 3, 32, 16))
    with pytest.raises(ValueError, match="float"):
        official(torch.zeros(1, 1, 3, 16, 16, dtype=torch.uint8),
                 torch.zeros(1, 1, 3, 16, 16, dtype=torch.uint8))


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        build_model("nope")
    with pytest.raises(ValueError, match="unknown option"):
        build_model("official", widths=3)
    assert isinstance(build_model("official", n_feat=8).config, TemCoCoConfig)


# ----------------------------------------------------------------------------- clip scheduler

def test_clip_spans_release_schedule():
    spans = list(clip_spans(70, ClipSchedule(30, 5)))
    assert spans == [(0, 30), (25, 55), (50, 70)]
    assert list(clip_spans(10, ClipSchedule(30, 5))) == [(0, 10)]
    with pytest.raises(ValueError):
        ClipSchedule(5, 5)
    with pytest.raises(ValueError):
        ClipSchedule(5, 1, policy="mean")


class _ClipIndexModel(torch.nn.Module):
    """Returns, for each frame, a constant that identifies which clip computed it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, vis: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.full_like(vis, float(self.calls))


def test_run_clips_overwrite_and_blend():
    vis = torch.zeros(1, 12, 3, 2, 2)
    out = run_clips(_ClipIndexModel(), vis, vis, ClipSchedule(5, 2))
    # clips [0,5) [3,8) [6,11) [9,12): later clips overwrite the overlap
    assert out[0, :, 0, 0, 0].tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    out = run_clips(_ClipIndexModel(), vis, vis, ClipSchedule(5, 2, "blend"))
    values = out[0, :, 0, 0, 0]
    assert values[0] == 1 and values[5] == 2
    torch.testing.assert_close(values[3:5], torch.tensor([1 + 1 / 3, 1 + 2 / 3]))


def test_run_clips_matches_single_pass_when_one_clip(official):
    vis, ir = torch.rand(1, 3, 3, 16, 16), torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(run_clips(official, vis, ir, ClipSchedule(30, 5)),
                                   official(vis, ir))
