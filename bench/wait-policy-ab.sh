#!/usr/bin/env bash
# OpenMP wait policy A/B of the reference train step (width 64, batch 16, 64²) under three conditions: quiet, beside a
# nice-19 job, beside a job of the same priority (each a demo-sized train-step of its own). Five variants alternate
# process by process, ROUNDS rounds per condition; one TSV line per run: condition, variant, median and min s/step,
# CPU s/step (user + sys), 1-min load. Run on an otherwise quiet machine (about 15 min for 2 rounds).
# usage: bench/wait-policy-ab.sh [rounds=2]     (after dotnet build -c Release bench/GuidedDiffusion.Bench)
#   PRECISION=fp32|bf16 (default fp32), CONDITIONS="quiet nice19 samepri" (default all three),
#   SPINS="10000 100000 300000" (the GOMP_SPINCOUNT variants beside passive and active)
set -euo pipefail
rounds=${1:-2}
precision=${PRECISION:-fp32}
root=$(cd "$(dirname "$0")/.." && pwd)
bench="dotnet $root/bench/GuidedDiffusion.Bench/bin/Release/net10.0/linux-x64/GuidedDiffusion.Bench.dll"
variants=("passive OMP_WAIT_POLICY=PASSIVE" "active OMP_WAIT_POLICY=ACTIVE")
for spin in ${SPINS:-10000 100000 300000}; do variants+=("spin$spin GOMP_SPINCOUNT=$spin"); done
run() {  # run CONDITION VARIANT ENV...
  local condition=$1 variant=$2
  shift 2
  env "$@" $bench train-step --classifier_width 64 --precision "$precision" --warmup 2 --steps 4 \
    --ceilings false --breakdown_steps 0 2>/dev/null | tail -1 | python3 -c "
import json, sys
d = json.load(sys.stdin)
print('$condition', '$precision', '$variant', d['median_s_per_step'], d['min_s_per_step'],
      round(d['user_cpu_s_per_step'] + d['system_cpu_s_per_step'], 3), d['load_average_1min'], sep='\t')"
}
competitor=
trap '[[ -n $competitor ]] && kill $competitor 2>/dev/null' EXIT
for condition in ${CONDITIONS:-quiet nice19 samepri}; do
  case $condition in
    nice19) priority=19 ;;
    samepri) priority=0 ;;
    *) priority= ;;
  esac
  if [[ -n $priority ]]; then
    OMP_WAIT_POLICY=PASSIVE nice -n "$priority" $bench train-step --image_size 32 --channel_mult 1,2,2 --classifier_width 64 \
      --classifier_depth 1 --classifier_attention_resolutions 16,8 --num_classes 10 --batch_size 32 --warmup 2 \
      --steps 100000 --threads 2 > /dev/null 2>&1 &
    competitor=$!
    sleep 5
  fi
  for _ in $(seq "$rounds"); do
    for v in "${variants[@]}"; do
      # shellcheck disable=SC2086  # a variant is its name and its environment setting
      run "$condition" $v
    done
  done
  if [[ -n $competitor ]]; then kill "$competitor"; wait "$competitor" 2>/dev/null || true; competitor=; fi
done
