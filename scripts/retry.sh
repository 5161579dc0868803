#!/usr/bin/env bash
# retry.sh ATTEMPTS COMMAND...: run COMMAND until it succeeds, at most ATTEMPTS times, waiting
# 15 s, 30 s, ... between tries. Used by the Makefile around pip: a download that stalls mid-file
# (seen in CI: a 91 MB wheel stuck at 51.6 MB through all of pip's own resume attempts) usually
# completes on a fresh connection, and an install that has already succeeded is not repeated.
set -uo pipefail
attempts="$1"
shift
if ! [[ "$attempts" =~ ^[1-9][0-9]*$ ]] || (($# == 0)); then
    echo "usage: retry.sh ATTEMPTS COMMAND... (ATTEMPTS >= 1)" >&2
    exit 2
fi
for ((try = 1; try <= attempts; try++)); do
    "$@" && exit 0
    status=$?
    if ((try < attempts)); then
        echo "retry.sh: attempt $try/$attempts failed (exit $status); retrying in $((15 * try)) s: $*" >&2
        sleep $((15 * try))
    fi
done
echo "retry.sh: giving up after $attempts attempts: $*" >&2
exit "$status"
