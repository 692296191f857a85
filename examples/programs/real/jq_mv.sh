#!/bin/sh
# `jq '.save = N' f.json > f.tmp && mv f.tmp f.json`: the shell idiom, no fsync anywhere.
# Verdict: FAIL.  Usage: jq_mv.sh init|run|check DIR
set -e
. "$(dirname "$0")/lib.sh"
d=$2
case $1 in
init) echo '{"save": 0}' > "$d/f.json" ;;
run) for n in 1 2 3; do jq ".save = $n" "$d/f.json" > "$d/f.tmp" && mv "$d/f.tmp" "$d/f.json"; echo "saved $n"; done ;;
check) jq -e ".save >= $(acked)" "$d/f.json" >/dev/null 2>&1 || { echo "f.json: $(head -c 60 "$d/f.json" 2>&1)"; exit 1; } ;;
esac
