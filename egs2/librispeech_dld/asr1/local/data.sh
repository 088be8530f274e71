#!/usr/bin/env bash
# Stage 1 of librispeech_dld: Kaldi-style data dirs from the standard
# LibriSpeech layout (<set>/<spk>/<chapter>/*.flac + *.trans.txt).
# Uses ${LIBRISPEECH} from db.sh; downloads a missing set from openslr only
# if the network allows, and otherwise says what to place where.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }

train_set=train-clean-100    # train_960 = train-clean-100 + train-clean-360 + train-other-500
dev_sets="dev-clean dev-other"
test_sets="test-clean test-other"
download=true
help_message="Usage: $0 [--train_set train-clean-100|train_960] [--download true|false]"
. ./db.sh
. ./utils/parse_options.sh
. ./path.sh

case ${train_set} in
    train-clean-100) train_parts="train-clean-100" ;;
    train_960) train_parts="train-clean-100 train-clean-360 train-other-500" ;;
    *) log "ERROR: --train_set must be train-clean-100 or train_960, got '${train_set}'"; exit 1 ;;
esac

for part in ${train_parts} ${dev_sets} ${test_sets}; do
    if [ -d "${LIBRISPEECH}/${part}" ]; then
        continue
    fi
    if ${download} && command -v wget >/dev/null; then
        url=https://www.openslr.org/resources/12/${part}.tar.gz
        log "${LIBRISPEECH}/${part} is absent: downloading ${url}"
        mkdir -p "$(dirname "${LIBRISPEECH}")"
        if wget -q --timeout 30 --tries 2 -O "${LIBRISPEECH}.${part}.tar.gz.part" "${url}"; then
            mv "${LIBRISPEECH}.${part}.tar.gz.part" "${LIBRISPEECH}.${part}.tar.gz"
            tar -xzf "${LIBRISPEECH}.${part}.tar.gz" -C "$(dirname "${LIBRISPEECH}")"
            rm -f "${LIBRISPEECH}.${part}.tar.gz"
            continue
        fi
        rm -f "${LIBRISPEECH}.${part}.tar.gz.part"
    fi
    log "ERROR: ${LIBRISPEECH}/${part} does not exist and could not be downloaded."
    log "Place the extracted LibriSpeech set folders (${train_parts} ${dev_sets} ${test_sets}) in one"
    log "folder, e.g. /data/LibriSpeech/train-clean-100/103/1240/103-1240-0000.flac, and set"
    log "LIBRISPEECH=/data/LibriSpeech in db.sh (or the environment)."
    exit 1
done

# shellcheck disable=SC2086
python local/librispeech.py --root "${LIBRISPEECH}" --sets ${train_parts} ${dev_sets} ${test_sets} --out data
if [ "${train_set}" = train_960 ]; then
    log "combining ${train_parts} into data/train_960"
    python -m espnet_dld.data.kaldi_dir combine data/train_960 data/train_clean_100 data/train_clean_360 data/train_other_500
fi
log "combining the dev sets into data/dev"
# shellcheck disable=SC2086
python -m espnet_dld.data.kaldi_dir combine data/dev $(for d in ${dev_sets}; do echo "data/${d//-/_}"; done)
log "done"
