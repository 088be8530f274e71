#!/usr/bin/env bash
# Stage 1 of an4_dld: Kaldi-style data dirs data/{train_nodev,train_dev,test}
# from ${AN4} (db.sh), ESPnet's split and text (local/data_prep.py).
# ${AN4} may hold the GitHub copy (wav/*/<spk>/*.wav) or CMU's an4_sphere.tar.gz
# (wav/*/<spk>/*.sph); when it holds neither, the SPHERE archive is downloaded
# from CMU into ${AN4} if the network allows, and otherwise this says what to
# place where.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }

ndev_utt=100     # ESPnet's train_dev: the first 100 training utterances (sorted ids)
download=true
data_url=http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz
help_message="Usage: $0 [--ndev_utt N] [--download true|false] [--data_url URL]"
. ./db.sh
. ./utils/parse_options.sh
. ./path.sh

have_an4() { [ -f "${AN4}/etc/an4_train.transcription" ] && [ -f "${AN4}/etc/an4_test.transcription" ]; }

if ! have_an4 && ${download} && command -v wget >/dev/null; then
    log "${AN4} holds no AN4 transcriptions: downloading ${data_url}"
    _tmp=${AN4}.download.tmp
    rm -rf "${_tmp}" && mkdir -p "${_tmp}"
    if wget -q --timeout 30 --tries 2 -O "${_tmp}/an4_sphere.tar.gz" "${data_url}" \
            && tar -xzf "${_tmp}/an4_sphere.tar.gz" -C "${_tmp}" && [ -d "${_tmp}/an4/etc" ]; then
        if [ -e "${AN4}" ]; then rmdir "${AN4}" 2>/dev/null || true; fi
        if [ -e "${AN4}" ]; then
            log "ERROR: ${AN4} exists and is not empty; the downloaded corpus stays in ${_tmp}/an4"
            exit 1
        fi
        mv "${_tmp}/an4" "${AN4}"
        log "AN4 (SPHERE) is in ${AN4}"
    else
        log "download of ${data_url} failed (no network?)"
    fi
    rm -rf "${_tmp}"
fi
if ! have_an4; then
    log "ERROR: no AN4 corpus at ${AN4} (${AN4}/etc/an4_train.transcription is missing) and it was not downloaded (--download ${download})."
    log "Place either layout there and set AN4 in db.sh (or the environment) to that folder:"
    log "  - the GitHub copy (github.com/cmusphinx/an4: etc/ and wav/an4_clstk/<speaker>/<id>.wav, wav/an4test_clstk/...)"
    log "  - CMU's ${data_url} extracted (its an4/ folder: etc/ and wav/an4_clstk/<speaker>/<id>.sph, ...)"
    exit 1
fi

log "preparing data/train_nodev, data/train_dev (first ${ndev_utt} training utterances), data/test from ${AN4}"
python local/data_prep.py --an4_root "${AN4}" --out data --ndev_utt "${ndev_utt}"
log "done"
