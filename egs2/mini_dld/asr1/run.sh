#!/usr/bin/env bash
# mini_dld: the embedded default recipe.  Synthetic speech generated on this
# machine (no download), a 6-block conformer teacher, LD and DLD students,
# decoding at every depth, a report and a model-zoo package; about 20 minutes
# on 2 CPU cores.  Any dld.sh option can be added, e.g.
#   ./run.sh --stage 10 --stop_stage 13
#
# --encoder wavlm trains a tiny randomly initialised WavLM teacher and
# students instead (see utils/select_encoder.sh); not meant to be accurate.
set -euo pipefail

. ./utils/select_encoder.sh  # --encoder conformer|wavlm -> model_opts

./dld.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "test" \
    --feats_type raw \
    --fs 16000 \
    --token_type char \
    "${model_opts[@]}" \
    --inference_config conf/decode_ctc_greedy.yaml \
    --student_init teacher \
    --inference_nj 2 \
    "$@"
