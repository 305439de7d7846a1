#!/usr/bin/env bash
# Checks docs/demo/guided-sampling.sh without training anything: a stub stands in for guided-diffusion (it writes
# the file each command would write, named from its flags, and logs its arguments), and the chain runs into a
# temporary OUT:
#   1. from nothing: every stage runs once and gets a times.tsv row; a half-trained robust classifier resumes;
#   2. again: every stage is skipped, nothing is called;
#   3. after deleting one sample file: only that sampling stage runs;
#   4. GUIDES=noisy3000 into a new OUT: only the shared stages and that guide's (no DDIM row); an unknown guide fails;
#   5. a scale added to a guide: its row is sampled and the guide's verdict, which lacks it, is judged again;
#   6. the fast-solver rows (issue 27): each solver's flags at each step count without respacing, the interval row,
#      SOLVERS="" and a subset, an unknown solver fails.
# Usage: docs/demo/check-guided-sampling.sh   (from the repository root; a few seconds)
set -euo pipefail

work=$(mktemp -d)
trap '[[ -n "${KEEP:-}" ]] || rm -rf "$work"' EXIT
stub=$work/guided-diffusion
cat > "$stub" <<'STUB'
#!/usr/bin/env bash
# The guided-diffusion stand-in: logs its arguments, writes the output file the real command would.
set -euo pipefail
echo "$*" >> "$STUB_LOG"
command=$1
shift
declare -A flag
files=()
while (($#)); do
  case $1 in
    --*) if (($# > 1)) && [[ $2 != --* ]]; then flag[${1#--}]=$2; shift 2; else flag[${1#--}]=True; shift; fi ;;
    *) files+=("$1"); shift ;;
  esac
done
case $command in
  image-train) mkdir -p "${flag[log_dir]}"
    touch "${flag[log_dir]}/$(printf "ema_%s_%06d.pt" "${flag[ema_rate]}" $((flag[lr_anneal_steps] - 1)))" ;;
  classifier-train) mkdir -p "${flag[log_dir]}"; touch "${flag[log_dir]}/$(printf "model%06d.pt" $((flag[iterations] - 1)))" ;;
  classifier-sample) [[ -f ${flag[model_path]} && -f ${flag[classifier_path]} ]] || { echo "missing input" >&2; exit 1; }
    mkdir -p "${flag[out_dir]}"; touch "${flag[out_dir]}/samples_${flag[num_samples]}x32x32x3.npz" ;;
  sample-eval) echo "agreement table"; printf '{"results": [%s]}\n' "$(printf '{"file": "%s"},' "${files[@]}" | sed 's/,$//')" > "${flag[json]}" ;;
  eps-eval) mkdir -p "${flag[log_dir]}"; echo "{}" > "${flag[log_dir]}/eps_eval.json" ;;
  *) echo "unknown command $command" >&2; exit 1 ;;
esac
STUB
chmod +x "$stub"

export STUB_LOG=$work/calls.log OUT=$work/out GD=$stub
fail() { echo "FAIL: $*" >&2; exit 1; }
calls() { if [[ -f $STUB_LOG ]]; then wc -l < "$STUB_LOG"; else echo 0; fi; }

# A robust classifier cut short at its first save: the chain must resume it, not start it again.
mkdir -p "$OUT/robust1200" && touch "$OUT/robust1200/model000600.pt"
docs/demo/guided-sampling.sh > "$work/run1.txt"
# 6 trainings, 2 unguided + 2 guides × (5 ancestral + 2 DDIM) + 3 ancestral (noisy3000) + 3 ancestral and 2 DDIM
# (noisy6000) + 8 solvers × 4 step counts and 1 interval row (noisy6000) samplings, 4 sample-evals, 1 eps-eval.
stages=$((6 + 2 + 14 + 3 + 5 + 8 * 4 + 1 + 4 + 1))
NPZ_RE=samples_300x32x32x3\.npz
[[ $(calls) -eq $stages ]] || fail "first run made $(calls) calls, expected $stages"
[[ $(($(wc -l < "$OUT/times.tsv") - 1)) -eq $stages ]] || fail "times.tsv has $(($(wc -l < "$OUT/times.tsv") - 1)) rows, expected $stages"
awk -F'\t' 'NR > 1 && (NF != 5 || $5 != sprintf("%.2f", $3 + $4)) { exit 1 }' "$OUT/times.tsv" || fail "a times.tsv row is not stage, wall, user, sys, user+sys"
grep -q -- "classifier-train --adversarial True .*--resume_checkpoint auto" "$STUB_LOG" || fail "the half-trained robust classifier did not resume"
grep -q -- "classifier-train --iterations 1200 .*--log_dir $OUT/noisy1200\$" "$STUB_LOG" || fail "a fresh training got resume flags"
grep -q -- "--use_ddim True --timestep_respacing ddim50" "$STUB_LOG" || fail "no DDIM sampling"
[[ $(grep -c -- "--classifier_scale 0 " "$STUB_LOG") -eq 2 ]] || fail "scale 0 should be sampled once per sampler"
grep -q -- "sample-eval .*unguided-ancestral-scale0/samples_300x32x32x3.npz .*robust1200-ddim50-scale30/samples_300x32x32x3.npz" "$STUB_LOG" \
  || fail "sample-eval of robust1200 lacks its files"
