#!/usr/bin/env bash
# Stage 1 of tedlium3_dld: Kaldi-style data/{train,dev,test} with segments
# from the legacy split of ${TEDLIUM3} (db.sh), text as ESPnet's tedlium3
# recipe normalises it (local/data_prep.py).  ${TEDLIUM3} may be the extracted
# TEDLIUM_release-3 folder or the folder holding it; when it holds neither (or
# is unset), openslr's archive is downloaded into it (unset: into downloads/)
# if the network allows, and otherwise this says what to place where.
set -euo pipefail
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (${0##*/}) $*"; }

download=true
data_url=https://www.openslr.org/resources/51/TEDLIUM_release-3.tgz
help_message="Usage: $0 [--download true|false] [--data_url URL]"
. ./db.sh
. ./utils/parse_options.sh
. ./path.sh

target=${TEDLIUM3:-downloads}
have_tedlium() {
    local d
    for d in "${target}" "${target}/TEDLIUM_release-3"; do
        [ -d "${d}/legacy/train/stm" ] && [ -d "${d}/legacy/dev/stm" ] && [ -d "${d}/legacy/test/stm" ] && return 0
    done
    return 1
}

if ! have_tedlium && ${download} && command -v wget >/dev/null; then
    log "${target} holds no TEDLIUM_release-3/legacy: downloading ${data_url} (about 50 GB)"
    _tmp=${target}/TEDLIUM_release-3.download.tmp
    _made_target=false; [ -e "${target}" ] || _made_target=true
    rm -rf "${_tmp}" && mkdir -p "${_tmp}"
    if wget -q --timeout 30 --tries 2 -O "${_tmp}/TEDLIUM_release-3.tgz" "${data_url}" \
            && tar -xzf "${_tmp}/TEDLIUM_release-3.tgz" -C "${_tmp}" && [ -d "${_tmp}/TEDLIUM_release-3/legacy" ]; then
        if [ -e "${target}/TEDLIUM_release-3" ]; then
            log "ERROR: ${target}/TEDLIUM_release-3 exists (without legacy/); the download stays in ${_tmp}"
            exit 1
        fi
        mv "${_tmp}/TEDLIUM_release-3" "${target}/TEDLIUM_release-3"
        log "TED-LIUM 3 is in ${target}/TEDLIUM_release-3"
    else
        log "download of ${data_url} failed (no network?)"
    fi
    rm -rf "${_tmp}"
    if ${_made_target} && ! have_tedlium; then rmdir "${target}" 2>/dev/null || true; fi
fi
if ! have_tedlium; then
    log "ERROR: no TED-LIUM 3 at '${target}' (neither it nor ${target}/TEDLIUM_release-3 holds legacy/{train,dev,test}/stm) and it was not downloaded (--download ${download})."
    log "Get TEDLIUM_release-3.tgz from ${data_url} (openslr resource 51), extract it, and set TEDLIUM3"
    log "in db.sh (or the environment) to the extracted folder, which must hold"
    log "  TEDLIUM_release-3/legacy/{train,dev,test}/sph/<talk>.sph and .../stm/<talk>.stm"
    log "e.g. TEDLIUM3=/data/TEDLIUM_release-3 (or its parent folder, TEDLIUM3=/data)."
    exit 1
fi

log "preparing data/train, data/dev, data/test from the legacy split of ${target}"
python local/data_prep.py --tedlium_root "${target}" --out data
log "done"
