#!/usr/bin/env bash
# DLD recipe pipeline, shared by every egs2/*/asr1 recipe (like ESPnet's
# egs2/TEMPLATE/asr1/asr.sh): data -> features -> tokens -> stats -> teacher
# -> LD and DLD students -> depth-swept decoding and scoring -> report ->
# model-zoo package.  Stages are numbered as in asr.sh so that
# "./run.sh --stage 10 --stop_stage 13" means what ESPnet users expect.
#
# Every stage can be rerun: finished work is skipped (a ".done" marker is
# written last), training resumes from its checkpoint (--resume true), and
# files are written under a temporary name and renamed.
set -euo pipefail

log() {
    local fname=${BASH_SOURCE[1]##*/}
    echo -e "$(date '+%Y-%m-%dT%H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*"
}
die() { log "ERROR: $*"; exit 1; }
require() {  # require PATH "what to do if it is missing"
    [ -e "$1" ] || die "$1 is missing: $2"
}
SECONDS=0

# General
stage=1                 # first stage to run
stop_stage=10000        # last stage to run
skip_stages=            # stages to skip, e.g. "2 16"
nj=2                    # parallel jobs for data preparation and stats
inference_nj=2          # parallel jobs for decoding
ngpu=0                  # GPUs for training (ESPnet's --ngpu; per node); decoding runs on the CPU unless gpu_inference
num_nodes=1             # nodes for training; > 1 (or --ngpu > 1, or --dist_hosts) trains through ESPnet's launcher
dist_hosts=             # train on these hosts via ssh (espnet2.bin.launch --host), e.g. "host1,host2" or "host1:0:1,host2:0"
cuda_cmd=utils/launch_cmd.sh  # the launcher's --cmd: this machine; Kaldi's slurm.pl (srun) or queue.pl (mpirun) for several nodes
gpu_inference=false
decode_threads=1        # torch threads per decoding job
num_workers=0           # data-loader workers
dumpdir=dump
expdir=exp
exp_suffix=             # appended to the students' exp dirs and the report dir (seeds, ablations)
teacher_exp=            # teacher exp dir; default ${expdir}/asr_teacher
python=python3

# Data
local_data_opts=        # passed to local/data.sh
train_set=
valid_set=
test_sets=
speed_perturb_factors=  # e.g. "0.9 1.0 1.1"; empty: no speed perturbation
feats_type=raw          # raw | fbank
fs=16000
n_mels=80               # fbank only
min_wav_duration=0.1
max_wav_duration=20
drop_bad_utts=false     # true: drop unreadable audio and list it; false: stop with the list

# Tokens
token_type=bpe          # bpe | char
nbpe=256
bpemode=unigram
bpe_input_sentence_size=100000000
bpe_nlsyms=             # symbols kept as one BPE piece each, comma-separated (ESPnet's), e.g. "[unk]"

# Models
teacher_config=         # static teacher (e.g. conformer, model: espnet)
student_config=         # dynamic student (dld_* encoder, model: dld)
teacher_args=           # extra asr_train options for the teacher
student_args=           # extra asr_train options for both students
students="ld dld"       # which students to train: ld (kd_weight 0, no teacher) and/or dld
kd_weight=1.0           # DLD's KL weight (model_conf.kd_weight)
kd_temperature=         # DLD's KL temperature (model_conf.kd_temperature); empty: the student config's
teacher_posteriors=online  # online: run the teacher every step | cached: dump its top-k posteriors once, train from them
teacher_topk=8          # tokens per frame kept in the teacher-posterior cache
student_init=scratch    # scratch | teacher (--init_param from the teacher's weights)
feats_normalize=global_mvn

# Decoding
inference_config=
inference_args=
inference_asr_model=valid.loss_ctc.ave.pth  # every config selects on the full-depth valid CTC loss
depths=                 # depths to decode the students at; empty: 1..N
report_dir=
dev_table_set=          # dev data of the per-depth table packed with the model (stage 13 decodes it at every
                        # depth, stage 15 packs WER/RTF per depth); empty: the valid set.  Never a test set.

# Depth profile: which k blocks run at depth k, measured on the valid set (docs/depth_profile.md)
depth_profile=false     # true: after training each student, measure ${expdir}/asr_<s>/depth_profile.yaml
depth_profile_criterion=ctc_loss  # ctc_loss | wer

# Packing / upload
packed_model=
skip_upload_hf=true
hf_repo=

help_message=$(cat << EOF
Usage: $0 --train_set <name> --valid_set <name> --test_sets "<names>" \\
          --teacher_config <yaml> --student_config <yaml> --inference_config <yaml> [options]

Stages:
  1  local/data.sh: Kaldi-style data dirs under data/
  2  speed perturbation of the training set (if --speed_perturb_factors)
  3  audio formatting (feats_type raw) or fbank extraction (feats_type fbank) into ${dumpdir}/;
     bad audio stops the run with a list, or is dropped (--drop_bad_utts true) and listed in ${expdir}/bad_utts/;
     with data/<set>/segments the segments are cut from their recordings, and the ones that do not fit
     their recording are dropped and listed there too
  4  filtering: too short/long utterances, empty transcripts
  5  token list (sentencepiece BPE or characters)
  10 collect feature statistics and shapes; transcripts too long for CTC leave the shape files
  11 teacher training
  12 student training: LD baseline and/or DLD student (--students); with --teacher_posteriors cached the
     teacher's top-k CTC posteriors are first dumped to ${dumpdir}/teacher_posteriors/ (once); with
     --depth_profile true, each student's per-depth blocks measured on the valid set (depth_profile.yaml)
  13 decoding at every depth in --depths, and scoring (WER/CER); the DLD student also on --dev_table_set
  14 report: RESULTS.md and a WER/RTF-against-depth plot
  15 pack the DLD student for the ESPnet model zoo, with its per-depth dev table (depth_table.yaml: WER and
     RTF per depth on --dev_table_set, for Speech2Text(max_wer_increase=...))
  16 upload to the Hugging Face hub (skipped unless --skip_upload_hf false)

Options (default in brackets):
  --stage (${stage}) --stop_stage (${stop_stage}) --skip_stages (${skip_stages})
  --nj (${nj}) --inference_nj (${inference_nj}) --decode_threads (${decode_threads})
  --ngpu (${ngpu}) --gpu_inference (${gpu_inference}) --num_workers (${num_workers})
  --num_nodes (${num_nodes}) --dist_hosts (${dist_hosts}) --cuda_cmd (${cuda_cmd})
  --dumpdir (${dumpdir}) --expdir (${expdir}) --exp_suffix (${exp_suffix}) --teacher_exp (${expdir}/asr_teacher)
  --local_data_opts (${local_data_opts})
  --speed_perturb_factors (${speed_perturb_factors}) --feats_type raw|fbank (${feats_type}) --fs (${fs})
  --min_wav_duration (${min_wav_duration}) --max_wav_duration (${max_wav_duration}) --drop_bad_utts (${drop_bad_utts})
  --token_type bpe|char (${token_type}) --nbpe (${nbpe}) --bpemode (${bpemode}) --bpe_nlsyms (${bpe_nlsyms})
  --teacher_config --student_config --teacher_args --student_args
  --students (${students}) --kd_weight (${kd_weight}) --kd_temperature (student config)
  --teacher_posteriors online|cached (${teacher_posteriors}) --teacher_topk (${teacher_topk})
  --student_init scratch|teacher (${student_init})
  --inference_config --inference_args --inference_asr_model (${inference_asr_model})
  --depths "1 2 ..." (all) --report_dir (${expdir}/report${exp_suffix}) --dev_table_set (the valid set)
  --depth_profile true|false (${depth_profile}) --depth_profile_criterion ctc_loss|wer (${depth_profile_criterion})
  --skip_upload_hf (${skip_upload_hf}) --hf_repo (${hf_repo})
EOF
)

log "$0 $*"
. ./utils/parse_options.sh

[ $# -eq 0 ] || die "unexpected positional arguments: $*"
. ./path.sh

# ---- checks of the options, before any work ------------------------------
[ -n "${train_set}" ] || die "--train_set is required"
[ -n "${valid_set}" ] || die "--valid_set is required"
[ -n "${test_sets}" ] || die "--test_sets is required"
case ${feats_type} in raw|fbank) ;; *) die "--feats_type must be raw or fbank, got '${feats_type}'";; esac
case ${token_type} in bpe|char) ;; *) die "--token_type must be bpe or char, got '${token_type}'";; esac
case ${student_init} in scratch|teacher) ;; *) die "--student_init must be scratch or teacher, got '${student_init}'";; esac
case ${teacher_posteriors} in online|cached) ;; *) die "--teacher_posteriors must be online or cached, got '${teacher_posteriors}'";; esac
[[ "${teacher_topk}" =~ ^[1-9][0-9]*$ ]] || die "--teacher_topk takes a positive integer, got '${teacher_topk}'"
[ -z "${kd_temperature}" ] || [[ "${kd_temperature}" =~ ^[0-9]*\.?[0-9]+$ ]] \
    || die "--kd_temperature takes a positive number, got '${kd_temperature}'"
