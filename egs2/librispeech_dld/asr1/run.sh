#!/usr/bin/env bash
# librispeech_dld: LibriSpeech 100 h (or 960 h with --train_set train_960),
# at the DLD paper's scale: 12-block conformer, BPE 256, CTC only.
# The hybrid CTC/attention variant:
#   ./run.sh --teacher_config conf/train_teacher_hybrid.yaml \
#            --student_config conf/train_student_hybrid.yaml \
#            --inference_config conf/decode_hybrid_beam.yaml --exp_suffix _hybrid
# WavLM Base+ (the paper's second model family; docs/wavlm.md), from a local
# pretrained checkpoint (WAVLM_CHECKPOINT in db.sh, or --wavlm_checkpoint):
#   ./run.sh --encoder wavlm --wavlm_checkpoint /data/WavLM-Base+.pt
# It trains into exp/wavlm/ with conf/train_{teacher,student}_wavlm.yaml.
set -euo pipefail

. ./db.sh
wavlm_checkpoint=${WAVLM_CHECKPOINT:-}    # --encoder wavlm only
teacher_args="" student_args=""
args=()
while [ $# -gt 0 ]; do
    case $1 in
        --wavlm_checkpoint|--teacher_args|--student_args)
            [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 1; }
            declare "${1#--}=$2"; shift 2;;
        *) args+=("$1"); shift;;
    esac
done
set -- ${args[@]+"${args[@]}"}
wavlm_teacher_config=conf/train_teacher_wavlm.yaml wavlm_student_config=conf/train_student_wavlm.yaml
. ./utils/select_encoder.sh  # --encoder conformer|conformer_conv2d|wavlm -> model_opts
args=("$@")
if [ "${encoder}" = wavlm ]; then
    if [ ! -e "${wavlm_checkpoint}" ]; then
        echo "$0: --encoder wavlm needs a local pretrained WavLM checkpoint; '${wavlm_checkpoint}' does not exist." >&2
        echo "Set WAVLM_CHECKPOINT in db.sh or pass --wavlm_checkpoint (WavLM-Base+.pt or a" >&2
        echo "microsoft/wavlm-base-plus folder); docs/wavlm.md says where to get one." >&2
        exit 1
    fi
    wavlm_checkpoint=$(cd "$(dirname "${wavlm_checkpoint}")" && pwd)/$(basename "${wavlm_checkpoint}")
    teacher_args="--encoder_conf pretrained_path=${wavlm_checkpoint} ${teacher_args}"
    student_args="--encoder_conf pretrained_path=${wavlm_checkpoint} ${student_args}"
fi

train_set=train_clean_100
data_train=train-clean-100
if [[ " ${args[*]+${args[*]}} " == *" train_960 "* ]]; then train_set=train_960; data_train=train_960; fi

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
    --num_workers 4 \
    --nj 16 \
    --inference_nj 16 \
    "${model_opts[@]}" \
    --teacher_args "${teacher_args}" \
    --student_args "${student_args}" \
    --inference_config conf/decode_ctc_greedy.yaml \
    ${args[@]+"${args[@]}"}