grep -q -- "classifier-train --iterations 3000 --save_interval 1000 --seed 0 --log_dir $OUT/noisy3000\$" "$STUB_LOG" \
  || fail "the 3,000-step guide was not trained with its own flags"
grep -q -- "--classifier_path $OUT/noisy3000/model002999.pt --classifier_scale 50 " "$STUB_LOG" \
  || fail "the 3,000-step guide's samples do not use its final checkpoint"
grep -q -- "sample-eval .*agreement-noisy3000.json $OUT/unguided-ancestral-scale0/$NPZ_RE $OUT/noisy3000-ancestral-scale50/$NPZ_RE $OUT/noisy3000-ancestral-scale100/$NPZ_RE $OUT/noisy3000-ancestral-scale200/$NPZ_RE\$" "$STUB_LOG" \
  || fail "sample-eval of noisy3000 should judge scale 0 and its three ancestral rows, no DDIM"
grep -q -- "sample-eval .*agreement-noisy6000.json $OUT/unguided-ancestral-scale0/$NPZ_RE $OUT/noisy6000-ancestral-scale100/$NPZ_RE $OUT/noisy6000-ancestral-scale200/$NPZ_RE $OUT/noisy6000-ancestral-scale300/$NPZ_RE $OUT/unguided-ddim50-scale0/$NPZ_RE $OUT/noisy6000-ddim50-scale100/$NPZ_RE $OUT/noisy6000-ddim50-scale200/$NPZ_RE $OUT/noisy6000-dpmpp1-10steps-scale100/$NPZ_RE .* $OUT/noisy6000-unipc_bh2-25steps-scale100/$NPZ_RE $OUT/noisy6000-dpmpp1-20steps-scale100-interval100-999/$NPZ_RE\$" "$STUB_LOG" \
  || fail "sample-eval of noisy6000 should judge scale 0 and its ancestral rows, then the DDIM ones, then the solvers' and the interval row"
[[ $(grep -c -- "classifier-sample .*--sampler " "$STUB_LOG") -eq $((8 * 4 + 1)) ]] || fail "expected 33 fast-solver samplings"
! grep -q -- "--sampler .*--timestep_respacing\|--timestep_respacing .*--sampler" "$STUB_LOG" || fail "a fast solver got a respacing"
grep -q -- "--classifier_scale 100 .*--out_dir $OUT/noisy6000-dpm3-15steps-scale100 --sampler dpm_solver --solver_order 3 --solver_method singlestep --steps 15\$" "$STUB_LOG" \
  || fail "the DPM-Solver-3 row at 15 steps lacks its flags"
grep -q -- "--out_dir $OUT/noisy6000-dpmpp1-20steps-scale100-interval100-999 --sampler dpm_solver++ --solver_order 1 --steps 20 --guidance_interval 100,999\$" "$STUB_LOG" \
  || fail "the guidance-interval row lacks its flags"
[[ -f $OUT/summary.md ]] || fail "no summary.md"

before=$(calls)
docs/demo/guided-sampling.sh > "$work/run2.txt"
[[ $(calls) -eq $before ]] || fail "second run made $(($(calls) - before)) calls, expected none"
# Every guide asks for the shared unguided rows it judges, so the second run also skips the 3 later requests of the
# ancestral one (robust1200, noisy3000, noisy6000) and the 2 of the DDIM one (robust1200, noisy6000).
[[ $(grep -c "^== " "$work/run2.txt") -eq $(grep -c "skipped" "$work/run2.txt") ]] || fail "second run did not skip every stage"
[[ $(grep -c "skipped" "$work/run2.txt") -eq $((stages + 3 + 2)) ]] \
  || fail "second run skipped $(grep -c "skipped" "$work/run2.txt") stage calls, expected $((stages + 3 + 2))"