for s in ${students}; do
    case $s in ld|dld) ;; *) die "--students takes ld and/or dld, got '$s'";; esac
done
for c in teacher_config student_config inference_config; do
    [ -z "${!c}" ] || [ -f "${!c}" ] || die "--${c} ${!c} does not exist"
done
for d in ${depths}; do
    [[ "$d" =~ ^[1-9][0-9]*$ ]] || die "--depths takes positive integers, got '$d'"
done
[[ "${num_nodes}" =~ ^[1-9][0-9]*$ ]] || die "--num_nodes takes a positive integer, got '${num_nodes}'"
[ "${num_nodes}" -eq 1 ] || [ "${cuda_cmd}" != utils/launch_cmd.sh ] || die "--num_nodes ${num_nodes} needs a \
--cuda_cmd that reaches other nodes (Kaldi's slurm.pl or queue.pl), or --dist_hosts (docs/distributed.md)"
case ${depth_profile} in true|false) ;; *) die "--depth_profile must be true or false, got '${depth_profile}'";; esac
case ${depth_profile_criterion} in ctc_loss|wer) ;;
    *) die "--depth_profile_criterion must be ctc_loss or wer, got '${depth_profile_criterion}'";; esac
yaml_get() {  # yaml_get FILE KEY [--default V] [--type T]: one value of a YAML/JSON file
    ${python} pyscripts/yaml_get.py "$@"
}

