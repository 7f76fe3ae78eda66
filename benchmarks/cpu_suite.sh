#!/usr/bin/env bash
# Every CPU figure of BENCHMARKS.md, one command after another (about an hour on 2 cores).
# Run on a quiet machine: each JSON line records the load average it saw. Each script appends
# to its area's file in DIR (default: the committed benchmarks/results/); then regenerate the
# tables with each script's --table (BENCHMARKS.md names the command above each table).
#   bash benchmarks/cpu_suite.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-benchmarks/results}
PY=${PYTHON:-python}
DEMO=experiments/configs/demo.py
GAN=experiments/configs/gan.py
run() {  # run SCRIPT ARGS...: python -m benchmarks.SCRIPT ARGS --out DIR/SCRIPT.jsonl
  local script=$1
  shift
  $PY -m "benchmarks.$script" "$@" --out "$DIR/$script.jsonl"
}

run flops --config $GAN --target 2300
run flops --config $GAN --steps pretrain --target 2900
run flops --config $DEMO
run cpu_conv
run input_pipeline --synthetic 5000 --size 224 --batch 64 --crop 224
run input_pipeline --synthetic 5000 --size 112 --batch 8 --crop 96
run train_step --config $DEMO --batch 8,16,32 --kinds pretrain,gan,separate \
    --windows 3 --steps_per_window 5
run train_step --config $GAN --batch 8 --kinds pretrain,gan --windows 3 \
    --steps_per_window 2 --warmup 1
run end_to_end --synthetic 2000 --steps 60 --log_every 10
run inference --config $GAN --synthetic 16 --photo_size 640x480 \
    --render 224,512 --batch_size 8 --backends jax,onnx --windows 3 --model_steps 2
run inference --config $GAN --synthetic 8 --photo_size 640x480 \
    --render 224 --batch_size 1 --backends jax,onnx --windows 3 --model_steps 4
# XLA:CPU options against the default, on the demo model's pretraining step.
for flags in "" "--xla_cpu_use_onednn=true" "--xla_cpu_use_xnnpack=true" \
             "--xla_cpu_multi_thread_eigen=false" "--xla_cpu_enable_fast_math=true"; do
  XLA_FLAGS="$flags" run train_step --config $DEMO --batch 16 --kinds pretrain \
      --windows 3 --steps_per_window 5
done
