# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Inference backends: configuration, fallback chain, engine cache keys.

Torch-TensorRT version branching (a fake ``torch_tensorrt`` module records its calls: TensorRT
cannot be installed here), onnxruntime parity, corrupt/mismatched engine files, and the engines of
:mod:`temcoco_core.engine.streaming` running a prepared model unchanged.
"""

from __future__ import annotations

import importlib.machinery
import logging
from pathlib import Path
import sys
import types

import pytest
import torch
from torch import nn, Tensor

from temcoco_core.engine import backends
from temcoco_core.engine.backends import (
    BackendConfig,
    BackendError,
    BackendUnavailableError,
    EngineFileError,
    InputSpec,
    prepare_model,
    PreparedModel,
    PreparedStreamingModel,
)
from temcoco_core.engine.cache import engine_key, parse_version, PlatformInfo, weights_digest
from temcoco_core.engine.onnxruntime_backend import onnxruntime_providers
from temcoco_core.engine.tensorrt_backend import tensorrt_compile_settings

H, W = 16, 24


class ToyCausal(nn.Module):
    """A tiny causal fusion network with the edge preset's API.

    ``forward``: ``(B, T, 3, H, W) × 2 → (B, T, 3, H, W)``; ``y_t = a(v_t) + b(i_t) +
    c(v_{t−1})`` (frame 0 stands in for frame −1). Step state: the previous visible frame.
    """

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)
        self.c = nn.Conv2d(3, 3, 1)

    def forward(self, visible: Tensor, infrared: Tensor) -> Tensor:
        b, t, c, h, w = visible.shape
        prev = torch.cat([visible[:, :1], visible[:, :-1]], dim=1)
        out = (self.a(visible.reshape(b * t, c, h, w)) + self.b(infrared.reshape(b * t, c, h, w))
               + self.c(prev.reshape(b * t, c, h, w)))
        return out.view(b, t, 3, h, w)

    def state_shapes(self, batch: int, height: int, width: int) -> dict[str, tuple[int, ...]]:
        return {"prev": (batch, 3, height, width), "count": (1,)}

    def init_state(self, batch, height, width, device=None, dtype=None):
        param = next(self.parameters())
        device = param.device if device is None else device
        dtype = param.dtype if dtype is None else dtype
        return {"prev": torch.zeros(batch, 3, height, width, device=device, dtype=dtype),
                "count": torch.zeros(1, dtype=torch.int64, device=device)}

    def step(self, visible, infrared, state, *, first=None):
        if set(state) != {"prev", "count"} or state["prev"].shape != visible.shape:
            raise ValueError("state does not fit")
        count = state["count"]
        flag = (count == 0).view(1, 1, 1, 1) if first is None else bool(first)
        prev = (visible if flag else state["prev"]) if isinstance(flag, bool) else \
            torch.where(flag, visible, state["prev"])
        out = self.a(visible) + self.b(infrared) + self.c(prev)
        return out, {"prev": visible, "count": torch.clamp(count + 1, max=1)}


class ToyClip(nn.Module):
    """A clip-only network (no streaming API), like the official preset."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(6, 3, (3, 3, 3), padding=1)

    def forward(self, visible: Tensor, infrared: Tensor) -> Tensor:
        x = torch.cat([visible, infrared], dim=2).transpose(1, 2)
        return self.conv(x).transpose(1, 2)


@pytest.fixture
def toy() -> ToyCausal:
    return ToyCausal().eval()


def frames(n: int, batch: int = 1) -> list[tuple[Tensor, Tensor]]:
    return [(torch.rand(batch, 3, H, W), torch.rand(batch, 3, H, W)) for _ in range(n)]


def run_steps(model, pairs, first_hint=False):
    state = model.init_state(pairs[0][0].shape[0], H, W)
    outs = []
    for vis, ir in pairs:
        fused, state = model.step(vis, ir, state)
        outs.append(fused)
    return torch.stack(outs)


# ------------------------------------------------------------------------------ config


