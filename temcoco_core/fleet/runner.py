# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Run one function per input over a pool of worker processes, with progress and failures.

``run_inputs(inputs, setup, task, config, workers=N)``: each worker process calls
``setup(config)`` once (load models, build engines) and then ``task(state, input)`` per input;
``task`` returns a dict with at least ``frames``. With ``workers == 1`` everything runs in
this process (no pool).

* Workers are *spawned* (not forked): torch, OpenCV and ONNX Runtime thread pools do not
  survive a fork.
* At most one input per worker is in flight, so when a worker process dies (segfault,
  out-of-memory kill) the inputs it may have held are known: they are retried one at a time in
  a fresh pool, and the one that kills its worker again is reported as failed -- the others
  carry on.
* An exception in ``task`` fails that input only (message and traceback in its
  :class:`Outcome`). An exception in ``setup`` is a setup problem, not a bad input: the run
  stops with :class:`SetupError`.
* Progress: one bar for the whole run -- inputs done / total, frames/s over all workers,
  failures so far.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
import logging
from multiprocessing import get_context
import sys
import time
import traceback
from typing import Any

from temcoco_core.fleet.inputs import FleetInput

__all__ = ["Outcome", "SetupError", "print_failures", "run_inputs", "set_threads"]

log = logging.getLogger(__name__)

Setup = Callable[[Any], Any]
Task = Callable[[Any, FleetInput], dict[str, Any]]


class SetupError(RuntimeError):
    """The per-worker setup failed (bad method, missing weights...): nothing can run."""


@dataclass
class Outcome:
    """What happened to one input.

    Attributes:
        id: the input's id.
        ok: finished without error.
        frames: frames processed (progress, frames/s).
        seconds: wall time of the task.
        error: ``"Type: message"`` when not ``ok``.
        info: the task's other return values; ``traceback`` on failure.
    """

    id: str
    ok: bool
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_threads(threads: int | None) -> None:
    """CPU threads of torch (``None``/0: the engine factory's default) and OpenCV."""
    import cv2

    from temcoco_core.engine.factory import apply_cpu_threads

    cv2.setNumThreads(apply_cpu_threads(threads or 0))


def print_failures(failed: Sequence[tuple[str, str]], total: int, noun: str = "input") -> None:
    """The failure summary on stderr: ``k of n input(s) failed:`` and one line per input."""
    if failed:
        print(f"{len(failed)} of {total} {noun}(s) failed:", file=sys.stderr)
        for ident, err in failed:
            print(f"  {ident}: {err}", file=sys.stderr)


# One setup result per worker process (spawned workers cannot receive it any other way).
_WORKER: dict[str, Any] = {}


def _worker_setup(setup: Setup, config: Any) -> None:
    try:
        _WORKER["state"] = setup(config)
    except Exception as e:  # reported by every task of this worker
        _WORKER["setup_error"] = f"{type(e).__name__}: {e}"


def _worker_task(task: Task, inp: FleetInput) -> Outcome:
    if "setup_error" in _WORKER:
        raise SetupError(_WORKER["setup_error"])
    return _call(task, _WORKER["state"], inp)


def _call(task: Task, state: Any, inp: FleetInput) -> Outcome:
    t0 = time.perf_counter()
    try:
        info = dict(task(state, inp))
    except Exception as e:
        log.debug("input %s failed", inp.id, exc_info=True)
        return Outcome(inp.id, False, seconds=time.perf_counter() - t0,
                       error=f"{type(e).__name__}: {e}",
                       info={"traceback": traceback.format_exc()})
    frames = int(info.pop("frames", 0))
    return Outcome(inp.id, True, frames, time.perf_counter() - t0, info=info)


class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="input", disable=not enabled,
                        dynamic_ncols=True)
        self.t0 = time.perf_counter()
        self.frames = 0
        self.failed = 0

    def add(self, out: Outcome) -> None:
        self.frames += out.frames
        self.failed += not out.ok
        fps = self.frames / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.set_postfix(frames_per_s=f"{fps:.1f}", failed=self.failed, refresh=False)
        self.bar.update(1)
        if not out.ok:
            log.warning("input %s failed: %s", out.id, out.error)

    def close(self) -> None:
        self.bar.close()


