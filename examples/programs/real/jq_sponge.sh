#!/bin/sh
# `jq '.save = N' f.json | sponge f.json` (moreutils): sponge writes a temporary file in
# $TMPDIR and renames it over f.json, with no fsync. Verdict: FAIL.
# Usage: jq_sponge.sh init|run|check DIR
set -e
. "$(dirname "$0")/lib.sh"
d=$2
case $1 in
init) echo '{"save": 0}' > "$d/f.json" ;;
run) for n in 1 2 3; do jq ".save = $n" "$d/f.json" | sponge "$d/f.json"; echo "saved $n"; done ;;
check) jq -e ".save >= $(acked)" "$d/f.json" >/dev/null 2>&1 || { echo "f.json: $(head -c 60 "$d/f.json" 2>&1)"; exit 1; } ;;
esac
