# Copyright 2026 The temcoco_ros authors
#
# Use of this source code is governed by an MIT-style
# license that can be found in the LICENSE file or at
# https://opensource.org/licenses/MIT.
"""Many inputs at once: ``temcoco eval`` and ``temcoco replay`` over folders of bags.

Globs and list files, spread over worker processes (``--workers N``) and machines (``--shard
I/N``).

* :mod:`.inputs` -- input specs -> an ordered list of :class:`~.inputs.FleetInput` (one bag, or
  one sequence of a dataset root), unique ids, ``--shard`` selection.
* :mod:`.runner` -- runs one function per input in a pool of spawned worker processes: progress
  for the whole run (inputs done / total, frames/s), one failure never stops the others (a
  worker that dies is replaced; the input that killed it is reported), Ctrl-C stops cleanly.
* :mod:`.options` -- the shared ``--workers``, ``--shard``, ``--skip-done`` options.
* :mod:`.manifest` -- the run's ``fleet.json``, rewritten after every input.
* :mod:`.evaluation` -- per-input evaluation through :func:`temcoco_core.evaluate.evaluate`,
  one result folder per input, ``--merge`` of shard folders into the tables and plots of a
  single run.
* :mod:`.replays` -- per-bag :func:`temcoco_core.replay.replay_bag` into one output bag and
  one summary per input.

Each run writes a manifest (:mod:`.manifest`: ``fleet.json``, ``fleet-shardIofN.json`` for a
shard): every input of the whole run (in order), this shard's inputs with status, frames,
seconds and error, and the run's totals.
"""
