# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training configuration: one typed dataclass tree, read from YAML with unknown keys rejected.

``TrainConfig`` nests :class:`~.data.DataConfig` (with :class:`~.degrade.DegradeConfig`),
:class:`~.losses.LossConfig`, :class:`~.teachers.TeacherConfig` and :class:`ValidationConfig`.
:func:`config_from_dict` converts plain mappings (YAML, ``checkpoint.json``) into it and raises
:class:`ConfigError` naming *every* unknown key by its dotted path (``data.degrade.blurr``) and
every value of the wrong type. Relative paths in a config are relative to the working
directory the command runs in (the repository root in the examples).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
import re
import types
import typing
from typing import Any, Union

import yaml

from temcoco_core.train.data import DataConfig
from temcoco_core.train.losses import LossConfig
from temcoco_core.train.teachers import TeacherConfig

__all__ = [
    "ConfigError",
    "ValidationConfig",
    "TrainConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]


class ConfigError(ValueError):
    """A training configuration has unknown keys or values of the wrong type."""


@dataclass
class ValidationConfig:
    """Periodic evaluation on degraded M3SVD validation sequences (clean references).

    Attributes:
        root: M3SVD val root (``visible_Blur``/``infrared_noise``/``*_Enhance``); ``None`` or
            a missing folder disables evaluation (logged).
        every: evaluate every this many steps (0 = only at the end).
        sequences: how many sequences (the first ones, naturally sorted, after ``exclude``;
            0 = all).
        exclude: sequence names to leave out (e.g. a val sequence of a training scene).
        frames: frames per sequence (the first ones).
        crop: (H, W) centre crop to keep CPU evaluation light; ``None`` = full frames.
        framewise: also run the network one frame at a time (T = 1) for comparison.
    """

    root: str | None = "../shared/data/m3svd/val"
    every: int = 500
    sequences: int = 2
    exclude: list[str] = field(default_factory=list)
    frames: int = 8
    crop: tuple[int, int] | None = (192, 256)
    framewise: bool = True

    def __post_init__(self) -> None:
        if self.every < 0 or self.sequences < 0 or self.frames < 1:
            raise ValueError("eval: every and sequences must be >= 0 and frames >= 1")
        if self.crop is not None:
            self.crop = (int(self.crop[0]), int(self.crop[1]))


@dataclass
class TrainConfig:
    """Everything a training run needs (see ``config/train_edge.yaml``).

    Attributes:
        preset: network preset of :func:`temcoco_core.model.build_model`.
        model: extra keyword overrides for ``build_model``.
        init_weights: weights to start from (missing keys, e.g. distillation heads, are
            allowed); ``None`` = random initialisation.
        reinit: state-dict key prefixes *not* taken from ``init_weights``: those parameters
            keep this model's fresh initialisation (e.g. ``["input_skip."]`` with
            ``model: {input_skip: visible}`` to restart the input skip of a fine-tune); every
            prefix must match some key.
        data, loss, teachers, eval: sub-configurations.
        batch_size: clips per step.
        steps: total optimisation steps (a resumed run continues up to this number).
        lr: Adam learning rate (5e-4 as released).
        lr_decay, lr_decay_every: lr × lr_decay every lr_decay_every steps (0.95 / 200).
        weight_decay: Adam weight decay (0 as in the release's ``train.py``).
        grad_clip: global gradient-norm clip (1.0; 0 = off).
        amp: mixed precision on CUDA (ignored on CPU).
        amp_dtype: ``"bfloat16"`` or ``"float16"`` (the latter with a gradient scaler).
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        threads: ``torch.set_num_threads`` (``None`` = torch's default).
        seed: seeds the initialisation and the clip sampler.
        out_dir: run folder (checkpoints, CSV logs).
        checkpoint_every: write a checkpoint every this many steps (and always at the end).
        log_every: CSV row every this many steps (mean over the window).
        time_limit_s: stop after this many seconds of training (checked after every step;
            a checkpoint is written and ``--resume`` continues); 0 = no limit. For fixed-time
            GPU sessions.
        ema_decay: keep an exponential moving average of the weights with this decay
            (:mod:`.ema`; e.g. 0.999), written as ``model_ema.safetensors`` and used by the
            periodic evaluation; 0 = off.
    """

    preset: str = "edge"
    model: dict[str, Any] = field(default_factory=dict)
    init_weights: str | None = None
    reinit: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    teachers: TeacherConfig = field(default_factory=TeacherConfig)
    eval: ValidationConfig = field(default_factory=ValidationConfig)
    batch_size: int = 2
    steps: int = 2000
    lr: float = 5e-4
    lr_decay: float = 0.95
    lr_decay_every: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    amp: bool = True
    amp_dtype: str = "bfloat16"
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    out_dir: str = "runs/edge"
    checkpoint_every: int = 200
    log_every: int = 10
    time_limit_s: float = 0.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.steps < 0:
            raise ValueError("batch_size must be >= 1 and steps >= 0")
        if self.lr <= 0 or not 0 < self.lr_decay <= 1 or self.lr_decay_every < 1:
            raise ValueError("lr must be > 0, lr_decay in (0, 1], lr_decay_every >= 1")
        if self.amp_dtype not in ("bfloat16", "float16"):
            raise ValueError(f"amp_dtype must be 'bfloat16' or 'float16', got {self.amp_dtype!r}")
        if self.checkpoint_every < 1 or self.log_every < 1:
            raise ValueError("checkpoint_every and log_every must be >= 1")
        if self.time_limit_s < 0:
            raise ValueError(f"time_limit_s must be >= 0, got {self.time_limit_s}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")
        if self.reinit and not self.init_weights:
            raise ValueError("reinit needs init_weights (without them every parameter is fresh)")
        if any(not prefix for prefix in self.reinit):
            raise ValueError("reinit prefixes must not be empty")


# ----------------------------------------------------------------------- dict <-> dataclass


#: A number in exponent notation that YAML 1.1 (PyYAML) leaves a string: ``1e-4``, ``-2E3``.
_EXPONENT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _convert(tp: Any, value: Any, path: str, errors: list[str], unknown: list[str]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and types.NoneType in args:
            return None
        non_none = [a for a in args if a not in (types.NoneType,)]
        if len(non_none) == 1:
            return _convert(non_none[0], value, path, errors, unknown)
        for a in non_none:  # e.g. str | int: first that accepts the value
            sub: list[str] = []
            out = _convert(a, value, path, sub, unknown)
            if not sub:
                return out
        errors.append(f"{path}: {value!r} is not {tp}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return value
        return _build(tp, value, path, errors, unknown)
    if tp is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return value
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                errors.append(f"{path}: expected {len(args)} values, got {len(value)}")
                return value
            return tuple(_convert(a, v, f"{path}[{i}]", errors, unknown)
                         for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]", errors, unknown) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            errors.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return value
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _convert(vt, v, f"{path}.{k}", errors, unknown) for k, v in value.items()}
    if tp is float:
        if isinstance(value, str) and _EXPONENT_LITERAL.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-4 (no dot in the mantissa) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{path}: expected a number, got {value!r}")
            return value
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            errors.append(f"{path}: expected a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: Mapping[str, Any], path: str, errors: list[str],
           unknown: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    unknown.extend(f"{prefix}{k}" for k in data if k not in names)
    kwargs = {k: _convert(hints[k], v, f"{prefix}{k}", errors, unknown)
              for k, v in data.items() if k in names}
    if errors or unknown:
        return None
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        errors.append(f"{path or 'config'}: {e}")
        return None


def config_from_dict(data: Mapping[str, Any] | None, cls: type = TrainConfig) -> Any:
    """Build a config dataclass from nested mappings.

    Raises:
        ConfigError: lists every unknown key (dotted path) and every wrongly typed value.
    """
    errors: list[str] = []
    unknown: list[str] = []
    out = _build(cls, dict(data or {}), "", errors, unknown)
    if unknown or errors:
        parts = []
        if unknown:
            parts.append(f"unknown config key(s): {', '.join(unknown)}")
        parts.extend(errors)
        raise ConfigError("; ".join(parts))
    return out


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain, JSON/YAML-serialisable dict (tuples become lists)."""
    def plain(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        return v

    return plain(asdict(config))


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a nested dict, in place."""
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not KEY=VALUE")
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
            node = nxt
        node[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                base: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML file (or start from ``base`` / defaults), apply overrides, validate.

    Raises:
        ConfigError: unreadable file, not a mapping, unknown keys, wrong types.
    """
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: top level must be a mapping, got {type(loaded).__name__}")
        data.update(loaded)
    apply_overrides(data, overrides)
    try:
        return config_from_dict(data)
    except ConfigError as e:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}{e}") from None
