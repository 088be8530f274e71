# Sourced (without arguments) by the recipes' run.sh: takes
# "--encoder NAME" out of the caller's arguments and sets model_opts, the
# dld.sh options of that model family:
#   conformer        conf/train_{teacher,student}.yaml (the default)
#   conformer_<fe>   conf/tuning/train_{teacher,student}_<fe>.yaml: the same
#                    model with another front end, into exp/<fe>/ (the small
#                    recipes: conformer_conv1d, the DLD authors' Conv1d front
#                    end; librispeech_dld: conformer_conv2d, ESPnet's conv2d;
#                    docs/frontend.md)
#   wavlm            conf/tuning/train_*_wavlm_tiny.yaml: a tiny randomly
#                    initialised WavLM on the raw waveform, into exp/wavlm/; it
#                    exercises the WavLM path and is not meant to be accurate; a
#                    recipe with real WavLM configs sets
#                    wavlm_teacher_config/wavlm_student_config first
encoder=conformer
: "${wavlm_teacher_config:=conf/tuning/train_teacher_wavlm_tiny.yaml}"
: "${wavlm_student_config:=conf/tuning/train_student_wavlm_tiny.yaml}"
_choices() {
    local c=(conformer) f
    for f in conf/tuning/train_teacher_*.yaml; do
        f=${f#conf/tuning/train_teacher_}; f=${f%.yaml}
        case ${f} in wavlm*|*hybrid*) ;; *) [ -e "conf/tuning/train_student_${f}.yaml" ] && c+=("conformer_${f}");; esac
    done
    echo "${c[*]} wavlm" | sed 's/ /, /g'
}
_rest=()
while [ $# -gt 0 ]; do
    case $1 in
        --encoder)
            [ $# -ge 2 ] || { echo "$0: --encoder needs a value ($(_choices))" >&2; exit 1; }
            encoder=$2; shift 2;;
        *) _rest+=("$1"); shift;;
    esac
done
set -- ${_rest[@]+"${_rest[@]}"}
case ${encoder} in
    conformer) model_opts=(--teacher_config conf/train_teacher.yaml --student_config conf/train_student.yaml);;
    conformer_*)
        _fe=${encoder#conformer_}
        if [ ! -e "conf/tuning/train_teacher_${_fe}.yaml" ] || [ ! -e "conf/tuning/train_student_${_fe}.yaml" ]; then
            echo "$0: --encoder must be one of $(_choices), got '${encoder}'" >&2; exit 1
        fi
        model_opts=(--teacher_config "conf/tuning/train_teacher_${_fe}.yaml"
                    --student_config "conf/tuning/train_student_${_fe}.yaml" --expdir "exp/${_fe}");;
    wavlm) model_opts=(--teacher_config "${wavlm_teacher_config}" --student_config "${wavlm_student_config}"
                       --feats_normalize none --expdir exp/wavlm);;
    *) echo "$0: --encoder must be one of $(_choices), got '${encoder}'" >&2; exit 1;;
esac