def run_inputs(inputs: Sequence[FleetInput], setup: Setup, task: Task, config: Any, *,
               workers: int = 1, progress: bool = True, desc: str = "inputs",
               on_outcome: Callable[[Outcome], None] | None = None,
               done: Callable[[FleetInput], Outcome | None] | None = None) -> list[Outcome]:
    """Run ``task`` on every input; returns one :class:`Outcome` per input, in input order.

    Args:
        inputs: the work.
        setup: ``setup(config) -> state``, once per worker process (picklable: a module-level
            function).
        task: ``task(state, input) -> {"frames": n, ...}`` (module-level function).
        config: setup's argument (picklable).
        workers: worker processes; 1 runs in this process.
        progress: show the run's progress bar.
        on_outcome: called in this process after each input (e.g. to update a manifest).
        done: ``done(input)`` -> the :class:`Outcome` of an input finished by an earlier run
            (not run again), or ``None``.

    Raises:
        SetupError: ``setup`` failed.
        KeyboardInterrupt: Ctrl-C; finished inputs have been passed to ``on_outcome``.
    """
    bar = _Progress(len(inputs), desc, progress)
    results: dict[str, Outcome] = {}

    def record(out: Outcome) -> None:
        results[out.id] = out
        bar.add(out)
        if on_outcome is not None:
            on_outcome(out)

    todo = []
    for inp in inputs:
        previous = done(inp) if done is not None else None
        if previous is not None:
            record(previous)
        else:
            todo.append(inp)
    try:
        if todo and workers <= 1:
            try:
                state = setup(config)
            except Exception as e:
                raise SetupError(f"{type(e).__name__}: {e}") from e
            for inp in todo:
                record(_call(task, state, inp))
        elif todo:
            _run_pool(todo, setup, task, config, workers, record)
    finally:
        bar.close()
    return [results[i.id] for i in inputs if i.id in results]


def _run_pool(inputs: Sequence[FleetInput], setup: Setup, task: Task, config: Any,
              workers: int, record: Callable[[Outcome], None]) -> None:
    queue: deque[FleetInput] = deque(inputs)
    isolated: deque[FleetInput] = deque()   # inputs in flight when a worker died
    pool: ProcessPoolExecutor | None = None
    flight: dict[Future, tuple[FleetInput, bool]] = {}
    try:
        while queue or isolated or flight:
            if pool is None:
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                           initializer=_worker_setup,
                                           initargs=(setup, config))
            limit = 1 if isolated else workers
            while len(flight) < limit and (isolated or queue) and not (
                    isolated and flight):
                alone = bool(isolated)
                inp = isolated.popleft() if alone else queue.popleft()
                flight[pool.submit(_worker_task, task, inp)] = (inp, alone)
            finished, _ = wait(list(flight), return_when=FIRST_COMPLETED)
            broken = False
            for fut in finished:
                inp, alone = flight.pop(fut)
                try:
                    record(fut.result())
                except BrokenProcessPool:
                    broken = True
                    if alone:
                        record(Outcome(inp.id, False, error="the worker process died while "
                                                            "processing this input"))
                    else:
                        isolated.append(inp)
                except SetupError:
                    raise
                except Exception as e:  # e.g. a result that cannot be pickled
                    record(Outcome(inp.id, False, error=f"{type(e).__name__}: {e}"))
            if broken:
                for fut, (inp, alone) in list(flight.items()):  # the pool's other inputs
                    if fut.done() and fut.exception() is None:
                        record(fut.result())
                    elif alone:
                        record(Outcome(inp.id, False, error="the worker process died while "
                                                            "processing this input"))
                    else:
                        isolated.append(inp)
                flight.clear()
                log.warning("a worker process died; retrying its input(s) one at a time: %s",
                            ", ".join(i.id for i in isolated) or "-")
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
    except BaseException:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no API
                proc.terminate()
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
