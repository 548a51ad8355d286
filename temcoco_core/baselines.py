# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Classical fusion baselines and model methods behind one interface.

A *method* is a callable ``FusionSequence -> (T, H, W, 3) uint8 RGB``; :func:`resolve_method`
turns a name into one. Baselines work frame by frame on the model inputs (``seq.visible``,
``seq.infrared``) and need no weights:

* ``average``: per-channel mean of the visible RGB and the infrared grey repeated to 3 channels.
* ``max``: luminance Y = max(Y_vis, IR) with the visible chroma (Cb, Cr), BT.601 YCbCr.
* ``laplacian``: Laplacian-pyramid fusion of Y_vis and IR (Burt & Adelson 1983; Toet 1989):
  detail levels take the coefficient of larger magnitude, the coarsest level the mean; the
  visible chroma is kept.
* ``visible``, ``infrared``: one input passed through unchanged (the infrared grey repeated to
  three channels) -- not fusions, but the floor a fusion is read against (what MI, SD or the
  brightness offset of the camera image alone come to).

Model methods (resolved lazily, so the baselines never import the network):

* a preset of :func:`temcoco_core.model.build_model` (``edge``, ``official``,
  ``edge-framewise``...) with its default weights;
* ``PRESET:PATH`` -- a preset with a checkpoint file; a bare ``PATH`` tries the presets in turn;
* ``framewise:METHOD`` -- any model method run one frame at a time (T = 1), which shows what
  temporal modelling buys.