def test_config_validation_and_aliases():
    assert BackendConfig("onnx").name == "onnxruntime"
    assert BackendConfig("TRT", precision="half").precision == "fp16"
    assert BackendConfig(device="cuda").device == "cuda"
    for bad in ({"name": "openvino"}, {"precision": "int4"}, {"device": "tpu"},
                {"warmup": -1}, {"fallback": ("auto",)}):
        with pytest.raises(ValueError):
            BackendConfig(**bad)
    assert BackendConfig(engine_path="x/engine.onnx").name == "onnxruntime"
    assert BackendConfig(engine_path="x/engine.ep").name == "tensorrt"
    with pytest.raises(ValueError, match="tensorrt engine"):
        BackendConfig("onnxruntime", engine_path="engine.ep")
    with pytest.raises(ValueError, match="unknown kind"):
        BackendConfig(engine_path="engine.bin")
    cfg = BackendConfig.from_mapping({"name": "inductor", "fallback": "inductor, eager",
                                      "engine_path": ""})
    assert cfg.fallback == ("inductor", "eager") and cfg.engine_path is None
    with pytest.raises(ValueError, match="unknown backend option"):
        BackendConfig.from_mapping({"nmae": "eager"})


def test_fallback_chain_order():
    assert BackendConfig(device="cuda").chain() == ("tensorrt", "inductor", "eager")
    assert BackendConfig().chain() == ("onnxruntime", "eager")  # auto on a CPU: fastest first
    assert BackendConfig(fallback=("inductor", "eager")).chain() == ("inductor", "eager")
    assert BackendConfig("tensorrt").chain() == ("tensorrt", "inductor", "eager")
    assert BackendConfig("inductor").chain() == ("inductor", "eager")
    assert BackendConfig("eager").chain() == ("eager",)
    assert BackendConfig("onnxruntime").chain() == ("onnxruntime", "tensorrt", "inductor",
                                                    "eager")
    assert BackendConfig("onnxruntime", fallback=("eager",)).chain() == ("onnxruntime", "eager")
    assert BackendConfig("tensorrt", fallback=()).chain() == ("tensorrt",)
    assert BackendConfig(engine_path="a.onnx").chain() == ("onnxruntime",)


def test_input_spec_shapes():
    assert InputSpec("stream", 8, 12).frame_shape == (1, 3, 8, 12)
    assert InputSpec("window", 8, 12, clip_length=5).frame_shape == (1, 5, 3, 8, 12)
    with pytest.raises(ValueError):
        InputSpec("batch", 8, 12)
    with pytest.raises(ValueError):
        InputSpec("clip", 0, 12)


def test_parse_version():
    assert parse_version("2.13.0+cu128") == (2, 13, 0)
    assert parse_version("2.12.0.dev20250101") == (2, 12, 0)
    assert parse_version("10.9.0.34") == (10, 9, 0, 34)
    assert parse_version("2.9rc1") == (2, 9)
    assert parse_version("") == ()


def test_tensorrt_precision_settings_branch_on_version():
    kwargs, cast = tensorrt_compile_settings("2.12.0+cu126", "fp16")
    assert kwargs == {"enabled_precisions": {torch.float32, torch.float16}}
    assert cast == torch.float32
    kwargs, cast = tensorrt_compile_settings("2.12.1", "fp32")
    assert kwargs == {"enabled_precisions": {torch.float32}} and cast == torch.float32
    for version in ("2.13.0", "2.14.0a0", "3.0.0"):
        kwargs, cast = tensorrt_compile_settings(version, "fp16")
        assert kwargs == {} and cast == torch.float16
    assert tensorrt_compile_settings("2.13.0", "bf16") == ({}, torch.bfloat16)
    with pytest.raises(BackendUnavailableError):
        tensorrt_compile_settings("unknown", "fp16")


# ------------------------------------------------------------------------- cache key


def _platform(**changes) -> PlatformInfo:
    base = {"device_name": "NVIDIA Jetson AGX Orin", "compute_capability": "8.7",
            "torch": "2.13.0", "tensorrt": "10.7.0", "torch_tensorrt": "2.13.0",
            "onnxruntime": "1.20.0"}
    base.update(changes)
    return PlatformInfo(**base)


