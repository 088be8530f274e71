#!/usr/bin/env bash
# Stage 1 of fsdd_dld: connected-digit utterances (1-7 digits) made by
# concatenating one speaker's FSDD recordings with short random pauses,
# resampled to 16 kHz; split by speaker (4 train, 1 dev, 1 test).
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }

train_utts=1500
dev_utts=200
test_utts=200
dev_speakers=george
test_speakers=theo
seed=0
help_message="Usage: $0 [--train_utts N] [--dev_utts N] [--test_utts N] [--dev_speakers S] [--test_speakers S] [--seed S]"
. ./db.sh
. ./utils/parse_options.sh
. ./path.sh

if [ ! -d "${FSDD}/recordings" ]; then
    log "ERROR: FSDD recordings not found at ${FSDD}/recordings."
    log "Set FSDD in db.sh (or the environment) to the folder that contains recordings/ of the"
    log "Free Spoken Digit Dataset v1.0.10 (public GitHub repository Jakobovski/free-spoken-digit-dataset)."
    exit 1
fi
log "building connected-digit utterances from ${FSDD} (dev: ${dev_speakers}, test: ${test_speakers})"
# shellcheck disable=SC2086
python local/fsdd.py --fsdd_root "${FSDD}" --out_wav downloads/fsdd_connected --out_data data \
    --train_utts "${train_utts}" --dev_utts "${dev_utts}" --test_utts "${test_utts}" \
    --dev_speakers ${dev_speakers} --test_speakers ${test_speakers} --seed "${seed}"
log "done: data/train data/dev data/test"