num_blocks_of() {  # num_blocks_of CONFIG_YAML
    yaml_get "$1" encoder_conf.num_blocks
}

if [ -n "${depths}" ] && [ -n "${student_config}" ]; then
    _n=$(num_blocks_of "${student_config}") || die "cannot read encoder_conf.num_blocks from --student_config ${student_config}"
    for d in ${depths}; do
        [ "$d" -le "${_n}" ] || die "--depths ${d} is out of range: --student_config ${student_config} has num_blocks ${_n}, valid depths are 1..${_n}"
    done
fi

[ -n "${report_dir}" ] || report_dir=${expdir}/report${exp_suffix}
[ -n "${dev_table_set}" ] || dev_table_set=${valid_set}
if [ "${dev_table_set}" != "${valid_set}" ]; then
    for t in ${test_sets}; do
        [ "$t" != "${dev_table_set}" ] || die "--dev_table_set ${dev_table_set} is one of --test_sets: the packed \
per-depth table chooses the user's depth, so it must not be measured on test data; use the valid set \
(${valid_set}, the default) or a held-out dev set"
    done
fi
token_tag=${token_type}; [ "${token_type}" = bpe ] && token_tag=bpe_${bpemode}${nbpe}
token_dir=data/token_list/${token_tag}
token_list=${token_dir}/tokens.txt
bpemodel=${token_dir}/bpe.model
stats_dir=${expdir}/asr_stats_${feats_type}_${token_tag}
[ -n "${teacher_exp}" ] || teacher_exp=${expdir}/asr_teacher
inference_tag=$(basename "${inference_config:-decode_default}" .yaml)
[ -n "${packed_model}" ] || packed_model=${expdir}/asr_dld${exp_suffix}/asr_model_dld.zip
if [ -n "${speed_perturb_factors}" ]; then train_sp=${train_set}_sp; else train_sp=${train_set}; fi
data_feats=${dumpdir}/${feats_type}

if [ "${feats_type}" = raw ]; then
    _scp=wav.scp; _type=sound; input_rate=${fs}
else
    _scp=feats.scp; _type=kaldi_ark; input_rate=100
fi
token_opts="--token_type ${token_type} --token_list ${token_list} --non_linguistic_symbols none --cleaner none --g2p none"
[ "${token_type}" = bpe ] && token_opts+=" --bpemodel ${bpemodel}"

run_stage() {  # run_stage N: is stage N selected?
    local n=$1
    [ "${n}" -ge "${stage}" ] && [ "${n}" -le "${stop_stage}" ] || return 1
    for s in ${skip_stages}; do [ "$s" = "$n" ] && return 1; done
    return 0
}

feature_opts() {  # options telling ESPnet what the input is
    if [ "${feats_type}" = raw ]; then
        echo "--frontend_conf fs=${fs}"
    else
        echo "--input_size $(cat "${data_feats}/${train_sp}/feats_dim")"
    fi
}

show_progress() {  # keep the full log, show ESPnet's epoch summaries
    tee -a "$1" | { grep --line-buffered -E "epoch results|Error|error:" || true; }
}

# ---------------------------------------------------------------------------
if run_stage 1; then
    log "Stage 1: data preparation: local/data.sh ${local_data_opts}"
    # shellcheck disable=SC2086
    local/data.sh ${local_data_opts}
    for d in ${train_set} ${valid_set} ${test_sets}; do
        ${python} -m espnet_dld.data.kaldi_dir validate "data/${d}" \
            || die "data/${d} is not a valid data dir (see above)"
    done
fi

