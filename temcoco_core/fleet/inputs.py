# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Input specs -> the ordered, de-duplicated list of inputs of a fleet run, and its shards.

A spec is one of:

* a rosbag2 (a directory with ``metadata.yaml``, or a ``.db3``/``.mcap`` file): one input;
* a dataset root (:func:`temcoco_core.io.datasets.dataset_sequences`; ``eval`` only): one input
  per sequence;
* a folder holding bags (and, for ``eval``, dataset roots): its children, naturally sorted;
* a glob (``'runs/*/day1_*'``, quoted so the shell leaves it alone): the matches, naturally
  sorted;
* a list file (``.txt``/``.lst``/``.list``, or any file given as ``@FILE``): one spec per line,
  relative to the list file's folder; blank lines and ``#`` comments are skipped.

Every machine of a sharded run expands the same specs to the same list; ``--shard I/N`` then
takes every N-th input starting at I (round robin, so long and short inputs spread evenly);
``--shard auto`` takes I and N from torchrun (``RANK``/``WORLD_SIZE``) or a Slurm array job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
import glob
import os
from pathlib import Path
import re

from temcoco_core.io.datasets import dataset_sequences, DatasetError
from temcoco_core.io.video import natural_key

__all__ = [
    "LIST_SUFFIXES",
    "FleetInput",
    "InputError",
    "expand_inputs",
    "is_bag",
    "parse_shard",
    "select_shard",
    "shard_from_env",
]

LIST_SUFFIXES: tuple[str, ...] = (".txt", ".lst", ".list")
_GLOB_CHARS = re.compile(r"[*?\[]")


class InputError(ValueError):
    """An input spec that names nothing usable (missing path, empty glob, unknown kind)."""


@dataclass(frozen=True)
class FleetInput:
    """One unit of work.

    Attributes:
        id: unique, file-name-safe name: the output's name and the table's sequence name.
        kind: ``"bag"`` or ``"sequence"``.
        path: the bag, or the dataset root of the sequence.
        sequence: the sequence's name in its dataset (``kind == "sequence"``).
    """

    id: str
    kind: str
    path: str
    sequence: str | None = None

    @property
    def source(self) -> str:
        """Where it comes from, for messages: the bag, or ``ROOT::SEQUENCE``."""
        return self.path if self.sequence is None else f"{self.path}::{self.sequence}"


