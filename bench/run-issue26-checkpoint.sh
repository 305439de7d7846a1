#!/usr/bin/env bash
# Peak RSS and step time of the classifier's training step (reference flags, width 128, fp32) with and without
# gradient checkpointing (--use_checkpoint) at 64², 128² and 256² (issue 26, BENCHMARKS.md "Gradient checkpointing").
# One process per configuration; the two settings alternate within each round so that a changing machine load hits
# both alike. JSON lines (each with /usr/bin/time's maxrss appended) go to $OUT (default runs/bench-issue26/).
# ROUNDS (default 3), and BATCH_64 / BATCH_128 / BATCH_256 (default 8 / 4 / 2) size the run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/runs/bench-issue26}
mkdir -p "$out"
cd "$root"
dotnet build -c Release bench/GuidedDiffusion.Bench >/dev/null
bench="bench/GuidedDiffusion.Bench/bin/Release/net10.0/linux-x64/GuidedDiffusion.Bench.dll"
lscpu | grep -E "Model name|^CPU\(s\)|Flags" > "$out/cpu.txt"
rounds=${ROUNDS:-3}
declare -A batch=([64]=${BATCH_64:-8} [128]=${BATCH_128:-4} [256]=${BATCH_256:-2})
for round in $(seq 1 "$rounds"); do
  for size in 64 128 256; do
    for checkpoint in false true; do
      load=$(cut -d' ' -f1 /proc/loadavg)
      line=$(/usr/bin/time -f "%M" -o "$out/maxrss.tmp" dotnet "$bench" train-step --image_size "$size" \
        --batch_size "${batch[$size]}" --warmup 1 --steps 3 --use_checkpoint "$checkpoint" \
        --ceilings false --breakdown_steps 0 2>/dev/null | tail -1)
      echo "${line%\}},\"round\":$round,\"load_before\":$load,\"time_maxrss_kb\":$(cat "$out/maxrss.tmp")}" | tee -a "$out/train-step.jsonl"
    done
  done
done
rm -f "$out/maxrss.tmp"
