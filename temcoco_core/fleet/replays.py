# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco replay`` over many bags: worker processes, shards, one fused bag per input.

::

    temcoco replay recordings/ -o fused/ --workers 4              # a folder of bags
    temcoco replay 'recordings/2026-*' bags.txt -o fused/ --shard 0/8 --workers 2

Every input bag goes through :func:`temcoco_core.replay.replay_bag` (the node's pipeline) in a
worker process that built its engine once; between bags the engine's temporal state is reset.
Outputs in ``-o OUT``: ``OUT/<id>/`` (the fused bag), ``OUT/<id>.json`` (its replay summary:
pairing, resets, latency, per-frame metric means), ``fleet.json`` (every input's status,
frames, seconds and error; frames/s of the run) and, with ``--preview DIR``,
``DIR/<id>.mp4``. A bag that fails is reported and the others go on.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
import json
import logging
from pathlib import Path
import sys
from typing import Any

from temcoco_core.cli_args import settings_from_args
from temcoco_core.fleet.inputs import (
    expand_inputs,
    FleetInput,
    InputError,
    is_bag,
    select_shard,
)
from temcoco_core.fleet.manifest import Manifest, run_recorded
from temcoco_core.fleet.options import add_fleet_arguments
from temcoco_core.fleet.runner import Outcome, print_failures, set_threads, SetupError

__all__ = ["add_arguments", "run", "uses_fleet"]

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers``, ``--shard`` and ``--skip-done`` of ``temcoco replay``."""
    add_fleet_arguments(p, verb="replay", noun="bags", out="-o",
                        done="the complete fused bags (the others are replaced)")


def uses_fleet(args: argparse.Namespace, inputs: Sequence[str]) -> bool:
    """Many-bag path: ``--workers``/``--shard``, several inputs.

    Or one input that is not a bag (a folder of bags, a glob, a list file).
    """
    if args.workers is not None or args.shard is not None or len(inputs) > 1:
        return True
    return bool(inputs) and not is_bag(Path(inputs[0]))


@dataclass
class _Job:
    args: argparse.Namespace
    settings: Any   # NodeConfig
    out: str


def _setup(job: _Job) -> _Job:
    set_threads(job.args.threads)
    return job


def _replay_one(job: _Job, inp: FleetInput) -> dict[str, Any]:
    from temcoco_core.replay import _json_default, replay_bag, ReplayOptions

    a = job.args
    out = Path(job.out)
    opts = ReplayOptions(rgb_topic=a.rgb_topic, thermal_topic=a.thermal_topic,
                         storage=a.storage, copy_sources=a.copy_sources,
                         diagnostics_every=a.diagnostics_every,
                         overwrite=a.overwrite or a.skip_done,
                         max_frames=a.max_frames, progress=False,
                         preview=Path(a.preview) / f"{inp.id}.mp4" if a.preview else None)
    # the engine the settings ask for, built for this bag (the engine cache keeps compiled
    # backends), exactly as a one-bag replay
    summary = replay_bag(inp.path, out / inp.id, job.settings, opts)
    (out / f"{inp.id}.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    return {"frames": int(summary.get("frames_written", 0)), "output": str(out / inp.id),
            "fps": round(float(summary.get("fps", 0.0)), 2)}


def _done(out: Path, inp: FleetInput) -> Outcome | None:
    """The outcome of a bag whose complete fused bag is in ``out`` (``--skip-done``)."""
    try:
        summary = json.loads((out / f"{inp.id}.json").read_text())
    except (OSError, ValueError):
        return None
    if (summary.get("input") != inp.path or summary.get("interrupted") is not False
            or not (out / inp.id / "metadata.yaml").is_file()):
        return None
    return Outcome(inp.id, True, int(summary.get("frames_written", 0)), info={"reused": True})


def run(args: argparse.Namespace, inputs: Sequence[str]) -> int:
    """``temcoco replay`` over many bags.

    Exit 0 when every bag was replayed, 1 otherwise (the others' outputs are complete), 130 on
    Ctrl-C.
    """
    try:
        if args.output is None:
            raise InputError("replaying many bags needs -o OUT_DIR (one fused bag per input)")
        workers = args.workers or 1
        if workers < 1:
            raise InputError(f"--workers must be >= 1, got {workers}")
        all_inputs = expand_inputs(inputs, bags_only=True)
        index, count = args.shard or (0, 1)
        mine = select_shard(all_inputs, index, count)
        out = Path(args.output)
        if is_bag(out):
            raise InputError(f"{out} is a bag; give a folder for the fused bags")
        if workers > 1 and not args.threads:  # one CPU thread per worker unless told
            args.threads = 1
        settings = settings_from_args(args)
        manifest = Manifest(out, "replay", all_inputs, mine, shard=(index, count),
                            workers=workers, settings={"engine": settings.fusion_engine,
                                                       "preset": settings.preset,
                                                       "weights": args.weights,
                                                       "params": str(args.params or "")})
        outcomes = run_recorded(manifest, mine, _setup, _replay_one,
                                _Job(args, settings, str(out)), workers=workers,
                                progress=not args.json, desc="replay",
                                done=(lambda i: _done(out, i)) if args.skip_done else None)
        if outcomes is None:
            print(f"interrupted; the bags finished so far are in {out}", file=sys.stderr)
            return 130
        summary = manifest.data
    except (InputError, SetupError) as e:
        print(f"temcoco replay: error: {e}", file=sys.stderr)
        return 1
    failed = [o for o in outcomes if not o.ok]
    if args.json:
        from temcoco_core.replay import _json_default

        print(json.dumps(summary, indent=2, default=_json_default))
    else:
        print(f"replay: {summary['ok']}/{len(mine)} bag(s) (shard {index}/{count} of "
              f"{len(all_inputs)}), {summary['frames']} fused frames in "
              f"{summary['wall_s']:.1f} s ({summary['frames_per_s']:.1f} frames/s, "
              f"{workers} worker(s)); outputs in {out}")
    print_failures([(o.id, o.error or "") for o in failed], len(mine), "bag")
    return 0 if not failed else 1