def is_bag(p: Path) -> bool:
    """A rosbag2: a directory with ``metadata.yaml``, or a ``.db3``/``.mcap`` file."""
    return (p.is_dir() and (p / "metadata.yaml").is_file()) or (
        p.is_file() and p.suffix.lower() in (".db3", ".mcap"))


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """This process's shard from its launcher.

    ``RANK``/``WORLD_SIZE`` (torchrun), else a Slurm array task (``SLURM_ARRAY_TASK_ID`` relative
    to ``..._MIN``, ``..._STEP``, out of ``..._COUNT``).

    Raises:
        ValueError: neither is set.
    """
    e = os.environ if env is None else env
    if "RANK" in e and "WORLD_SIZE" in e:
        return int(e["RANK"]), int(e["WORLD_SIZE"])
    if "SLURM_ARRAY_TASK_ID" in e and "SLURM_ARRAY_TASK_COUNT" in e:
        first = int(e.get("SLURM_ARRAY_TASK_MIN", 0))
        step = max(1, int(e.get("SLURM_ARRAY_TASK_STEP", 1)))
        return (int(e["SLURM_ARRAY_TASK_ID"]) - first) // step, int(e["SLURM_ARRAY_TASK_COUNT"])
    raise ValueError("--shard auto: no RANK/WORLD_SIZE (torchrun) or SLURM_ARRAY_TASK_ID/"
                     "SLURM_ARRAY_TASK_COUNT (Slurm array job) in the environment")


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``; ``"auto"``: :func:`shard_from_env`."""
    if text.strip().lower() == "auto":
        index, count = shard_from_env(env)
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"--shard auto: shard {index} of {count} from the environment")
        return index, count
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise ValueError(f"shard must look like I/N (e.g. 0/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"shard {text!r}: need 0 <= I < N")
    return index, count


def select_shard(inputs: Sequence[FleetInput], index: int, count: int) -> list[FleetInput]:
    """Inputs ``index, index + count, index + 2·count, …`` of the full list."""
    return list(inputs[index::count])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "input"


def _dataset_names(p: Path) -> list[str] | None:
    if not p.is_dir():
        return None
    try:
        return dataset_sequences(p)
    except DatasetError:
        return None


class _Expander:
    def __init__(self, bags_only: bool) -> None:
        self.bags_only = bags_only
        self.found: list[tuple[Path, str | None]] = []

    def what(self) -> str:
        return "bag" if self.bags_only else "bag or dataset root"

    def spec(self, text: str, base: Path | None, in_list: bool) -> None:
        listed = text.startswith("@")
        if listed:
            text = text[1:]
        p = Path(text).expanduser()
        if base is not None and not p.is_absolute():
            p = base / p
        if listed or (p.is_file() and p.suffix.lower() in LIST_SUFFIXES):
            if in_list:
                raise InputError(f"{p}: list files cannot include other list files")
            self.list_file(p)
        elif _GLOB_CHARS.search(text) and not p.exists():
            matches = sorted(glob.glob(str(p)), key=natural_key)
            if not matches:
                raise InputError(f"{text}: the pattern matches nothing")
            for m in matches:
                self.path(Path(m), top=False)
        else:
            self.path(p, top=True)

    def list_file(self, p: Path) -> None:
        if not p.is_file():
            raise InputError(f"list file not found: {p}")
        n = len(self.found)
        for line in p.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                self.spec(line, p.parent, in_list=True)
        if len(self.found) == n:
            raise InputError(f"list file {p} names no input")

    def path(self, p: Path, top: bool) -> None:
        if not p.exists():
            raise InputError(f"input not found: {p}")
        if is_bag(p):
            self.found.append((p, None))
            return
        names = None if self.bags_only else _dataset_names(p)
        if names is not None:
            self.found.extend((p, n) for n in names)
            return
        if p.is_dir() and top:  # a folder of bags (and dataset roots): one level down
            n = len(self.found)
            for child in sorted(p.iterdir(), key=lambda c: natural_key(c.name)):
                if is_bag(child) or (not self.bags_only and _dataset_names(child) is not None):
                    self.path(child, top=False)
            if len(self.found) == n:
                raise InputError(f"{p}: no {self.what()} in this folder")
            return
        if top:
            raise InputError(f"{p}: not a {self.what()} or list file")
        # a glob match that is not an input (e.g. a stray file): skipped quietly


def _unique_ids(found: list[tuple[Path, str | None]]) -> list[str]:
    base = [_safe(s if s is not None else (p.stem if p.is_file() else p.name))
            for p, s in found]
    ids = list(base)
    dup = {i for i in ids if ids.count(i) > 1}
    for k, (p, s) in enumerate(found):
        if ids[k] in dup:  # same name in different places: prefix the parent folder
            parent = p if s is not None else p.parent
            ids[k] = _safe(f"{parent.name}_{base[k]}")
    seen: dict[str, int] = {}
    for k, i in enumerate(ids):
        seen[i] = seen.get(i, 0) + 1
        if seen[i] > 1:
            ids[k] = f"{i}-{seen[i]}"
    return ids


def expand_inputs(specs: Sequence[str], *, bags_only: bool = False,
                  sequences: Sequence[str] | None = None) -> list[FleetInput]:
    """Expand input specs (see the module docstring) into the run's ordered input list.

    Args:
        specs: paths, globs, list files.
        bags_only: accept bags only (``replay``).
        sequences: keep only dataset sequences with these names (bags are kept).

    Raises:
        InputError: a spec names nothing usable; a requested sequence exists nowhere; no input.
    """
    ex = _Expander(bags_only)
    for text in specs:
        ex.spec(str(text), None, in_list=False)
    found: list[tuple[Path, str | None]] = []
    seen: set[tuple[str, str | None]] = set()
    for p, s in ex.found:
        key = (str(p.resolve()), s)
        if key not in seen:
            seen.add(key)
            found.append((p, s))
    if sequences:
        missing = set(sequences) - {s for _, s in found if s is not None}
        if missing:
            raise InputError(f"sequence(s) {', '.join(sorted(missing))} in no dataset given")
        found = [(p, s) for p, s in found if s is None or s in sequences]
    if not found:
        raise InputError("no inputs")
    return [FleetInput(i, "bag" if s is None else "sequence", str(p), s)
            for i, (p, s) in zip(_unique_ids(found), found)]
