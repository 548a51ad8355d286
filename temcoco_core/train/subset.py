# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""A training-data subset small enough to travel with a repository checkout (GPU sessions).

A rented GPU machine may reach nothing but the checkout it is handed, and only a few tens of
MiB of ignored files travel with it. :func:`build_subset` copies, byte for byte and within a
size budget (64 MiB by default):

* ``train/visible/<seq>.<ext>``, ``train/infrared/<seq>.<ext>``: whole clean video pairs from
  video-pair roots (the M3SVD test layout, ``visible/<seq>.mp4`` + ``infrared/<seq>.mp4``);
  H.264 is far denser than frames, so the four M3SVD pairs (1,708 frames) take 18 MB. A pair
  that does not fit the remaining budget is skipped (named in the manifest), never cut.
* ``val/{visible_Blur,infrared_noise,visible_Enhance,infrared_Enhance}/<seq>/``: the first
  ``val_frames`` frames of ``val_count`` degraded validation sequences (M3SVD val layout),
  so ``temcoco train`` can evaluate on the GPU machine; sequences named in ``exclude`` (a val
  sequence of a training scene) are left out.
* ``manifest.json``: every file with its size and SHA-256, the sources, the budget.

``python -m temcoco_core.train.subset --out data_subset`` builds it from ``../shared/data``;
``config/train_edge_gpu.yaml`` and ``scripts/train_gpu.sh`` read it from there.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
import hashlib
import json
from pathlib import Path
import shutil
import sys

from temcoco_core.io.datasets import VIDEO_EXTENSIONS
from temcoco_core.io.video import IMAGE_EXTENSIONS, natural_key

__all__ = ["DEFAULT_MAX_BYTES", "SubsetError", "SubsetManifest", "build_subset", "main"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
VAL_FOLDERS = ("visible_Blur", "infrared_noise", "visible_Enhance", "infrared_Enhance")


class SubsetError(ValueError):
    """The sources cannot make a subset (missing layout, nothing fits the budget)."""


@dataclass
class SubsetManifest:
    """What :func:`build_subset` wrote (also saved as ``manifest.json``)."""

    out_dir: str
    max_bytes: int
    total_bytes: int = 0
    train_sequences: list[str] = field(default_factory=list)
    val_sequences: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: dict[str, dict[str, int | str]] = field(default_factory=dict)
    sources: dict[str, str | None] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _video_pairs(root: Path) -> list[tuple[str, Path, Path]]:
    vis_dir, ir_dir = root / "visible", root / "infrared"
    if not vis_dir.is_dir() or not ir_dir.is_dir():
        raise SubsetError(f"{root}: not a video-pair root (needs visible/ and infrared/ "
                          "folders of videos)")

    def videos(d: Path) -> dict[str, Path]:
        return {p.stem: p for p in d.iterdir()
                if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS}

    vis, ir = videos(vis_dir), videos(ir_dir)
    names = sorted(set(vis) & set(ir), key=natural_key)
    if not names:
        raise SubsetError(f"{root}: no video pairs (same name in visible/ and infrared/)")
    return [(n, vis[n], ir[n]) for n in names]


def _val_frames(root: Path, seq: str, frames: int) -> list[tuple[str, Path]]:
    """(relative path, source) of the first ``frames`` frames of every val folder of ``seq``."""
    out: list[tuple[str, Path]] = []
    counts = set()
    for folder in VAL_FOLDERS:
        d = root / folder / seq
        if not d.is_dir():
            raise SubsetError(f"{root}: val sequence {seq} has no {folder}/ folder")
        imgs = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS),
                      key=lambda p: natural_key(p.name))[:frames]
        counts.add(len(imgs))
        out += [(f"val/{folder}/{seq}/{p.name}", p) for p in imgs]
    if len(counts) != 1 or 0 in counts:
        raise SubsetError(f"{root}: val sequence {seq}: frame counts differ or are zero "
                          f"across {VAL_FOLDERS}")
    return out


