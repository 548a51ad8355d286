"""Frames: message decoding (:mod:`.decoder`, :mod:`.image_msg`), pairing (:mod:`.pairing`),
thermal gain (:mod:`.thermal`), registration (:mod:`.registration`) and tensors
(:mod:`.preprocess`)."""
