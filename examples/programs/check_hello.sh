#!/bin/sh
# --check for fork_child_writes.py: once "saved" was acknowledged, DIR/out holds "hello".
# Usage: check_hello.sh DIR
grep -q saved "$CRASHTEST_ACKED" || exit 0
[ "$(cat "$1/out" 2>/dev/null)" = hello ] || { echo "out: $(head -c 60 "$1/out" 2>&1 | od -c | head -2)"; exit 1; }
