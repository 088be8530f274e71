# Sourced (without arguments) by the small recipes' run.sh: takes
# "--encoder conformer|wavlm" out of the caller's arguments and sets
# model_opts, the dld.sh options of that model family:
#   conformer  conf/train_{teacher,student}.yaml (the default)
#   wavlm      conf/tuning/train_*_wavlm_tiny.yaml: a tiny randomly initialised
#              WavLM on the raw waveform, into exp/wavlm/; it exercises the
#              WavLM path and is not meant to be accurate; a recipe with real
#              WavLM configs sets wavlm_teacher_config/wavlm_student_config first
encoder=conformer
: "${wavlm_teacher_config:=conf/tuning/train_teacher_wavlm_tiny.yaml}"
: "${wavlm_student_config:=conf/tuning/train_student_wavlm_tiny.yaml}"
_rest=()
while [ $# -gt 0 ]; do
    case $1 in
        --encoder)
            [ $# -ge 2 ] || { echo "$0: --encoder needs a value (conformer or wavlm)" >&2; exit 1; }
            encoder=$2; shift 2;;
        *) _rest+=("$1"); shift;;
    esac
done
set -- ${_rest[@]+"${_rest[@]}"}
case ${encoder} in
    conformer) model_opts=(--teacher_config conf/train_teacher.yaml --student_config conf/train_student.yaml);;
    wavlm) model_opts=(--teacher_config "${wavlm_teacher_config}" --student_config "${wavlm_student_config}"
                       --feats_normalize none --expdir exp/wavlm);;
    *) echo "$0: --encoder must be conformer or wavlm, got '${encoder}'" >&2; exit 1;;
esac
