#!/usr/bin/env bash
# GPU speed check, one short run on a CUDA machine (docs/speed.md):
#   1. python -m bench --device cuda $GPU_TARGETS       (every row, eager backbone modes, PaDiM/PatchCore/RD rows)
#   2. scripts/time_stages.py on CUDA                 (the real stages of one bottle-size category, 100 epochs,
#                                                      then pipeline.compare padim, patchcore, rd with
#                                                      $RD_EPOCHS RD epochs: its s/epoch is what is timed, then
#                                                      one open-choices study item, pipeline.choice defaults: 100
#                                                      epochs with the test set scored after each)
#   3. python -m bench --device cuda --compile --only backbone,scoring $GPU_TARGETS
# Each step has its own time limit (T_BENCH, T_STAGES, T_COMPILE seconds; 580 s together, under one 600 s
# command), so a slow step cannot cost the others; results go to $OUT (default reports/gpu): Markdown tables,
# JSON and logs (each step's files are written when it ends, so a cut-off run keeps the finished steps).
set -u
OUT=${OUT:-reports/gpu}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
export PYTHONPATH="$PWD${EXTRA_PYTHONPATH:+:$EXTRA_PYTHONPATH}"
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}          # DEVICE=cpu BENCH_ARGS=--quick STAGES_ARGS="--set ..." for a local smoke run
read -r -a BENCH_ARGS <<<"${BENCH_ARGS:-}"
read -r -a STAGES_ARGS <<<"${STAGES_ARGS:-}"
# targets for an H100/H200-class GPU (scoring >= 1500 img/s, 100 epochs of one bottle-size category <= 60 s);
# GPU_TARGETS="" prints no verdicts
GPU_TARGETS=${GPU_TARGETS-"--target scoring_img_s=1500 --target train_100ep_s=60"}
read -r -a TARGETS <<<"$GPU_TARGETS"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit --format=csv
  "$PY" -c "import torch, torchvision, timm; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__, 'cudnn', torch.backends.cudnn.version())"
  nproc
} 2>&1 | tee "$OUT/env.txt"

step() {  # name, limit (s), command...
  local name=$1 limit=$2; shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.md" 2>"$OUT/$name.log"
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s (limit $limit s)"
  grep -E '^\[(bench|time_stages)\]|Error|error' "$OUT/$name.log" | tail -15
}

TMP=$(mktemp -d)
step bench-cuda "${T_BENCH:-230}" "$PY" -m bench --device "$DEVICE" --out "$TMP/bench.md" \
  --json "$OUT/bench-cuda.json" "${TARGETS[@]}" "${BENCH_ARGS[@]}"
# RD's 200 epochs of the WRN50-2-size student (~106 GFLOP per sample) would not fit the step: RD_EPOCHS of them
step stages-cuda "${T_STAGES:-200}" "$PY" scripts/time_stages.py --set train.device="$DEVICE" \
  --set backbone.precision=bf16 --set backbone.channels_last=true --set compare.rd.epochs="${RD_EPOCHS:-20}" \
  --choices defaults "${STAGES_ARGS[@]}"
step bench-cuda-compile "${T_COMPILE:-150}" "$PY" -m bench --device "$DEVICE" --compile \
  --only backbone,scoring --out "$TMP/bench-compile.md" "${TARGETS[@]}" "${BENCH_ARGS[@]}"

for f in bench-cuda.md stages-cuda.md bench-cuda-compile.md; do
  echo; echo "######## $f"; grep -E '^\|' "$OUT/$f" | cut -c1-600
done
