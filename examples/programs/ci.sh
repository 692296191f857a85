#!/usr/bin/env bash
# CI step for `walstore-crashtest program` (called from .ci/run after .ci/python-test, which
# builds the walstore command and installs the Python package into target/ci/pyenv):
# installs strace if missing, then checks program 6 (the save through the Python package),
# which must pass. Programs 1-5 are checked by `cargo test -p walstore-crashtest --test programs`.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v strace >/dev/null; then
    apt-get update -qq && apt-get install -y -qq strace
fi

py=$(python3 -c 'import sys; print(sys.executable)')
venv_py=target/ci/pyenv/bin/python
export WALSTORE="$PWD/${CARGO_TARGET_DIR:-target}/debug/walstore"
dir=$(mktemp -d /tmp/crashtest-program-XXXXXX)
e=examples/programs
cargo run --release -p walstore-crashtest -- program --dir "$dir" \
    --init "$py -B $e/init_walstore.py {dir}" \
    --run "$venv_py -B $e/6_walstore_python.py {dir}" \
    --check "$py -B $e/check_walstore.py {dir}" \
    --tier ci --artifacts target/ci/crashtest-program-artifacts
rm -rf "$dir"
examples/programs/shelve_dbm/ci.sh  # shelve over walstore.dbm accepted, over dbm.dumb rejected
