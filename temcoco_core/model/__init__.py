# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""TemCoCo networks: the released architecture (``official``).

The causal ``edge`` variant and their building blocks. Entry points: :func:`build_model`,
:func:`load_checkpoint`.
"""

from .checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint, read_state_dict
from .network import TemCoCo, TemCoCoConfig
from .presets import available_presets, build_model

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "TemCoCo",
    "TemCoCoConfig",
    "available_presets",
    "build_model",
    "load_checkpoint",
    "read_state_dict",
]
