# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""VGG19 with torchvision's module tree, so its ImageNet weights load key for key.

torchvision cannot be imported here (its compiled ops do not load everywhere we run), but its
``vgg19`` state dict (``vgg19-dcbb9e9d.pth`` in the torch hub cache) is the usual source of the
VGG19 distillation teacher (paper Eq. 15). This module rebuilds the same layers with the same
names: ``features.N.weight``/``features.N.bias`` for the 16 convolutions at
N ∈ {0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34} (ReLUs and max-pools in
between) and ``classifier.{0,3,6}.{weight,bias}`` for the three linear layers.

``features[:12]`` ends at ``relu3_1``: 256 channels at 1/4 of the input resolution, the
"visual" target the released TemCoCo trains its visual branch against.
"""

from __future__ import annotations

from torch import nn, Tensor

__all__ = ["VGG19", "VGG19_CFG", "VGG19_CONV_INDICES", "RELU3_1"]

#: Layer configuration "E" of Simonyan & Zisserman (numbers: conv output channels, "M": max-pool).
VGG19_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
    512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
)

#: Indices of the convolutions inside ``features`` (torchvision numbering).
VGG19_CONV_INDICES: tuple[int, ...] = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

#: Number of ``features`` layers up to and including ``relu3_1`` (``features[:12]``).
RELU3_1 = 12


def _make_features(num_layers: int | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1))
            layers.append(nn.ReLU(inplace=True))
            in_ch = int(v)
    if num_layers is not None:
        if not 1 <= num_layers <= len(layers):
            raise ValueError(f"num_feature_layers must be in 1..{len(layers)}, got {num_layers}")
        layers = layers[:num_layers]
    return nn.Sequential(*layers)


class VGG19(nn.Module):
    """VGG19 (no batch norm) laid out exactly as ``torchvision.models.vgg19``.

    Args:
        num_classes: outputs of the last linear layer (1000 for ImageNet weights).
        include_classifier: build ``avgpool`` + ``classifier``; a feature-only teacher leaves
            them out (saves ~120 M parameters).
        num_feature_layers: keep only ``features[:num_feature_layers]`` (e.g. :data:`RELU3_1`);
            ``None`` keeps all 37 layers. Truncating implies ``include_classifier=False``.

    Shapes: ``forward`` takes (N, 3, H, W) and returns the logits (N, num_classes) when the
    classifier is built, else the last kept feature map (N, C, H/2^p, W/2^p) where p is the
    number of kept max-pools (relu3_1: C=256, p=2).
    """

    def __init__(self, num_classes: int = 1000, include_classifier: bool = True,
                 num_feature_layers: int | None = None) -> None:
        super().__init__()
        self.features = _make_features(num_feature_layers)
        self.include_classifier = include_classifier and num_feature_layers is None
        if self.include_classifier:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, num_classes),
            )

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        if not self.include_classifier:
            return x
        x = self.avgpool(x).flatten(1)
        return self.classifier(x)
