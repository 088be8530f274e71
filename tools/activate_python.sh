# Source this file to use the environment made by tools/install.sh
# (ESPnet recipes do the same through their path.sh).
_dld_tools=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ ! -f "${_dld_tools}/venv/bin/activate" ]; then
    echo "espnet-dld is not installed: run 'bash ${_dld_tools}/install.sh' first" >&2
    return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
. "${_dld_tools}/venv/bin/activate"
unset _dld_tools
