# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""``temcoco eval``: fusion-quality and temporal-consistency tables and plots for fusion methods.

::

    temcoco eval ../shared/data/m3svd/val --methods average,max,laplacian --out eval_out
    temcoco eval ../shared/data/m3svd/test --methods laplacian,edge --max-frames 60 --out out
    temcoco eval --visible vis.mp4 --infrared ir.mp4 --fused ours=fused.mp4 --out out
    temcoco eval DATASET --fused ours=fused_dir/ --methods laplacian --out out

Inputs: a dataset root (M3SVD degraded layout with clean references, the other frame-folder
layouts of :mod:`temcoco_core.io.datasets`, or ``visible/`` + ``infrared/`` video pairs), or one
pair given by ``--visible``/``--infrared`` (videos or frame folders). Methods: baselines,
model presets, checkpoints (:func:`temcoco_core.baselines.resolve_method`) and already fused
outputs (``--fused [NAME=]PATH``: a video, a frame folder, a folder of ``<seq>.mp4``/``<seq>/``,
or a rosbag2 with the fused image topic).

Methods are fed the dataset's inputs (degraded where the dataset has a degraded protocol);
reference-based metrics compare against the clean references, temporal metrics against the
clean visible (and infrared) video.

Outputs in ``--out``: ``per_sequence.csv``, ``mean.csv``, ``table.md`` (the paper's format:
arrows, best in bold, notes), ``results.json`` and ``plots/``: brightness curves per method
(Fig. 1a), row-over-time slices (Fig. 7) and a frame grid per sequence.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import csv
from dataclasses import dataclass, field
import json
import math
from pathlib import Path
import sys
import time

import numpy as np

from temcoco_core.baselines import method_label, MethodError, resolve_method, SequenceMethod
from temcoco_core.cli_args import add_settings_args, apply_threads, settings_from_args
from temcoco_core.engine.backends import release_freed_memory
from temcoco_core.engine.factory import EngineBuildError, resolve_device
from temcoco_core.fleet import evaluation as fleet_eval
from temcoco_core.fleet.inputs import is_bag
from temcoco_core.io.datasets import (
    dataset_loaders,
    DatasetError,
    FusionSequence,
    load_sequence,
    SequenceLoader,
)
from temcoco_core.io.video import (
    IMAGE_EXTENSIONS,
    natural_key,
    read_frame_folder,
    read_video,
    VideoError,
    VideoWriter,
)
from temcoco_core.metrics import METRIC_INFO
from temcoco_core.metrics.alignment import stream_alignment
from temcoco_core.metrics.flow import FlowError, FlowEstimator, get_flow_estimator
from temcoco_core.metrics.fusion import FUSION_METRICS, fusion_metrics
from temcoco_core.metrics.temporal import (
    brightness_curve,
    prepare_reference,
    TEMPORAL_METRICS,
    temporal_metrics,
    temporal_slice,
    TemporalReference,
)
from temcoco_core.node_config import NodeConfigError

__all__ = [
    "EvalConfig",
    "EvalError",
    "EvalResult",
    "add_parser",
    "eval_config",
    "evaluate",
    "load_fused_outputs",
    "run",
    "summarize_rows",
    "write_fused_videos",
    "write_reports",
]

DEFAULT_METHODS = "average,max,laplacian"


class EvalError(ValueError):
    """Bad evaluation input (fused output not matching its sources, no methods...)."""


@dataclass
class EvalConfig:
    """Settings of one evaluation run.

    Attributes:
        fusion_metrics: names from :data:`temcoco_core.metrics.fusion.FUSION_METRICS`.
        flow: flow estimator name for flowD/tOF (``"dis"``...), or ``None`` to skip them.
        tof: compute tOF (one extra flow per frame pair and method).
        feacd: compute feaCD (needs ResNet-18 ImageNet weights).
        resnet_weights: path of the weights; ``None`` looks in the torch hub cache.
        clip_len, overlap, device: model-method schedule (see ``ModelMethod``).
        plots: write PNG plots (needs matplotlib).
        save_fused: also write each method's fused video to ``out/fused/<method>/<seq>.mp4``.
        slice_row: image row of the Fig. 7 slices (default: the middle row).
        progress: tqdm progress bar.
    """

    fusion_metrics: tuple[str, ...] = FUSION_METRICS
    flow: str | None = "dis"
    tof: bool = True
    feacd: bool = True
    resnet_weights: str | None = None
    clip_len: int | None = None
    overlap: int = 5
    device: str = "cpu"
    plots: bool = True
    save_fused: bool = False
    slice_row: int | None = None
    fps: float = 30.0
    progress: bool = True


