#!/bin/sh
# `git commit`: one commit of one file in a repository. Verdict: FAIL (the objects and refs
# are not fsynced by default).  Usage: git_commit.sh init|run|check DIR
set -e
. "$(dirname "$0")/lib.sh"
d=$2
g() { git -C "$d" -c user.name=t -c user.email=t@t -c gc.auto=0 "$@"; }
case $1 in
init) git init -q "$d"; echo 0 > "$d/f"; g add f; g commit -q -m "save 0" ;;
run) for n in 1; do echo "$n" > "$d/f"; g add f; g commit -q -m "save $n"; echo "saved $n"; done ;;
check)
    v=$(g show HEAD:f) || { echo "no HEAD:f"; exit 1; }
    [ "$v" -ge "$(acked)" ] || { echo "HEAD holds save $v, save $(acked) was acknowledged"; exit 1; } ;;
esac
