# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training TemCoCo networks (no ROS).

* :mod:`.losses` -- the paper's losses (Eqs. 13-17) and the released composition.
* :mod:`.degrade` -- synthetic degradations: visible blur, infrared noise and stripes, and
  thermal-camera effects (AGC flicker, dead/hot pixels).
* :mod:`.teachers` -- frozen VGG19 / DINOv2 distillation teachers (Eq. 15).
* :mod:`.data` -- datasets to seeded random clips with degraded inputs and clean targets.
* :mod:`.config` -- the typed training configuration (YAML, unknown keys rejected).
* :mod:`.trainer` -- the loop, checkpoints, resume, evaluation and ``temcoco train``.
* :mod:`.distributed` -- data-parallel training under ``torchrun`` (DDP, sharded clips,
  rank-0 duties, agreed stops).

Submodules are imported on demand (``from temcoco_core.train.trainer import Trainer``).
"""
