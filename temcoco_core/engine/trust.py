# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Trust checks for the engine cache: who wrote a file, did it change, how it is loaded.

A cached engine is code the process runs (an ONNX graph, a Torch-TensorRT program). Trusting it
by file name lets anyone who can write the cache folder run code in the fusion node. The rules:

* the cache folder is private: created ``0700`` (:func:`private_dir`); a configured folder that
  other users can write (``/tmp``) or that belongs to someone else is not used directly -- a
  private per-user sub-folder inside it is;
* a cache file is used only if it is a regular file (not a symlink) owned by the current user
  and not group/world-writable (:func:`untrusted_reason`), and its SHA-256 matches the one
  recorded in its metadata when it was built (:func:`verify_file`); otherwise it is refused and
  rebuilt;
* files are written under a unique temporary name in the same folder and renamed into place
  atomically (:func:`atomic_write`, :func:`atomic_path`): no fixed temp name to plant a symlink
  on, no half-written file visible to a concurrent reader, mode ``0600``;
* a Torch-TensorRT ``.ep`` program is loaded by :func:`load_exported_program`, which lets no
  Python pickle run (``torch.load`` is forced to ``weights_only=True`` and ``pickle.loads`` is
  refused while the archive loads); a program that needs pickle is refused with a clear message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
import hashlib
import os
from pathlib import Path
import stat
import tempfile
import threading
from typing import Any

__all__ = [
    "CacheTrustError",
    "PickleRefusedError",
    "atomic_path",
    "atomic_write",
    "file_sha256",
    "load_exported_program",
    "private_dir",
    "untrusted_reason",
    "verify_file",
]


class CacheTrustError(ValueError):
    """A cache folder or file cannot be trusted (owner, mode, symlink, hash)."""


class PickleRefusedError(CacheTrustError):
    """Loading a file would run Python pickle, which can execute arbitrary code."""


def _uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _private_enough(st: os.stat_result) -> bool:
    owner_ok = _uid() < 0 or st.st_uid == _uid()
    return owner_ok and not (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


def private_dir(path: str | os.PathLike) -> Path:
    """A cache folder only the current user can write.

    ``path`` itself when it is (or can be created as) a ``0700`` folder of ours, else
    ``path/user-<uid>`` created ``0700``.

    Raises:
        CacheTrustError: neither is usable (e.g. the per-user folder exists and belongs to
            someone else), or the folder cannot be created.
    """
    path = Path(path).expanduser()
    try:
        if not path.exists():
            path.mkdir(mode=0o700, parents=True)
            os.chmod(path, 0o700)  # whatever the umask
            return path
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode) and _private_enough(st):
            return path
        if not path.is_dir():
            raise CacheTrustError(f"engine cache {path} is not a folder")
        sub = path / f"user-{_uid()}"
        if not sub.exists():
            sub.mkdir(mode=0o700)
            os.chmod(sub, 0o700)
        st = os.lstat(sub)
        if not stat.S_ISDIR(st.st_mode) or not _private_enough(st):
            raise CacheTrustError(
                f"engine cache {sub} is not a private folder of this user (owner uid "
                f"{st.st_uid}, mode {stat.S_IMODE(st.st_mode):o}); remove it or choose another "
                "engine_cache_dir")
        return sub
    except OSError as exc:
        raise CacheTrustError(f"engine cache {path}: {exc.strerror or exc}") from None


def untrusted_reason(path: str | os.PathLike) -> str | None:
    """Why a cache file must not be used (``None``: owner and mode are fine)."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISLNK(st.st_mode):
        return "it is a symbolic link"
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if _uid() >= 0 and st.st_uid != _uid():
        return f"it is owned by uid {st.st_uid}, not by this user (uid {_uid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"it is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, expected_sha256: str | None) -> None:
    """Check that ``path`` is a trusted file with the recorded SHA-256.

    Raise :class:`CacheTrustError` unless ``path`` is a trusted file whose SHA-256 is
    ``expected_sha256`` (``None``: no hash recorded -- refused too).
    """
    why = untrusted_reason(path)
    if why is not None:
        raise CacheTrustError(f"{path}: not trusted: {why}")
    if not expected_sha256:
        raise CacheTrustError(f"{path}: no content hash in its metadata")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise CacheTrustError(f"{path}: content hash {actual[:12]}… does not match the "
                              f"{expected_sha256[:12]}… recorded when it was built")


def _mode_for(folder: Path) -> int:
    """0600 in a private folder (the cache), 0644 elsewhere (an engine exported for others)."""
    try:
        return 0o600 if stat.S_IMODE(os.stat(folder).st_mode) & 0o077 == 0 else 0o644
    except OSError:
        return 0o600


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``target``, renamed onto it on success.

    A unique temporary path beside ``target`` (created empty) for a writer that needs a file name;
    renamed onto ``target`` when the block ends without an exception, deleted otherwise. ``mode``:
    of the final file (default 0600 in a private folder, else 0644).
    """
    target = Path(target)
    mode = _mode_for(target.parent) if mode is None else mode
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                               suffix=".tmp" + target.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, mode)
        yield tmp_path
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


def atomic_write(target: str | os.PathLike, data: bytes | str, mode: int | None = None) -> Path:
    """Write ``data`` to ``target`` through a unique temporary file and an atomic rename."""
    target = Path(target)
    with atomic_path(target, mode) as tmp, open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    return target


_PICKLE_LOCK = threading.Lock()


@contextlib.contextmanager
def _no_pickle() -> Iterator[None]:
    """Forbid pickle while loading an engine.

    While active: ``torch.load`` is ``weights_only=True`` only and the pt2 archive's
    ``pickle.loads`` raises (process-wide, hence the lock; loads are rare).
    """
    import torch

    real_load = torch.load

    def safe_load(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is False:
            raise PickleRefusedError("the file needs torch.load(weights_only=False)")
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    class _NoPickle:
        def __getattr__(self, name: str) -> Any:
            raise PickleRefusedError(f"the file needs pickle.{name}")

    modules = []
    with contextlib.suppress(ImportError):
        from torch.export.pt2_archive import _package

        modules.append(_package)
    with _PICKLE_LOCK:
        saved = [(m, getattr(m, "pickle", None)) for m in modules]
        torch.load = safe_load
        for m in modules:
            m.pickle = _NoPickle()
        try:
            yield
        finally:
            torch.load = real_load
            for m, p in saved:
                m.pickle = p


def load_exported_program(path: str | os.PathLike,
                          loader: Callable[[str], Any] | None = None) -> Any:
    """Load a saved program with no Python pickle allowed.

    ``loader(path)`` (default ``torch.export.load``; the TensorRT backend passes
    ``torch_tensorrt.load``, which reads ``.ep`` files through ``torch.export.load``) runs while
    ``torch.load`` is ``weights_only=True`` only and the archive reader's ``pickle`` is refused.

    Raises:
        PickleRefusedError: the program cannot be loaded without pickle (refused: pickle can
            run arbitrary code).
    """
    import torch

    load = loader or (lambda p: torch.export.load(p))
    try:
        with _no_pickle():
            return load(str(path))
    except PickleRefusedError as exc:
        raise PickleRefusedError(
            f"refusing to load {path}: {exc}, and unpickling can run arbitrary code. Rebuild "
            "the engine on this machine (it is then checked by owner and content hash)") from None
    except Exception as exc:
        if "weights_only" in str(exc) or "Unpickl" in type(exc).__name__:
            raise PickleRefusedError(
                f"refusing to load {path}: it holds objects that only unpickling can restore "
                f"({type(exc).__name__}), and unpickling can run arbitrary code") from None
        raise
