# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""The on-disk engine cache: where built TensorRT/ONNX engines live and when they are stale.

An engine is only valid for the model weights, input shape, precision, GPU and library versions
it was built with. :func:`engine_key` records all of them (:class:`EngineKey`, written beside the
file as ``<engine>.json``); a cached file whose metadata differs is rebuilt.

A cached engine is code the process runs, so it is trusted by more than its name
(:mod:`temcoco_core.engine.trust`): the cache folder is private (``0700``, a per-user folder
inside a shared one), the metadata records the engine's SHA-256, and a cached file is used only
when it is owned by the user, not group/world-writable and still has that hash -- otherwise it
is refused and rebuilt (:func:`cached_engine_problem`). Files are written under unique
temporary names and renamed into place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
import hashlib
import importlib
import json
import os
from pathlib import Path
import platform
import re
import sys
import time
from typing import Any, TYPE_CHECKING

import torch
from torch import nn, Tensor

if TYPE_CHECKING:
    from .backends import InputSpec

__all__ = [
    "ENGINE_FORMAT_VERSION",
    "ENGINE_SUFFIXES",
    "EngineKey",
    "PlatformInfo",
    "default_cache_dir",
    "engine_key",
    "parse_version",
    "platform_info",
    "metadata_path",
    "cached_engine_problem",
    "read_content_hash",
    "read_metadata",
    "weights_digest",
    "write_metadata",
]

#: Bumped when the layout of cached engines changes: old entries are then rebuilt.
ENGINE_FORMAT_VERSION = 1
#: File suffix of a cached engine, by backend.
ENGINE_SUFFIXES = {"tensorrt": ".ep", "onnxruntime": ".onnx"}


