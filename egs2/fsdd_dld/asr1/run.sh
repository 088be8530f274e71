#!/usr/bin/env bash
# fsdd_dld: real speech.  Connected digits from the Free Spoken Digit Dataset
# (6 speakers; 4 train, 1 dev, 1 test speaker), character CTC, 6-block
# conformer teacher, LD and DLD students decoded at every depth.
#
# --encoder wavlm trains a tiny randomly initialised WavLM teacher and
# students instead (conf/tuning/train_*_wavlm_tiny.yaml, raw waveform in, exp/wavlm/);
# it exercises the WavLM path and is not meant to be accurate.
set -euo pipefail

encoder=conformer  # conformer | wavlm
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --encoder)
            [ $# -ge 2 ] || { echo "$0: --encoder needs a value (conformer or wavlm)" >&2; exit 1; }
            encoder=$2; shift 2;;
        *) args+=("$1"); shift;;
    esac
done
case ${encoder} in
    conformer) model_opts=(--teacher_config conf/train_teacher.yaml --student_config conf/train_student.yaml);;
    wavlm) model_opts=(--teacher_config conf/tuning/train_teacher_wavlm_tiny.yaml
                       --student_config conf/tuning/train_student_wavlm_tiny.yaml
                       --feats_normalize none --expdir exp/wavlm);;
    *) echo "$0: --encoder must be conformer or wavlm, got '${encoder}'" >&2; exit 1;;
esac

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
    ${args[@]+"${args[@]}"}
