#!/usr/bin/env bash
# Run a command as N parallel jobs on this machine, like Kaldi's run.pl:
#   utils/run_jobs.sh JOB=1:4 exp/log/decode.JOB.log cmd --key_file keys.JOB.scp ...
# Every "JOB" in the log path and the command is replaced by the job number.
# Each job's output goes to its log; on failure the failed jobs' logs are named
# and the last lines of the first one are shown.  Exit status 1 if any failed.
set -uo pipefail

if [ $# -lt 3 ] || [[ ! "$1" =~ ^JOB=([0-9]+):([0-9]+)$ ]]; then
    echo "usage: $0 JOB=1:N LOG_WITH_JOB command ..." >&2
    exit 1
fi
first=${BASH_REMATCH[1]}; last=${BASH_REMATCH[2]}
log_pattern=$2; shift 2
mkdir -p "$(dirname "${log_pattern}")"

pids=()
for ((j = first; j <= last; j++)); do
    log=${log_pattern//JOB/$j}
    args=()
    for a in "$@"; do args+=("${a//JOB/$j}"); done
    (
        echo "# ${args[*]}"
        echo "# started at $(date)"
        "${args[@]}"
        rc=$?
        echo "# ended at $(date) with status ${rc}"
        exit ${rc}
    ) > "${log}" 2>&1 &
    pids+=($!)
done

failed=()
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then failed+=($((first + i))); fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "$0: ${#failed[@]} of $((last - first + 1)) jobs failed: job(s) ${failed[*]}; logs: ${log_pattern//JOB/${failed[0]}} ..." >&2
    tail -n 20 "${log_pattern//JOB/${failed[0]}}" >&2
    exit 1
fi
exit 0
