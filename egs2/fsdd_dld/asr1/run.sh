#!/usr/bin/env bash
# fsdd_dld: real speech.  Connected digits from the Free Spoken Digit Dataset
# (6 speakers; 4 train, 1 dev, 1 test speaker), character CTC, 6-block
# conformer teacher, LD and DLD students decoded at every depth.
set -euo pipefail

./dld.sh \
    --train_set train \
    --valid_set dev \
    --test_sets "test dev" \
    --feats_type raw \
    --fs 16000 \
    --token_type char \
    --teacher_config conf/train_teacher.yaml \
    --student_config conf/train_student.yaml \
    --inference_config conf/decode_ctc_greedy.yaml \
    --student_init teacher \
    --inference_nj 2 \
    "$@"