if run_stage 2 && [ -n "${speed_perturb_factors}" ]; then
    log "Stage 2: speed perturbation of data/${train_set} by ${speed_perturb_factors}"
    if [ -f "data/${train_sp}/.done" ]; then
        log "data/${train_sp} exists, skipping"
    else
        # shellcheck disable=SC2086
        ${python} pyscripts/speed_perturb.py --in_dir "data/${train_set}" --out_dir "data/${train_sp}" \
            --wav_dir "${dumpdir}/speed_perturb/${train_set}" --factors ${speed_perturb_factors} --nj "${nj}"
        touch "data/${train_sp}/.done"
    fi
fi

if run_stage 3; then
    log "Stage 3: ${feats_type} features into ${data_feats}"
    for d in ${train_sp} ${valid_set} ${test_sets}; do
        require "data/${d}/wav.scp" "run stage 1 (and 2 with speed perturbation) first"
        if [ "$d" = "${train_sp}" ] || [ "$d" = "${valid_set}" ]; then _out=org/${d}; else _out=${d}; fi
        if [ -f "${dumpdir}/raw/${_out}/.done" ]; then
            log "${dumpdir}/raw/${_out} exists, skipping"
        else
            ${python} pyscripts/format_audio.py --in_dir "data/${d}" --out_dir "${dumpdir}/raw/${_out}" \
                --fs "${fs}" --drop_bad_utts "${drop_bad_utts}" \
                || die "bad audio in data/${d} (listed above and in ${dumpdir}/raw/${_out}/bad_utts.txt); fix it, or rerun with --drop_bad_utts true"
            _bad=${dumpdir}/raw/${_out}/bad_utts.txt
            if [ -s "${_bad}" ]; then
                mkdir -p "${expdir}/bad_utts"
                cp "${_bad}" "${expdir}/bad_utts/${d}.txt.tmp" && mv "${expdir}/bad_utts/${d}.txt.tmp" "${expdir}/bad_utts/${d}.txt"
                log "dropped $(wc -l < "${_bad}") bad utterance(s) of ${d}: listed in ${expdir}/bad_utts/${d}.txt"
            else
                rm -f "${expdir}/bad_utts/${d}.txt"
            fi
            touch "${dumpdir}/raw/${_out}/.done"
        fi
        if [ "${feats_type}" = fbank ]; then
            if [ -f "${data_feats}/${_out}/.done" ]; then
                log "${data_feats}/${_out} exists, skipping"
            else
                ${python} pyscripts/extract_fbank.py --in_dir "${dumpdir}/raw/${_out}" \
                    --out_dir "${data_feats}/${_out}" --n_mels "${n_mels}" --fs "${fs}" --nj "${nj}"
                touch "${data_feats}/${_out}/.done"
            fi
        fi
    done
fi

if run_stage 4; then
    log "Stage 4: filtering ${train_sp} and ${valid_set}: ${min_wav_duration}-${max_wav_duration} s, non-empty text"
    for d in ${train_sp} ${valid_set}; do
        require "${data_feats}/org/${d}/.done" "run stage 3 first"
        ${python} pyscripts/filter_data.py --in_dir "${data_feats}/org/${d}" --out_dir "${data_feats}/${d}" \
            --min_seconds "${min_wav_duration}" --max_seconds "${max_wav_duration}" --fs "${fs}"
    done
fi

if run_stage 5; then
    log "Stage 5: ${token_type} token list from ${data_feats}/${train_sp}/text into ${token_dir}"
    require "${data_feats}/${train_sp}/text" "run stages 3-4 first"
    if [ -f "${token_dir}/.done" ]; then
        log "${token_list} exists, skipping"
    else
        ${python} pyscripts/make_token_list.py --token_type "${token_type}" --nbpe "${nbpe}" \
            --bpemode "${bpemode}" --bpe_input_sentence_size "${bpe_input_sentence_size}" --bpe_nlsyms "${bpe_nlsyms}" \
            --text "${data_feats}/${train_sp}/text" --out_dir "${token_dir}"
        touch "${token_dir}/.done"
    fi
fi

data_opts() {  # train/valid data options for asr_train
    echo "--train_data_path_and_name_and_type ${data_feats}/${train_sp}/${_scp},speech,${_type}" \
         "--train_data_path_and_name_and_type ${data_feats}/${train_sp}/text,text,text" \
         "--valid_data_path_and_name_and_type ${data_feats}/${valid_set}/${_scp},speech,${_type}" \
         "--valid_data_path_and_name_and_type ${data_feats}/${valid_set}/text,text,text"
}

