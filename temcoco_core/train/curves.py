# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Training curves of a run folder: ``train_log.csv`` (+ ``eval_log.csv``) → ``curves.png``.

``python -m temcoco_core.train.curves RUN_DIR [--smooth N] [--out FILE]`` draws

* the total loss and every loss term over the steps (each term on its own panel, with an
  ``N``-row moving average over the raw CSV rows, which are themselves means over
  ``log_every`` steps), and
* the periodic evaluation (``eval_log.csv``): MI, SD, flicker, flowD and any other column,
  the clip run next to the frame-by-frame run (``framewise_*``) where both exist,

and prints a JSON summary (first/last smoothed values per column) that a model card can
quote. Needs matplotlib (the ``train`` extra).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import csv
import json
import math
from pathlib import Path
import sys

import numpy as np

__all__ = ["curve_summary", "plot_curves", "read_log", "smooth", "main"]

_SKIP = {"step", "lr", "sec_per_it"}


def read_log(path: str | Path) -> dict[str, np.ndarray]:
    """CSV with a ``step`` column → ``{column: float array}`` (blank cells are NaN).

    Rows in step order; a step logged twice (a resumed run that repeated steps) keeps the last row.
    """
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "step" not in rows[0]:
        raise ValueError(f"{path}: no rows or no 'step' column")
    by_step: dict[int, dict[str, str]] = {}
    for r in rows:
        by_step[int(float(r["step"]))] = r
    steps = sorted(by_step)

    def num(v: str | None) -> float:
        try:
            return float(v) if v not in (None, "") else math.nan
        except ValueError:
            return math.nan

    cols = list(rows[0])
    return {c: np.array([num(by_step[s].get(c)) for s in steps], dtype=np.float64)
            for c in cols}


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` rows (NaNs ignored; shorter at the start)."""
    if window <= 1:
        return values.astype(np.float64)
    out = np.empty(len(values), dtype=np.float64)
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1):i + 1]
        chunk = chunk[~np.isnan(chunk)]
        out[i] = chunk.mean() if len(chunk) else math.nan
    return out


def _r(x: float) -> float:
    return float(f"{float(x):.5g}")


def curve_summary(run_dir: str | Path, window: int = 10) -> dict[str, dict[str, float]]:
    """``{"train": {col: {"first", "last", "min"}}, "eval": {col: {...}}, "steps": n}``.

    Train values smoothed over ``window`` rows, eval values raw.
    """
    d = Path(run_dir)
    out: dict = {}
    train = read_log(d / "train_log.csv")
    out["steps"] = int(train["step"][-1])
    out["train"] = {}
    for c, v in train.items():
        if c in _SKIP:
            continue
        s = smooth(v, window)
        out["train"][c] = {"first": _r(s[0]), "last": _r(s[-1]), "min": _r(np.nanmin(s))}
    if (d / "eval_log.csv").is_file():
        ev = read_log(d / "eval_log.csv")
        out["eval"] = {c: {"steps": [int(x) for x in ev["step"]],
                           "values": [_r(x) for x in v]}
                       for c, v in ev.items() if c != "step"}
    return out


def plot_curves(run_dir: str | Path, out: str | Path | None = None, window: int = 10) -> Path:
    """Draw the curves of ``run_dir`` into ``out`` (default ``RUN_DIR/curves.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    d = Path(run_dir)
    train = read_log(d / "train_log.csv")
    terms = [c for c in train if c not in _SKIP]
    ev = read_log(d / "eval_log.csv") if (d / "eval_log.csv").is_file() else None
    ev_cols = [] if ev is None else [c for c in ev if c != "step"
                                     and not c.startswith("framewise_")]
    panels = len(terms) + len(ev_cols)
    cols = 4
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    steps = train["step"]
    for ax, name in zip(axes.flat, terms):
        ax.plot(steps, train[name], color="0.8", lw=0.6)
        ax.plot(steps, smooth(train[name], window), color="C0", lw=1.2)
        ax.set_title(f"train {name}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax, name in zip(list(axes.flat)[len(terms):], ev_cols):
        assert ev is not None
        ax.plot(ev["step"], ev[name], "o-", color="C1", ms=3, label="clip")
        fw = f"framewise_{name}"
        if fw in ev:
            ax.plot(ev["step"], ev[fw], "s--", color="C2", ms=3, label="frame by frame")
            ax.legend(fontsize=7)
        ax.set_title(f"eval {name}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=8)
    fig.suptitle(f"{d.name}: {int(steps[-1])} steps", fontsize=11)
    fig.tight_layout()
    target = Path(out) if out is not None else d / "curves.png"
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m temcoco_core.train.curves RUN_DIR``: write the PNG, print the summary."""
    p = argparse.ArgumentParser(prog="python -m temcoco_core.train.curves",
                                description="Plot train_log.csv / eval_log.csv of a run.")
    p.add_argument("run_dir")
    p.add_argument("--out", help="PNG path (default RUN_DIR/curves.png)")
    p.add_argument("--smooth", type=int, default=10, help="moving-average rows (default 10)")
    args = p.parse_args(argv)
    try:
        png = plot_curves(args.run_dir, args.out, args.smooth)
        summary = curve_summary(args.run_dir, args.smooth)
    except (OSError, ValueError) as e:
        print(f"curves: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"png": str(png), **summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
