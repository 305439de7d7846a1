#!/usr/bin/env bash
# Fuzz one target with afl++ and SharpFuzz: fuzz/run.sh TARGET [SECONDS]   (see docs/FUZZING.md)
set -euo pipefail
target=${1:?target: image, idx, npz, safetensors, pt or sidecar}
seconds=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/GuidedDiffusion.Fuzz/bin/Release/net10.0/linux-x64
if [ ! -f "$out/.instrumented" ]; then
  dotnet build "$here/GuidedDiffusion.Fuzz" -c Release
  # Instrument only our library: coverage feedback for the parsers (the native decoders crash loudly anyway).
  sharpfuzz "$out/GuidedDiffusion.dll"
  touch "$out/.instrumented"
fi
findings=$here/findings/$target
mkdir -p "$findings"
# A fresh corpus run starts from the seeds; an existing findings folder resumes (-i -).
input=$here/corpus/$target
[ -d "$findings/default/queue" ] && input=-
AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 \
  timeout --signal=INT "$seconds" afl-fuzz -i "$input" -o "$findings" -t 10000 -m none -V "$seconds" \
  -- dotnet "$out/guided-diffusion-fuzz.dll" "$target" || true
tail -n 20 "$findings/default/fuzzer_stats" 2>/dev/null | grep -E 'execs_done|corpus_count|saved_crashes|saved_hangs|run_time' || true
