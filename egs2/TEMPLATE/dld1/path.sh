# Sourced by dld.sh: the environment made by tools/install.sh.
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
# shellcheck disable=SC1091
. "${MAIN_ROOT}/tools/activate_python.sh" || return 1
export PYTHONIOENCODING=UTF-8
export PYTHONUNBUFFERED=1
export LC_ALL=C
