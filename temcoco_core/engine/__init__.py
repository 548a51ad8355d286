# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Fusion engines: settings → engine (:mod:`.factory`).

The streaming/clip engines (:mod:`.streaming`), the model-free engine (:mod:`.average`), the
backends (:mod:`.backends` with one module per backend: :mod:`.eager_backend`,
:mod:`.inductor_backend`, :mod:`.tensorrt_backend`, :mod:`.onnxruntime_backend`), the engine cache
(:mod:`.cache`), ahead-of-time export (:mod:`.export`) and the benchmark (:mod:`.bench`).
"""
