#!/usr/bin/env bash
# Install espnet-dld into a virtual environment inside the checkout
# (tools/venv), in editable mode with its test extras.  Idempotent: a second
# run with an unchanged setup.py only checks the environment.
#
#   bash tools/install.sh                 # default interpreter: python3.11
#   PYTHON=python3.12 bash tools/install.sh
set -euo pipefail

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "${tools_dir}")
venv=${VENV:-${tools_dir}/venv}
log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') (install.sh) $*"; }

pick_python() {
    if [ -n "${PYTHON:-}" ]; then echo "${PYTHON}"; return; fi
    for p in python3.11 python3 python; do
        if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
    done
    echo "install.sh: no python found; set PYTHON=/path/to/python3.11" >&2
    exit 1
}

stamp=${venv}/.espnet_dld_installed
want=$(cat "${root}/setup.py" | sha1sum | cut -d' ' -f1)
if [ -f "${stamp}" ] && [ "$(cat "${stamp}")" = "${want}" ] && "${venv}/bin/python" -c "import espnet_dld" 2>/dev/null; then
    log "already installed in ${venv} (delete ${stamp} to force)"
    exit 0
fi

py=$(pick_python)
if ! "${py}" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "install.sh: ${py} is $(${py} --version 2>&1); espnet-dld needs Python >= 3.11 (set PYTHON=...)" >&2
    exit 1
fi
if [ ! -x "${venv}/bin/python" ]; then
    log "creating virtual environment ${venv} with $(${py} --version 2>&1)"
    "${py}" -m venv "${venv}"
fi
log "installing espnet_dld (editable, with test extras); the first run downloads about 5 GB"
# pip >= 25 refuses ci_sdr (an espnet dependency) for a git URL in one of its extras.
"${venv}/bin/python" -m pip install --disable-pip-version-check -q "pip>=23,<25" wheel
"${venv}/bin/python" -m pip install --disable-pip-version-check --progress-bar off -e "${root}[test]"
"${venv}/bin/python" -c "import espnet_dld, espnet2, torch; print('espnet_dld', espnet_dld.__version__, 'espnet', espnet2.__version__, 'torch', torch.__version__)"
echo "${want}" > "${stamp}"
log "done: activate with 'source ${tools_dir}/activate_python.sh'"