def build_subset(out_dir: str | Path, train_roots: Sequence[str | Path],
                 val_root: str | Path | None = None, val_count: int = 2,
                 val_frames: int = 8, exclude: Sequence[str] = ("0111_1716",),
                 max_bytes: int = DEFAULT_MAX_BYTES, overwrite: bool = False) -> SubsetManifest:
    """Copy a size-capped training (and evaluation) subset into ``out_dir``.

    Validation frames are chosen first (they are small and fixed), then training pairs in
    natural order while they fit.

    Raises:
        SubsetError: a root has the wrong layout, ``out_dir`` is not empty (without
            ``overwrite``), or no training pair fits the budget.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise SubsetError(f"{out} is not empty (pass overwrite=True / --overwrite)")
        shutil.rmtree(out)
    if val_count < 0 or val_frames < 1 or max_bytes < 1:
        raise SubsetError("val_count must be >= 0, val_frames >= 1, max_bytes >= 1")
    man = SubsetManifest(str(out), int(max_bytes),
                         sources={"train": ", ".join(str(r) for r in train_roots),
                                  "val": None if val_root is None else str(val_root)})
    plan: list[tuple[str, Path]] = []
    used = 0
    if val_root is not None and val_count:
        vroot = Path(val_root)
        if not (vroot / VAL_FOLDERS[0]).is_dir():
            raise SubsetError(f"{vroot}: not an M3SVD val root (no {VAL_FOLDERS[0]}/)")
        names = sorted((p.name for p in (vroot / VAL_FOLDERS[0]).iterdir() if p.is_dir()),
                       key=natural_key)
        for seq in [n for n in names if n not in set(exclude)][:val_count]:
            files = _val_frames(vroot, seq, val_frames)
            size = sum(p.stat().st_size for _, p in files)
            if used + size > max_bytes:
                man.skipped.append(f"val {seq} ({size} bytes: over the budget)")
                continue
            plan += files
            used += size
            man.val_sequences.append(seq)
    for root in train_roots:
        for name, vis, ir in _video_pairs(Path(root)):
            size = vis.stat().st_size + ir.stat().st_size
            if used + size > max_bytes:
                man.skipped.append(f"train {name} ({size} bytes: over the budget)")
                continue
            if name in man.train_sequences:
                man.skipped.append(f"train {name} from {root} (name already taken)")
                continue
            plan += [(f"train/visible/{vis.name}", vis), (f"train/infrared/{ir.name}", ir)]
            used += size
            man.train_sequences.append(name)
    if not man.train_sequences:
        raise SubsetError(f"no training video pair fits {max_bytes} bytes "
                          f"(skipped: {'; '.join(man.skipped) or 'no pairs found'})")
    for rel, src in plan:
        dst = out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        man.files[rel] = {"bytes": dst.stat().st_size, "sha256": _sha256(dst)}
    man.total_bytes = sum(int(f["bytes"]) for f in man.files.values())
    (out / "manifest.json").write_text(json.dumps(man.__dict__, indent=2))
    return man


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m temcoco_core.train.subset``: build the subset; prints the manifest summary."""
    p = argparse.ArgumentParser(
        prog="python -m temcoco_core.train.subset",
        description="Copy a training subset (whole video pairs) and a few degraded val frames "
                    "into an ignored folder that travels with a checkout (<= 64 MiB).")
    p.add_argument("--out", default="data_subset", help="output folder (default data_subset)")
    p.add_argument("--train", action="append", metavar="ROOT",
                   help="video-pair root (repeatable; default ../shared/data/m3svd/test)")
    p.add_argument("--val", default="../shared/data/m3svd/val",
                   help="M3SVD val root ('none': no evaluation frames)")
    p.add_argument("--val-count", type=int, default=2, help="val sequences (default 2)")
    p.add_argument("--val-frames", type=int, default=8, help="frames per val sequence")
    p.add_argument("--exclude", default="0111_1716",
                   help="comma-separated val sequences to leave out (training scenes)")
    p.add_argument("--max-mib", type=float, default=64.0, help="size budget in MiB")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    args = p.parse_args(argv)
    val = None if args.val.lower() in ("none", "") else args.val
    try:
        man = build_subset(args.out, args.train or ["../shared/data/m3svd/test"], val,
                           args.val_count, args.val_frames,
                           [s for s in args.exclude.split(",") if s],
                           int(args.max_mib * 1024 * 1024), args.overwrite)
    except (SubsetError, OSError) as e:
        print(f"subset: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out_dir": man.out_dir, "total_mib": round(man.total_bytes / 2**20, 2),
                      "train": man.train_sequences, "val": man.val_sequences,
                      "skipped": man.skipped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
