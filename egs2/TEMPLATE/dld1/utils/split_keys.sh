#!/usr/bin/env bash
# Split a Kaldi-style key file (first column: utterance id) into N parts
# <out_dir>/keys.1.scp .. keys.N.scp, contiguous and in order.
#   utils/split_keys.sh data/test/wav.scp 4 exp/decode/logdir
set -euo pipefail
if [ $# -ne 3 ]; then echo "usage: $0 KEY_FILE N OUT_DIR" >&2; exit 1; fi
key_file=$1; n=$2; out_dir=$3
[ -f "${key_file}" ] || { echo "$0: ${key_file} does not exist" >&2; exit 1; }
total=$(wc -l < "${key_file}")
[ "${total}" -gt 0 ] || { echo "$0: ${key_file} is empty" >&2; exit 1; }
[ "${n}" -le "${total}" ] || n=${total}
mkdir -p "${out_dir}"
for ((j = 1; j <= n; j++)); do
    start=$(( (j - 1) * total / n + 1 )); end=$(( j * total / n ))
    sed -n "${start},${end}p" "${key_file}" > "${out_dir}/keys.${j}.scp.tmp"
    mv "${out_dir}/keys.${j}.scp.tmp" "${out_dir}/keys.${j}.scp"
done
echo "${n}"
