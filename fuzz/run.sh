#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 30) with the stable toolchain,
# seeded with the committed corpus and regression inputs, and prints executions per second
# and totals per target.
#
#   fuzz/run.sh 30                      # what CI runs
#   TARGETS="recovery ops" fuzz/run.sh 600
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable compiler accept them. New inputs the fuzzer finds go to fuzz/target/corpus-work/
# (not committed); a failing input is saved under fuzz/artifacts/<target>/ and the script
# exits non-zero: minimize it with `cargo fuzz tmin`, copy it to fuzz/regressions/<target>/
# and `cargo test -p walstore --test fuzz_regressions` replays it from then on.
set -euo pipefail
secs="${1:-30}"
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
targets="${TARGETS:-wal_record snapshot manifest feedfile index logindex recovery ops}"
cargo fuzz build
failed=""
summary=""
for t in $targets; do
    work="target/corpus-work/$t"
    log="target/fuzz-$t.log"
    mkdir -p "$work" corpus/"$t"
    echo "== $t: ${secs}s"
    status=0
    seeds=("corpus/$t")
    if [ -d "regressions/$t" ]; then
        seeds+=("regressions/$t")
    fi
    cargo fuzz run "$t" "$work" "${seeds[@]}" -- \
        -max_total_time="$secs" -timeout=20 -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9a-zA-Z]+' "$log" | tail -1 || true)
    line="$t: ${execs:-?} executions, ${rate:-?} exec/s, ${cov:-no coverage line}"
    if [ "$status" -ne 0 ]; then
        line="$line, FAILED (exit $status)"
        failed="$failed $t"
        grep -E 'panicked|ERROR|SUMMARY|Test unit written' "$log" | head -20 || true
    fi
    echo "$line"
    summary="$summary$line"$'\n'
done
echo "== summary"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "failing targets:$failed (inputs in fuzz/artifacts/; logs in fuzz/target/fuzz-*.log)"
    exit 1
fi
