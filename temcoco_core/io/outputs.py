# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Safe output paths: never overwrite an input or a user's files, one-line errors.

``--overwrite`` used to ``rmtree`` whatever ``-o`` named (it deleted an input bag and a folder of
user files). The rules here:

* an output may not be, contain or sit inside any input (:func:`check_output_path`);
* an existing output bag is replaced only if it is a rosbag2 *written by temcoco*: its
  ``metadata.yaml`` carries :data:`WRITER_KEY` in ``custom_data`` (set by
  :class:`~temcoco_core.io.bag.BagWriter`), and the folder holds nothing but the files its
  metadata lists (:func:`is_temcoco_bag`). Removal deletes exactly those files and the then
  empty folder (:func:`remove_temcoco_bag`) -- never a recursive delete;
* the parent folder must exist (it is created) and be a writable directory;
* every file-system failure becomes an :class:`OutputPathError` (a ``ValueError``: the command
  line prints one line and exits non-zero) naming the path and the problem.
"""

from __future__ import annotations

from collections.abc import Iterable
import os
from pathlib import Path

__all__ = [
    "WRITER_KEY",
    "OutputPathError",
    "check_output_path",
    "describe_os_error",
    "is_temcoco_bag",
    "prepare_output_parent",
    "remove_temcoco_bag",
]

#: ``custom_data`` key in ``metadata.yaml`` that marks a bag written by temcoco.
WRITER_KEY = "temcoco.writer"


class OutputPathError(ValueError):
    """An output path cannot be used (exists, is an input, parent not writable...)."""


def describe_os_error(exc: OSError, path: str | Path | None = None) -> str:
    """``"<path>: <reason>"`` of a file-system error, one line, no traceback."""
    where = path if path is not None else (exc.filename or "")
    reason = exc.strerror or type(exc).__name__
    return f"{where}: {reason.lower()}" if where else reason.lower()


def _metadata(path: Path) -> dict | None:
    meta = path / "metadata.yaml"
    if not meta.is_file():
        return None
    try:
        import yaml

        data = yaml.safe_load(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    except Exception:  # yaml.YAMLError and friends: not a bag we wrote
        return None
    info = data.get("rosbag2_bagfile_information") if isinstance(data, dict) else None
    return info if isinstance(info, dict) else None


def is_temcoco_bag(path: str | Path) -> tuple[bool, str]:
    """Whether ``path`` is a rosbag2 folder written by temcoco holding nothing else.

    Returns:
        ``(ok, why_not)``.
    """
    path = Path(path)
    if path.is_symlink():
        return False, "it is a symbolic link"
    if not path.is_dir():
        return False, "it is not a bag folder"
    info = _metadata(path)
    if info is None:
        return False, "it has no readable rosbag2 metadata.yaml"
    custom = info.get("custom_data") or {}
    if not isinstance(custom, dict) or WRITER_KEY not in custom:
        return False, "it was not written by temcoco"
    listed = {str(p) for p in info.get("relative_file_paths") or []}
    extra = sorted(p.name for p in path.iterdir()
                   if p.name != "metadata.yaml" and p.name not in listed)
    if extra:
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        return False, f"it holds files that are not part of the bag ({shown})"
    return True, ""


def remove_temcoco_bag(path: str | Path) -> None:
    """Delete a bag written by temcoco: its listed files, ``metadata.yaml``, the folder.

    Raises:
        OutputPathError: not such a bag, or a file cannot be removed.
    """
    path = Path(path)
    ok, why = is_temcoco_bag(path)
    if not ok:
        raise OutputPathError(f"{path}: refusing to overwrite: {why}")
    info = _metadata(path) or {}
    try:
        for name in info.get("relative_file_paths") or []:
            f = path / str(name)
            if f.parent == path and (f.is_file() or f.is_symlink()):
                f.unlink()
        (path / "metadata.yaml").unlink()
        path.rmdir()
    except OSError as exc:
        raise OutputPathError(f"cannot overwrite {describe_os_error(exc)}") from None


def _resolve(p: str | Path) -> Path:
    return Path(os.path.abspath(Path(p).expanduser())).resolve()


def prepare_output_parent(path: str | Path) -> None:
    """Create the output's parent folder if needed and check that it is a writable folder.

    Raises:
        OutputPathError: the parent is a file, cannot be created or is not writable.
    """
    parent = Path(os.path.abspath(Path(path).expanduser())).parent
    for ancestor in (parent, *parent.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                raise OutputPathError(f"{path}: cannot write here: {ancestor} is a file, not a "
                                      "folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{path}: cannot create its folder: "
                              f"{describe_os_error(exc)}") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: cannot write here: folder {parent} is not writable")


def check_output_path(path: str | Path, *, inputs: Iterable[str | Path] = (),
                      overwrite: bool = False, bag: bool = True) -> None:
    """Check (and, with ``overwrite``, clear) an output path before anything is written.

    Args:
        path: the output (a bag folder when ``bag``, else a file).
        inputs: paths that must never be overwritten, contain or contain the output.
        overwrite: replace an existing output -- only a bag written by temcoco (``bag``), or a
            regular file (not ``bag``).
        bag: the output is a rosbag2 folder.

    Raises:
        OutputPathError: one line naming the path and the problem.
    """
    out = _resolve(path)
    for src in inputs:
        s = _resolve(src)
        if out == s or out in s.parents or s in out.parents:
            relation = ("is" if out == s else "contains" if out in s.parents else "is inside")
            raise OutputPathError(f"{path}: output {relation} the input {src}; choose another "
                                  "output path")
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not overwrite:
            raise OutputPathError(f"{path}: output exists already (use --overwrite)")
        if bag:
            remove_temcoco_bag(p)
        elif p.is_file() and not p.is_symlink():
            try:
                p.unlink()
            except OSError as exc:
                raise OutputPathError(f"cannot overwrite {describe_os_error(exc)}") from None
        else:
            raise OutputPathError(f"{path}: refusing to overwrite: not a regular file")
    prepare_output_parent(p)
