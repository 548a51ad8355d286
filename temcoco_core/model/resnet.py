# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

Its state-dict keys are identical to ``torchvision.models.resnet18``, so the ImageNet
checkpoint (``resnet18-f37072fd.pth``) loads as is -- without importing torchvision.

Used by the feaCD temporal metric (:mod:`temcoco_core.metrics.temporal`), which, like the
released TemCoCo evaluator, takes the 1000-d ImageNet logits.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn, Tensor

__all__ = [
    "BasicBlock",
    "ResNet18",
    "ResNetWeightsError",
    "find_pretrained",
    "load_pretrained",
    "resnet18",
]

#: Glob for the torchvision ImageNet checkpoint in the torch hub cache.
HUB_PATTERN = "resnet18-*.pth"


class ResNetWeightsError(ValueError):
    """ResNet-18 weights missing or not a ResNet-18 state dict."""


class BasicBlock(nn.Module):
    """Two 3x3 convs with identity (or 1x1-projection) shortcut.

    (B, Cin, H, W) -> (B, Cout, H/s, W/s).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18: (B, 3, H, W) float -> (B, num_classes) logits (any H, W >= 32).

    Module names (``conv1``, ``bn1``, ``layer1..4.{0,1}.{conv,bn}{1,2}``, ``downsample.{0,1}``,
    ``fc``) match torchvision's. The input is used as given: the released feaCD feeds
    unnormalised 0-255 RGB.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> pooled (B, 512) features."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, num_classes)."""
        return self.fc(self.features(x))


def resnet18(num_classes: int = 1000) -> ResNet18:
    """A randomly initialised ResNet-18 in eval mode."""
    return ResNet18(num_classes).eval()


def _hub_dir() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def find_pretrained(path: str | os.PathLike | None = None) -> Path | None:
    """Locate ImageNet ResNet-18 weights.

    ``path`` if given (must exist), else the newest ``resnet18-*.pth`` in
    ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/...``).

    Returns ``None`` when nothing is found and no path was given.

    Raises:
        ResNetWeightsError: an explicit ``path`` that does not exist.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ResNetWeightsError(f"ResNet-18 weights not found: {p}")
        return p
    folder = _hub_dir()
    if not folder.is_dir():
        return None
    hits = sorted(folder.glob(HUB_PATTERN), key=lambda q: q.stat().st_mtime)
    return hits[-1] if hits else None


def load_pretrained(path: str | os.PathLike | None = None) -> ResNet18:
    """Build ResNet-18 and load ImageNet weights from ``path`` or the torch hub cache.

    The weights are a ``.pth`` (loaded with ``weights_only=True``) or a ``.safetensors`` file.

    Raises:
        ResNetWeightsError: no weights found (message says where it looked), or the file is not
            a ResNet-18 state dict.
    """
    p = find_pretrained(path)
    if p is None:
        raise ResNetWeightsError(
            f"no ResNet-18 ImageNet weights: pass a path, or put torchvision's "
            f"resnet18-f37072fd.pth into {_hub_dir()} (or set $TORCH_HOME)"
        )
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # any decode failure is a weights problem
        raise ResNetWeightsError(f"cannot read ResNet-18 weights {p}: {e}") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ResNetWeightsError(f"{p} does not hold a state dict (got {type(state).__name__})")
    model = ResNet18(num_classes=int(state["fc.weight"].shape[0]) if "fc.weight" in state
                     else 1000)
    state = dict(state)
    for key, buf in model.state_dict().items():  # old checkpoints lack BN counters
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(buf)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ResNetWeightsError(f"{p} is not a ResNet-18 state dict: {e}") from e
    return model.eval()
