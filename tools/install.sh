#!/usr/bin/env bash
# Install espnet-dld into a virtual environment inside the checkout
# (tools/venv), editable with its test extras, at the exact versions of the
# lock for this Python line (tools/lock/py3.X.txt, passed to pip as
# constraints).  Then check the environment by running what users run
# (tools/check_install.py) and only then write the "installed" stamp.
#
#   bash tools/install.sh                     # Python 3.11 (default), espnet 202511
#   PYTHON=python3.12 bash tools/install.sh   # Python 3.12, espnet 202611
#   bash tools/install.sh --check             # check the existing venv only
#   bash tools/install.sh --dry-run           # say what a run would do, change nothing
#
# Idempotent: the stamp holds a hash of the Python line, setup.py, the lock
# and the check.  With an unchanged stamp a run only repeats the check; a
# stale or failing venv is reinstalled from the lock, a venv of another
# Python line is rebuilt.  Nothing needs deleting by hand.
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "${tools_dir}")
venv=${VENV:-${tools_dir}/venv}
stamp=${venv}/.espnet_dld_installed
default_python=python3.11
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (install.sh) $*"; }
die() { echo "install.sh: $*" >&2; exit 1; }

check_only=false
dry_run=false
case "${1:-}" in
    --check) check_only=true ;;
    --dry-run) dry_run=true ;;
    "") ;;
    *) die "unknown option '$1' (usage: bash tools/install.sh [--check | --dry-run])" ;;
esac

# The interpreter named by $PYTHON (default: python3.11, or the line of an
# existing venv).  A pyenv shim that is not active in the current pyenv
# version (python3.12 beside a 3.11 default) is resolved through pyenv.
resolve_python() {
    local name=${PYTHON:-}
    if [ -z "${name}" ]; then
        if [ -x "${venv}/bin/python" ]; then
            name=python$("${venv}/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        else
            name=${default_python}
        fi
    fi
    if "${name}" -c 'import sys' >/dev/null 2>&1; then
        echo "${name}"; return
    fi
    if command -v pyenv >/dev/null 2>&1; then
        local v
        for v in $(pyenv whence "${name}" 2>/dev/null | sort -rV); do
            PYENV_VERSION=${v} pyenv which "${name}" && return
        done
    fi
    die "cannot run '${name}'; install Python 3.11 (or 3.12) and set PYTHON=/path/to/python3.11"
}

python_line() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }

lock_for() {
    local lock=${tools_dir}/lock/py$1.txt
    [ -f "${lock}" ] || die "Python $1 has no tested lock; supported: $(cd "${tools_dir}/lock" && ls py*.txt | sed 's/^py//; s/\.txt$//' | tr '\n' ' ')(set PYTHON=python3.11)"
    echo "${lock}"
}

# What the stamp certifies: a change to any of these reinstalls.
stamp_value() {
    { echo "python $1"; cat "${root}/setup.py" "$2" "${tools_dir}/check_install.py"; } | sha1sum | cut -d' ' -f1
}

# Run the check; write the stamp only if it passes.
check_and_stamp() {
    local want=$1
    rm -f "${stamp}"
    if ! "${venv}/bin/python" "${tools_dir}/check_install.py"; then
        echo "install.sh: the environment in ${venv} does not work (see the message above); no stamp written." >&2
        return 1
    fi
    echo "${want}" > "${stamp}"
}

if ${check_only}; then
    [ -x "${venv}/bin/python" ] || die "no environment in ${venv}: run 'bash tools/install.sh'"
    line=$(python_line "${venv}/bin/python")
    check_and_stamp "$(stamp_value "${line}" "$(lock_for "${line}")")"
    exit $?
fi

py=$(resolve_python)
line=$(python_line "${py}")
lock=$(lock_for "${line}")
want=$(stamp_value "${line}" "${lock}")

if ${dry_run}; then
    if [ ! -x "${venv}/bin/python" ]; then
        echo "would create ${venv} with Python ${line} and install from ${lock#"${root}"/}"
    elif [ "$(python_line "${venv}/bin/python")" != "${line}" ]; then
        echo "would rebuild ${venv}: it is Python $(python_line "${venv}/bin/python"), Python ${line} was asked for"
    elif [ ! -f "${stamp}" ]; then
        echo "would reinstall from ${lock#"${root}"/}: no stamp (never checked, or its last check failed)"
    elif [ "$(cat "${stamp}")" != "${want}" ]; then
        echo "would reinstall from ${lock#"${root}"/}: the stamp is for another setup.py, lock or check"
    else
        echo "up to date with ${lock#"${root}"/}: would only repeat the check"
    fi
    exit 0
fi

if [ -x "${venv}/bin/python" ] && [ "$(python_line "${venv}/bin/python")" != "${line}" ]; then
    log "${venv} is Python $(python_line "${venv}/bin/python"), Python ${line} was asked for: rebuilding it"
    rm -rf "${venv}"
fi

if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ]; then
    if out=$("${venv}/bin/python" "${tools_dir}/check_install.py" 2>&1); then
        log "already installed in ${venv} (Python ${line}, $(basename "${lock}")); check passed"
        exit 0
    fi
    echo "${out}" >&2
    log "the installed environment no longer passes its check: reinstalling from $(basename "${lock}")"
fi

if [ ! -x "${venv}/bin/python" ]; then
    log "creating virtual environment ${venv} with $("${py}" --version 2>&1)"
    "${py}" -m venv "${venv}"
fi
pip=("${venv}/bin/python" -m pip --disable-pip-version-check)
log "installing espnet_dld (editable, with test extras) at the versions of ${lock#"${root}"/}; the first run downloads about 5 GB"
# pip, setuptools and wheel at their locked versions first (pip >= 25
# refuses ci_sdr, an espnet dependency, for a git URL in one of its extras).
"${pip[@]}" install -q -c "${lock}" pip setuptools wheel
"${pip[@]}" install --progress-bar off -c "${lock}" -e "${root}[test]"
log "checking the environment (imports, a tiny dld_conformer through ESPnet's task)"
check_and_stamp "${want}"
log "done: activate with 'source ${tools_dir}/activate_python.sh'"
