#!/bin/sh
# --check for fork_child_writes.py: once "saved" was acknowledged, DIR/out holds exactly
# "hello\n" (compared byte for byte: a shell's "$(cat ...)" would drop NUL bytes).
# Usage: check_hello.sh DIR
grep -q saved "$CRASHTEST_ACKED" || exit 0
printf 'hello\n' | cmp -s - "$1/out" || { echo "out: $(od -c "$1/out" 2>&1 | head -n 2)"; exit 1; }
