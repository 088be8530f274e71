#!/usr/bin/env bash
# The default --cmd of ESPnet's launcher (python -m espnet2.bin.launch) in
# dld.sh: runs one command on this machine with its output in LOG, like
# Kaldi's run.pl for a single job:
#   utils/launch_cmd.sh [--gpu N] [--num_threads N] [--mem X] LOG command ...
# The resource options are accepted for run.pl compatibility and ignored (the
# command picks its devices itself).  For several nodes use Kaldi's slurm.pl
# or queue.pl instead (dld.sh --cuda_cmd).  Exit status: the command's.
set -uo pipefail

while [ $# -gt 0 ] && [[ "$1" == --* ]]; do
    [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 1; }
    shift 2
done
if [ $# -lt 2 ]; then
    echo "usage: $0 [--gpu N] [--num_threads N] LOG command ..." >&2
    exit 1
fi
log=$1; shift
mkdir -p "$(dirname "${log}")"
{
    echo "# $*"
    echo "# started at $(date)"
} > "${log}"
"$@" >> "${log}" 2>&1
rc=$?
echo "# ended at $(date) with status ${rc}" >> "${log}"
exit ${rc}
