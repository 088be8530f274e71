#!/usr/bin/env bash
# Stage 1 of mini_dld: generate the embedded synthetic corpus (eSpeak NG
# voices x rate x pitch as speakers, sentences from a small grammar) and write
# Kaldi-style data/train, data/dev, data/test.  Test voices never occur in
# training.  Deterministic and restartable: existing audio is reused.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }

train_utts=1200
dev_utts=150
test_utts=200
seed=0
help_message="Usage: $0 [--train_utts N] [--dev_utts N] [--test_utts N] [--seed S]"
. ./db.sh
. ./utils/parse_options.sh
. ./path.sh

log "generating the synthetic corpus into ${MINI_DLD} (train ${train_utts}, dev ${dev_utts}, test ${test_utts} utterances)"
python local/synth_corpus.py --out_wav "${MINI_DLD}/wav" --out_data data \
    --train_utts "${train_utts}" --dev_utts "${dev_utts}" --test_utts "${test_utts}" --seed "${seed}"
log "done: data/train data/dev data/test"