if run_stage 10; then
    log "Stage 10: collecting feature statistics and shapes into ${stats_dir}"
    [ -n "${teacher_config}" ] || die "--teacher_config is required for stage 10"
    require "${token_list}" "run stage 5 first"
    if [ -f "${stats_dir}/.done" ]; then
        log "${stats_dir} exists, skipping"
    else
        _logdir=${stats_dir}/logdir
        rm -rf "${_logdir}"
        _vnj=$(utils/split_keys.sh "${data_feats}/${valid_set}/${_scp}" "${nj}" "${_logdir}/valid")
        _nj=$(utils/split_keys.sh "${data_feats}/${train_sp}/${_scp}" "${_vnj}" "${_logdir}/train")
        [ "${_nj}" = "${_vnj}" ] || _vnj=$(utils/split_keys.sh "${data_feats}/${valid_set}/${_scp}" "${_nj}" "${_logdir}/valid")
        log "collect_stats with ${_nj} jobs; logs: ${_logdir}/stats.*.log"
        # shellcheck disable=SC2046,SC2086
        utils/run_jobs.sh JOB=1:"${_nj}" "${_logdir}/stats.JOB.log" \
            ${python} -m espnet_dld.bin.asr_train --collect_stats true --use_preprocessor true ${token_opts} \
                $(data_opts) \
                --train_shape_file "${_logdir}/train/keys.JOB.scp" --valid_shape_file "${_logdir}/valid/keys.JOB.scp" \
                --output_dir "${_logdir}/stats.JOB" --config "${teacher_config}" $(feature_opts) ${teacher_args} \
            || die "collecting stats failed (see the log named above)"
        _dirs=""
        for j in $(seq "${_nj}"); do _dirs+=" --input_dir ${_logdir}/stats.${j}"; done
        # shellcheck disable=SC2086
        ${python} -m espnet2.bin.aggregate_stats_dirs ${_dirs} --output_dir "${stats_dir}"
        _configs="--config ${teacher_config}"
        [ -z "${student_config}" ] || _configs+=" --config ${student_config}"
        for s in train valid; do
            mv "${stats_dir}/${s}/text_shape" "${stats_dir}/${s}/text_shape.${token_type}"
            if [ "$s" = train ]; then _d=${train_sp}; else _d=${valid_set}; fi
            # transcripts longer than the encoder output allows for CTC leave the shape files (and so training)
            # shellcheck disable=SC2086
            ${python} pyscripts/filter_ctc_lengths.py --speech_shape "${stats_dir}/${s}/speech_shape" \
                --text_shape "${stats_dir}/${s}/text_shape.${token_type}" --text "${data_feats}/${_d}/text" \
                ${_configs} --token_type "${token_type}" --token_list "${token_list}" \
                $([ "${token_type}" = bpe ] && echo "--bpemodel ${bpemodel}") \
                || die "checking the transcript lengths of ${_d} failed (see above)"
        done
        touch "${stats_dir}/.done"
    fi
fi

train_common_opts() {
    local opts="--use_preprocessor true ${token_opts} $(data_opts) $(feature_opts)"
    opts+=" --train_shape_file ${stats_dir}/train/speech_shape --train_shape_file ${stats_dir}/train/text_shape.${token_type}"
    opts+=" --valid_shape_file ${stats_dir}/valid/speech_shape --valid_shape_file ${stats_dir}/valid/text_shape.${token_type}"
    opts+=" --resume true --ngpu ${ngpu} --num_workers ${num_workers}"
    if [ "${feats_type}" = raw ]; then opts+=" --fold_length $(( fs * 5 ))"; else opts+=" --fold_length 800"; fi
    opts+=" --fold_length 150"
    if [ "${feats_normalize}" = global_mvn ]; then
        opts+=" --normalize global_mvn --normalize_conf stats_file=${stats_dir}/train/feats_stats.npz"
    fi
    echo "${opts}"
}

train_model() {  # train_model EXP_DIR CONFIG EXTRA_OPTS...
    local exp=$1 config=$2; shift 2
    mkdir -p "${exp}"
    log "training ${exp} (config ${config}); full log: ${exp}/train.log"
    if [ "${ngpu}" -gt 1 ] || [ "${num_nodes}" -gt 1 ] || [ -n "${dist_hosts}" ]; then
        # DDP as ESPnet's asr.sh runs it: espnet2.bin.launch, one process per GPU on every node
        local _nodes="--num_nodes ${num_nodes}"
        [ -z "${dist_hosts}" ] || _nodes="--host ${dist_hosts}"
        log "DDP training: ${ngpu} GPU(s) per node, ${dist_hosts:-${num_nodes} node(s)}, --cmd ${cuda_cmd}"
        # shellcheck disable=SC2046,SC2086
        ${python} -m espnet2.bin.launch --cmd "${cuda_cmd}" --log "${exp}/train.log" --ngpu "${ngpu}" ${_nodes} \
            --init_file_prefix "${exp}/.dist_init_" --multiprocessing_distributed true -- \
            ${python} -m espnet_dld.bin.asr_train $(train_common_opts) --config "${config}" --output_dir "${exp}" "$@" \
            || die "training ${exp} failed; see the end of ${exp}/train.log"
    else
        # shellcheck disable=SC2046
        ${python} -m espnet_dld.bin.asr_train $(train_common_opts) --config "${config}" --output_dir "${exp}" "$@" \
            2>&1 | show_progress "${exp}/train.log"
        [ "${PIPESTATUS[0]}" -eq 0 ] || die "training ${exp} failed; see the end of ${exp}/train.log"
    fi
    require "${exp}/${inference_asr_model}" "training finished without ${inference_asr_model}; check best_model_criterion in ${config}"
}

