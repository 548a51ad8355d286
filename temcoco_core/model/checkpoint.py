# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Reading and loading checkpoints safely.

Weights are read with ``torch.load(weights_only=True)`` or safetensors: a checkpoint can never run
code. The released TemCoCo checkpoint is a bare state dict; training frameworks wrap it under
``params`` / ``params_ema`` / ``state_dict`` / ``model`` and ``nn.DataParallel`` prefixes keys with
``module.``: all of these are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import os
from pathlib import Path
import pickle
import warnings

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "read_state_dict",
    "load_checkpoint",
    "save_safetensors",
    "torch_hub_dir",
    "torch_hub_file",
]

_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net")


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, not a state dict, or unsafe to load."""


@dataclass
class CheckpointMismatchError(CheckpointError):
    """The checkpoint's tensors do not match the model's parameters."""

    path: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mis_shaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)

    def __str__(self) -> str:
        def listing(names: list[str]) -> str:
            shown = ", ".join(names[:8])
            return shown + (f", … (+{len(names) - 8} more)" if len(names) > 8 else "")

        parts = [f"checkpoint {self.path} does not match the model:"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {listing(self.unexpected)}")
        if self.mis_shaped:
            shapes = [f"{k} (checkpoint {list(c)} vs model {list(m)})"
                      for k, c, m in self.mis_shaped]
            parts.append(f"{len(shapes)} mis-shaped tensor(s): {listing(shapes)}")
        return "\n  ".join(parts)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """Find the state dict inside common checkpoint wrappers and strip ``module.`` prefixes."""
    for _ in range(3):
        if isinstance(obj, Mapping) and not all(isinstance(v, torch.Tensor) for v in obj.values()):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj), None)
            if inner is None:
                raise CheckpointError(
                    f"{path}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]}; "
                    f"expected tensors or one of {list(_WRAPPER_KEYS)})"
                )
            obj = inner
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{path}: not a state dict of tensors (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entries that are not tensors: {bad[:5]}")
    state = {}
    for key, value in obj.items():
        key = str(key)
        while key.startswith("module."):
            key = key[len("module."):]
        state[key] = value
    return state


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from a ``.safetensors`` or torch (``.pth``/``.pt``) file, safely.

    Returns:
        ``{name: tensor}`` on the CPU, wrappers and ``module.`` prefixes removed.

    Raises:
        CheckpointError: missing, empty, corrupt, foreign (not a checkpoint) or unsafe file; the
            message is one line naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty: {path}")
    with path.open("rb") as handle:
        head = handle.read(16)
    if path.suffix == ".safetensors" or (len(head) >= 9 and head[8:9] == b"{"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(path), device="cpu"), path)
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(
                f"{path}: corrupt safetensors file ({_first_line(exc)})") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol chatter from foreign files
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: not a plain weights file ({_first_line(exc)})"
        ) from None
    except Exception as exc:  # the unpickler raises anything on foreign bytes
        raise CheckpointError(f"{path}: corrupt or not a PyTorch checkpoint "
                              f"({_first_line(exc)})") \
            from None
    return _unwrap(obj, path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def load_checkpoint(model: nn.Module, path: str | os.PathLike, strict: bool = True) -> nn.Module:
    """Load ``path`` into ``model`` after checking every key and shape.

    Args:
        model: the network, e.g. ``build_model("official")``.
        path: ``.pth``/``.pt``/``.safetensors``; bare or wrapped state dict (see module docstring).
        strict: when True any missing, unexpected or mis-shaped tensor raises; when False only
            mis-shaped tensors raise and missing/unexpected keys are ignored.

    Raises:
        CheckpointError: unreadable file (one line).
        CheckpointMismatchError: lists missing, unexpected and mis-shaped keys.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mis_shaped = [
        (k, tuple(state[k].shape), tuple(own[k].shape))
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if mis_shaped or (strict and (missing or unexpected)):
        raise CheckpointMismatchError(str(path), missing, unexpected, mis_shaped)
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=strict)
    return model


def save_safetensors(model_or_state: nn.Module | Mapping[str, torch.Tensor],
                     path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write weights as safetensors (contiguous CPU tensors; shared storage is copied)."""
    from safetensors.torch import save_file

    is_module = isinstance(model_or_state, nn.Module)
    state = model_or_state.state_dict() if is_module else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=dict(metadata or {}))
    return path


def torch_hub_dir() -> Path:
    """The torch hub checkpoint folder: ``$TORCH_HOME/hub/checkpoints`` (torch's own rule)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def torch_hub_file(pattern: str) -> Path | None:
    """The newest file in the torch hub cache matching a glob such as ``"vgg19-*.pth"``."""
    folder = torch_hub_dir()
    if not folder.is_dir():
        return None
    hits = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime)
    return hits[-1] if hits else None
