#!/usr/bin/env bash
# mini_dld: the embedded default recipe.  Synthetic speech generated on this
# machine (no download), a 6-block conformer teacher, LD and DLD students,
# decoding at every depth, a report and a model-zoo package; about 20 minutes
# on 2 CPU cores.  Any dld.sh option can be added, e.g.
#   ./run.sh --stage 10 --stop_stage 13
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
    --test_sets "test" \
    --feats_type raw \
    --fs 16000 \
    --token_type char \
    "${model_opts[@]}" \
    --inference_config conf/decode_ctc_greedy.yaml \
    --student_init teacher \
    --inference_nj 2 \
    ${args[@]+"${args[@]}"}