def test_weights_digest_tracks_parameters(toy):
    first = weights_digest(toy)
    assert first == weights_digest(toy)
    other = ToyCausal()
    other.load_state_dict(toy.state_dict())
    assert weights_digest(other) == first
    with torch.no_grad():
        other.c.bias[0] += 1e-3
    assert weights_digest(other) != first


def test_engine_key_changes_with_everything_it_depends_on(toy):
    spec = InputSpec("stream", H, W)
    inputs = backends._input_signature(toy, spec, torch.float16)
    base = engine_key("tensorrt", toy, spec, "fp16", _platform(), inputs)
    same = engine_key("tensorrt", toy, spec, "fp16", _platform(), inputs)
    assert base.digest() == same.digest() and base.mismatches(same.as_dict()) == []
    other = ToyCausal()
    variants = {
        "weights": engine_key("tensorrt", other, spec, "fp16", _platform(), inputs),
        "shape": engine_key("tensorrt", toy, InputSpec("stream", H, 2 * W), "fp16", _platform(),
                            backends._input_signature(toy, InputSpec("stream", H, 2 * W),
                                                      torch.float16)),
        "precision": engine_key("tensorrt", toy, spec, "fp32", _platform(), inputs),
        "gpu": engine_key("tensorrt", toy, spec, "fp16", _platform(device_name="RTX 4090"),
                          inputs),
        "capability": engine_key("tensorrt", toy, spec, "fp16",
                                 _platform(compute_capability="8.9"), inputs),
        "tensorrt": engine_key("tensorrt", toy, spec, "fp16", _platform(tensorrt="10.8.0"),
                               inputs),
        "torch_tensorrt": engine_key("tensorrt", toy, spec, "fp16",
                                     _platform(torch_tensorrt="2.14.0"), inputs),
    }
    digests = {name: key.digest() for name, key in variants.items()}
    assert base.digest() not in digests.values()
    assert len(set(digests.values())) == len(digests)
    assert any("tensorrt" in m for m in variants["tensorrt"].mismatches(base.as_dict()))
    assert any("weights" in m for m in variants["weights"].mismatches(base.as_dict()))
    # ONNX files are portable: the GPU does not enter their key.
    onnx_a = engine_key("onnxruntime", toy, spec, "fp32", _platform(), inputs)
    onnx_b = engine_key("onnxruntime", toy, spec, "fp32",
                        _platform(device_name="x", tensorrt="9"), inputs)
    assert onnx_a.digest() == onnx_b.digest()


# --------------------------------------------------------------------- fallback chain


