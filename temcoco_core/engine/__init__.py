"""Fusion engines: settings → engine (:mod:`.factory`), the streaming/clip engines
(:mod:`.streaming`), the model-free engine (:mod:`.average`), the backends (:mod:`.backends` with
one module per backend: :mod:`.eager_backend`, :mod:`.inductor_backend`,
:mod:`.tensorrt_backend`, :mod:`.onnxruntime_backend`), the engine cache (:mod:`.cache`),
ahead-of-time export (:mod:`.export`) and the benchmark (:mod:`.bench`)."""
