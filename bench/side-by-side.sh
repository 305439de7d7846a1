#!/usr/bin/env bash
# Our classifier train step against the original's (guided-diffusion's classifier_train.py step, Debian's
# python3-torch), same config, alternating processes so both see the same machine load.
# usage: bench/side-by-side.sh GUIDED_DIFFUSION_CHECKOUT [width=64] [rounds=3] [steps=5] [threads=2]
# Needs: apt-get install python3-torch libopenblas0-pthread (without OpenBLAS Debian's torch uses the
# reference BLAS and is ~6x slower still); a Release build of bench/GuidedDiffusion.Bench.
# The original runs with OMP_WAIT_POLICY=PASSIVE unless ORIGINAL_OMP_WAIT_POLICY says otherwise: on a shared
# machine its default spinning makes it several times slower, which would flatter us.
set -euo pipefail
checkout=${1:?usage: bench/side-by-side.sh GUIDED_DIFFUSION_CHECKOUT [width] [rounds] [steps] [threads]}
width=${2:-64} rounds=${3:-3} steps=${4:-5} threads=${5:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
bench="$root/bench/GuidedDiffusion.Bench/bin/Release/net10.0/linux-x64/GuidedDiffusion.Bench.dll"
[ -f "$bench" ] || { echo "side-by-side: build first: dotnet build -c Release bench/GuidedDiffusion.Bench" >&2; exit 2; }
[ -f "$checkout/guided_diffusion/unet.py" ] || { echo "side-by-side: $checkout is not a guided-diffusion checkout (no guided_diffusion/unet.py)" >&2; exit 2; }
out=$(mktemp -d)
for r in $(seq "$rounds"); do
  dotnet "$bench" train-step --classifier_width "$width" --warmup 2 --steps "$steps" --threads "$threads" --breakdown_steps 2 2>/dev/null | tail -1 >> "$out/ours.jsonl"
  # The original gets OpenBLAS's own kernel choice (this environment's OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE removed)
  # and, when ORIGINAL_OPENBLAS_NUM_THREADS is set, that many OpenBLAS threads (1 keeps OpenBLAS's pthreads from
  # competing with torch's OpenMP threads for the same cores).
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ${ORIGINAL_OPENBLAS_NUM_THREADS:+OPENBLAS_NUM_THREADS=$ORIGINAL_OPENBLAS_NUM_THREADS} \
    OMP_WAIT_POLICY=${ORIGINAL_OMP_WAIT_POLICY:-PASSIVE} /usr/bin/python3 "$root/bench/original_train_step.py" "$checkout" \
    --classifier_width "$width" --warmup 2 --steps "$steps" --threads "$threads" 2>/dev/null | tail -1 >> "$out/original.jsonl"
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
d = sys.argv[1]
ours = [json.loads(l) for l in open(f"{d}/ours.jsonl")]
orig = [json.loads(l) for l in open(f"{d}/original.jsonl")]
o = statistics.median(x["median_s_per_step"] for x in ours)
p = statistics.median(x["median_s_per_step"] for x in orig)
pairs = [b["median_s_per_step"] / a["median_s_per_step"] for a, b in zip(ours, orig)]
# CPU seconds per step (user + system, all threads) are far less distorted by other processes than wall time.
cpu = lambda x: x["user_cpu_s_per_step"] + x["system_cpu_s_per_step"]
oc = statistics.median(cpu(x) for x in ours)
pc = statistics.median(cpu(x) for x in orig)
print(json.dumps({"benchmark": "side-by-side", "cpu": ours[0]["cpu"], "classifier_width": ours[0]["classifier_width"],
                  "rounds": len(ours), "ours_median_s": o, "original_median_s": p, "speedup": round(p / o, 2),
                  "speedup_per_round": [round(x, 2) for x in pairs],
                  "ours_cpu_s_per_step": round(oc, 3), "original_cpu_s_per_step": round(pc, 3), "cpu_time_ratio": round(pc / oc, 2),
                  "ours_fraction_of_conv_ceiling": [x["fraction_of_conv_ceiling"] for x in ours],
                  "ours_fraction_of_fma_peak": [x.get("fraction_of_fma_peak") for x in ours],
                  "original_blas": orig[0].get("blas"), "original_env": orig[0].get("env"),
                  "load_average_1min": [x["load_average_1min"] for x in ours + orig]}))
PY
