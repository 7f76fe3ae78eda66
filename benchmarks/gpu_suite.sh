#!/usr/bin/env bash
# The accelerator figures of BENCHMARKS.md in one prepared command (about 10 minutes on an
# H100/H200 with 16 cores, compilation included). From the checkout root, after
#   bash ../shared/gpu/prepare.sh        # the wheels the GPU image lacks, into .whl/
# run it through the device tool with carry [".whl"] (or on any GPU host: OUT=dir bash ...):
#   bash benchmarks/gpu_suite.sh
# Each phase has its own timeout, so one slow phase cannot eat the call; each phase's JSON
# lines go to $OUT/PHASE.jsonl (PHASE is the script: train_step, end_to_end, inference) and its
# log to $OUT/PHASE.log (default OUT: ./gpu_results). To commit the figures, append each
# $OUT/PHASE.jsonl to benchmarks/results/PHASE.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_results}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jaxcache} PYTHONUNBUFFERED=1
GAN=experiments/configs/gan.py
phase() {  # phase SCRIPT SECONDS COMMAND...
  local name=$1 seconds=$2
  shift 2
  echo "== $name"
  timeout "$seconds" "$@" --out "$OUT/$name.jsonl" > "$OUT/$name.log" 2>&1
  echo "   exit $? ($(tail -c 300 "$OUT/$name.log" | tr '\n' ' ' | cut -c1-200))"
}
# Device-only training steps (FLOPs from the CPU lowering: honest MFU on every backend).
phase train_step 240 python3 -m benchmarks.train_step --config $GAN --batch 256 \
    --kinds gan,pretrain --windows 3 --steps_per_window 5 --warmup 2
# The real loop on the same step: images/s against the device-only figure, host ms per step.
phase end_to_end 240 python3 -m benchmarks.end_to_end --config $GAN --synthetic 4000 \
    --image_size 240 --set batch_size=256 --phase gan --steps 48 --log_every 8
# Colourising 640x480 JPEGs: PNG and JPEG out, where the time goes, evaluation.
phase inference 420 python3 -m benchmarks.inference --config $GAN --synthetic 256 \
    --photo_size 640x480 --render 224,512 --batch_size 16 --backends jax --formats jpg,png \
    --windows 3
