#!/usr/bin/env bash
# The classifier's training step against the machine's peaks (issue 26, BENCHMARKS.md "Fraction of the machine's
# peak"): per-op rates (fp32/bf16 matmul and 3×3 conv, attention), then train-step at width 64 and 128 in fp32 and
# bf16 (reference flags, batch 16, 64², 2 threads) with the fractions of the measured matmul rates and of the
# theoretical FMA peak, then the original side by side at width 64 with OpenBLAS's default threads and with one
# OpenBLAS thread (ORIGINAL_OPENBLAS_NUM_THREADS=1). Run it on a quiet machine; every line is JSON, in $OUT
# (default runs/bench-issue26-peaks/). Needs what bench/side-by-side.sh needs (python3-torch, libopenblas0-pthread,
# a guided-diffusion checkout as GUIDED_DIFFUSION_CHECKOUT; without it the side-by-side part is skipped).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/runs/bench-issue26-peaks}
mkdir -p "$out"
cd "$root"
dotnet build -c Release bench/GuidedDiffusion.Bench >/dev/null
bench="bench/GuidedDiffusion.Bench/bin/Release/net10.0/linux-x64/GuidedDiffusion.Bench.dll"
lscpu | grep -E "Model name|^CPU\(s\)|Flags|MHz" > "$out/cpu.txt"
dotnet "$bench" ops --rounds 2 2>/dev/null | tail -1 | tee -a "$out/ops.jsonl"
# Variants alternate within each round, so a changing load hits all alike.
for round in 1 2; do
  for width in 64 128; do
    for precision in fp32 bf16; do
      dotnet "$bench" train-step --classifier_width "$width" --precision "$precision" --warmup 2 --steps 4 \
        --breakdown_steps 2 2>/dev/null | tail -1 | sed "s/}\$/,\"round\":$round}/" | tee -a "$out/train-step.jsonl"
    done
  done
done
if [[ -n "${GUIDED_DIFFUSION_CHECKOUT:-}" ]]; then
  for blas_threads in "" 1; do
    ORIGINAL_OPENBLAS_NUM_THREADS=$blas_threads bench/side-by-side.sh "$GUIDED_DIFFUSION_CHECKOUT" 64 2 3 \
      | tail -1 | tee -a "$out/side-by-side.jsonl"
  done
fi
