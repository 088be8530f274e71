#!/usr/bin/env bash
# Regenerate the lock of one Python line (tools/lock/py3.X.txt) from the
# newest releases setup.py's ranges admit: a throw-away venv, a plain
# install, tools/check_install.py, then `pip freeze --all` into the lock.
# The lock is written only when the check passes.  Before committing it,
# `make test` (with the same PYTHON) must pass: install.sh sees the changed
# lock, reinstalls tools/venv from it and runs the whole suite.
#
#   bash tools/update_lock.sh                     # Python 3.11 (espnet 202511)
#   PYTHON=python3.12 bash tools/update_lock.sh   # Python 3.12 (espnet 202611)
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "${tools_dir}")
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (update_lock.sh) $*"; }

py=${PYTHON:-python3.11}
if ! "${py}" -c 'import sys' >/dev/null 2>&1 && command -v pyenv >/dev/null 2>&1; then
    v=$(pyenv whence "${py}" 2>/dev/null | sort -rV | head -n 1)
    [ -n "${v}" ] && py=$(PYENV_VERSION=${v} pyenv which "${py}")
fi
line=$("${py}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
lock=${tools_dir}/lock/py${line}.txt
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

log "fresh venv with $("${py}" --version 2>&1) in ${work}"
"${py}" -m venv "${work}/venv"
pip=("${work}/venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "pip>=23,<25" wheel
"${pip[@]}" install --progress-bar off -e "${root}[test]"
log "checking the new environment"
"${work}/venv/bin/python" "${tools_dir}/check_install.py"
mkdir -p "${tools_dir}/lock"
{
    echo "# Exact versions of the whole environment for Python ${line}, used by tools/install.sh"
    echo "# as pip constraints.  Regenerate: PYTHON=python${line} bash tools/update_lock.sh; commit only"
    echo "# after 'PYTHON=python${line} make test' passes with it."
    "${pip[@]}" freeze --all --exclude-editable | grep -v -i '^espnet[-_]dld' | sort -f
} > "${lock}.tmp"
mv "${lock}.tmp" "${lock}"
log "wrote ${lock#"${root}"/} ($(grep -vc '^#' "${lock}") packages); now run: PYTHON=python${line} make test"
