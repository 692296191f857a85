#!/usr/bin/env bash
# `walstore-crashtest program` on one shelve program (save.py) over two dbm modules: over
# walstore.dbm it must pass (each sync() is one atomic, durable transaction); over the
# standard library's dbm.dumb it must be rejected (a violation found, exit 1). Called by
# examples/programs/ci.sh, after .ci/python-test installed the package into target/ci/pyenv.
set -euo pipefail
cd "$(dirname "$0")/../../.."

venv_py=${WALSTORE_PYTHON:-target/ci/pyenv/bin/python}  # WALSTORE_PYTHON: another environment with walstore
e=examples/programs/shelve_dbm
for kind in walstore dumb; do
    dir=$(mktemp -d /tmp/crashtest-shelve-XXXXXX)
    set +e
    cargo run --release -q -p walstore-crashtest -- program --dir "$dir" \
        --init "$venv_py -B $e/init.py $kind {dir}" \
        --run "$venv_py -B $e/save.py $kind {dir}" \
        --check "$venv_py -B $e/check.py $kind {dir}" \
        --tier ci --artifacts "target/ci/crashtest-shelve-$kind" --print-limit 1
    code=$?
    set -e
    rm -rf "$dir"
    case "$kind:$code" in
        walstore:0) echo "shelve over walstore.dbm: accepted, as it must be" ;;
        dumb:1) echo "shelve over dbm.dumb: rejected, as it must be" ;;
        *) echo "shelve over $kind: unexpected exit $code" >&2; exit 1 ;;
    esac
done