def test_missing_torch_tensorrt_falls_back_with_logged_reason(toy, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import fails
    cfg = BackendConfig("tensorrt", fallback=("tensorrt", "eager"), warmup=1)
    with caplog.at_level(logging.WARNING, logger="temcoco_core.engine.backends"):
        prepared = prepare_model(toy, cfg, example_shape=(H, W))
    assert prepared.backend == "eager" and prepared.requested == "tensorrt"
    assert any("torch_tensorrt is not installed" in note and "falling back to eager" in note
               for note in prepared.fallback_log)
    assert "falling back to eager" in caplog.text
    assert prepared.describe()["backend"] == "eager"


def test_every_backend_failing_raises(toy, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(BackendError, match="no backend could be prepared.*tensorrt"):
        prepare_model(toy, BackendConfig("tensorrt", fallback=()), example_shape=(H, W))


def test_tensorrt_needs_cuda(toy, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", FakeTorchTensorRT("2.13.0"))
    cfg = BackendConfig("tensorrt", fallback=("eager",))
    prepared = prepare_model(toy, cfg, example_shape=(H, W))
    assert prepared.backend == "eager"
    assert any("needs a CUDA device" in note for note in prepared.fallback_log)


def test_fp16_on_cpu_runs_fp32_with_reason(toy):
    prepared = prepare_model(toy, BackendConfig("eager", precision="fp16"), example_shape=(H, W))
    assert prepared.precision == "fp32"
    assert any("fp16 is not supported on the CPU" in note for note in prepared.fallback_log)
    bf16 = prepare_model(toy, BackendConfig("eager", precision="bf16"), example_shape=(H, W))
    assert bf16.precision == "bf16" and bf16.compute_dtype == torch.bfloat16
    pairs = frames(2)
    out = run_steps(bf16, pairs)
    assert out.dtype == torch.float32  # back in the caller's dtype
    torch.testing.assert_close(out, run_steps(toy, pairs), atol=0.05, rtol=0.05)


def test_inductor_failure_falls_back(toy, monkeypatch):
    def broken_compile(*args, **kwargs):
        raise RuntimeError("C++ compiler not found")

    monkeypatch.setattr(torch, "compile", broken_compile)
    prepared = prepare_model(toy, BackendConfig("inductor"), example_shape=(H, W))
    assert prepared.backend == "eager"
    assert any("inductor failed: RuntimeError: C++ compiler not found" in note
               for note in prepared.fallback_log)


def test_inductor_wiring_and_parity_check(toy, monkeypatch):
    calls = []

    def fake_compile(module, **kwargs):
        calls.append(kwargs)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    prepared = prepare_model(toy, BackendConfig("inductor", warmup=2), example_shape=(H, W))
    assert prepared.backend == "inductor"
    assert calls == [{"dynamic": False, "fullgraph": False, "mode": None}]
    pairs = frames(3)
    torch.testing.assert_close(run_steps(prepared, pairs), run_steps(toy, pairs))

    def wrong_compile(module, **kwargs):
        return lambda *args: tuple(t + 1 if t.is_floating_point() else t
                                   for t in module(*args))

    monkeypatch.setattr(torch, "compile", wrong_compile)
    prepared = prepare_model(toy, BackendConfig("inductor"), example_shape=(H, W))
    assert prepared.backend == "eager"
    assert any("differs from eager" in note for note in prepared.fallback_log)


def test_parity_reference_runs_first_and_checks_every_warmup_step(toy, monkeypatch):
    """Compute the eager reference first and compare every warm-up step.

    The reference outputs are computed (and their memory freed) before the backend is built,
    and every warm-up step is compared, not only the first: a backend that goes wrong on the
    second streamed frame (its state) is fallen back from.
    """
    order = []
    reference = backends._reference_outputs

    def logged_reference(*args, **kwargs):
        order.append("reference")
        return reference(*args, **kwargs)

    def second_step_wrong(module, **kwargs):
        order.append("build")
        seen = []

        def call(*args):
            seen.append(1)
            out = module(*args)
            return out if len(seen) < 2 else (out[0] + 0.5, *out[1:])
        return call

    monkeypatch.setattr(backends, "_reference_outputs", logged_reference)
    monkeypatch.setattr(torch, "compile", second_step_wrong)
    prepared = prepare_model(toy, BackendConfig("inductor", warmup=2), example_shape=(H, W))
    assert order == ["reference", "build"]
    assert prepared.backend == "eager"
    assert any("warm-up frame 1 differs from eager" in note for note in prepared.fallback_log)


def test_non_finite_warmup_output_falls_back(toy, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module, **kw: (
        lambda *args: tuple(t * float("inf") if t.is_floating_point() else t
                            for t in module(*args))))
    prepared = prepare_model(toy, BackendConfig("inductor", check_parity=False),
                             example_shape=(H, W))
    assert prepared.backend == "eager"
    assert any("not finite" in note for note in prepared.fallback_log)


# ------------------------------------------------------------------- fake TensorRT


class FakeTorchTensorRT(types.ModuleType):
    """Stands in for ``torch_tensorrt``.

    Records calls; "compiles" to the exported program's module (runs on the CPU); "saves" a marker
    file that :meth:`load` maps back.
    """

    MAGIC = b"FAKE-TRT-ENGINE "

    def __init__(self, version: str) -> None:
        super().__init__("torch_tensorrt")
        self.__spec__ = importlib.machinery.ModuleSpec("torch_tensorrt", None)
        self.__version__ = version
        self.calls: list[tuple[str, dict]] = []
        self._saved: dict[str, nn.Module] = {}

    def compile(self, module, ir="default", inputs=None, **kwargs):
        self.calls.append(("compile", {"ir": ir, "inputs": inputs, "type": type(module),
                                       **kwargs}))
        return module.module()

    def save(self, module, file_path, **kwargs):
        self.calls.append(("save", {"path": file_path, **kwargs}))
        token = f"{len(self._saved)}"
        self._saved[token] = module
        Path(file_path).write_bytes(self.MAGIC + token.encode())

    def load(self, file_path, **kwargs):
        self.calls.append(("load", {"path": file_path}))
        data = Path(file_path).read_bytes()
        if not data.startswith(self.MAGIC) or data[len(self.MAGIC):].decode() not in self._saved:
            raise RuntimeError("PytorchStreamReader failed reading zip archive")
        module = self._saved[data[len(self.MAGIC):].decode()]
        return types.SimpleNamespace(module=lambda: module)

    def count(self, what: str) -> int:
        return sum(1 for name, _ in self.calls if name == what)


@pytest.fixture
def fake_trt(monkeypatch):
    """Install a fake torch_tensorrt / tensorrt pair and pretend the CPU is a CUDA device."""

    def install(version: str = "2.12.0", tensorrt_version: str = "10.7.0"):
        module = FakeTorchTensorRT(version)
        monkeypatch.setitem(sys.modules, "torch_tensorrt", module)
        trt = types.ModuleType("tensorrt")
        trt.__version__ = tensorrt_version
        trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        return module

    monkeypatch.setattr(backends, "_require_cuda", lambda backend, device: None)
    return install


def test_tensorrt_212_builds_caches_and_reuses(toy, fake_trt, tmp_path, caplog):
    trt = fake_trt("2.12.0+cu126")
    cfg = BackendConfig("tensorrt", precision="fp16", cache_dir=tmp_path, fallback=(),
                        warmup=2)
    prepared = prepare_model(toy, cfg, example_shape=(H, W))
    assert prepared.backend == "tensorrt" and prepared.precision == "fp16"
    (name, compile_args), = [c for c in trt.calls if c[0] == "compile"]
    assert compile_args["ir"] == "dynamo"
    assert compile_args["enabled_precisions"] == {torch.float32, torch.float16}
    assert compile_args["type"] is torch.export.ExportedProgram
    assert all(t.dtype in (torch.float32, torch.int64) for t in compile_args["inputs"])
    shapes = [tuple(t.shape) for t in compile_args["inputs"]]
    assert shapes == [(1, 3, H, W), (1, 3, H, W), (1,), (1, 3, H, W)]
    save_args = next(c for n, c in trt.calls if n == "save")
    assert save_args["output_format"] == "exported_program" and "arg_inputs" in save_args
    engine = prepared.engine_path
    assert engine.parent == tmp_path and engine.suffix == ".ep"
    meta = Path(str(engine) + ".json")
    assert meta.is_file() and '"tensorrt": "10.7.0"' in meta.read_text()
    pairs = frames(3)
    torch.testing.assert_close(run_steps(prepared, pairs), run_steps(toy, pairs))

    # Same everything: the cached engine is loaded, not rebuilt.
    again = prepare_model(toy, cfg, example_shape=(H, W))
    assert trt.count("compile") == 1 and again.engine_path == engine
    assert any("using cached engine" in note for note in again.fallback_log)

    # Another TensorRT version: another key, a new build.
    trt_new = fake_trt("2.12.0+cu126", tensorrt_version="10.8.0")
    rebuilt = prepare_model(toy, cfg, example_shape=(H, W))
    assert trt_new.count("compile") == 1 and rebuilt.engine_path != engine


def test_tensorrt_213_casts_to_half_instead_of_enabled_precisions(toy, fake_trt, tmp_path):
    trt = fake_trt("2.13.0")
    cfg = BackendConfig("tensorrt", precision="fp16", cache_dir=tmp_path, fallback=())
    prepared = prepare_model(toy, cfg, example_shape=(H, W))
    (_, compile_args), = [c for c in trt.calls if c[0] == "compile"]
    assert "enabled_precisions" not in compile_args
    dtypes = [t.dtype for t in compile_args["inputs"]]
    assert dtypes == [torch.float16, torch.float16, torch.int64, torch.float16]
    assert prepared.compute_dtype == torch.float16
    pairs = frames(2)
    out = run_steps(prepared, pairs)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, run_steps(toy, pairs), atol=0.02, rtol=0.02)


def test_tensorrt_clip_mode_of_a_clip_network(fake_trt, tmp_path):
    trt = fake_trt("2.13.0")
    model = ToyClip().eval()
    cfg = BackendConfig("tensorrt", cache_dir=tmp_path, fallback=())
    prepared = prepare_model(model, cfg, example_shape=(H, W), mode="stream", clip_length=3)
    assert isinstance(prepared, PreparedModel) and not isinstance(prepared,
                                                                  PreparedStreamingModel)
    assert prepared.spec.mode == "clip"
    assert any("no streaming step" in note for note in prepared.fallback_log)
    (_, args), = [c for c in trt.calls if c[0] == "compile"]
    assert [tuple(t.shape) for t in args["inputs"]] == [(1, 3, 3, H, W)] * 2
    clip = torch.rand(1, 3, 3, H, W), torch.rand(1, 3, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(prepared(*clip), model(*clip))


def test_corrupt_cached_engine_is_rebuilt(toy, fake_trt, tmp_path):
    trt = fake_trt("2.12.0")
    cfg = BackendConfig("tensorrt", cache_dir=tmp_path, fallback=())
    engine = prepare_model(toy, cfg, example_shape=(H, W)).engine_path
    engine.write_bytes(b"\x00garbage")
    prepared = prepare_model(toy, cfg, example_shape=(H, W))
    assert prepared.backend == "tensorrt" and trt.count("compile") == 2
    assert any("refusing cached engine" in note and "content hash" in note
               and "rebuilding" in note for note in prepared.fallback_log)


def test_explicit_engine_file_errors_are_clear(toy, fake_trt, tmp_path):
    fake_trt("2.12.0")
    cfg = BackendConfig("tensorrt", cache_dir=tmp_path, fallback=())
    good = prepare_model(toy, cfg, example_shape=(H, W))
    engine = good.engine_path

    with pytest.raises(EngineFileError, match="not found"):
        prepare_model(toy, BackendConfig(engine_path=tmp_path / "absent.ep"), (H, W))
    # Built for other weights: refused before loading, naming the difference.
    other = ToyCausal().eval()
    with pytest.raises(EngineFileError, match="weights"):
        prepare_model(other, BackendConfig(engine_path=engine), (H, W))
    # Built for another size.
    with pytest.raises(EngineFileError, match="inputs"):
        prepare_model(toy, BackendConfig(engine_path=engine), (H, 2 * W))
    # Corrupt file.
    broken = tmp_path / "broken.ep"
    broken.write_bytes(b"not an engine")
    with pytest.raises(EngineFileError, match="could not be loaded"):
        prepare_model(toy, BackendConfig(engine_path=broken), (H, W))
    # The model prepared before keeps working.
    pairs = frames(2)
    torch.testing.assert_close(run_steps(good, pairs), run_steps(toy, pairs))


# ---------------------------------------------------------------------- onnxruntime


def test_onnxruntime_providers_by_device():
    providers = onnxruntime_providers(["CPUExecutionProvider"], "cpu")
    assert providers == [("CPUExecutionProvider", {})]
    gpu = onnxruntime_providers(["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                 "CPUExecutionProvider"], "cuda:1", "fp16", Path("/c"))
    assert [name for name, _ in gpu] == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                         "CPUExecutionProvider"]
    assert gpu[0][1]["trt_fp16_enable"] is True and gpu[0][1]["device_id"] == 1
    assert gpu[0][1]["trt_engine_cache_path"] == "/c"
    cuda_only = onnxruntime_providers(["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda")
    assert [name for name, _ in cuda_only] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        onnxruntime_providers(["CPUExecutionProvider"], "cuda")


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (extra 'onnx')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (extra 'onnx')")
    torch.manual_seed(0)
    model = ToyCausal().eval()
    cache = tmp_path_factory.mktemp("engines")
    cfg = BackendConfig("onnxruntime", cache_dir=cache, fallback=())
    prepared = prepare_model(model, cfg, example_shape=(H, W))
    return model, cfg, prepared


def test_onnxruntime_stream_matches_eager_and_is_cached(onnx_cache):
    model, cfg, prepared = onnx_cache
    assert prepared.backend == "onnxruntime" and prepared.engine_path.suffix == ".onnx"
    assert any("built" in note for note in prepared.fallback_log)
    pairs = frames(4)
    torch.testing.assert_close(run_steps(prepared, pairs), run_steps(model, pairs),
                               atol=1e-5, rtol=1e-5)
    again = prepare_model(model, cfg, example_shape=(H, W))
    assert any("using cached engine" in note for note in again.fallback_log)
    # Another size than the one exported runs eager, correctly.
    small = [(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)) for _ in range(2)]
    state = prepared.init_state(1, 8, 8)
    fused, state = prepared.step(*small[0], state)
    assert fused.shape == (1, 3, 8, 8)


def test_auto_reaches_file_backends_under_their_own_name(onnx_cache, tmp_path):
    """Regression: ``auto`` (and any fallback step) must hand each backend a config named for it.

    The cache used to receive ``'auto'`` and refuse, so ``auto`` never left eager.
    """
    model = onnx_cache[0]
    prepared = prepare_model(model, BackendConfig(cache_dir=tmp_path), example_shape=(H, W))
    assert prepared.backend == "onnxruntime", prepared.fallback_log
    assert prepared.engine_path is not None and prepared.engine_path.suffix == ".onnx"
    # Reached by falling back from a named backend that cannot run here (no torch_tensorrt).
    fell = prepare_model(model, BackendConfig("tensorrt", cache_dir=tmp_path,
                                              fallback=("onnxruntime", "eager")),
                         example_shape=(H, W))
    assert fell.backend == "onnxruntime", fell.fallback_log


def test_onnxruntime_clip_mode(onnx_cache, tmp_path):
    model = ToyClip().eval()
    cfg = BackendConfig("onnxruntime", cache_dir=tmp_path, fallback=())
    prepared = prepare_model(model, cfg, example_shape=(H, W), mode="clip", clip_length=2)
    clip = torch.rand(1, 2, 3, H, W), torch.rand(1, 2, 3, H, W)
    with torch.no_grad():
        torch.testing.assert_close(prepared(*clip), model(*clip), atol=1e-5, rtol=1e-5)


def test_onnxruntime_bad_files(onnx_cache, tmp_path):
    model, cfg, prepared = onnx_cache
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07definitely not onnx")
    with pytest.raises(EngineFileError, match="could not be loaded"):
        prepare_model(model, BackendConfig(engine_path=garbage), (H, W))
    # A valid ONNX file for another input size, without its metadata file.
    copy = tmp_path / "other.onnx"
    copy.write_bytes(prepared.engine_path.read_bytes())
    with pytest.raises(EngineFileError, match="does not match"):
        prepare_model(model, BackendConfig(engine_path=copy), (H, 2 * W))
    # The explicit file with its metadata works; a corrupt cached entry is re-exported.
    explicit = prepare_model(model, BackendConfig(engine_path=prepared.engine_path), (H, W))
    assert explicit.backend == "onnxruntime"
    pairs = frames(2)
    torch.testing.assert_close(run_steps(prepared, pairs), run_steps(model, pairs),
                               atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------- engines


def test_prepared_model_runs_in_the_streaming_engines(toy):
    from temcoco_core.engine.streaming import ClipBuffer, StreamingFuser

    prepared = prepare_model(toy, BackendConfig("eager"), example_shape=(H, W))
    assert prepared.to(device="cpu", dtype=torch.float16) is prepared
    assert prepared.eval() is prepared
    with pytest.raises(BackendError, match="prepared for cpu"):
        prepared.to("cuda")
    with pytest.raises(BackendError, match="inference only"):
        prepared.train()
    pairs = [(torch.rand(3, H, W), torch.rand(3, H, W)) for _ in range(3)]
    ours = StreamingFuser(prepared)
    reference = StreamingFuser(ToyCausal().eval())
    reference.model.load_state_dict(toy.state_dict())
    for vis, ir in pairs:
        torch.testing.assert_close(ours.push(vis, ir), reference.push(vis, ir))
    window = ClipBuffer(prepared, length=2, mode="window")
    outs = [window.push(vis, ir) for vis, ir in pairs]
    assert all(o is not None and o.shape == (3, H, W) for o in outs)
    # Attributes not on the prepared model come from the network.
    assert prepared.state_shapes(1, H, W)["prev"] == (1, 3, H, W)


def test_state_outputs_get_row_major_strides():
    buffer = torch.zeros(1, 6, 4, 4)
    tail = buffer[:, 3:]  # "contiguous" for torch, but with the buffer's batch stride
    assert tail.is_contiguous() and tail.stride() != (48, 16, 4, 1)
    fixed = backends._canonical(tail)
    assert fixed.stride() == (48, 16, 4, 1) and torch.equal(fixed, tail)
    assert backends._canonical(fixed) is fixed


def test_compiled_calls_see_the_same_kind_of_tensor_inside_inference_mode(toy, monkeypatch):
    seen = []

    def recording_compile(module, **kwargs):
        def call(*args):
            seen.append(tuple(t.is_inference() for t in args))
            return module(*args)
        return call

    monkeypatch.setattr(torch, "compile", recording_compile)
    prepared = prepare_model(toy, BackendConfig("inductor", warmup=1), example_shape=(H, W))
    state = prepared.init_state(1, H, W)
    with torch.inference_mode():  # as StreamingFuser calls it
        for vis, ir in frames(2):
            fused, state = prepared.step(vis.clone(), ir.clone(), state)
    assert not fused.is_inference()
    assert all(not any(kinds) for kinds in seen)  # a compiled graph would not recompile


def test_cached_engines_are_trusted_by_owner_mode_and_content_hash(toy, fake_trt, tmp_path):
    """Issue 11 case 9: a cached engine was trusted by file name plus a JSON file."""
    import json
    import os
    import stat

    from temcoco_core.engine.cache import metadata_path

    trt = fake_trt("2.12.0")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # a world-writable cache folder (e.g. under /tmp)
    cfg = BackendConfig("tensorrt", cache_dir=shared, fallback=())
    engine = prepare_model(toy, cfg, example_shape=(H, W)).engine_path
    assert engine.parent == shared / f"user-{os.geteuid()}"
    assert stat.S_IMODE(engine.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(engine.stat().st_mode) == 0o600
    meta = json.loads(metadata_path(engine).read_text())
    assert len(meta["sha256"]) == 64
    assert not [p for p in engine.parent.iterdir() if ".tmp" in p.name]

    def rebuilt_after(tamper) -> bool:
        tamper()
        before = trt.count("compile")
        notes = prepare_model(toy, cfg, example_shape=(H, W)).fallback_log
        return trt.count("compile") == before + 1 and any("refusing cached engine" in n
                                                          for n in notes)

    assert rebuilt_after(lambda: engine.chmod(0o666))  # writable by others
    assert rebuilt_after(lambda: engine.write_bytes(engine.read_bytes() + b" "))  # planted
    if os.geteuid() == 0:
        assert rebuilt_after(lambda: os.chown(engine, 4321, 4321))  # another user's file
    before = trt.count("compile")
    prepare_model(toy, cfg, example_shape=(H, W))
    assert trt.count("compile") == before  # a trusted entry is reused
