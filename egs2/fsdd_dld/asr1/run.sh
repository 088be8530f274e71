#!/usr/bin/env bash
# fsdd_dld: real speech.  Connected digits from the Free Spoken Digit Dataset
# (6 speakers; 4 train, 1 dev, 1 test speaker), character CTC, 6-block
# conformer teacher, LD and DLD students decoded at every depth.
#
# --encoder wavlm trains a tiny randomly initialised WavLM teacher and
# students instead (see utils/select_encoder.sh); not meant to be accurate.
set -euo pipefail

. ./utils/select_encoder.sh  # --encoder conformer|wavlm -> model_opts

./dld.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "test dev" \
    --feats_type raw \
    --fs 16000 \
    --token_type char \
    "${model_opts[@]}" \
    --inference_config conf/decode_ctc_greedy.yaml \
    --student_init teacher \
    --inference_nj 2 \
    "$@"
