# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``fleet.json``: what a fleet run (or one shard of it) was asked to do and what happened.

A run of shard I of N (N > 1) names it ``fleet-shardIofN.json``, so the shards of one run may
share an output folder (e.g. on a cluster file system) as well as use one folder each.

::

    {"kind": "eval", "shard": [0, 2], "workers": 2, "settings": {...},
     "all_inputs": [{"id": "0111_1716", "source": "data/val::0111_1716"}, ...],   # whole run
     "inputs": {"0111_1716": {"status": "ok", "frames": 20, "seconds": 3.1,
                              "error": null}, ...},                          # this shard
     "frames": 80, "wall_s": 9.6, "frames_per_s": 8.3, "ok": 4, "failed": 0,
     "interrupted": false, "finished_at": "2026-12-02T03:10:00"}

Statuses: ``pending`` (not run yet: the run was interrupted), ``ok``, ``failed``. The file is
rewritten atomically after every input, so it is current even while the run goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import json
import os
from pathlib import Path
import time
from typing import Any

from temcoco_core.fleet.inputs import FleetInput
from temcoco_core.fleet.runner import Outcome, run_inputs, Setup, Task

__all__ = ["MANIFEST_FILE", "Manifest", "manifest_name", "read_manifests", "run_recorded"]

MANIFEST_FILE = "fleet.json"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def manifest_name(shard: tuple[int, int]) -> str:
    """``fleet.json``, or ``fleet-shardIofN.json`` for one shard of several."""
    index, count = shard
    return MANIFEST_FILE if count == 1 else f"fleet-shard{index}of{count}.json"


def read_manifests(folder: Path) -> list[dict[str, Any]]:
    """Read the run manifests in a folder.

    One manifest per shard run that wrote there; merge outputs are skipped.

    Raises:
        ValueError: none, or one unreadable (names the file).
    """
    out = []
    for path in sorted(Path(folder).glob("fleet*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError as e:
            raise ValueError(f"{path}: unreadable manifest ({e})") from None
        missing = [k for k in ("all_inputs", "inputs", "shard") if k not in data]
        if missing:
            raise ValueError(f"{path}: not a fleet manifest (no {', '.join(missing)})")
        if not str(data.get("kind", "")).endswith("-merge"):
            out.append(data)
    if not out:
        raise ValueError(f"{folder}: no {MANIFEST_FILE} or fleet-shard*.json (not the folder "
                         f"of a many-input run)")
    return out


class Manifest:
    """The ``fleet.json`` of one run folder, kept current input by input."""

    def __init__(self, out: Path, kind: str, all_inputs: Sequence[FleetInput],
                 mine: Sequence[FleetInput], *, shard: tuple[int, int], workers: int,
                 settings: dict[str, Any]) -> None:
        self.path = Path(out) / manifest_name(shard)
        self.data: dict[str, Any] = {
            "kind": kind, "shard": list(shard), "workers": workers, "settings": settings,
            "all_inputs": [{"id": i.id, "source": i.source} for i in all_inputs],
            "inputs": {i.id: {"source": i.source, "status": "pending"} for i in mine},
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        _write_json(self.path, self.data)

    def record(self, out: Outcome) -> None:
        """Store one input's outcome (status, frames, seconds, error, extra info)."""
        rec = self.data["inputs"][out.id]
        rec.update(status="ok" if out.ok else "failed", frames=out.frames,
                   seconds=round(out.seconds, 3), error=out.error)
        rec.update({k: v for k, v in out.info.items() if k != "traceback"})
        if out.info.get("traceback"):
            rec["traceback"] = out.info["traceback"]
        _write_json(self.path, self.data)

    def finish(self, wall_s: float, interrupted: bool = False) -> dict[str, Any]:
        """Totals of the run; returns the manifest."""
        recs = self.data["inputs"].values()
        frames = sum(int(r.get("frames", 0)) for r in recs)
        self.data.update(
            frames=frames, wall_s=round(wall_s, 3),
            frames_per_s=frames / wall_s if wall_s > 0 else 0.0,
            ok=sum(r["status"] == "ok" for r in recs),
            failed=sum(r["status"] == "failed" for r in recs),
            interrupted=interrupted, finished_at=time.strftime("%Y-%m-%dT%H:%M:%S"))
        _write_json(self.path, self.data)
        return self.data

    @staticmethod
    def write_merge(out: Path, manifests: Sequence[dict[str, Any]], dirs: Sequence[Path],
                    merged: Sequence[str], missing: Sequence[tuple[str, str]]) -> None:
        """``fleet.json`` of a ``--merge`` folder: its sources and what is missing."""
        _write_json(Path(out) / MANIFEST_FILE, {
            "kind": f"{manifests[0].get('kind', 'eval')}-merge",
            "shard": [0, 1], "sources": [str(d) for d in dirs],
            "all_inputs": manifests[0]["all_inputs"],
            "inputs": {i: {"status": "ok"} for i in merged}
            | {i: {"status": "missing", "error": why} for i, why in missing},
            "frames": sum(int(m.get("frames") or 0) for m in manifests),
            "wall_s": sum(float(m.get("wall_s") or 0.0) for m in manifests),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})


def run_recorded(manifest: Manifest, inputs: Sequence[FleetInput], setup: Setup, task: Task,
                 config: Any, *, workers: int, progress: bool, desc: str,
                 done: Callable[[FleetInput], Outcome | None] | None = None
                 ) -> list[Outcome] | None:
    """:func:`~.runner.run_inputs` with every outcome and the totals in ``manifest``.

    ``None`` after Ctrl-C (the manifest then says ``interrupted``).
    """
    t0 = time.perf_counter()
    try:
        outcomes = run_inputs(inputs, setup, task, config, workers=workers, progress=progress,
                              desc=desc, on_outcome=manifest.record, done=done)
    except KeyboardInterrupt:
        manifest.finish(time.perf_counter() - t0, interrupted=True)
        return None
    manifest.finish(time.perf_counter() - t0)
    return outcomes
