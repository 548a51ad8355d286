#!/usr/bin/env bash
# Train the edge preset on one NVIDIA GPU for at most 10 minutes (issue 13).
#
#   python -m temcoco_core.train.subset --out data_subset     # once, on a machine with the data
#   scripts/train_gpu.sh                  # GPU: bf16 autocast, batch 16, 6-frame 192 px clips
#   scripts/train_gpu.sh --dry-run        # CPU smoke test: 3 tiny steps, resume, evaluate
#
# Reads data_subset/ (ignored by git, <= 64 MiB: carry it with the checkout), writes
# checkpoints to $OUT (default runs/edge_gpu); a second call continues the same run. Training
# stops itself after $TIME_LIMIT seconds (default 480) with a checkpoint; `timeout` sends
# SIGINT (clean checkpoint) as a backstop at 570 s. The run folder continues or evaluates on a
# CPU machine with the commands printed at the end. Extra arguments go to `temcoco train`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-runs/edge_gpu}
SUBSET=${SUBSET:-data_subset}
TIME_LIMIT=${TIME_LIMIT:-480}
DRY=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY=1; shift; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ ! -f "$SUBSET/manifest.json" ]]; then
  echo "train_gpu.sh: $SUBSET/manifest.json not found; build the subset first:" >&2
  echo "  $PY -m temcoco_core.train.subset --out $SUBSET" >&2
  exit 2
fi
args=(--config config/train_edge_gpu.yaml --out "$OUT"
      --set "data.sources=[{root: '$SUBSET/train', kind: videos}]")
if [[ -d "$SUBSET/val" ]]; then args+=(--set "eval.root='$SUBSET/val'"); else args+=(--no-eval); fi
if [[ $DRY == 1 ]]; then
  args+=(--device cpu --threads 1 --steps 3 --batch-size 1 --clip-len 2 --crop 64
         --no-progress --set data.num_workers=0 --set eval.frames=2 --set eval.sequences=1
         --set "eval.crop=[64, 64]" --set eval.every=0 --time-limit 120)
else
  "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "train_gpu.sh: no CUDA device visible to torch (use --dry-run on a CPU)" >&2; exit 3; }
  "$PY" -c "import torch; print('GPU:', torch.cuda.get_device_name(0))"
  args+=(--device cuda --time-limit "$TIME_LIMIT")
fi
if [[ -f "$OUT/checkpoint.json" ]]; then args=(--resume "$OUT" "${args[@]}"); fi

timeout --signal=INT --kill-after=30 570 "$PY" -m temcoco_core.cli train "${args[@]}" "$@"

if [[ $DRY == 1 ]]; then
  # the same folder must continue and evaluate on the CPU
  "$PY" -m temcoco_core.cli train --resume "$OUT" --device cpu --threads 1 --steps 4 \
    --batch-size 1 --clip-len 2 --crop 64 --no-progress --no-eval >/dev/null
  "$PY" -c "import json, sys; s = json.load(open('$OUT/checkpoint.json'))['step']; \
print('dry run: resumed to step', s); sys.exit(0 if s == 4 else 1)"
  "$PY" -m temcoco_core.cli eval "$SUBSET/val" --methods "edge:$OUT/model_ema.safetensors" \
    --max-frames 2 --no-feacd --no-tof --no-plots --quiet --out "$OUT/eval_dry"
fi
cat <<MSG
checkpoint: $OUT (model_ema.safetensors: the weights to use, model.safetensors, optimizer.pt,
checkpoint.json, train_log.csv)
continue on a CPU:
  temcoco train --resume $OUT --device cpu --threads 1 --batch-size 2 --clip-len 4 --crop 96 \\
    --set data.num_workers=0
evaluate on a CPU:
  temcoco eval ../shared/data/m3svd/val --sequences 0111_1753,0114_1551,0114_1611,0115_1831,0115_1834 \\
    --methods average,laplacian,edge,edge:$OUT/model_ema.safetensors --no-feacd --out $OUT/eval
MSG
