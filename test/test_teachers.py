# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Distillation teachers: torchvision-layout VGG19, weights loading, a tiny local DINOv2."""

from __future__ import annotations

import pytest
from safetensors.torch import save_file
import torch
import torch.nn.functional as F

from temcoco_core.model.vgg import RELU3_1, VGG19
from temcoco_core.train.losses import DistillationLoss, FusionLoss, LossConfig
from temcoco_core.train.teachers import (
    build_distillation,
    DinoV2Teacher,
    resolve_vgg19_path,
    TeacherConfig,
    TeacherError,
    VGGTeacher,
)

# torchvision.models.vgg19().state_dict(): every key and shape, in order.
_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
          (14, 256, 256), (16, 256, 256), (19, 256, 512), (21, 512, 512), (23, 512, 512),
          (25, 512, 512), (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512)]
TORCHVISION_VGG19 = []
for _i, _cin, _cout in _CONVS:
    TORCHVISION_VGG19 += [(f"features.{_i}.weight", (_cout, _cin, 3, 3)),
                          (f"features.{_i}.bias", (_cout,))]
TORCHVISION_VGG19 += [
    ("classifier.0.weight", (4096, 25088)), ("classifier.0.bias", (4096,)),
    ("classifier.3.weight", (4096, 4096)), ("classifier.3.bias", (4096,)),
    ("classifier.6.weight", (1000, 4096)), ("classifier.6.bias", (1000,)),
]


def test_vgg19_keys_match_torchvision():
    with torch.device("meta"):
        model = VGG19()
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == TORCHVISION_VGG19
    assert len(model.features) == 37


def test_vgg19_relu3_1_truncation():
    m = VGG19(num_feature_layers=RELU3_1)
    assert list(m.state_dict()) == [k for k, _ in TORCHVISION_VGG19[:10]]
    out = m(torch.rand(1, 3, 32, 40))
    assert out.shape == (1, 256, 8, 10)
    assert float(out.detach().min()) >= 0.0             # ends in relu3_1


def _relu3_1_state(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {k: v.clone() for k, v in VGG19(num_feature_layers=RELU3_1).state_dict().items()}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_teacher_loads_saved_state_dict(tmp_path, suffix):
    state = _relu3_1_state(1)
    # a full checkpoint would also hold later layers and the classifier: they are ignored
    state_on_disk = dict(state, **{"classifier.6.bias": torch.zeros(1000)})
    path = tmp_path / f"vgg19-test{suffix}"
    if suffix == ".pth":
        torch.save(state_on_disk, path)
    else:
        save_file(state_on_disk, str(path))
    teacher = VGGTeacher.from_file(path)
    x = torch.rand(2, 3, 16, 24)
    ref = VGG19(num_feature_layers=RELU3_1)
    ref.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(teacher(x), ref(x))
    assert teacher(x).shape == (2, 256, 4, 6)
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not teacher.training                          # stays in eval mode


def test_vgg_teacher_imagenet_normalisation_changes_input(tmp_path):
    state = _relu3_1_state(2)
    raw, norm = VGGTeacher(state), VGGTeacher(state, imagenet_normalize=True)
    x = torch.rand(1, 3, 8, 8)
    assert not torch.allclose(raw(x), norm(x))


def test_vgg_teacher_rejects_wrong_weights(tmp_path):
    state = _relu3_1_state()
    del state["features.10.bias"]
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(TeacherError, match=r"features\.10\.bias"):
        VGGTeacher.from_file(path)
    state = _relu3_1_state()
    state["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    torch.save(state, path)
    with pytest.raises(TeacherError, match="mis-shaped"):
        VGGTeacher.from_file(path)
    with pytest.raises(TeacherError, match="not found"):
        resolve_vgg19_path(str(tmp_path / "absent.pth"))


def test_vgg_weights_from_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_vgg19_path("auto") is None
    assert resolve_vgg19_path(None) is None
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save(_relu3_1_state(), hub / "vgg19-dcbb9e9d.pth")
    assert resolve_vgg19_path("auto") == hub / "vgg19-dcbb9e9d.pth"
    dist = build_distillation(TeacherConfig(vgg19="auto"))
    assert isinstance(dist.visual, VGGTeacher) and dist.semantic is None


def test_no_teachers_means_no_distillation(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    dist = build_distillation(TeacherConfig())
    assert not dist.active
    with caplog.at_level("WARNING"):
        loss = FusionLoss(LossConfig("released"), dist)
    assert not loss.uses_distillation and "distillation skipped" in caplog.text


def test_dinov2_missing_directory(tmp_path):
    with pytest.raises(TeacherError, match="config.json"):
        DinoV2Teacher.from_pretrained(tmp_path)


@pytest.fixture
def tiny_dinov2_dir(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers not installed")
    cfg = transformers.Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64, patch_size=14, image_size=56)
    torch.manual_seed(0)
    model = transformers.Dinov2Model(cfg).eval()
    model.save_pretrained(str(tmp_path / "dinov2-tiny"))
    return tmp_path / "dinov2-tiny", model


def test_tiny_dinov2_teacher(tiny_dinov2_dir):
    path, model = tiny_dinov2_dir
    teacher = DinoV2Teacher.from_pretrained(path)
    assert teacher.channels == 32 and teacher.patch == 14
    x = torch.rand(2, 3, 64, 80)                          # 4 x 5 cells of 16 px
    out = teacher(x)
    assert out.shape == (2, 32, 4, 5)
    with torch.no_grad():
        resized = F.interpolate(x, size=(56, 70), mode="bilinear", align_corners=False)
        tokens = model(pixel_values=resized).last_hidden_state[:, 1:]
    assert torch.allclose(out, tokens.reshape(2, 4, 5, 32).permute(0, 3, 1, 2), atol=1e-5)

    # distillation through the tiny teacher: student (B·T, C, h, w) at another grid size
    dist = DistillationLoss(semantic=teacher)
    student = torch.randn(2, 32, 8, 10, requires_grad=True)
    feats = {"semantic": {"visible": student, "infrared": student}}
    loss = FusionLoss(LossConfig("paper"), dist)
    terms = loss(torch.rand(1, 2, 3, 64, 80), x.unsqueeze(0), x[:, :1].unsqueeze(0), feats)
    assert "distill_semantic_visible" in terms and "distill_semantic_infrared" in terms
    terms["total"].backward()
    assert student.grad is not None and float(student.grad.abs().sum()) > 0


def test_build_distillation_with_dinov2(tiny_dinov2_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    path, _ = tiny_dinov2_dir
    dist = build_distillation(TeacherConfig(vgg19=None, dinov2=str(path)))
    assert dist.visual is None and isinstance(dist.semantic, DinoV2Teacher)
