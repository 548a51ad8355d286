# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""temcoco_core: everything TemCoCo fusion needs that does not need ROS.

Network (:mod:`temcoco_core.model`), streaming engine and backends (:mod:`temcoco_core.engine`),
frame conversion and pairing (:mod:`temcoco_core.frames`), bag/video/dataset I/O
(:mod:`temcoco_core.io`), metrics, training, many-input eval/replay
(:mod:`temcoco_core.fleet`) and the ``temcoco`` command line.
This package never imports rclpy or any ROS package.
"""

__version__ = "0.1.0"
