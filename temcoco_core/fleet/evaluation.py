# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco eval`` over many inputs: worker processes, shards, one result per input, merge.

::

    temcoco eval ../shared/data/m3svd/val --workers 2 --out eval_out
    temcoco eval 'bags/*' lists/extra.txt --methods laplacian,edge --workers 4 --out eval_out
    temcoco eval DATA --shard 0/2 --out out/shard0        # machine 0 (e.g. an array job)
    temcoco eval DATA --shard 1/2 --out out/shard1        # machine 1
    temcoco eval --merge out/shard0 out/shard1 --out out/all

Each input (one dataset sequence, or one bag's RGB+thermal pairs) goes through
:func:`temcoco_core.evaluate.evaluate` on its own, in a worker process; its rows and the data
its plots need are written at once to ``OUT/inputs/<id>/`` (``result.json`` +
``artefacts.npz``), so a crash loses nothing finished. At the end an unsharded run folder gets
the single run's reports (``per_sequence.csv``, ``mean.csv``, ``table.md``, ``results.json``,
``plots/``) over the inputs that succeeded; every run gets its manifest (``fleet.json``, or
``fleet-shardIofN.json``: every input's status, frames, seconds and error; frames/s of the run).
``--merge`` reads the manifests and ``inputs/`` of shard folders (one per shard, or one shared
by all) and writes the same reports -- the same numbers as one process, rows in the full run's
input order -- naming every input that is missing or failed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import contextlib
import copy
from dataclasses import dataclass
import json
import logging
import math
from pathlib import Path
import sys
from typing import Any

import numpy as np

from temcoco_core.fleet.inputs import expand_inputs, FleetInput, InputError, select_shard
from temcoco_core.fleet.manifest import Manifest, read_manifests, run_recorded
from temcoco_core.fleet.options import add_fleet_arguments
from temcoco_core.fleet.runner import Outcome, print_failures, set_threads, SetupError

__all__ = [
    "RESULT_FILE",
    "add_arguments",
    "build_report",
    "load_input_sequence",
    "merge_runs",
    "read_input_result",
    "run",
    "uses_fleet",
    "write_input_result",
]

log = logging.getLogger(__name__)

INPUTS_DIR = "inputs"
RESULT_FILE = "result.json"
ARTEFACT_FILE = "artefacts.npz"


# ---------------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``--workers``, ``--shard``, ``--skip-done``.

    ``--merge`` (and ``--threads``) of ``temcoco eval``.
    """
    g = add_fleet_arguments(p, verb="evaluate", noun="inputs", out="--out",
                            done="the results of inputs already evaluated")
    g.add_argument("--merge", nargs="+", metavar="SHARD_DIR",
                   help="merge the per-input results of these run folders (shards, or one "
                        "folder they share) into --out: tables and plots as one run")
    with contextlib.suppress(argparse.ArgumentError):  # unless the command has --threads
        g.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads of torch and OpenCV per process (default: 1 with "
                            "several workers)")


def uses_fleet(args: argparse.Namespace, inputs: Sequence[str]) -> bool:
    """Whether ``temcoco eval`` takes the many-inputs path.

    ``--workers``/``--shard``/ ``--merge``, several inputs, or one input that is a bag, a folder of
    bags or dataset roots, a glob or a list file (a dataset root, or anything unusable, takes the
    one-dataset path and its messages).
    """
    if args.merge or args.workers is not None or args.shard is not None or len(inputs) > 1:
        return True
    if not inputs:
        return False
    from temcoco_core.fleet.inputs import _dataset_names, is_bag, LIST_SUFFIXES

    p = Path(inputs[0])
    if not p.exists():
        return inputs[0].startswith("@") or any(c in inputs[0] for c in "*?[")
    if is_bag(p) or (p.is_file() and p.suffix.lower() in LIST_SUFFIXES):
        return True
    return p.is_dir() and _dataset_names(p) is None and any(
        is_bag(c) or _dataset_names(c) is not None for c in p.iterdir())


# ------------------------------------------------------------------------ one input


def load_input_sequence(inp: FleetInput, max_frames: int | None = None):
    """The :class:`~temcoco_core.io.datasets.FusionSequence` of an input, named by its id.

    A dataset sequence, or a bag's RGB+thermal pairs (thermal normalised as the node does).
    """
    from temcoco_core.io.datasets import load_dataset

    if inp.kind == "sequence":
        seq = load_dataset(inp.path, sequences=[inp.sequence], max_frames=max_frames)[0]
    else:
        from temcoco_core.train.data import DataSource, load_sources

        seq = load_sources([DataSource(root=inp.path, kind="bag", max_frames=max_frames)],
                           progress=False)[0]
    seq.name = inp.id
    return seq


@dataclass
class _Job:
    """What every worker needs (picklable)."""

    args: argparse.Namespace
    out: str


@dataclass
class _State:
    job: _Job
    config: Any            # evaluate.EvalConfig
    methods: dict          # label -> method, built once per worker


def _setup(job: _Job) -> _State:
    from temcoco_core.evaluate import build_methods, eval_config

    args = copy.copy(job.args)
    args.quiet = True                       # one progress bar: the run's
    set_threads(args.threads)
    methods: dict = {}
    if args.methods is not None or not args.fused:
        args.fused = []
        methods = build_methods(args, [])
    return _State(job, eval_config(args), methods)


def _evaluate_one(state: _State, inp: FleetInput) -> dict[str, Any]:
    from temcoco_core.evaluate import build_methods, EvalError, evaluate, write_fused_videos

    args = state.job.args
    seq = load_input_sequence(inp, args.max_frames)
    methods = dict(state.methods)
    if args.fused:
        only_fused = copy.copy(args)
        only_fused.methods = ""
        for label, method in build_methods(only_fused, [seq]).items():
            if label in methods:
                raise EvalError(f"method {label} given twice")
            methods[label] = method
    result, artefacts = evaluate([seq], methods, state.config)
    order = list(state.config.fusion_metrics) + _temporal_names()
    folder = Path(state.job.out) / INPUTS_DIR / inp.id
    write_input_result(folder, inp, result, artefacts, order)
    if state.config.save_fused:
        write_fused_videos(state.job.out, artefacts, result.methods, state.config.fps)
    return {"frames": seq.num_frames, "rows": len(result.rows)}


def _done(out: Path, inp: FleetInput) -> Outcome | None:
    """The outcome of ``inp`` when ``out`` already holds its result (``--skip-done``)."""
    path = out / INPUTS_DIR / inp.id / RESULT_FILE
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if info.get("source") != inp.source or not info.get("rows"):
        return None
    return Outcome(inp.id, True, int(info["rows"][0].get("frames") or 0),
                   info={"reused": True})


def _temporal_names() -> list[str]:
    from temcoco_core.metrics.temporal import TEMPORAL_METRICS

    return list(TEMPORAL_METRICS)


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def write_input_result(folder: Path, inp: FleetInput, result: Any, artefacts: dict,
                       metric_order: list[str]) -> None:
    """Write one input's ``result.json`` and ``artefacts.npz``, atomically.

    ``result.json`` holds the rows, methods and notes; ``artefacts.npz`` the brightness curves,
    slices and middle frames. The folder appears complete or not at all.
    """
    (seq, art), = artefacts.items()
    arrays: dict[str, np.ndarray] = {}
    keys = []
    for i, (key, val) in enumerate(art.items()):
        if isinstance(val, dict):
            subs = [s for s in val if s != "fused"]
            arrays.update({f"a{i}.{s}": np.asarray(val[s]) for s in subs})
            keys.append([key, subs])
        else:
            arrays[f"a{i}"] = np.asarray(val)
            keys.append([key, None])
    info = {"id": inp.id, "source": inp.source, "kind": inp.kind, "sequence": seq,
            "methods": result.methods, "metric_order": metric_order,
            "rows": [{k: _jsonable(v) for k, v in r.items()} for r in result.rows],
            "notes": result.notes, "runtime_s": result.runtime_s, "artefacts": keys,
            "alignment": {k: {m: _jsonable(v) for m, v in d.items()}
                          for k, d in getattr(result, "alignment", {}).items()}}
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(tmp / ARTEFACT_FILE, **arrays)
    (tmp / RESULT_FILE).write_text(json.dumps(info, indent=1))
    if folder.exists():
        import shutil

        shutil.rmtree(folder)
    tmp.rename(folder)


def read_input_result(folder: Path) -> tuple[dict[str, Any], dict]:
    """``(info, artefacts)`` of :func:`write_input_result` (NaN restored in the rows)."""
    info = json.loads((folder / RESULT_FILE).read_text())
    info["rows"] = [{k: (float("nan") if v is None else v) for k, v in r.items()}
                    for r in info["rows"]]
    info["alignment"] = {k: {m: (float("nan") if v is None else v) for m, v in d.items()}
                         for k, d in info.get("alignment", {}).items()}
    art: dict = {}
    with np.load(folder / ARTEFACT_FILE) as z:
        for i, (key, subs) in enumerate(info["artefacts"]):
            art[key] = ({s: z[f"a{i}.{s}"] for s in subs} if subs is not None
                        else z[f"a{i}"])
    return info, art


# --------------------------------------------------------------------------- reports


def build_report(results: Sequence[tuple[dict[str, Any], dict]], runtime_s: float = 0.0):
    """Build one :class:`~temcoco_core.evaluate.EvalResult` and its plot data.

    The per-input results (in the run's order) are combined as
    :func:`~temcoco_core.evaluate.evaluate` does for all the sequences at once.
    """
    from temcoco_core.evaluate import EvalError, EvalResult, summarize_rows

    if not results:
        raise EvalError("no input results to report")
    methods = results[0][0]["methods"]
    for info, _ in results:
        if info["methods"] != methods:
            raise EvalError(f"input {info['id']} was evaluated with methods {info['methods']}, "
                            f"others with {methods}: merge runs of the same command only")
    rows = [r for info, _ in results for r in info["rows"]]
    mean, present, nan_notes = summarize_rows(rows, methods, results[0][0]["metric_order"])
    notes: list[str] = []
    for info, _ in results:
        notes += [n for n in info["notes"] if n not in notes]
    names = [info["sequence"] for info, _ in results]
    artefacts = {info["sequence"]: art for info, art in results}
    alignment = {k: v for info, _ in results for k, v in info["alignment"].items()}
    result = EvalResult(rows, mean, present, list(methods), names, notes, nan_notes,
                        alignment=alignment, runtime_s=runtime_s)
    return result, artefacts


def _write_report(out: Path, ids: Sequence[str], folders: dict[str, Path], plots: bool,
                  title: str, runtime_s: float, extra_notes: Sequence[str] = ()) -> Any:
    from temcoco_core.evaluate import EvalConfig, write_reports

    results = [read_input_result(folders[i]) for i in ids]
    result, artefacts = build_report(results, runtime_s)
    result.notes += list(extra_notes)
    write_reports(result, artefacts, out, EvalConfig(plots=plots), title=title)
    return result


def _print_table(result: Any, out: Path) -> None:
    from temcoco_core.evaluate import markdown_table

    print(markdown_table(result))
    for n in result.notes + result.nan_notes:
        print(f"note: {n}")
    print(f"wrote {len(result.files)} file(s) in {out}")


# ------------------------------------------------------------------------------ run


def run(args: argparse.Namespace, inputs: Sequence[str]) -> int:
    """``temcoco eval`` over many inputs (or ``--merge``).

    Exit 0 when every input has a result, 1 when some failed (the others' results and the reports
    are written).
    """
    from temcoco_core.evaluate import EvalError

    try:
        if args.merge:
            if inputs or args.visible or args.infrared:
                raise EvalError("--merge takes shard folders only, no INPUT")
            return merge_runs([Path(d) for d in args.merge], Path(args.out),
                              plots=not args.no_plots)
        return _run_inputs(args, inputs)
    except (EvalError, InputError, SetupError) as e:
        print(f"temcoco eval: error: {e}", file=sys.stderr)
        return 1


def _run_inputs(args: argparse.Namespace, specs: Sequence[str]) -> int:
    from temcoco_core.evaluate import _split, EvalError

    if args.visible or args.infrared:
        raise EvalError("--visible/--infrared evaluate one pair; give INPUT paths for many")
    workers = args.workers or 1
    if workers < 1:
        raise EvalError(f"--workers must be >= 1, got {workers}")
    if args.max_frames is not None and args.max_frames < 1:
        raise EvalError(f"--max-frames must be >= 1, got {args.max_frames}")
    all_inputs = expand_inputs(specs, sequences=_split(args.sequences) or None)
    index, count = args.shard or (0, 1)
    mine = select_shard(all_inputs, index, count)
    out = Path(args.out)
    manifest = Manifest(out, "eval", all_inputs, mine, shard=(index, count), workers=workers,
                        settings={"methods": args.methods, "fused": args.fused,
                                  "metrics": args.metrics, "max_frames": args.max_frames})
    if workers > 1 and not args.threads:  # one CPU thread per worker unless told
        args.threads = 1
    log.info("eval: %d input(s) in all, %d in shard %d/%d, %d worker(s)", len(all_inputs),
             len(mine), index, count, workers)
    outcomes = run_recorded(manifest, mine, _setup, _evaluate_one, _Job(args, str(out)),
                            workers=workers, progress=not args.quiet, desc="eval",
                            done=(lambda i: _done(out, i)) if args.skip_done else None)
    if outcomes is None:
        print(f"interrupted; finished inputs are in {out / INPUTS_DIR}", file=sys.stderr)
        return 130
    summary = manifest.data
    wall = summary["wall_s"]
    ok = [o.id for o in outcomes if o.ok]
    failed = [(o.id, o.error or "") for o in outcomes if not o.ok]
    if ok and count == 1:  # a shard's results are reported by --merge
        folders = {i: out / INPUTS_DIR / i for i in ok}
        notes = [f"input {i} failed: {e}" for i, e in failed]
        result = _write_report(out, ok, folders, not args.no_plots, ", ".join(specs), wall,
                               notes)
        _print_table(result, out)
    elif count > 1:
        print(f"shard {index}/{count}: results in {out / INPUTS_DIR}; merge the shards with "
              f"temcoco eval --merge FOLDER... --out DIR")
    print(f"eval: {len(ok)}/{len(mine)} input(s), {summary['frames']} frames in {wall:.1f} s "
          f"({summary['frames_per_s']:.1f} frames/s, {workers} worker(s))")
    print_failures(failed, len(mine))
    return 0 if not failed else 1


def merge_runs(dirs: Sequence[Path], out: Path, plots: bool = True) -> int:
    """Merge shard folders into ``out``.

    The reports over every input with a result, in the full run's order; inputs without a result
    are listed (exit status 1).
    """
    from temcoco_core.evaluate import EvalError

    runs = [(d, m) for d in dirs for m in read_manifests(d)]
    manifests = [m for _, m in runs]
    order = [i["id"] for i in manifests[0]["all_inputs"]]
    for d, m in runs:
        if [i["id"] for i in m["all_inputs"]] != order:
            raise EvalError(f"{d}: its run has different inputs than {runs[0][0]}: merge "
                            f"shards of one run (same INPUT specs) only")
    folders: dict[str, Path] = {}
    status: dict[str, str] = {}
    for d, m in runs:
        for ident, rec in m["inputs"].items():
            folder = d / INPUTS_DIR / ident
            if ident in folders:
                if folders[ident] != folder:
                    log.warning("input %s has results in %s and %s; using the first", ident,
                                folders[ident].parent.parent, d)
            elif rec.get("status") == "ok" and (folder / RESULT_FILE).is_file():
                folders[ident] = folder
            else:
                status.setdefault(ident, f"{rec.get('status')} in {d}"
                                  + (f": {rec['error']}" if rec.get("error") else ""))
    shards = sorted({tuple(m["shard"]) for m in manifests})
    count = manifests[0]["shard"][1]
    missing_shards = [f"{i}/{count}" for i in range(count) if (i, count) not in shards]
    have = [i for i in order if i in folders]
    missing = [(i, status.get(i, "in no shard folder given")) for i in order if i not in folders]
    notes = [f"input {i} has no result: {why}" for i, why in missing]
    if missing_shards:
        notes.append(f"shard(s) {', '.join(missing_shards)} not given to --merge")
    if not have:
        raise EvalError("no input results in " + ", ".join(map(str, dirs)))
    runtime = sum(float(m.get("wall_s") or 0.0) for m in manifests)
    result = _write_report(out, have, folders, plots,
                           f"merge of {len(dirs)} run folder(s)", runtime, notes)
    Manifest.write_merge(out, manifests, dirs, have, missing)
    _print_table(result, out)
    print(f"merged {len(have)}/{len(order)} input(s) from {len(dirs)} folder(s)")
    print_failures(missing, len(order))
    return 0 if not missing else 1
