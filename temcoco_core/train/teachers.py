# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Frozen distillation teachers (paper Eq. 15): VGG19 relu3_1 and DINOv2 patch tokens.

Both map clean RGB frames (N, 3, H, W) in [0, 1] to feature maps (N, C, h, w):

* :class:`VGGTeacher` -- ``features[:12]`` of a torchvision-layout VGG19
  (:class:`temcoco_core.model.vgg.VGG19`): C = 256, (h, w) = (H/4, W/4). Weights from a file
  (``.pth`` / ``.safetensors``, read without pickle) or, with ``"auto"``, torchvision's
  ``vgg19-*.pth`` in the torch hub cache. Only the ``features.{0,2,5,7,10}`` tensors are needed.
* :class:`DinoV2Teacher` -- a DINOv2 (ViT, e.g. ViT-L/14, C = 1024) loaded from a local
  Hugging Face directory through ``transformers`` (optional extra ``dinov2``); no download, no
  remote code. As released, the frame is resized (bilinear) to (p·⌊H/16⌋, p·⌊W/16⌋) with p the
  patch size, so the token grid is ⌊H/16⌋ × ⌊W/16⌋ -- the grid of the network's semantic maps
  -- and the layer-normed patch tokens (class and register tokens dropped) are returned as a map.

As released, the frames are fed unnormalised ([0, 1], no ImageNet mean/std); set
``imagenet_normalize`` to feed normalised ones instead.

