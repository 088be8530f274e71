#!/usr/bin/env bash
# librispeech_dld: LibriSpeech 100 h (or 960 h with --train_set train_960),
# at the DLD paper's scale: 12-block conformer, BPE 256, CTC only.
# The hybrid CTC/attention variant:
#   ./run.sh --teacher_config conf/train_teacher_hybrid.yaml \
#            --student_config conf/train_student_hybrid.yaml \
#            --inference_config conf/decode_hybrid_beam.yaml --exp_suffix _hybrid
set -euo pipefail

train_set=train_clean_100
data_train=train-clean-100
if [[ " $* " == *" train_960 "* ]]; then train_set=train_960; data_train=train_960; fi

./dld.sh \
    --train_set "${train_set}" \
    --valid_set dev \
    --test_sets "test_clean test_other dev_clean dev_other" \
    --local_data_opts "--train_set ${data_train}" \
    --feats_type raw \
    --fs 16000 \
    --speed_perturb_factors "0.9 1.0 1.1" \
    --token_type bpe \
    --nbpe 256 \
    --max_wav_duration 30 \
    --ngpu 1 \
    --nj 16 \
    --inference_nj 16 \
    --teacher_config conf/train_teacher.yaml \
    --student_config conf/train_student.yaml \
    --inference_config conf/decode_ctc_greedy.yaml \
    "$@"
