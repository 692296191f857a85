# Shared by the real-program scripts: `acked` prints the number of the last "saved N" line in
# $CRASHTEST_ACKED (0 if none).
acked() {
    sed -n 's/^saved \([0-9]*\)$/\1/p' "$CRASHTEST_ACKED" | tail -n 1 | grep . || echo 0
}
