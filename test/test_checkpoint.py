# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""load_checkpoint / read_state_dict: wrappers, prefixes, safetensors and every error path."""

from __future__ import annotations

import pickle

import pytest
import torch

from temcoco_core.model import (
    build_model,
    CheckpointError,
    CheckpointMismatchError,
    load_checkpoint,
    read_state_dict,
)
from temcoco_core.model.checkpoint import save_safetensors, torch_hub_file
from temcoco_core.model.presets import default_weights


@pytest.fixture(scope="module")
def small_state():
    torch.manual_seed(1)
    return build_model("official", n_feat=8).state_dict()


def _fresh():
    return build_model("official", n_feat=8)


def _assert_loaded(model, state):
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])


@pytest.mark.parametrize("wrap", ["bare", "params", "state_dict", "params_ema", "module"])
def test_released_layouts_load(tmp_path, small_state, wrap):
    if wrap == "bare":
        obj = small_state
    elif wrap == "module":
        obj = {"module." + k: v for k, v in small_state.items()}
    else:
        obj = {wrap: small_state, "iter": torch.tensor(3)} if wrap != "params_ema" else \
            {"params_ema": small_state}
    path = tmp_path / "ckpt.pth"
    torch.save(obj, path)
    model = load_checkpoint(_fresh(), path)
    _assert_loaded(model, small_state)


def test_safetensors_roundtrip_and_build_model_weights(tmp_path, small_state):
    path = save_safetensors(small_state, tmp_path / "w.safetensors")
    _assert_loaded(load_checkpoint(_fresh(), path), small_state)
    model = build_model("official", n_feat=8, weights=path)
    _assert_loaded(model, small_state)
    assert not model.training


def test_mismatch_lists_missing_unexpected_and_misshaped(tmp_path, small_state):
    state = dict(small_state)
    del state["dec.conv0.depth_conv.conv3d.bias"]
    state["extra.weight"] = torch.zeros(1)
    state["DCN_1.off2d_1.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(_fresh(), path)
    text = str(info.value)
    assert "dec.conv0.depth_conv.conv3d.bias" in text
    assert "extra.weight" in text
    assert "DCN_1.off2d_1.bias (checkpoint [7] vs model [144])" in text
    assert info.value.missing == ["dec.conv0.depth_conv.conv3d.bias"]
    # Non-strict still refuses mis-shaped tensors.
    with pytest.raises(CheckpointMismatchError):
        load_checkpoint(_fresh(), path, strict=False)


def test_full_official_checkpoint_into_small_model_is_rejected(tmp_path):
    path = tmp_path / "official.pth"
    torch.save(build_model("official").state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="mis-shaped"):
        load_checkpoint(_fresh(), path)


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_empty_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "nope.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        read_state_dict(empty)

    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(3)}, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError) as info:
        read_state_dict(truncated)
    assert "truncated.pth" in _one_line(info.value)

    text = tmp_path / "notes.pth"
    text.write_text("this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(text)
    assert "notes.pth" in _one_line(info.value)

    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        read_state_dict(bad_st)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"w": _Evil()}, handle)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    _one_line(info.value)
    assert "pwned" not in capsys.readouterr().out

    torch_path = tmp_path / "evil_torch.pth"
    torch.save({"w": torch.zeros(1), "cfg": _Evil()}, torch_path)
    with pytest.raises(CheckpointError, match="refused"):
        read_state_dict(torch_path)


def test_non_tensor_entries_and_unknown_wrappers(tmp_path):
    path = tmp_path / "opt.pth"
    torch.save({"optimizer": {"lr": 0.1}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="no state dict found"):
        read_state_dict(path)


def test_hub_cache_lookup(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch_hub_file("VideoFusionNet_*.pth") is None
    with pytest.raises(CheckpointError, match="VideoFusionNet_495000.pth"):
        default_weights("official")
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "VideoFusionNet_495000.pth").write_bytes(b"x")
    assert default_weights("official") == folder / "VideoFusionNet_495000.pth"
    monkeypatch.setenv("TEMCOCO_WEIGHTS_DIR", str(tmp_path))
    (tmp_path / "official.safetensors").write_bytes(b"x")
    assert default_weights("official") == tmp_path / "official.safetensors"


def test_shipped_edge_weights_load_for_both_edge_presets():
    """The package ships trained edge weights (safetensors); the framewise preset shares them."""
    from temcoco_core.model.presets import packaged_weights

    path = packaged_weights("edge")
    assert path is not None and path.suffix == ".safetensors"
    edge = build_model("edge", pretrained=True)
    framewise = build_model("edge-framewise", pretrained=True)
    shipped = read_state_dict(path)
    for model in (edge, framewise):
        _assert_loaded(model, shipped)
    # Trained, not the initialisation: the RGB head starts at zero.
    assert edge.reconstruction.to_rgb.weight.abs().max() > 0