rm "$OUT/noisy1200-ddim50-scale10/samples_300x32x32x3.npz"
docs/demo/guided-sampling.sh > "$work/run3.txt"
[[ $(calls) -eq $((before + 1)) ]] || fail "third run made $(($(calls) - before)) calls, expected 1"
tail -n 1 "$STUB_LOG" | grep -q -- "--out_dir $OUT/noisy1200-ddim50-scale10 " || fail "third run did not resample noisy1200-ddim50-scale10"
OUT=$work/subset GUIDES=noisy3000 docs/demo/guided-sampling.sh > "$work/run4.txt"
grep -q -- "classifier-train --iterations 3000 --save_interval 1000 --seed 0 --log_dir $work/subset/noisy3000\$" "$STUB_LOG" \
  || fail "GUIDES=noisy3000 did not train the 3,000-step guide"
# clean, diffusion, eps-eval, the guide, unguided ancestral, scales 50, 100 and 200, its sample-eval.
[[ $(grep -c -- "$work/subset/" "$STUB_LOG") -eq 9 ]] || fail "GUIDES=noisy3000 made $(grep -c -- "$work/subset/" "$STUB_LOG") calls, expected 9"
! grep -q -- "--use_ddim True .*$work/subset/" "$STUB_LOG" || fail "GUIDES=noisy3000 sampled a DDIM row it does not judge"
grep -q -- "sample-eval .*agreement-noisy3000.json $work/subset/unguided-ancestral-scale0/$NPZ_RE $work/subset/noisy3000-ancestral-scale50/$NPZ_RE $work/subset/noisy3000-ancestral-scale100/$NPZ_RE $work/subset/noisy3000-ancestral-scale200/$NPZ_RE\$" "$STUB_LOG" \
  || fail "sample-eval of noisy3000 (subset) should judge scale 0 and its three ancestral rows"
if OUT=$work/bad GUIDES="noisy3000 noisy9000" docs/demo/guided-sampling.sh > "$work/run5.txt" 2>&1; then fail "an unknown guide was accepted"; fi
grep -q "GUIDES: unknown guide 'noisy9000'" "$work/run5.txt" || fail "an unknown guide's error does not name it"
[[ ! -e $work/bad ]] || fail "an unknown guide left a run folder behind"
sed 's/\[noisy3000\]="50 100 200"/[noisy3000]="50 100 200 300"/' docs/demo/guided-sampling.sh > "$work/more-scales.sh"
OUT=$work/subset GUIDES=noisy3000 bash "$work/more-scales.sh" > "$work/run6.txt"
grep -q -- "--classifier_scale 300 .*--out_dir $work/subset/noisy3000-ancestral-scale300 " "$STUB_LOG" || fail "the added scale was not sampled"
grep -qF "$work/subset/noisy3000-ancestral-scale300/samples_300x32x32x3.npz" "$work/subset/agreement-noisy3000.json" \
  || fail "the verdict was not judged again with the added scale"
[[ -f $work/subset/agreement-noisy3000.json.stale ]] || fail "the old verdict was not kept aside"
OUT=$work/nosolvers GUIDES=noisy6000 SOLVERS="" docs/demo/guided-sampling.sh > "$work/run7.txt"
! grep -q -- "--sampler .*$work/nosolvers/\|$work/nosolvers/.*--sampler " "$STUB_LOG" || fail "SOLVERS=\"\" still sampled solver rows"
OUT=$work/nosolvers GUIDES=noisy6000 SOLVERS="unipc_bh2" SOLVER_STEPS="10" docs/demo/guided-sampling.sh > "$work/run8.txt"
[[ $(grep -c -- "--sampler .*--out_dir $work/nosolvers/\|--out_dir $work/nosolvers/[^ ]* --sampler" "$STUB_LOG") -eq 1 ]] \
  || fail "SOLVERS=unipc_bh2 SOLVER_STEPS=10 should add exactly one row"
grep -q -- "--out_dir $work/nosolvers/noisy6000-unipc_bh2-10steps-scale100 --sampler unipc --solver_order 2 --unipc_variant bh2 --steps 10\$" "$STUB_LOG" \
  || fail "the UniPC row of the subset lacks its flags"
grep -qF "$work/nosolvers/noisy6000-unipc_bh2-10steps-scale100/samples_300x32x32x3.npz" "$work/nosolvers/agreement-noisy6000.json" \
  || fail "the added solver row was not judged"
if OUT=$work/bad2 SOLVERS="euler" docs/demo/guided-sampling.sh > "$work/run9.txt" 2>&1; then fail "an unknown solver was accepted"; fi
grep -q "SOLVERS: unknown solver 'euler'" "$work/run9.txt" || fail "an unknown solver's error does not name it"
echo "guided-sampling.sh: $stages stages run once, all skipped on rerun, one deleted output redone, a subset of guides, an added scale, the fast-solver rows: OK"
