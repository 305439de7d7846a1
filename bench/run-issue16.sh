#!/usr/bin/env bash
# Reproduces every figure of BENCHMARKS.md's "Training step near the machine's limit" section (issue 16), in
# order, on this machine; JSON lines go to $OUT (default runs/bench-issue16/). Run on a quiet machine:
# about 45–60 min on 2 cores (width 128 steps dominate; the side-by-side runs the original too).
# Needs: apt-get install python3-torch libopenblas0-pthread; network or the tool's mirror for the original's
# source (fetched into a temporary folder, never committed): set GUIDED_DIFFUSION=/path/to/checkout to reuse one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/runs/bench-issue16}
mkdir -p "$out"
cd "$root"
dotnet build -c Release bench/GuidedDiffusion.Bench >/dev/null
bench="dotnet bench/GuidedDiffusion.Bench/bin/Release/net10.0/linux-x64/GuidedDiffusion.Bench.dll"
checkout=${GUIDED_DIFFUSION:-}
if [ -z "$checkout" ]; then
  checkout=$(mktemp -d)
  git clone --depth 1 https://github.com/openai/guided-diffusion "$checkout" >/dev/null
fi
lscpu | grep -E "Model name|Flags" > "$out/cpu.txt"
uptime >> "$out/cpu.txt"

# 1. Per-op fp32 vs bf16 (conv NCHW/NHWC, matmul, attention einsum vs SDPA, GroupNorm), with oneDNN's kernels.
ONEDNN_VERBOSE=1 $bench ops --rounds 3 > "$out/ops-verbose.log" 2>/dev/null
tail -1 "$out/ops-verbose.log" > "$out/ops.json"
grep "onednn_verbose.*exec" "$out/ops-verbose.log" | awk -F, '{print $4","$5","$6}' | sort | uniq -c > "$out/onednn-kernels.txt"

# 2. The reference step (batch 16, 64², reference flags) at width 64 and 128, fp32 and bf16 (native here?).
for width in 64 128; do
  for precision in fp32 bf16; do
    $bench train-step --classifier_width $width --precision $precision --allow_slow_bf16 --warmup 3 --steps 10 2>/dev/null | tail -1 >> "$out/train-step.jsonl"
  done
done

# 3. Start-up settings A/B, alternating processes (width 64): glibc defaults (the user override restores them)
#    and libgomp's default spin (GOMP_SPINCOUNT=300000 is its built-in value) against the new defaults.
for round in 1 2 3; do
  $bench train-step --classifier_width 64 --warmup 2 --steps 5 2>/dev/null | tail -1 | sed 's/^{/{"variant":"defaults",/' >> "$out/startup-ab.jsonl"
  MALLOC_MMAP_MAX_=65536 MALLOC_TRIM_THRESHOLD_=131072 $bench train-step --classifier_width 64 --warmup 2 --steps 5 2>/dev/null | tail -1 | sed 's/^{/{"variant":"glibc-malloc-defaults",/' >> "$out/startup-ab.jsonl"
  GOMP_SPINCOUNT=300000 $bench train-step --classifier_width 64 --warmup 2 --steps 5 2>/dev/null | tail -1 | sed 's/^{/{"variant":"libgomp-default-spin",/' >> "$out/startup-ab.jsonl"
done

# 4. RSS over 1000 steps after warm-up (demo-sized classifier, as the README's memory section).
$bench train-step --image_size 32 --channel_mult 1,2,2 --classifier_width 64 --classifier_depth 1 \
  --classifier_attention_resolutions 16,8 --num_classes 10 --batch_size 32 --warmup 10 --steps 1000 --threads 2 2>/dev/null | tail -1 > "$out/rss-1000.json"

# 5. Side by side with the original at both widths.
bench/side-by-side.sh "$checkout" 64 3 5 | tail -1 >> "$out/side-by-side.jsonl"
bench/side-by-side.sh "$checkout" 128 2 4 | tail -1 >> "$out/side-by-side.jsonl"

# 6. The slow tests (their result goes in every closing note that touches the models).
# A copy of tests.runsettings selecting Category=Slow (an explicit settings file leaves no doubt which filter won).
sed 's|<TestCaseFilter>Category!=Slow</TestCaseFilter>|<TestCaseFilter>Category=Slow</TestCaseFilter>|' tests.runsettings > "$out/slow.runsettings"
OMP_WAIT_POLICY=PASSIVE dotnet test GuidedDiffusion.sln -c Release --settings "$out/slow.runsettings" > "$out/slow-tests.log" 2>&1 || true
tail -3 "$out/slow-tests.log"
echo "results in $out"