With the node's settings (``temcoco eval`` passes them), model methods get the infrared input the
node's network gets: each sequence's infrared frames go through the node's thermal normalisation
(:class:`~temcoco_core.frames.thermal.ThermalNormalizer` of ``thermal_policy`` and friends, fresh
per sequence, frames stamped at the sequence's rate). Baselines get the raw inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import os
from pathlib import Path

import cv2
import numpy as np

from temcoco_core.io.datasets import FusionSequence

__all__ = [
    "BASELINES",
    "EngineMethod",
    "FrameFusion",
    "MethodError",
    "ModelMethod",
    "SequenceMethod",
    "available_methods",
    "fuse_average",
    "fuse_laplacian",
    "fuse_max",
    "pass_infrared",
    "pass_visible",
    "framewise_method",
    "method_label",
    "resolve_method",
]

#: ``(visible (H, W, 3) uint8 RGB, infrared (H, W) uint8) -> fused (H, W, 3) uint8 RGB``.
FrameFusion = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: ``FusionSequence -> fused (T, H, W, 3) uint8 RGB``.
SequenceMethod = Callable[[FusionSequence], np.ndarray]


class MethodError(ValueError):
    """Unknown method name, or a model method that cannot be built (missing weights...)."""


def _check_pair(visible: np.ndarray, infrared: np.ndarray) -> None:
    if visible.dtype != np.uint8 or infrared.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {visible.dtype} and {infrared.dtype}")
    if visible.ndim != 3 or visible.shape[2] != 3:
        raise ValueError(f"visible must be (H, W, 3), got {visible.shape}")
    if infrared.shape != visible.shape[:2]:
        raise ValueError(f"infrared must be (H, W) = {visible.shape[:2]}, got {infrared.shape}")


def fuse_average(visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
    """(V + I) / 2 per channel, I repeated to three channels; rounded half up."""
    _check_pair(visible, infrared)
    s = visible.astype(np.uint16) + infrared[..., None].astype(np.uint16)
    return ((s + 1) // 2).astype(np.uint8)


def _ycrcb(visible: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(visible.astype(np.float32) / 255.0, cv2.COLOR_RGB2YCrCb)


def _with_luma(ycrcb: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = ycrcb.copy()
    out[..., 0] = y
    rgb = cv2.cvtColor(out, cv2.COLOR_YCrCb2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def fuse_max(visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
    """Y_f = max(Y_vis, IR) with the visible Cb/Cr (BT.601 YCbCr)."""
    _check_pair(visible, infrared)
    ycc = _ycrcb(visible)
    return _with_luma(ycc, np.maximum(ycc[..., 0], infrared.astype(np.float32) / 255.0))


def _laplacian_pyramid(img: np.ndarray, levels: int) -> list[np.ndarray]:
    pyr, cur = [], img
    for _ in range(levels - 1):
        down = cv2.pyrDown(cur)
        up = cv2.pyrUp(down, dstsize=(cur.shape[1], cur.shape[0]))
        pyr.append(cur - up)
        cur = down
    pyr.append(cur)
    return pyr


def _collapse(pyr: list[np.ndarray]) -> np.ndarray:
    cur = pyr[-1]
    for lap in reversed(pyr[:-1]):
        cur = cv2.pyrUp(cur, dstsize=(lap.shape[1], lap.shape[0])) + lap
    return cur


def fuse_laplacian(visible: np.ndarray, infrared: np.ndarray, levels: int = 4) -> np.ndarray:
    """Laplacian-pyramid fusion of Y_vis and IR (max-abs details, mean base), visible chroma.

    ``levels`` is reduced for small images so the coarsest level stays at least 8 pixels.
    """
    _check_pair(visible, infrared)
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    h, w = infrared.shape
    levels = max(1, min(levels, int(np.log2(max(1, min(h, w) // 8))) + 1))
    ycc = _ycrcb(visible)
    pa = _laplacian_pyramid(ycc[..., 0], levels)
    pb = _laplacian_pyramid(infrared.astype(np.float32) / 255.0, levels)
    fused = [np.where(np.abs(a) >= np.abs(b), a, b) for a, b in zip(pa[:-1], pb[:-1])]
    fused.append(0.5 * (pa[-1] + pb[-1]))
    return _with_luma(ycc, np.clip(_collapse(fused), 0.0, 1.0))


def pass_visible(visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
    """The visible input unchanged (a reference row, not a fusion)."""
    _check_pair(visible, infrared)
    return visible.copy()


def pass_infrared(visible: np.ndarray, infrared: np.ndarray) -> np.ndarray:
    """The infrared input repeated to three channels (a reference row, not a fusion)."""
    _check_pair(visible, infrared)
    return np.repeat(infrared[..., None], 3, axis=2)


#: Baselines by name.
BASELINES: dict[str, FrameFusion] = {
    "average": fuse_average,
    "max": fuse_max,
    "laplacian": fuse_laplacian,
    "visible": pass_visible,
    "infrared": pass_infrared,
}


def _framewise(fn: FrameFusion) -> SequenceMethod:
    def run(seq: FusionSequence) -> np.ndarray:
        return np.stack([fn(v, i) for v, i in zip(seq.visible, seq.infrared)])

    return run


def _thermal_config(settings: object | None) -> object | None:
    """The node settings' :class:`~temcoco_core.frames.thermal.ThermalConfig`, if they have one."""
    make = getattr(settings, "thermal_config", None)
    return make() if callable(make) else None


class InfraredInput:
    """A sequence's infrared input as the network gets it: ``(H, W)`` float32 in ``[0, 1]``.

    With a thermal config, frames go through a fresh
    :class:`~temcoco_core.frames.thermal.ThermalNormalizer` in order (stamped at
    ``seq.meta["fps"]``, 30 fps when unknown); frames are normalised once and kept only until a
    later request starts past them, so clips that overlap cost no second pass and memory holds
    one clip. Without one, the raw grey is scaled by 1/255.

    Args:
        seq: the sequence.
        thermal: a :class:`~temcoco_core.frames.thermal.ThermalConfig`, or ``None``.
    """

    def __init__(self, seq: FusionSequence, thermal: object | None) -> None:
        self.seq = seq
        self.normalizer = None
        if thermal is not None:
            from temcoco_core.frames.thermal import ThermalNormalizer

            self.normalizer = ThermalNormalizer(thermal)  # type: ignore[arg-type]
        fps = float(seq.meta.get("fps") or 0.0)
        self.period_ns = int(round(1e9 / (fps if fps > 0 else 30.0)))
        self._cache: dict[int, np.ndarray] = {}
        self._next = 0

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as ``(n, H, W)`` float32; ``start`` must not go backwards."""
        if self.normalizer is None:
            return self.seq.infrared[start:stop].astype(np.float32) / np.float32(255.0)
        for k in [k for k in self._cache if k < start]:
            del self._cache[k]
        if start < self._next and start not in self._cache:
            raise ValueError(f"infrared frame {start} was requested after frame {self._next - 1}")
        while self._next < stop:
            t = self._next
            self._cache[t] = self.normalizer(self.seq.infrared[t], t * self.period_ns).copy()
            self._next += 1
        return np.stack([self._cache[t] for t in range(start, stop)])


@dataclass
class ModelMethod:
    """Run a fusion network on a sequence in clips (the released test schedule by default).

    Args:
        model: ``model(visible, infrared)`` on (B, T, 3, H, W) float [0, 1] RGB (infrared grey
            repeated to 3 channels) returning the fused (B, T, 3, H, W).
        clip_len: frames per forward pass (1 = frame by frame).
        overlap: frames shared by consecutive clips; the later clip's output overwrites them
            (released ``test_folder.py``: 30 and 5); clamped to ``clip_len - 1``.
        device: torch device.
        name: label for reports.
        thermal: a :class:`~temcoco_core.frames.thermal.ThermalConfig` to normalise the infrared
            input with, as the node does; ``None``: the raw input scaled by 1/255.
    """

    model: object
    clip_len: int = 30
    overlap: int = 5
    device: str = "cpu"
    name: str = "model"
    thermal: object | None = None

    def __post_init__(self) -> None:
        if self.clip_len < 1 or self.overlap < 0:
            raise MethodError(f"{self.name}: need clip_len >= 1 and overlap >= 0, got "
                              f"{self.clip_len}, {self.overlap}")
        self.overlap = min(self.overlap, self.clip_len - 1)

    def clips(self, t: int) -> list[tuple[int, int]]:
        """``(start, stop)`` of every clip of a T-frame sequence, stop exclusive.

        The last clip ends at T.
        """
        if t <= self.clip_len:
            return [(0, t)]
        step = self.clip_len - self.overlap
        starts = list(range(0, t - self.clip_len + 1, step))
        if starts[-1] + self.clip_len < t:
            starts.append(t - self.clip_len)
        return [(s, s + self.clip_len) for s in starts]

    def __call__(self, seq: FusionSequence) -> np.ndarray:
        import torch

        out = np.empty_like(seq.visible)
        model = self.model
        infrared = InfraredInput(seq, self.thermal)
        for s, e in self.clips(seq.num_frames):
            vis = torch.from_numpy(np.ascontiguousarray(seq.visible[s:e]))
            ir = torch.from_numpy(infrared.frames(s, e))[..., None].expand(-1, -1, -1, 3)
            vis = vis.permute(0, 3, 1, 2)[None].float().div(255.0).to(self.device)
            ir = ir.permute(0, 3, 1, 2)[None].float().to(self.device)
            with torch.inference_mode():
                fused = model(vis, ir)  # type: ignore[operator]
            if tuple(fused.shape) != tuple(vis.shape):
                raise MethodError(f"{self.name}: model returned {tuple(fused.shape)} for input "
                                  f"{tuple(vis.shape)} on sequence {seq.name}")
            arr = fused[0].clamp(0, 1).mul(255.0).round().byte().permute(0, 2, 3, 1).cpu()
            out[s:e] = arr.numpy()
        return out


class EngineMethod:
    """Run the node's fusion engine over a sequence, one frame pair at a time.

    The engine is :func:`temcoco_core.engine.factory.build_engine` of ``settings`` (the node's
    parameters: preset, weights, backend, precision, device, buffer mode, CPU threads), built
    once and reused for every sequence (its backend is prepared for the frames' size at the
    first frame). A causal preset streams: memory holds one frame and the network's state,
    whatever the sequence length. Frames go in as the pipeline hands them to the engine,
    ``(3, H, W)`` float in ``[0, 1]`` (infrared grey repeated to 3 channels), the infrared after
    the settings' thermal normalisation (:class:`InfraredInput`); a clip engine's late outputs are
    collected at the end of each sequence.

    Raises:
        MethodError: the engine cannot be built (bad weights, backend, device).
    """

    def __init__(self, settings: object, name: str = "model") -> None:
        self.settings = settings
        self.thermal = _thermal_config(settings)
        self.name = name
        self._engine = None
        self.info = None

    def engine(self) -> object:
        if self._engine is None:
            from temcoco_core.engine.factory import build_engine, EngineBuildError

            try:
                self._engine, self.info = build_engine(self.settings)  # type: ignore[arg-type]
            except EngineBuildError as e:
                raise MethodError(f"{self.name}: {e}") from e
        return self._engine

    def __call__(self, seq: FusionSequence) -> np.ndarray:
        import torch

        engine = self.engine()
        engine.reset()  # type: ignore[attr-defined]
        out = np.empty_like(seq.visible)
        n = 0

        def put(fused: torch.Tensor) -> None:
            nonlocal n
            if n < len(out):
                out[n] = fused.clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu()
                n += 1

        infrared = InfraredInput(seq, self.thermal)
        with torch.inference_mode():
            for t in range(seq.num_frames):
                vis = torch.from_numpy(np.ascontiguousarray(seq.visible[t])).permute(2, 0, 1)
                ir = torch.from_numpy(infrared.frames(t, t + 1)).expand(3, -1, -1)
                fused = engine.push(vis.float().div(255.0),  # type: ignore[attr-defined]
                                    ir)
                if fused is not None:
                    put(fused)
            for fused in getattr(engine, "drain", list)():
                put(fused)
        if n != seq.num_frames:
            raise MethodError(f"{self.name}: the engine returned {n} frames for the "
                              f"{seq.num_frames} of sequence {seq.name}")
        return out


def _build_model(preset: str, weights: str | None, settings: object | None = None):
    """Build ``preset`` with ``weights`` (``None``: its default weights).

    With the options that the node parameters ``settings`` (a
    :class:`~temcoco_core.node_config.NodeConfig`) set for it, e.g. the motion gate.
    """
    try:
        from temcoco_core.model import build_model
    except ImportError as e:
        raise MethodError(f"model methods need temcoco_core.model: {e}") from e
    model_options = getattr(settings, "model_options", None)
    options = model_options(preset) if callable(model_options) else {}
    try:
        if weights is None:
            return build_model(preset, pretrained=True, **options)
        return build_model(preset, weights=weights, **options)
    except (ValueError, OSError, RuntimeError) as e:
        where = f" with weights {weights}" if weights else " (default weights)"
        raise MethodError(f"cannot build model method '{preset}'{where}: {e}") from e


def _model_presets() -> list[str]:
    try:
        from temcoco_core.model import available_presets
    except ImportError:
        return []
    return list(available_presets())


def _model_method(spec: str, clip_len: int | None, overlap: int, device: str,
                  settings: object | None = None, thermal: object | None = None
                  ) -> SequenceMethod:
    presets = _model_presets()
    preset, weights = spec, None
    if ":" in spec and spec.split(":", 1)[0] in presets:
        preset, weights = spec.split(":", 1)
    elif spec not in presets:
        p = Path(spec)
        if not p.is_file():
            raise MethodError(
                f"unknown method '{spec}': not a baseline ({', '.join(BASELINES)}), not a "
                f"model preset ({', '.join(presets) or 'none available'}), not a checkpoint "
                f"file, not framewise:METHOD")
        errors = []
        for cand in presets:
            try:
                model = _build_model(cand, str(p), settings)
            except MethodError as e:
                errors.append(f"{cand}: {str(e).splitlines()[0]}")
                continue
            return ModelMethod(model, clip_len or 30, overlap, device, name=f"{cand}:{p.name}",
                               thermal=thermal)
        raise MethodError(f"checkpoint {p} fits no preset: " + "; ".join(errors))
    model = _build_model(preset, weights, settings)
    if clip_len is None and settings is not None and callable(getattr(model, "step", None)):
        # a causal network without an explicit clip schedule: stream it through the node's
        # engine (one frame in memory, the backend/device/threads of the settings)
        from dataclasses import replace

        method = EngineMethod(replace(settings, fusion_engine="model",  # type: ignore[type-var]
                                      preset=preset, weights=weights or ""), name=spec)
        method.engine()  # bad backend / device: fail now, naming the method
        return method
    if clip_len is None:
        clip_len = 1 if preset.endswith("framewise") else 30
    return ModelMethod(model, clip_len, overlap, device, name=spec, thermal=thermal)


def framewise_method(method: SequenceMethod) -> SequenceMethod:
    """Wrap a :class:`ModelMethod` to run one frame at a time (T = 1, no temporal context)."""
    if isinstance(method, ModelMethod):
        return ModelMethod(method.model, 1, 0, method.device, name=f"framewise:{method.name}",
                           thermal=method.thermal)
    raise MethodError("framewise: needs a model method (baselines are frame-wise already)")


def resolve_method(name: str, clip_len: int | None = None, overlap: int = 5,
                   device: str = "cpu", settings: object | None = None) -> SequenceMethod:
    """Turn a method name into a ``FusionSequence -> (T, H, W, 3) uint8`` callable.

    Args:
        name: a baseline (:data:`BASELINES`), a model preset, ``PRESET:CHECKPOINT``, a
            checkpoint path, or ``framewise:<one of those>``.
        clip_len: frames per model forward pass (default 30; 1 for ``*-framewise`` presets).
        overlap: overlap of consecutive clips (overwritten by the later clip).
        device: torch device for model methods.
        settings: the node's parameters (:class:`~temcoco_core.node_config.NodeConfig`); with
            them and no ``clip_len``, a causal preset runs as :class:`EngineMethod` (streamed
            through the node's engine, its backend, device and threads), and every model
            method normalises the infrared input with the settings' thermal policy.

    Raises:
        MethodError: unknown name, or a model that cannot be built (e.g. missing weights).
    """
    name = name.strip()
    if not name:
        raise MethodError("empty method name")
    thermal = _thermal_config(settings)
    if name in BASELINES:
        return _framewise(BASELINES[name])
    if name.startswith("framewise:"):
        inner = name.split(":", 1)[1]
        if inner in BASELINES:
            return _framewise(BASELINES[inner])
        return framewise_method(_model_method(inner, clip_len, overlap, device,
                                              thermal=thermal))
    return _model_method(name, clip_len, overlap, device, settings, thermal)


def available_methods() -> list[str]:
    """Baseline names and model presets (model presets may still lack weights)."""
    return list(BASELINES) + _model_presets()


def method_label(name: str) -> str:
    """Short label for tables and file names.

    Checkpoint paths become their file name (``edge:/a/b/ck.pth`` -> ``edge:ck.pth``).
    """
    head, sep, tail = name.rpartition(":")
    if sep and ("/" in tail or os.sep in tail):
        return f"{head}:{Path(tail).name}"
    if "/" in name or os.sep in name:
        return Path(name).name
    return name
