#!/usr/bin/env bash
# Every CPU figure of BENCHMARKS.md, one command after another (about an hour on 2 cores).
# Run on a quiet machine: each JSON line records the load average it saw.
#   bash benchmarks/cpu_suite.sh [results.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results.jsonl}
PY=${PYTHON:-python}
DEMO=experiments/configs/demo.py
GAN=experiments/configs/gan.py

$PY -m benchmarks.flops --target 2300 --out "$OUT"
$PY -m benchmarks.cpu_conv --out "$OUT"
$PY -m benchmarks.input_pipeline --synthetic 5000 --size 224 --batch 64 --crop 224 --out "$OUT"
$PY -m benchmarks.input_pipeline --synthetic 5000 --size 112 --batch 8 --crop 96 --out "$OUT"
$PY -m benchmarks.train_step --config $DEMO --batch 8,16,32 --kinds pretrain,gan,separate \
    --windows 3 --steps_per_window 5 --out "$OUT"
$PY -m benchmarks.train_step --config $GAN --batch 8 --kinds pretrain,gan --windows 3 \
    --steps_per_window 2 --warmup 1 --out "$OUT"
$PY -m benchmarks.end_to_end --synthetic 2000 --steps 60 --log_every 10 --out "$OUT"
$PY -m benchmarks.inference --config $GAN --synthetic 16 --photo_size 640x480 \
    --render 224,512 --batch_size 8 --backends jax,onnx --windows 3 --model_steps 2 --out "$OUT"
$PY -m benchmarks.inference --config $GAN --synthetic 8 --photo_size 640x480 \
    --render 224 --batch_size 1 --backends jax,onnx --windows 3 --model_steps 4 --out "$OUT"
# XLA:CPU options against the default, on the demo model's pretraining step.
for flags in "" "--xla_cpu_use_onednn=true" "--xla_cpu_use_xnnpack=true" \
             "--xla_cpu_multi_thread_eigen=false" "--xla_cpu_enable_fast_math=true"; do
  XLA_FLAGS="$flags" $PY -m benchmarks.train_step --config $DEMO --batch 16 --kinds pretrain \
      --windows 3 --steps_per_window 5 --out "$OUT"
done
