#!/usr/bin/env bash
# an4_dld: real multi-speaker speech at the DLD paper's depth.  CMU's AN4
# (948 training utterances from 74 speakers, 130 test utterances from 10
# others), ESPnet's split (train_nodev / train_dev / test) and text, BPE 30
# as ESPnet's egs2/an4, a 12-block CTC conformer teacher, LD and DLD students
# decoded at every depth 1..12 on test and train_dev.  See docs/an4.md for the
# cost on 2 CPU cores and for the d=256 GPU variant:
#   ./run.sh --encoder conformer_d256 --ngpu 1     # into exp/d256
# and the DLD authors' Conv1d front end (docs/frontend.md):
#   ./run.sh --encoder conformer_conv1d            # into exp/conv1d
# Any dld.sh option can be added, e.g. ./run.sh --stage 13 --stop_stage 14
set -euo pipefail

. ./utils/select_encoder.sh  # --encoder conformer|conformer_d256|conformer_conv1d -> model_opts

./dld.sh \
    --train_set train_nodev \
    --valid_set train_dev \
    --test_sets "test train_dev" \
    --feats_type raw \
    --fs 16000 \
    --token_type bpe \
    --nbpe 30 \
    --bpemode unigram \
    "${model_opts[@]}" \
    --inference_config conf/decode_ctc_greedy.yaml \
    --student_init teacher \
    --inference_nj 2 \
    "$@"
