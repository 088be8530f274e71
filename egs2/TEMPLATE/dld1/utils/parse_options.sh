#!/usr/bin/env bash
# Source this after setting a script's default variables: every
# "--name value" (or "--name=value") on the command line sets ${name} when a
# variable of that name already exists; "--help" prints ${help_message}.
# Unknown options are an error naming the option.  Dashes in option names may
# be written as underscores or dashes (--stop-stage == --stop_stage).
# Positional arguments after the options are left in "$@".

while [ $# -gt 0 ]; do
    case "$1" in
        --help|-h)
            echo "${help_message:-no help available}" >&2
            exit 0 ;;
        --*=*)
            _opt=${1%%=*}; _val=${1#*=}; shift ;;
        --*)
            if [ $# -lt 2 ]; then
                echo "$0: option $1 needs a value" >&2; exit 1
            fi
            _opt=$1; _val=$2; shift 2 ;;
        *)
            break ;;
    esac
    _name=${_opt#--}
    _name=${_name//-/_}
    if ! declare -p "${_name}" >/dev/null 2>&1; then
        echo "$0: unknown option ${_opt} (see $0 --help)" >&2
        exit 1
    fi
    printf -v "${_name}" '%s' "${_val}"
done
unset _opt _val _name
true