@dataclass
class EvalResult:
    """Numbers of a run.

    ``rows``: one dict per (method, sequence) with ``method``, ``sequence``, ``frames``, ``fuse_s``
    and the metric values; ``mean``: method -> metric -> mean over sequences (NaN if any sequence
    is NaN); ``metrics``: metric columns in order; ``alignment``: sequence -> live alignment
    score summary of its thermal/visible inputs
    (:func:`~temcoco_core.metrics.alignment.stream_alignment`, as the node's registration status
    would report it).
    """

    rows: list[dict]
    mean: dict[str, dict[str, float]]
    metrics: list[str]
    methods: list[str]
    sequences: list[str]
    notes: list[str] = field(default_factory=list)
    nan_notes: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    runtime_s: float = 0.0
    alignment: dict[str, dict[str, float]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- fused inputs


def _fused_from_bag(path: Path, topic: str | None) -> np.ndarray:
    try:
        from temcoco_core.frames.image_msg import decode_image, to_rgb
        from temcoco_core.io.bag import BagReader, IMAGE_TYPES
    except ImportError as e:
        raise EvalError(f"reading fused output from a bag needs temcoco_core.io.bag: {e}") from e
    with BagReader(path) as bag:
        if topic is None:
            cands = [t for t, info in bag.topics.items()
                     if info.msgtype in IMAGE_TYPES and "fus" in t.lower()]
            if len(cands) != 1:
                raise EvalError(f"{path}: cannot tell the fused image topic (candidates: "
                                f"{cands or 'none'}); give --fused-topic. Topics: "
                                f"{bag.describe_topics()}")
            topic = cands[0]
        frames = []
        for m in bag.messages([topic]):
            arr, enc = decode_image(m.msg)
            rgb = to_rgb(arr, enc)
            if rgb.dtype != np.uint8:
                raise EvalError(f"{path}: fused topic {topic} has {rgb.dtype} images; need 8 bit")
            frames.append(rgb)
    if not frames:
        raise EvalError(f"{path}: fused topic {topic} has no messages")
    return np.stack(frames)


def _read_fused_one(p: Path, topic: str | None) -> np.ndarray:
    if is_bag(p):
        return _fused_from_bag(p, topic)
    if p.is_dir():
        return read_frame_folder(p)
    return read_video(p)


def _fused_entries(path: str | Path, names: Sequence[str]) -> dict[str, Path]:
    """Map each sequence name to the file or folder holding its fused output.

    The video, frame folder or bag lies under ``path``; each is checked to exist, nothing is
    read.
    """
    p = Path(path)
    if not p.exists():
        raise EvalError(f"fused output not found: {p}")
    single = (p.is_file() or is_bag(p)
              or (p.is_dir() and any(c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir())))
    if single:
        if len(names) != 1:
            raise EvalError(f"fused output {p} is one sequence but {len(names)} sequences "
                            f"are evaluated; give a folder with one output per sequence")
        return {names[0]: p}
    entries = {c.stem if c.is_file() else c.name: c for c in sorted(p.iterdir(),
               key=lambda c: natural_key(c.name))}
    for name in names:
        if name not in entries:
            raise EvalError(f"sequence {name}: no fused output in {p} (expected "
                            f"{name}.mp4 or {name}/)")
    return {name: entries[name] for name in names}


def load_fused_outputs(path: str | Path, sequences: Sequence[FusionSequence],
                       topic: str | None = None) -> dict[str, np.ndarray]:
    """Read fused outputs for ``sequences``: (T, H, W, 3) uint8 RGB per sequence name.

    ``path`` is a video file, frame folder or bag (one sequence: must be the only one), or a
    folder holding ``<seq>.<video ext>`` or ``<seq>/`` frame folders per sequence.

    Raises:
        EvalError: missing outputs; frame count or size different from the sources (names the
            sequence).
    """
    entries = _fused_entries(path, [seq.name for seq in sequences])
    out = {name: _read_fused_one(entry, topic) for name, entry in entries.items()}
    for seq in sequences:
        check_fused(seq, out[seq.name], str(path))
    return out


def check_fused(seq: FusionSequence, fused: np.ndarray, what: str) -> None:
    """Raise :class:`EvalError` unless ``fused`` is (T, H, W, 3) uint8 matching ``seq``."""
    fused = np.asarray(fused)
    if fused.dtype != np.uint8 or fused.ndim != 4 or fused.shape[3] != 3:
        raise EvalError(f"sequence {seq.name}: {what} must give (T, H, W, 3) uint8, got "
                        f"{fused.shape} {fused.dtype}")
    t, (h, w) = seq.num_frames, seq.size
    if fused.shape[0] < t:
        raise EvalError(f"sequence {seq.name}: {what} has {fused.shape[0]} frames, shorter "
                        f"than its sources ({t})")
    if fused.shape[0] > t:
        raise EvalError(f"sequence {seq.name}: {what} has {fused.shape[0]} frames, more than "
                        f"its sources ({t}); cut the sources or the output to match")
    if fused.shape[1:3] != (h, w):
        raise EvalError(f"sequence {seq.name}: {what} is {fused.shape[2]}x{fused.shape[1]}, "
                        f"sources are {w}x{h}")


# ------------------------------------------------------------------------------- evaluation


def _load_resnet(cfg: EvalConfig, notes: list[str]):
    if not cfg.feacd:
        notes.append("feaCD skipped: disabled (--no-feacd).")
        return None
    from temcoco_core.model.resnet import load_pretrained, ResNetWeightsError

    try:
        model = load_pretrained(cfg.resnet_weights)
    except ResNetWeightsError as e:
        if cfg.resnet_weights is not None:  # an explicit path that fails is an error
            raise EvalError(f"feaCD: {e}") from e
        notes.append(f"feaCD skipped: {e}.")
        return None
    return model.to(cfg.device)


def evaluate(sequences: Sequence[FusionSequence | SequenceLoader],
             methods: dict[str, SequenceMethod],
             config: EvalConfig | None = None) -> tuple[EvalResult, dict]:
    """Run every method on every sequence and compute all metrics.

    Sequences are evaluated one at a time: a :class:`~temcoco_core.io.datasets.SequenceLoader`
    is read when its turn comes and dropped (with the methods' outputs) before the next one,
    so memory holds one sequence whatever the dataset's length.

    Args:
        sequences: the data (inputs fed to methods; references used by the metrics), read or
            to be read (:func:`~temcoco_core.io.datasets.dataset_loaders`).
        methods: label -> ``FusionSequence -> (T, H, W, 3) uint8`` callables.
        config: settings.

    Returns:
        ``(result, artefacts)``; ``artefacts[seq][method]`` holds what the plots need
        (brightness curve, slice, middle frame).

    Raises:
        EvalError / DatasetError / MethodError on bad input (the message names the sequence).
    """
    cfg = config or EvalConfig()
    if not sequences:
        raise EvalError("no sequences to evaluate")
    if not methods:
        raise EvalError("no methods to evaluate")
    names = [s.name for s in sequences]
    if len(set(names)) != len(names):
        raise EvalError(f"duplicate sequence names: {names}")
    unknown = [m for m in cfg.fusion_metrics if m not in FUSION_METRICS]
    if unknown:
        raise EvalError(f"unknown fusion metric(s) {unknown}; known: {list(FUSION_METRICS)}")
    t_start = time.perf_counter()
    notes: list[str] = []
    estimator: FlowEstimator | None = None
    if cfg.flow is not None:
        estimator = get_flow_estimator(cfg.flow)
        notes.append(f"flowD{'/tOF' if cfg.tof else ''} use OpenCV {estimator.name} optical "
                     f"flow in place of the paper's SEA-RAFT (plug a RAFT-family network in "
                     f"through metrics.flow.TorchFlowEstimator); absolute values are not "
                     f"directly comparable with the paper's tables.")
    else:
        notes.append("flowD and tOF skipped: no flow estimator (--flow none).")
    resnet = _load_resnet(cfg, notes)
    degraded_note_at, degraded = len(notes), False

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sequences) * len(methods), desc="eval", unit="run")
    rows: list[dict] = []
    artefacts: dict[str, dict] = {}
    alignment: dict[str, dict[str, float]] = {}
    try:
        for item in sequences:
            seq = item.load() if isinstance(item, SequenceLoader) else item
            degraded |= seq.visible_ref is not None and seq.visible_ref is not seq.visible
            alignment[seq.name] = stream_alignment(seq.visible, seq.infrared)
            ref: TemporalReference = prepare_reference(seq.vis_ref, seq.ir_ref, estimator,
                                                       resnet)
            art: dict = {"_visible": _artefact(seq.vis_ref, cfg.slice_row),
                         "_infrared": _artefact(seq.ir_ref, cfg.slice_row),
                         "_visible_in": seq.visible[seq.num_frames // 2].copy(),
                         "_infrared_in": seq.infrared[seq.num_frames // 2].copy()}
            for label, method in methods.items():
                if bar is not None:
                    bar.set_postfix_str(f"{seq.name} {label}")
                t0 = time.perf_counter()
                fused = method(seq)
                fuse_s = time.perf_counter() - t0
                check_fused(seq, fused, f"method {label}")
                row: dict = {"method": label, "sequence": seq.name, "frames": seq.num_frames,
                             "fuse_s": fuse_s}
                row.update(fusion_metrics(fused, seq.vis_ref, seq.ir_ref, cfg.fusion_metrics))
                row.update(temporal_metrics(fused, ref, estimator, resnet, compute_tof=cfg.tof))
                rows.append(row)
                art[label] = _artefact(fused, cfg.slice_row)
                if cfg.save_fused:
                    art[label]["fused"] = fused
                if bar is not None:
                    bar.update(1)
            artefacts[seq.name] = art
            del seq, ref, fused  # one sequence in memory: free this one before the next
            release_freed_memory()
    finally:
        if bar is not None:
            bar.close()
    if degraded:
        notes.insert(degraded_note_at, "Methods get the degraded inputs; MI/SSIM/Qabf/VIF and "
                     "the temporal metrics use the clean references.")

    order = list(cfg.fusion_metrics) + list(TEMPORAL_METRICS)
    mean, present, nan_notes = summarize_rows(rows, list(methods), order)
    for name, a in alignment.items():
        if a["alignment_warn_share"] > 0.5:
            notes.append(f"{name}: the thermal and visible inputs look misregistered (alignment "
                         f"score {a['alignment_score_mean']:.2f}, below the WARN level in "
                         f"{a['alignment_warn_share']:.0%} of the readings); fusion metrics "
                         "suffer from double edges. Register them (temcoco calibrate).")
    result = EvalResult(rows, mean, present, list(methods), names, notes, nan_notes,
                        alignment=alignment, runtime_s=time.perf_counter() - t_start)
    return result, artefacts


def summarize_rows(rows: Sequence[dict], methods: Sequence[str], order: Sequence[str]
                   ) -> tuple[dict[str, dict[str, float]], list[str], list[str]]:
    """Per-method means over the sequences' rows.

    ``(mean, metric columns present (in ``order``), notes on NaN means)``; ``mean[method]`` also
    has ``fuse_s_per_frame``.
    """
    present = [m for m in order if any(m in r for r in rows)]
    mean: dict[str, dict[str, float]] = {}
    nan_notes: list[str] = []
    for label in methods:
        mrows = [r for r in rows if r["method"] == label]
        mean[label] = {}
        for m in present:
            vals = [r.get(m, float("nan")) for r in mrows]
            bad = [r["sequence"] for r, v in zip(mrows, vals) if math.isnan(v)]
            if bad:
                nan_notes.append(f"{m} is NaN for {label} on {', '.join(bad)}; its mean is "
                                 f"reported as NaN.")
            mean[label][m] = float(np.mean(vals))
        mean[label]["fuse_s_per_frame"] = (sum(r["fuse_s"] for r in mrows)
                                           / max(1, sum(r["frames"] for r in mrows)))
    return mean, present, nan_notes


def _artefact(frames: np.ndarray, row: int | None) -> dict:
    """What the plots need of a (T, H, W[, 3]) video.

    Copies, never views that would keep the whole video in memory after its sequence is done.
    """
    return {"brightness": brightness_curve(frames),
            "slice": np.array(temporal_slice(frames, row)),
            "frame": frames[len(frames) // 2].copy()}


# ---------------------------------------------------------------------------------- reports


def _fmt(v: float) -> str:
    return "NaN" if isinstance(v, float) and math.isnan(v) else f"{v:.4f}"


def markdown_table(result: EvalResult) -> str:
    """The mean table in the paper's format.

    One row per method, ↑/↓ in the header, best value of each column in bold (NaN never wins).
    """
    cols = result.metrics
    arrows = {True: "↑", False: "↓", None: ""}
    head = ["Method"] + [f"{m}{arrows[METRIC_INFO[m].higher_is_better]}" for m in cols]
    head.append("s/frame")
    best: dict[str, float] = {}
    for m in cols:
        hib = METRIC_INFO[m].higher_is_better
        vals = [result.mean[k][m] for k in result.methods if not math.isnan(result.mean[k][m])]
        if hib is not None and len(vals) > 1:
            best[m] = max(vals) if hib else min(vals)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in result.methods:
        cells = [k]
        for m in cols:
            v = result.mean[k][m]
            s = _fmt(v)
            cells.append(f"**{s}**" if m in best and not math.isnan(v) and v == best[m] else s)
        cells.append(f"{result.mean[k]['fuse_s_per_frame']:.4f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([("nan" if isinstance(v, float) and math.isnan(v) else
                         (f"{v:.6g}" if isinstance(v, float) else v)) for v in r])


def write_reports(result: EvalResult, artefacts: dict, out_dir: str | Path,
                  config: EvalConfig | None = None, title: str = "") -> dict[str, str]:
    """Write CSVs, ``table.md``, ``results.json``, plots and (optionally) fused videos.

    Returns name -> path of everything written (also stored in ``result.files``).
    """
    cfg = config or EvalConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    cols = result.metrics
    per_seq = out / "per_sequence.csv"
    _write_csv(per_seq, ["method", "sequence", "frames", "fuse_s", *cols],
               [[r["method"], r["sequence"], r["frames"], r["fuse_s"],
                 *[r.get(m, float("nan")) for m in cols]] for r in result.rows])
    files["per_sequence_csv"] = str(per_seq)
    mean_csv = out / "mean.csv"
    _write_csv(mean_csv, ["method", "sequences", "fuse_s_per_frame", *cols],
               [[k, len(result.sequences), result.mean[k]["fuse_s_per_frame"],
                 *[result.mean[k][m] for m in cols]] for k in result.methods])
    files["mean_csv"] = str(mean_csv)

    plot_files: list[str] = []
    notes = list(result.notes)
    if cfg.plots:
        try:
            plot_files = _plots(artefacts, result, out / "plots")
        except ImportError as e:
            notes.append(f"plots skipped: {e} (pip install matplotlib).")
    if cfg.save_fused:
        plot_files += write_fused_videos(out, artefacts, result.methods, cfg.fps)

    md = [f"# Fusion evaluation{': ' + title if title else ''}", "",
          f"{len(result.sequences)} sequence(s) ({', '.join(result.sequences)}), "
          f"{sum(r['frames'] for r in result.rows) // max(1, len(result.methods))} frames; "
          f"means over sequences; runtime {result.runtime_s:.1f} s.", "",
          markdown_table(result), ""]
    md += ["Metrics: " + "; ".join(f"{m}: {METRIC_INFO[m].description}" for m in cols) + ".",
           ""]
    if result.alignment:
        md += ["Input alignment score (thermal vs visible structure, 1 = registered; the node's "
               "registration status): " + ", ".join(
                   f"{k} {_fmt(v['alignment_score_mean'])}" for k, v in result.alignment.items())
               + ".", ""]
    md += ["Notes:", ""]
    md += [f"- {n}" for n in notes + result.nan_notes]
    if plot_files:
        md += ["", "Files:", ""] + [f"- {Path(p).relative_to(out)}" for p in plot_files]
    table_md = out / "table.md"
    table_md.write_text("\n".join(md) + "\n")
    files["table_md"] = str(table_md)

    res_json = out / "results.json"
    res_json.write_text(json.dumps({
        "sequences": result.sequences, "methods": result.methods, "metrics": cols,
        "mean": {k: {m: (None if math.isnan(v) else v) for m, v in d.items()}
                 for k, d in result.mean.items()},
        "per_sequence": [{k: (None if isinstance(v, float) and math.isnan(v) else v)
                          for k, v in r.items()} for r in result.rows],
        "input_alignment": {k: {m: (None if math.isnan(v) else v) for m, v in d.items()}
                            for k, d in result.alignment.items()},
        "notes": notes, "nan_notes": result.nan_notes, "runtime_s": result.runtime_s,
        "plots": plot_files,
    }, indent=2))
    files["results_json"] = str(res_json)
    for i, p in enumerate(plot_files):
        files[f"file_{i}"] = p
    result.files = files
    result.notes = notes
    return files


def write_fused_videos(out_dir: str | Path, artefacts: dict, methods: Sequence[str],
                       fps: float) -> list[str]:
    """Write the fused videos kept in ``artefacts`` to ``out_dir/fused/<method>/<seq>.mp4``.

    Returns the paths written (methods without a kept ``fused`` video are skipped).
    """
    paths: list[str] = []
    for seq, art in artefacts.items():
        for label in methods:
            fused = art[label].get("fused")
            if fused is None:
                continue
            p = Path(out_dir) / "fused" / _safe(label) / f"{seq}.mp4"
            with VideoWriter(p, fps=fps) as w:
                for f in fused:
                    w.write(f)
            paths.append(str(p))
    return paths


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _plots(artefacts: dict, result: EvalResult, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for seq, art in artefacts.items():
        # Fig. 1(a): brightness and its frame-to-frame variation
        fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        series = [("visible (ref)", art["_visible"]), ("infrared (ref)", art["_infrared"])]
        series += [(k, art[k]) for k in result.methods]
        for i, (label, a) in enumerate(series):
            style = "--" if i < 2 else "-"
            b = a["brightness"]
            axes[0].plot(np.arange(len(b)), b, style, label=label)
            axes[1].plot(np.arange(1, len(b)), np.diff(b), style, label=label)
        axes[0].set_ylabel("mean brightness (0-255)")
        axes[1].set_ylabel("brightness variation")
        axes[1].set_xlabel("frame")
        axes[0].legend(fontsize=7, ncol=2)
        axes[0].set_title(f"{seq}: brightness over time (Fig. 1a)")
        fig.tight_layout()
        p = folder / f"brightness_{_safe(seq)}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(str(p))

        # Fig. 7: one image row over time per method
        n = len(series)
        fig, axes = plt.subplots(n, 1, figsize=(8, 1.2 * n + 0.6), squeeze=False)
        for ax, (label, a) in zip(axes[:, 0], series):
            sl = a["slice"]
            ax.imshow(sl, cmap="gray" if sl.ndim == 2 else None, aspect="auto",
                      interpolation="nearest", vmin=0, vmax=255)
            ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, 0].set_title(f"{seq}: one row over time (rows = frames, Fig. 7)", fontsize=9)
        fig.tight_layout()
        p = folder / f"slices_{_safe(seq)}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(str(p))

        # middle frame side by side
        panels = [("visible input", art["_visible_in"]), ("infrared input", art["_infrared_in"]),
                  ("visible ref", art["_visible"]["frame"]),
                  ("infrared ref", art["_infrared"]["frame"])]
        panels += [(k, art[k]["frame"]) for k in result.methods]
        cols = min(4, len(panels))
        rows_n = math.ceil(len(panels) / cols)
        fig, axes = plt.subplots(rows_n, cols, figsize=(3.2 * cols, 2.6 * rows_n), squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (label, img) in zip(axes.ravel(), panels):
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_title(label, fontsize=9)
        fig.suptitle(f"{seq}: middle frame", fontsize=10)
        fig.tight_layout()
        p = folder / f"frames_{_safe(seq)}.png"
        fig.savefig(p, dpi=100)
        plt.close(fig)
        written.append(str(p))
    return written


# -------------------------------------------------------------------------------------- CLI


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``temcoco eval`` (sets ``func=run``)."""
    p = subparsers.add_parser(
        "eval", help="fusion and temporal-consistency metrics, tables and plots",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Metrics: EN SD MI SSIM Qabf VIF salience (per frame, CDDFuse conventions), "
               "flowD feaCD tOF dirC flicker bvar bright (temporal). See temcoco_core.metrics "
               "for definitions.")
    p.add_argument("input", nargs="*", help="dataset root (M3SVD layout, frame folders or "
                   "visible/ + infrared/ videos); or use --visible/--infrared. Several "
                   "inputs, bags, folders of bags, globs and list files: see --workers")
    p.add_argument("--methods", default=None,
                   help=f"comma-separated methods: baselines (average, max, laplacian; visible, "
                        f"infrared: one input unchanged, for reference), model "
                        f"presets (edge, official, edge-framewise), PRESET:CHECKPOINT, a "
                        f"checkpoint path, framewise:METHOD (default: {DEFAULT_METHODS}, or "
                        f"none when --fused is given)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--visible", help="visible video or frame folder (one pair instead of INPUT)")
    p.add_argument("--infrared", help="infrared video or frame folder")
    p.add_argument("--visible-ref", help="clean visible reference (default: --visible)")
    p.add_argument("--infrared-ref", help="clean infrared reference (default: --infrared)")
    p.add_argument("--name", help="sequence name for --visible/--infrared")
    p.add_argument("--fused", action="append", default=[], metavar="[NAME=]PATH",
                   help="an already fused output to evaluate: video, frame folder, bag, or a "
                        "folder of <seq>.mp4 / <seq>/ (repeatable)")
    p.add_argument("--fused-topic", help="fused image topic when --fused is a bag")
    p.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    p.add_argument("--max-frames", type=int, help="use only the first N frames per sequence")
    p.add_argument("--metrics", default=",".join(FUSION_METRICS),
                   help="fusion metrics to compute (default: all)")
    p.add_argument("--flow", default="dis",
                   help="flow estimator for flowD/tOF: dis, dis-fast, dis-ultrafast, "
                        "farneback, or none (default: dis)")
    p.add_argument("--no-tof", action="store_true", help="skip tOF")
    p.add_argument("--no-feacd", action="store_true", help="skip feaCD")
    p.add_argument("--resnet-weights", help="ResNet-18 ImageNet weights for feaCD (default: "
                   "torch hub cache resnet18-*.pth)")
    p.add_argument("--clip-len", type=int, help="frames per model pass (default 30; 1 for "
                   "framewise presets)")
    p.add_argument("--overlap", type=int, default=5, help="clip overlap (default 5)")
    p.add_argument("--slice-row", type=int, help="image row for the Fig. 7 slices "
                   "(default: middle)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--save-fused", action="store_true", help="write fused videos too")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_settings_args(p, pipeline=False)
    fleet_eval.add_arguments(p)
    p.set_defaults(func=run)
    return p


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _load_sequences(args: argparse.Namespace) -> list[FusionSequence | SequenceLoader]:
    if args.visible or args.infrared:
        if not (args.visible and args.infrared):
            raise EvalError("--visible and --infrared go together")
        if args.input:
            raise EvalError("give either INPUT or --visible/--infrared, not both")
        return [load_sequence(args.visible, args.infrared, name=args.name,
                              visible_ref=args.visible_ref, infrared_ref=args.infrared_ref,
                              max_frames=args.max_frames)]
    if not args.input:
        raise EvalError("no input: give a dataset folder or --visible/--infrared")
    # read one sequence at a time while evaluating (names and layout are checked now)
    return list(dataset_loaders(args.input, sequences=_split(args.sequences) or None,
                                max_frames=args.max_frames))


def build_methods(args: argparse.Namespace,
                  sequences: Sequence[FusionSequence | SequenceLoader]
                  ) -> dict[str, SequenceMethod]:
    """Resolve ``--methods`` and ``--fused`` into label -> callable (in the given order).

    Model methods take their engine settings (backend, device, precision, threads, weights)
    from the node's schema: ``--params`` and the engine flags (:mod:`temcoco_core.cli_args`).
    """
    settings = settings_from_args(args)
    methods: dict[str, SequenceMethod] = {}
    names = _split(args.methods) if args.methods is not None else (
        [] if args.fused else _split(DEFAULT_METHODS))
    for name in names:
        label = method_label(name)
        if label in methods:
            raise EvalError(f"method {label} given twice")
        methods[label] = resolve_method(name, clip_len=args.clip_len, overlap=args.overlap,
                                        device=settings.device if settings.device != "auto"
                                        else resolve_device("auto"), settings=settings)
    for i, spec in enumerate(args.fused):
        label, sep, path = spec.partition("=")
        if not sep:
            label, path = ("fused" if len(args.fused) == 1 else f"fused{i + 1}"), spec
        if label in methods:
            raise EvalError(f"method {label} given twice")
        entries = _fused_entries(path, [seq.name for seq in sequences])
        methods[label] = _stored(entries, args.fused_topic)
    if not methods:
        raise EvalError("no methods: give --methods and/or --fused")
    return methods


def _stored(entries: dict[str, Path], topic: str | None
            ) -> Callable[[FusionSequence], np.ndarray]:
    """Return a method that reads a sequence's fused output when it is evaluated.

    The output is checked against the sequence by :func:`evaluate`.
    """
    def get(seq: FusionSequence) -> np.ndarray:
        fused = _read_fused_one(entries[seq.name], topic)
        check_fused(seq, fused, str(entries[seq.name]))
        return fused

    return get


def eval_config(args: argparse.Namespace) -> EvalConfig:
    """The :class:`EvalConfig` of ``temcoco eval``'s flags."""
    return EvalConfig(
        fusion_metrics=tuple(_split(args.metrics)),
        flow=None if args.flow.lower() in ("none", "off", "") else args.flow,
        tof=not args.no_tof, feacd=not args.no_feacd, resnet_weights=args.resnet_weights,
        clip_len=args.clip_len, overlap=args.overlap,
        device=resolve_device(args.device or "auto"),
        plots=not args.no_plots, save_fused=args.save_fused, slice_row=args.slice_row,
        progress=not args.quiet)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``temcoco eval``; returns the exit status (1 on bad input)."""
    inputs = list(args.input or [])
    if fleet_eval.uses_fleet(args, inputs):  # many inputs, --workers, --shard, --merge
        return fleet_eval.run(args, inputs)
    args.input = inputs[0] if inputs else None
    try:
        if args.max_frames is not None and args.max_frames < 1:
            raise EvalError(f"--max-frames must be >= 1, got {args.max_frames}")
        sequences = _load_sequences(args)
        apply_threads(args)
        methods = build_methods(args, sequences)
        cfg = eval_config(args)
        result, artefacts = evaluate(sequences, methods, cfg)
        title = args.input or args.name or Path(args.visible).stem
        write_reports(result, artefacts, args.out, cfg, title=str(title))
    except (EvalError, DatasetError, MethodError, VideoError, FlowError, NodeConfigError,
            EngineBuildError, FileNotFoundError) as e:
        print(f"temcoco eval: error: {e}", file=sys.stderr)
        return 1
    print(markdown_table(result))
    for n in result.notes + result.nan_notes:
        print(f"note: {n}")
    print(f"wrote {len(result.files)} file(s) in {args.out} ({result.runtime_s:.1f} s):")
    for path in result.files.values():
        print(f"  {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m temcoco_core.evaluate ...``)."""
    parser = argparse.ArgumentParser(prog="temcoco")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["eval", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