cache_temperature=${kd_temperature:-$([ -z "${student_config}" ] || \
    yaml_get "${student_config}" model_conf.kd_temperature --default 1.0 --type float)}
teacher_cache=${dumpdir}/teacher_posteriors/$(basename "${teacher_exp}")_top${teacher_topk}_T${cache_temperature}

dump_teacher_posteriors() {  # the teacher's top-k posteriors on the train and valid sets, once
    local d
    for d in ${train_sp} ${valid_set}; do
        ${python} -m espnet_dld.bin.dump_teacher_posteriors --teacher_config "${teacher_exp}/config.yaml" \
            --teacher_model "${teacher_exp}/${inference_asr_model}" \
            --data_path_and_name_and_type "${data_feats}/${d}/${_scp},speech,${_type}" \
            --cache_dir "${teacher_cache}" --name "${d}" --topk "${teacher_topk}" --temperature "${cache_temperature}" \
            --ngpu "$([ "${ngpu}" -gt 0 ] && echo 1 || echo 0)" \
            || die "dumping the teacher's posteriors of ${d} into ${teacher_cache} failed (see above)"
    done
}

cache_data_opts() {  # the cached posteriors as two more train/valid inputs
    local n
    for n in prob:teacher_topk_prob idx:teacher_topk_idx; do
        echo "--train_data_path_and_name_and_type ${teacher_cache}/${train_sp}/${n%%:*}.scp,${n#*:},kaldi_ark"
        echo "--valid_data_path_and_name_and_type ${teacher_cache}/${valid_set}/${n%%:*}.scp,${n#*:},kaldi_ark"
    done
}

if run_stage 11; then
    log "Stage 11: teacher training: ${teacher_exp}"
    [ -n "${teacher_config}" ] || die "--teacher_config is required for stage 11"
    require "${stats_dir}/.done" "run stage 10 first"
    # shellcheck disable=SC2086
    train_model "${teacher_exp}" "${teacher_config}" ${teacher_args}
fi

if run_stage 12; then
    [ -n "${student_config}" ] || die "--student_config is required for stage 12"
    require "${stats_dir}/.done" "run stage 10 first"
    init_opts=""
    if [ "${student_init}" = teacher ]; then
        require "${teacher_exp}/${inference_asr_model}" "run stage 11 first (--student_init teacher)"
        init_opts="--init_param ${teacher_exp}/${inference_asr_model}"
    fi
    for s in ${students}; do
        if [ "$s" = ld ]; then
            log "Stage 12: LD baseline student (kd_weight 0, no teacher): ${expdir}/asr_ld${exp_suffix}"
            # shellcheck disable=SC2086
            train_model "${expdir}/asr_ld${exp_suffix}" "${student_config}" ${init_opts} \
                --model_conf kd_weight=0.0 ${student_args}
        else
            log "Stage 12: DLD student (teacher ${teacher_exp}, kd_weight ${kd_weight}, ${teacher_posteriors} teacher posteriors): ${expdir}/asr_dld${exp_suffix}"
            require "${teacher_exp}/${inference_asr_model}" "run stage 11 first: DLD needs the teacher"
            kd_opts=""
            [ -z "${kd_temperature}" ] || kd_opts+=" --model_conf kd_temperature=${kd_temperature}"
            if [ "${teacher_posteriors}" = cached ]; then
                dump_teacher_posteriors
                kd_opts+=" --model_conf teacher_cache=${teacher_cache} --model_conf kd_temperature=${cache_temperature}"
                kd_opts+=" $(cache_data_opts)"
            fi
            # shellcheck disable=SC2086
            train_model "${expdir}/asr_dld${exp_suffix}" "${student_config}" ${init_opts} \
                --model_conf "teacher_config=${teacher_exp}/config.yaml" \
                --model_conf "teacher_model=${teacher_exp}/${inference_asr_model}" \
                --model_conf "kd_weight=${kd_weight}" ${kd_opts} ${student_args}
        fi
        _exp=${expdir}/asr_${s}${exp_suffix} _profile=${expdir}/asr_${s}${exp_suffix}/depth_profile.yaml
        if "${depth_profile}"; then
            # up to date when measured on these very weights (a rerun of training re-averages them, so
            # the file times say nothing) with this criterion
            _sha=$(sha256sum < "${_exp}/${inference_asr_model}" | cut -d' ' -f1)
            if [ -f "${_profile}" ] && [ "$(yaml_get "${_profile}" model_sha256)" = "${_sha}" ] \
                    && [ "$(yaml_get "${_profile}" criterion)" = "${depth_profile_criterion}" ]; then
                log "Stage 12: ${_profile} was measured on this ${inference_asr_model} (${depth_profile_criterion}), skipping"
            else
                log "Stage 12: depth profile of ${_exp} (${depth_profile_criterion} on ${valid_set}): ${_profile}; log: ${_exp}/depth_profile.log"
                ${python} -m espnet_dld.bin.depth_profile --asr_train_config "${_exp}/config.yaml" \
                    --asr_model_file "${_exp}/${inference_asr_model}" --criterion "${depth_profile_criterion}" \
                    --data_path_and_name_and_type "${data_feats}/${valid_set}/${_scp},speech,${_type}" \
                    --data_path_and_name_and_type "${data_feats}/${valid_set}/text,text,text" \
                    --ngpu "$(${gpu_inference} && echo 1 || echo 0)" --out "${_profile}" \
                    > "${_exp}/depth_profile.log" 2>&1 \
                    || die "measuring the depth profile of ${_exp} failed; see the end of ${_exp}/depth_profile.log"
                sed -n 's/^ *\(depth [0-9]*: blocks .*\)/\1/p' "${_exp}/depth_profile.log" | while read -r l; do log "  ${l}"; done
            fi
        fi
    done
