#!/usr/bin/env bash
# One seed of the AN4 study on a small machine: data and teacher once
# (stages 1-11), then the LD and DLD students of --seed side by side (two
# training processes, one thread each), then decoding at every depth, the
# report and the packed DLD model (stages 13-15).  The outputs are where
# bench/accuracy_depth.py looks for them (exp/asr_{ld,dld}<tag>_seed<S>,
# exp/report<tag>_seed<S>/results.json), so it aggregates them afterwards
# without training anything again:
#   local/run_seed.sh --seed 0          # then --seed 1, --seed 2
#   python ../../../bench/accuracy_depth.py --recipe . --seeds 0 1 2 --json ...
# Options after --seed/--tag go to every ./run.sh call (e.g. --student_args is
# not allowed here: the seed sets it; --kd_weight, --teacher_posteriors are).
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }

seed=0
tag=
help_message="Usage: $0 [--seed S] [--tag _ablation] [run.sh options...]"
while [ $# -gt 0 ]; do
    case $1 in
        --seed) seed=$2; shift 2;;
        --tag) tag=$2; shift 2;;
        --help|-h) echo "${help_message}"; exit 0;;
        *) break;;
    esac
done
[[ "${seed}" =~ ^[0-9]+$ ]] || { log "ERROR: --seed takes a non-negative integer, got '${seed}'"; exit 1; }
for a in "$@"; do
    [ "$a" != --student_args ] || { log "ERROR: --student_args is set by this script (--seed ${seed})"; exit 1; }
done
suffix=${tag}_seed${seed}
export OMP_NUM_THREADS=1

log "data and teacher (stages 1-11)"
./run.sh --stage 1 --stop_stage 11 "$@"

log "LD and DLD students of seed ${seed} side by side (stage 12); logs: exp/asr_{ld,dld}${suffix}/train.log"
pids=()
for s in ld dld; do
    ./run.sh --stage 12 --stop_stage 12 --students "$s" --exp_suffix "${suffix}" \
        --student_args "--seed ${seed}" "$@" > "exp/stage12_${s}${suffix}.log" 2>&1 &
    pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ "${status}" -eq 0 ] || { log "ERROR: a student failed: see exp/stage12_{ld,dld}${suffix}.log"; exit 1; }

log "decoding at every depth, report, packing (stages 13-15)"
./run.sh --stage 13 --stop_stage 15 --exp_suffix "${suffix}" --student_args "--seed ${seed}" "$@"
log "done: exp/report${suffix}/RESULTS.md"
