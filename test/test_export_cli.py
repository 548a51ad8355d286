# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco export``: ONNX export end to end (onnxruntime checks it against PyTorch).

TensorRT through a fake ``torch_tensorrt`` (TensorRT cannot be installed here), and clear errors.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.machinery
import io
import json
from pathlib import Path
import sys
import types

import pytest

from temcoco_core.engine import backends, export
from temcoco_core.engine.backends import BackendUnavailableError
from temcoco_core.model import CheckpointError


def run_export(*argv: str) -> dict:
    parser = argparse.ArgumentParser(prog="temcoco")
    export.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["export", *argv])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert args.func(args) == 0
    return json.loads(stdout.getvalue())


def test_onnx_export_builds_verifies_and_reuses(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (extra 'onnx')")
    pytest.importorskip("onnxscript", reason="onnxscript not installed (extra 'onnx')")
    output = tmp_path / "edge-32.onnx"
    argv = ("--backend", "onnx", "--preset", "edge", "--random-weights", "--size", "32x32",
            "--output", str(output))
    result = run_export(*argv)
    assert result["backend"] == "onnxruntime" and result["mode"] == "stream"
    assert result["path"] == str(output) and output.is_file()
    assert Path(result["metadata"]).is_file() and result["built"] is True
    assert result["verified"] is True and result["precision"] == "fp32"
    assert result["key"]["inputs"][0] == ["arg0", [1, 3, 32, 32], "float32"]
    # Same request again: the file matches, nothing is rebuilt.
    again = run_export(*argv)
    assert again["built"] is False and again["digest"] == result["digest"]
    # The node's motion_gate parameter is part of the model: [0, 0] (off) is another engine.
    ungated = run_export(*argv[:-1], str(tmp_path / "edge-32-ungated.onnx"),
                         "--motion-gate", "0", "0")
    assert ungated["verified"] is True and ungated["digest"] != result["digest"]


def test_export_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="onnxruntime engine"):
        run_export("--backend", "tensorrt", "--random-weights", "--output",
                   str(tmp_path / "x.onnx"))
    with pytest.raises(CheckpointError, match="not found"):
        run_export("--backend", "onnx", "--weights", str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="no streaming step"):
        run_export("--backend", "onnx", "--preset", "official", "--random-weights",
                   "--mode", "stream", "--size", "32x32")


def test_tensorrt_export_without_torch_tensorrt_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)
    with pytest.raises(BackendUnavailableError, match="pip install torch-tensorrt"):
        run_export("--backend", "tensorrt", "--random-weights", "--size", "32x32",
                   "--cache-dir", str(tmp_path))


class FakeTorchTensorRT(types.ModuleType):
    """Records compile/save/load; the "engine" is the exported program's module (CPU)."""

    def __init__(self, version: str) -> None:
        super().__init__("torch_tensorrt")
        self.__spec__ = importlib.machinery.ModuleSpec("torch_tensorrt", None)
        self.__version__ = version
        self.calls: list[tuple[str, dict]] = []
        self.modules: dict[str, object] = {}

    def compile(self, program, **kwargs):
        self.calls.append(("compile", kwargs))
        return program.module()

    def save(self, module, path, **kwargs):
        self.calls.append(("save", kwargs))
        self.modules[str(len(self.modules))] = module
        Path(path).write_text(f"fake-engine {len(self.modules) - 1}")

    def load(self, path):
        self.calls.append(("load", {}))
        token = Path(path).read_text().removeprefix("fake-engine ")
        if token not in self.modules:
            raise RuntimeError("corrupt engine")
        module = self.modules[token]
        return types.SimpleNamespace(module=lambda: module)


def test_tensorrt_export_into_the_cache(monkeypatch, tmp_path):
    fake = FakeTorchTensorRT("2.13.0")
    monkeypatch.setitem(sys.modules, "torch_tensorrt", fake)
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None)
    trt.__version__ = "10.13.0"
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(backends, "_require_cuda", lambda backend, device: None)
    result = run_export("--backend", "tensorrt", "--random-weights", "--size", "32x32",
                        "--precision", "fp32", "--device", "cpu", "--cache-dir", str(tmp_path))
    assert Path(result["path"]).parent == tmp_path and result["path"].endswith(".ep")
    assert result["key"]["tensorrt"] == "10.13.0" and result["key"]["torch_tensorrt"] == "2.13.0"
    assert result["verified"] is True
    assert [name for name, _ in fake.calls] == ["compile", "save", "load"]
    assert "enabled_precisions" not in fake.calls[0][1]