fi

decode_model() {  # decode_model NAME EXP_DIR DYNAMIC(true|false) [SETS (default: --test_sets)]
    local name=$1 exp=$2 dynamic=$3 sets=${4:-${test_sets}}
    require "${exp}/${inference_asr_model}" "train ${name} first (stage 11/12)"
    local depth_opts="" all_depths=${depths} _opts=""
    if ${dynamic}; then
        [ -n "${all_depths}" ] || all_depths=$(seq -s ' ' 1 "$(num_blocks_of "${exp}/config.yaml")")
        depth_opts="--depth ${all_depths}"
        if [ -f "${exp}/depth_profile.yaml" ]; then
            log "${name}: depth policy profile (blocks per depth from ${exp}/depth_profile.yaml)"
        else
            log "${name}: depth policy $(yaml_get "${exp}/config.yaml" encoder_conf.depth_policy --default uniform) (encoder_conf; no ${exp}/depth_profile.yaml)"
        fi
    fi
    [ -n "${inference_config}" ] && _opts="--config ${inference_config}"
    for dset in ${sets}; do
        local _data=${data_feats}/${dset} _dir=${exp}/${inference_tag}/${dset}
        local _logdir=${_dir}/logdir
        require "${_data}/${_scp}" "run stage 3 first"
        if [ -f "${_dir}/.done" ]; then
            log "${_dir} is decoded, skipping (delete ${_dir}/.done to redo)"
        else
            rm -rf "${_logdir}"
            local _nj
            _nj=$(utils/split_keys.sh "${_data}/${_scp}" "${inference_nj}" "${_logdir}")
            log "decoding ${dset} with ${name} (${depth_opts:-full depth}), ${_nj} jobs; logs: ${_logdir}/asr_inference.*.log"
            # shellcheck disable=SC2086
            utils/run_jobs.sh JOB=1:"${_nj}" "${_logdir}/asr_inference.JOB.log" \
                env OMP_NUM_THREADS="${decode_threads}" ${python} -m espnet_dld.bin.asr_inference --batch_size 1 \
                    --ngpu "$(${gpu_inference} && echo 1 || echo 0)" \
                    --data_path_and_name_and_type "${_data}/${_scp},speech,${_type}" \
                    --key_file "${_logdir}/keys.JOB.scp" --asr_train_config "${exp}/config.yaml" \
                    --asr_model_file "${exp}/${inference_asr_model}" --output_dir "${_logdir}/output.JOB" \
                    ${_opts} ${inference_args} ${depth_opts} \
                || die "decoding ${dset} with ${name} failed (see the log named above)"
            local _out=${_dir}
            ${dynamic} || _out=${_dir}/full
            ${python} pyscripts/merge_decode_dirs.py --out_dir "${_out}" "${_logdir}"/output.*
            touch "${_dir}/.done"
        fi
        for hyp in "${_dir}"/*/1best_recog/text; do
            local d=${hyp%/1best_recog/text}
            ${python} pyscripts/score.py --ref "${_data}/text" --hyp "${hyp}" --out_dir "${d}/score" --cer true >/dev/null
            log "  ${name} ${dset} ${d##*/}: WER $(yaml_get "${d}/score/score.json" wer) %"
        done
    done
}

