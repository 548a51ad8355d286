# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Frames: message decoding (:mod:`.decoder`, :mod:`.image_msg`), pairing (:mod:`.pairing`).

Thermal gain (:mod:`.thermal`), registration (:mod:`.registration`) and tensors
(:mod:`.preprocess`).
"""
