#!/usr/bin/env bash
# Fuzz one target with afl++ and SharpFuzz: fuzz/run.sh TARGET [SECONDS]   (see docs/FUZZING.md)
set -euo pipefail
target=${1:?target: image, idx, npz, safetensors, pt or sidecar}
seconds=${2:-600}
here=$(cd "$(dirname "$0")" && pwd)
export PATH=$PATH:$HOME/.dotnet/tools
plain=$here/GuidedDiffusion.Fuzz/bin/Release/net10.0/linux-x64
# An instrumented copy: an instrumented GuidedDiffusion.dll only runs under afl-fuzz, the plain build replays.
out=$here/GuidedDiffusion.Fuzz/bin/instrumented
if [ ! -f "$out/.instrumented" ] || [ "$plain/GuidedDiffusion.dll" -nt "$out/.instrumented" ]; then
  dotnet build "$here/GuidedDiffusion.Fuzz" -c Release
  rm -rf "$out" && cp -r "$plain" "$out"
  # Only our library is instrumented: coverage feedback for the parsers (native decoders crash loudly anyway).
  sharpfuzz "$out/GuidedDiffusion.dll"
  touch "$out/.instrumented"
fi
findings=$here/findings/$target
mkdir -p "$findings"
# No CPU binding: the machine is shared (and afl refuses to start once every core is bound).
# A fresh run starts from the seeds; an existing findings folder resumes (-i -).
input=$here/corpus/$target
[ -d "$findings/default/queue" ] && input=-
AFL_NO_AFFINITY=1 AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 \
  timeout --signal=INT $((seconds + 60)) afl-fuzz -i "$input" -o "$findings" -t 10000 -m none -V "$seconds" \
  -- dotnet "$out/guided-diffusion-fuzz.dll" "$target" > "$findings/afl.log" 2>&1 || true
grep -E 'execs_done|corpus_count|saved_crashes|saved_hangs|run_time' "$findings/default/fuzzer_stats" || true