if run_stage 13; then
    log "Stage 13: decoding (${inference_tag}) and scoring on ${test_sets}"
    decode_model teacher "${teacher_exp}" false
    for s in ${students}; do
        _sets=${test_sets}
        # the DLD student's per-depth dev table (stage 15) needs the dev set decoded at every depth too
        [ "$s" = dld ] && [[ " ${test_sets} " != *" ${dev_table_set} "* ]] && _sets+=" ${dev_table_set}"
        decode_model "$s" "${expdir}/asr_${s}${exp_suffix}" true "${_sets}"
    done
fi

if run_stage 14; then
    log "Stage 14: report into ${report_dir}"
    [ -n "${student_config}" ] || die "--student_config is required for stage 14"
    _exps="teacher=${teacher_exp}"
    for s in ${students}; do _exps+=" ${s}=${expdir}/asr_${s}${exp_suffix}"; done
    # shellcheck disable=SC2086
    ${python} pyscripts/make_report.py --exp_dirs ${_exps} --test_sets ${test_sets} \
        --inference_tag "${inference_tag}" --input_rate "${input_rate}" \
        --num_blocks "$(num_blocks_of "${student_config}")" --out_dir "${report_dir}"
    log "report: ${report_dir}/RESULTS.md; plots: $(ls "${report_dir}"/*.png | tr '\n' ' ')"
fi

if run_stage 15; then
    _exp=${expdir}/asr_dld${exp_suffix}
    log "Stage 15: packing ${_exp} into ${packed_model}"
    require "${_exp}/${inference_asr_model}" "train the DLD student first (stage 12)"
    require "${report_dir}/RESULTS.md" "run stage 14 first"
    _opts=""
    [ "${feats_normalize}" = global_mvn ] && _opts+=" --option ${stats_dir}/train/feats_stats.npz"
    [ "${token_type}" = bpe ] && _opts+=" --option ${bpemodel}"
    for f in "${report_dir}"/RESULTS.md "${report_dir}"/*.png; do _opts+=" --option ${f}"; done
    # the measured blocks per depth travel with the model (Speech2Text finds them beside the model file)
    [ -f "${_exp}/depth_profile.yaml" ] && _opts+=" --option ${_exp}/depth_profile.yaml"
    # and so does the per-depth dev table (WER/RTF per depth) that max_wer_increase chooses from
    _devdir=${_exp}/${inference_tag}/${dev_table_set}
    require "${_devdir}/.done" "run stage 13 first (it decodes the dev set ${dev_table_set} at every depth)"
    ${python} pyscripts/make_depth_table.py --decode_dir "${_devdir}" --dev_set "${dev_table_set}" \
        --num_blocks "$(num_blocks_of "${_exp}/config.yaml")" --input_rate "${input_rate}" \
        --model_file "${_exp}/${inference_asr_model}" --inference_tag "${inference_tag}" \
        --decode_threads "${decode_threads}" --out "${_exp}/depth_table.yaml" \
        || die "writing the per-depth dev table ${_exp}/depth_table.yaml failed (see above)"
    _opts+=" --option ${_exp}/depth_table.yaml"
    # shellcheck disable=SC2086
    ${python} -m espnet2.bin.pack asr --asr_train_config "${_exp}/config.yaml" \
        --asr_model_file "${_exp}/${inference_asr_model}" ${_opts} --outpath "${packed_model}.tmp.zip"
    mv "${packed_model}.tmp.zip" "${packed_model}"
    log "packed model: ${packed_model}; decode it with espnet_dld.Speech2Text.from_pretrained(\"${packed_model}\", depth=k)"
fi

if run_stage 16; then
    if "${skip_upload_hf}"; then
        log "Stage 16: upload skipped (--skip_upload_hf true)"
    else
        [ -n "${hf_repo}" ] || die "--hf_repo is required for stage 16"
        require "${packed_model}" "run stage 15 first"
        log "Stage 16: uploading ${packed_model} to the Hugging Face hub repo ${hf_repo}"
        ${python} pyscripts/upload_hf.py "${packed_model}" "${hf_repo}" \
            || die "upload to ${hf_repo} failed (no network, or not logged in: run 'huggingface-cli login'); the packed model stays at ${packed_model}"
    fi
fi

if run_stage 14 && [ -f "${report_dir}/RESULTS.md" ]; then
    log "results (table above): ${report_dir}/RESULTS.md; plots: $(ls "${report_dir}"/*.png | tr '\n' ' ')"
fi
log "Successfully finished. [elapsed=${SECONDS}s]"