def default_cache_dir() -> Path:
    """Where built engines are cached.

    ``$TEMCOCO_ENGINE_CACHE``, else ``$XDG_CACHE_HOME/temcoco/engines``
    (``~/.cache/temcoco/engines``).
    """
    explicit = os.environ.get("TEMCOCO_ENGINE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "temcoco" / "engines"


def parse_version(text: str) -> tuple[int, ...]:
    """Leading numeric components: ``"2.13.0+cu128"`` → ``(2, 13, 0)``.

    ``"2.12.0.dev1"`` → ``(2, 12, 0)``; ``()`` if none.
    """
    parts = []
    for piece in re.split(r"[.+\-]", text.strip()):
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
        if match.group() != piece:
            break
    return tuple(parts)


def _module_version(name: str) -> str:
    """``module.__version__`` or the installed distribution's version; ``""`` if absent."""
    module = sys.modules.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except Exception:  # absent, or present but broken (e.g. missing CUDA libraries)
            module = None
    version = getattr(module, "__version__", None) if module is not None else None
    if version:
        return str(version)
    from importlib import metadata

    for dist in (name, name.replace("_", "-")):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return ""


@dataclass(frozen=True)
class PlatformInfo:
    """What a built engine depends on besides the model and its input."""

    device_name: str
    compute_capability: str
    torch: str
    tensorrt: str
    torch_tensorrt: str
    onnxruntime: str


def platform_info(device: str | torch.device = "cpu") -> PlatformInfo:
    """Device name and compute capability (``""`` on the CPU) and library versions."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        major, minor = torch.cuda.get_device_capability(index)
        capability = f"{major}.{minor}"
    else:
        name, capability = (platform.processor() or platform.machine() or "cpu"), ""
    return PlatformInfo(device_name=name, compute_capability=capability,
                        torch=torch.__version__, tensorrt=_module_version("tensorrt"),
                        torch_tensorrt=_module_version("torch_tensorrt"),
                        onnxruntime=_module_version("onnxruntime"))


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of a model: its class, config, state dict and the source of its classes.

    It covers the model's class, config and every tensor of its state dict (names, dtypes, shapes,
    bytes), and the source files of the (non-torch) classes it is built from, so that editing the
    network's code invalidates engines built from it.
    """
    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    digest.update(repr(getattr(model, "config", None)).encode())
    sources = set()
    for module in model.modules():
        name = type(module).__module__
        path = getattr(sys.modules.get(name), "__file__", None)
        if path and name.split(".")[0] != "torch":
            sources.add(path)
    for path in sorted(sources):
        try:
            digest.update(Path(path).read_bytes())
        except OSError:
            digest.update(path.encode())
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{data.dtype}|{tuple(data.shape)}".encode())
        if data.numel():
            digest.update(memoryview(data.view(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


@dataclass(frozen=True)
class EngineKey:
    """Everything a built engine depends on; its :meth:`digest` names the cache entry.

    Torch-TensorRT's own engine cache leaves out the GPU model and the TensorRT version; this
    key has both (an engine only runs on the compute capability and TensorRT it was built with).
    ONNX files are portable: their GPU and library fields are empty.
    """

    backend: str
    model: str
    weights_sha256: str
    mode: str
    inputs: tuple[tuple[str, tuple[int, ...], str], ...]
    precision: str
    device_name: str
    compute_capability: str
    tensorrt: str
    torch_tensorrt: str
    torch: str
    options: str = ""
    format_version: int = ENGINE_FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [[n, list(s), d] for n, s, d in self.inputs]
        return data

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def filename(self, spec: InputSpec) -> str:
        return (f"{self.model.lower()}-{self.backend}-{spec.tag}-{self.precision}-"
                f"{self.digest()[:16]}{ENGINE_SUFFIXES[self.backend]}")

    def mismatches(self, recorded: Mapping[str, Any]) -> list[str]:
        """Human-readable differences between this key and one read from a metadata file."""
        mine = self.as_dict()
        out = []
        for name, value in mine.items():
            theirs = recorded.get(name, "<absent>")
            if theirs != value:
                if name == "weights_sha256":
                    out.append(f"weights/model code (file {str(theirs)[:12]}…, model "
                               f"{str(value)[:12]}…)")
                else:
                    out.append(f"{name} (file {theirs!r}, here {value!r})")
        return out


def engine_key(backend: str, model: nn.Module, spec: InputSpec, precision: str,
               platform_: PlatformInfo, inputs: Sequence[Tensor], options: str = "",
               weights: str | None = None) -> EngineKey:
    """The :class:`EngineKey` of ``model`` built by ``backend`` for ``inputs``."""
    described = tuple((f"arg{i}", tuple(t.shape), str(t.dtype).replace("torch.", ""))
                      for i, t in enumerate(inputs))
    portable = backend == "onnxruntime"
    return EngineKey(
        backend=backend, model=type(model).__name__,
        weights_sha256=weights or weights_digest(model), mode=spec.mode, inputs=described,
        precision=precision,
        device_name="" if portable else platform_.device_name,
        compute_capability="" if portable else platform_.compute_capability,
        tensorrt="" if portable else platform_.tensorrt,
        torch_tensorrt="" if portable else platform_.torch_tensorrt,
        torch="" if portable else platform_.torch, options=options)


def metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def write_metadata(path: Path, key: EngineKey, build_s: float) -> Path:
    """``<engine>.json``: the key, and the engine file's SHA-256 (checked before loading).

    Written through a unique temporary file and an atomic rename, mode 0600.
    """
    from .trust import atomic_write, file_sha256

    meta = {"key": key.as_dict(), "digest": key.digest(), "build_s": round(build_s, 3),
            "sha256": file_sha256(path), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return atomic_write(metadata_path(path), json.dumps(meta, indent=2))


def read_content_hash(path: Path) -> str | None:
    """The SHA-256 recorded for an engine file (``None``: no or unreadable metadata)."""
    try:
        meta = json.loads(metadata_path(path).read_text())
    except (OSError, ValueError):
        return None
    value = meta.get("sha256") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def cached_engine_problem(path: Path) -> str | None:
    """Why a cached engine must not be loaded (``None``: it may).

    The file or its metadata is not the user's, is writable by others or a symlink, or the file's
    content hash differs from the one recorded when it was built.
    """
    from .trust import CacheTrustError, untrusted_reason, verify_file

    why = untrusted_reason(metadata_path(path))
    if why is not None:
        return f"its metadata is not trusted ({why})"
    try:
        verify_file(path, read_content_hash(path))
    except CacheTrustError as exc:
        return str(exc)
    return None


def read_metadata(path: Path) -> dict[str, Any] | None:
    meta_path = metadata_path(path)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        return meta["key"] if isinstance(meta.get("key"), dict) else None
    except (OSError, ValueError, AttributeError):
        return None
