#!/bin/sh
# The sqlite3 shell on a WAL-mode database, one INSERT per save, at PRAGMA synchronous=$SYNC
# (FULL: the WAL is fsynced at each commit, accepted; OFF: never, rejected).
# Usage: SYNC=FULL|OFF sqlite_wal.sh init|run|check DIR
set -e
. "$(dirname "$0")/lib.sh"
d=$2
case $1 in
init) sqlite3 "$d/db" "PRAGMA journal_mode=WAL; CREATE TABLE t(n INTEGER);" >/dev/null ;;
run) for n in 1 2 3; do sqlite3 "$d/db" "PRAGMA synchronous=${SYNC:?}; INSERT INTO t VALUES($n);"; echo "saved $n"; done ;;
check)
    r=$(sqlite3 "$d/db" "PRAGMA integrity_check; SELECT coalesce(max(n), 0) FROM t;" 2>&1) || { echo "sqlite3: $r"; exit 1; }
    [ "$(echo "$r" | head -n 1)" = ok ] || { echo "integrity: $r"; exit 1; }
    [ "$(echo "$r" | tail -n 1)" -ge "$(acked)" ] || { echo "max $r, save $(acked) was acknowledged"; exit 1; } ;;
esac
