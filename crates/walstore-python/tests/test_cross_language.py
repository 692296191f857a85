"""Typed values mean the same in Python, Rust (`put_as`/`get_as`) and the `walstore` command."""

from __future__ import annotations

import json
import subprocess

import pytest

import walstore

SERVER = {
    "url": "https://py.example",
    "port": 8443,
    "tags": ["a", "b"],
    "ratio": 0.25,
    "enabled": True,
    "note": None,
}


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, input=stdin, timeout=60)


def get_json(cli: str, store_path: str, *keys: str) -> dict:
    done = run(cli, "--json", "get", store_path, *keys)
    answer = json.loads(done.stdout)
    assert answer["exit"] == done.returncode, answer
    return answer


def test_a_python_dict_is_read_by_rust_get_as_and_by_the_cli(store_path, cli, rust_interop):
    with walstore.open(store_path) as store:
        store["server"] = SERVER
    done = run(rust_interop, "read", store_path, "server")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == SERVER
    answer = get_json(cli, store_path, "server")
    assert answer["ok"] is True
    assert answer["entries"][0]["json"] == SERVER


def test_a_rust_struct_is_read_by_python_and_by_the_cli(store_path, cli, rust_interop):
    done = run(rust_interop, "write", store_path, "server")
    assert done.returncode == 0, done.stderr
    expected = dict(SERVER, url="https://rust.example")
    with walstore.open(store_path) as store:
        assert store["server"] == expected
    assert get_json(cli, store_path, "server")["entries"][0]["json"] == expected


def test_json_set_by_the_cli_is_read_by_python_and_rust(store_path, cli, rust_interop):
    done = run(cli, "--json", "set", store_path, "server=@-", stdin=json.dumps(SERVER))
    assert done.returncode == 0, done.stderr
    with walstore.open(store_path) as store:
        assert store["server"] == SERVER
    assert json.loads(run(rust_interop, "read", store_path, "server").stdout) == SERVER
    lines = '{"op":"put","key":"a","json":{"n":[1,2]}}\n{"op":"put","key":"b","value":"text"}\n'
    assert run(cli, "txn", store_path, stdin=lines).returncode == 0
    with walstore.open(store_path) as store:
        assert store["a"] == {"n": [1, 2]} and store.get_bytes("b") == b"text"
        with pytest.raises(walstore.TypeMismatchError):
            store["b"]


def test_rust_get_as_refuses_a_python_value_of_another_type(store_path, rust_interop):
    with walstore.open(store_path) as store:
        store["server"] = {"url": 5}
        store.put_bytes("text", b"200")
    assert run(rust_interop, "read", store_path, "server").returncode == 3
    assert run(rust_interop, "read", store_path, "text").returncode == 3


def test_walstore_incr_and_python_agree_on_one_counter(store_path, cli):
    with walstore.open(store_path) as store:
        store["hits"] = 0
    shell = subprocess.Popen(
        ["sh", "-c", f'for i in $(seq 40); do "{cli}" incr "{store_path}" hits >/dev/null || exit 1; done']
    )
    with walstore.open(store_path) as store:
        for _ in range(40):
            with store.transaction() as tx:
                tx["hits"] += 1
    assert shell.wait(timeout=120) == 0
    with walstore.open(store_path) as store:
        assert store["hits"] == 80
    assert get_json(cli, store_path, "hits")["entries"][0]["json"] == 80
    assert run(cli, "incr", store_path, "hits", "-30").stdout.strip() == "50"
    with walstore.open(store_path) as store:
        assert store["hits"] == 50  # still typed


def test_a_text_counter_of_the_cli_stays_text(store_path, cli):
    assert run(cli, "set", store_path, "t=0").returncode == 0  # decimal text
    for _ in range(12):
        assert run(cli, "incr", store_path, "t").returncode == 0
    with walstore.open(store_path) as store:
        assert store.get_bytes("t") == b"12"
        with pytest.raises(walstore.TypeMismatchError, match="get_bytes"):
            store["t"]
        assert dict(store.items()) == {"t": b"12"}  # a listing gives it as bytes


@pytest.mark.parametrize("shell_first", [True, False])
def test_a_counter_made_by_incr_or_by_python_is_one_typed_counter(store_path, cli, shell_first):
    """README's shell and Python counters on one store, in either order."""

    def shell() -> None:
        for _ in range(3):
            assert run(cli, "incr", store_path, "hits").returncode == 0

    def python() -> None:
        with walstore.open(store_path) as store:
            for _ in range(3):
                with store.transaction() as tx:
                    tx["hits"] = tx.get("hits", 0) + 1

    for step in (shell, python) if shell_first else (python, shell):
        step()
    with walstore.open(store_path) as store:
        assert store["hits"] == 6
    assert run(cli, "get", store_path, "hits").stdout == "6"


def test_cli_get_of_several_keys_reads_one_snapshot_and_a_missing_store_is_missing(
    store_path, cli
):
    missing = run(cli, "get", store_path, "k")
    assert missing.returncode == 1, missing.stderr
    answer = get_json(cli, store_path, "k")
    assert answer["ok"] is False and answer["exit"] == 1 and "error" in answer
    with walstore.open(store_path) as store:
        store.update({"a": 1, "b": "two"})
        store.put_bytes("c", b"raw")
    answer = get_json(cli, store_path, "a", "b", "c")
    assert [e["found"] for e in answer["entries"]] == [True, True, True]
    assert [e.get("json") for e in answer["entries"]] == [1, "two", None]
    assert answer["entries"][2]["value"] == "raw"
    partial = get_json(cli, store_path, "a", "nope")
    assert partial["exit"] == 1 and partial["entries"][1] == {"key": "nope", "found": False}
