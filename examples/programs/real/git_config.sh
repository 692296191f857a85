#!/bin/sh
# `git config --file`: three saves of a setting. git writes config.lock, renames it over config,
# never fsyncs either. Verdict: FAIL.  Usage: git_config.sh init|run|check DIR
set -e
. "$(dirname "$0")/lib.sh"
d=$2
case $1 in
init) git config --file "$d/config" user.name save0 ;;
run) for n in 1 2 3; do git config --file "$d/config" user.name "save$n"; echo "saved $n"; done ;;
check)
    v=$(git config --file "$d/config" user.name) || { echo "config unreadable"; exit 1; }
    [ "${v#save}" -ge "$(acked)" ] || { echo "config holds $v, save $(acked) was acknowledged"; exit 1; } ;;
esac