:func:`build_distillation` turns a :class:`TeacherConfig` into a
:class:`~temcoco_core.train.losses.DistillationLoss` and says (log) which teachers are missing.
"""

from __future__ import annotations

from dataclasses import dataclass
import logging
from pathlib import Path

from torch import nn, Tensor
import torch.nn.functional as F

from temcoco_core.model.checkpoint import read_state_dict, torch_hub_file
from temcoco_core.model.vgg import RELU3_1, VGG19
from temcoco_core.train.losses import DistillationLoss

__all__ = [
    "DinoV2Teacher",
    "TeacherConfig",
    "TeacherError",
    "VGGTeacher",
    "build_distillation",
    "resolve_vgg19_path",
]

log = logging.getLogger(__name__)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
VGG19_HUB_GLOB = "vgg19-*.pth"


class TeacherError(ValueError):
    """Teacher weights are missing, incomplete or of the wrong architecture."""


@dataclass
class TeacherConfig:
    """Where the teachers' weights are.

    Attributes:
        vgg19: path to VGG19 weights (torchvision layout), ``"auto"`` to use
            ``vgg19-*.pth`` from the torch hub cache when present, or ``None`` for no teacher.
        dinov2: local directory of a Hugging Face DINOv2 model (``config.json`` +
            weights), or ``None``.
        imagenet_normalize: feed ImageNet-normalised frames (the release feeds raw [0, 1]).
        semantic_stride: input pixels per semantic-map cell (16 in TemCoCo): the DINOv2
            input is resized so its token grid is (H // stride, W // stride).
    """

    vgg19: str | None = "auto"
    dinov2: str | None = None
    imagenet_normalize: bool = False
    semantic_stride: int = 16


def _normalize(x: Tensor) -> Tensor:
    mean = x.new_tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(_IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class VGGTeacher(nn.Module):
    """VGG19 ``features[:12]`` (relu3_1). ``(N, 3, H, W) -> (N, 256, H/4, W/4)``."""

    name = "vgg19-relu3_1"
    channels = 256

    def __init__(self, state_dict: dict[str, Tensor] | None = None, source: str = "<memory>",
                 imagenet_normalize: bool = False) -> None:
        super().__init__()
        self.vgg = VGG19(num_feature_layers=RELU3_1)
        self.imagenet_normalize = imagenet_normalize
        self.source = source
        if state_dict is not None:
            self._load(state_dict, source)
        self.requires_grad_(False)
        self.eval()

    def _load(self, state: dict[str, Tensor], source: str) -> None:
        own = self.vgg.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise TeacherError(
                f"{source}: not VGG19 weights in torchvision layout: missing {', '.join(missing)}"
                f" (found e.g. {', '.join(list(state)[:4])})"
            )
        bad = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})"
               for k, v in own.items() if tuple(state[k].shape) != tuple(v.shape)]
        if bad:
            raise TeacherError(f"{source}: mis-shaped VGG19 tensors: {'; '.join(bad)}")
        self.vgg.load_state_dict({k: state[k].float() for k in own})

    @classmethod
    def from_file(cls, path: str | Path, imagenet_normalize: bool = False) -> VGGTeacher:
        """Load from a ``.pth``/``.safetensors`` file (full VGG19 or just ``features``)."""
        try:
            state = read_state_dict(path)
        except ValueError as e:  # CheckpointError
            raise TeacherError(f"VGG19 teacher: {e}") from e
        return cls(state, str(path), imagenet_normalize)

    def train(self, mode: bool = True) -> VGGTeacher:
        """Teachers stay in eval mode."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        x = _normalize(images) if self.imagenet_normalize else images
        return self.vgg(x)


class DinoV2Teacher(nn.Module):
    """DINOv2 patch tokens as a map. ``(N, 3, H, W) -> (N, C, H // s, W // s)`` (s = stride).

    Args:
        model: a ``transformers`` ``Dinov2Model`` (or ``Dinov2WithRegistersModel``).
        stride: input pixels per output cell (16 for TemCoCo's semantic maps).
        imagenet_normalize: normalise the input with ImageNet mean/std first.
    """

    name = "dinov2"

    def __init__(self, model: nn.Module, stride: int = 16, imagenet_normalize: bool = False,
                 source: str = "<memory>") -> None:
        super().__init__()
        cfg = model.config
        self.model = model
        self.channels = int(cfg.hidden_size)
        self.patch = int(cfg.patch_size)
        self.skip_tokens = 1 + int(getattr(cfg, "num_register_tokens", 0) or 0)
        self.stride = stride
        self.imagenet_normalize = imagenet_normalize
        self.source = source
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_pretrained(cls, directory: str | Path, stride: int = 16,
                        imagenet_normalize: bool = False) -> DinoV2Teacher:
        """Load a local Hugging Face DINOv2 directory (never downloads, never runs its code)."""
        d = Path(directory)
        if not (d / "config.json").is_file():
            raise TeacherError(f"DINOv2 teacher: {d} is not a model directory (no config.json)")
        try:
            from transformers import AutoModel
        except ImportError as e:
            raise TeacherError(
                "the DINOv2 teacher needs the optional 'transformers' package "
                "(pip install transformers, or the package's [dinov2] extra)"
            ) from e
        try:
            model = AutoModel.from_pretrained(str(d), local_files_only=True,
                                              trust_remote_code=False)
        except (OSError, ValueError) as e:
            raise TeacherError(f"DINOv2 teacher: cannot load {d}: {e}") from e
        if "dinov2" not in str(getattr(model.config, "model_type", "")):
            raise TeacherError(f"DINOv2 teacher: {d} holds a {model.config.model_type!r} model")
        return cls(model, stride, imagenet_normalize, str(d))

    def train(self, mode: bool = True) -> DinoV2Teacher:
        """Teachers stay in eval mode."""
        return super().train(False)

    def forward(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        gh, gw = h // self.stride, w // self.stride
        if gh < 1 or gw < 1:
            raise TeacherError(f"DINOv2 teacher: input {h}x{w} is smaller than one "
                               f"{self.stride}-pixel cell")
        x = _normalize(images) if self.imagenet_normalize else images
        x = F.interpolate(x, size=(gh * self.patch, gw * self.patch), mode="bilinear",
                          align_corners=False)
        tokens = self.model(pixel_values=x).last_hidden_state[:, self.skip_tokens:]
        if tokens.shape[1] != gh * gw:
            raise TeacherError(f"DINOv2 teacher: {tokens.shape[1]} patch tokens for a "
                               f"{gh}x{gw} grid")
        return tokens.reshape(n, gh, gw, self.channels).permute(0, 3, 1, 2).contiguous()


def resolve_vgg19_path(spec: str | None) -> Path | None:
    """``None`` -> None; ``"auto"`` -> the hub cache's ``vgg19-*.pth`` or None; else the path.

    Raises:
        TeacherError: an explicit path that does not exist.
    """
    if spec is None or spec == "":
        return None
    if spec == "auto":
        return torch_hub_file(VGG19_HUB_GLOB)
    p = Path(spec).expanduser()
    if not p.is_file():
        raise TeacherError(f"VGG19 teacher weights not found: {p}")
    return p


def build_distillation(config: TeacherConfig) -> DistillationLoss:
    """Load the configured teachers; missing ones are reported (log) and left out.

    Raises:
        TeacherError: explicitly configured weights that are missing or wrong.
    """
    visual = semantic = None
    vgg_path = resolve_vgg19_path(config.vgg19)
    if vgg_path is not None:
        visual = VGGTeacher.from_file(vgg_path, config.imagenet_normalize)
        log.info("VGG19 teacher loaded from %s", vgg_path)
    elif config.vgg19 == "auto":
        log.info("no VGG19 teacher: no %s in the torch hub cache", VGG19_HUB_GLOB)
    if config.dinov2:
        semantic = DinoV2Teacher.from_pretrained(config.dinov2, config.semantic_stride,
                                                 config.imagenet_normalize)
        log.info("DINOv2 teacher loaded from %s (%d channels)", config.dinov2,
                 semantic.channels)
    return DistillationLoss(visual, semantic)
