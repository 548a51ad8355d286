# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Named network variants and :func:`build_model`.

=====================  ======================================================================
preset                 what it is
=====================  ======================================================================
``official``           the released TemCoCo architecture; loads the authors' checkpoint
``edge``               causal, narrow variant for streaming on edge GPUs (:mod:`.edge`)
``edge-framewise``     the edge architecture run on single frames (no temporal modelling)
=====================  ======================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from importlib import resources
import os
from pathlib import Path

from torch import nn

from .checkpoint import CheckpointError, load_checkpoint, torch_hub_file
from .network import TemCoCo, TemCoCoConfig

__all__ = ["PRESETS", "build_model", "available_presets", "packaged_weights",
           "OFFICIAL_CHECKPOINT_NAME"]

#: File name of the released checkpoint (``experiments/VideoFusion_IRnoise2/models/`` upstream).
OFFICIAL_CHECKPOINT_NAME = "VideoFusionNet_495000.pth"


def _official(**overrides: object) -> nn.Module:
    known = {f.name for f in fields(TemCoCoConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown option(s) for preset 'official': {unknown}; "
                         f"known: {sorted(known)}")
    return TemCoCo(TemCoCoConfig(**overrides))  # type: ignore[arg-type]


def _edge_builder(name: str) -> Callable[..., nn.Module]:
    def build(**overrides: object) -> nn.Module:
        from .edge import EDGE_PRESETS

        return EDGE_PRESETS[name](**overrides)

    return build


PRESETS: dict[str, Callable[..., nn.Module]] = {
    "official": _official,
    "edge": _edge_builder("edge"),
    "edge-framewise": _edge_builder("edge-framewise"),
}


def available_presets() -> list[str]:
    """Names accepted by :func:`build_model`."""
    return sorted(PRESETS)


def packaged_weights(preset: str) -> Path | None:
    """Weights shipped in the package: ``temcoco_core/weights/<preset>.safetensors``."""
    path = Path(str(resources.files("temcoco_core"))) / "weights" / f"{preset}.safetensors"
    return path if path.is_file() else None


#: Presets that share another preset's parameters (and so its weights).
SHARED_WEIGHTS = {"edge-framewise": "edge"}


def default_weights(preset: str) -> Path:
    """Where ``pretrained=True`` finds weights for ``preset``.

    ``$TEMCOCO_WEIGHTS_DIR/<preset>.(safetensors|pth)``, then the package's own weights, then
    (official only) the released checkpoint in the torch hub cache. ``edge-framewise`` uses the
    ``edge`` weights (same architecture and parameters, run frame by frame).
    """
    preset = SHARED_WEIGHTS.get(preset, preset)
    env_dir = os.environ.get("TEMCOCO_WEIGHTS_DIR")
    if env_dir:
        for suffix in (".safetensors", ".pth"):
            candidate = Path(env_dir) / f"{preset}{suffix}"
            if candidate.is_file():
                return candidate
    shipped = packaged_weights(preset)
    if shipped is not None:
        return shipped
    if preset == "official":
        cached = torch_hub_file(OFFICIAL_CHECKPOINT_NAME)
        if cached is not None:
            return cached
        raise CheckpointError(
            f"no weights for preset 'official': download the released checkpoint "
            f"{OFFICIAL_CHECKPOINT_NAME} (github.com/Meiqi-Gong/TemCoCo) and pass its path "
            f"(--weights PATH), or put it in the torch hub cache or $TEMCOCO_WEIGHTS_DIR")
    raise CheckpointError(f"no weights shipped for preset '{preset}'; pass --weights PATH")


def build_model(preset: str = "edge", *, pretrained: bool = False,
                weights: str | os.PathLike | None = None, **overrides: object) -> nn.Module:
    """Build a fusion network by preset name.

    Args:
        preset: one of :func:`available_presets`.
        pretrained: load the default weights for the preset (see :func:`default_weights`).
        weights: explicit checkpoint path (``.pth``/``.safetensors``); implies loading.
        **overrides: fields of the preset's config dataclass.

    Returns:
        The network in eval mode. ``model(visible, infrared)`` maps two ``(B, T, 3, H, W)``
        tensors in [0, 1] to the fused ``(B, T, 3, H, W)``.

    Raises:
        ValueError: unknown preset or option. CheckpointError: weights missing or mismatched.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset '{preset}'; available: {available_presets()}")
    model = PRESETS[preset](**overrides)
    if weights is not None or pretrained:
        load_checkpoint(model, weights if weights is not None else default_weights(preset))
    return model.eval()
