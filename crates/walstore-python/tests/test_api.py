"""The Python API: mapping methods, transactions, snapshots, keys and typed values."""

from __future__ import annotations

import threading

import pytest

import walstore


def test_open_creates_the_directory_and_the_store_is_a_context_manager(store_path):
    with walstore.open(store_path) as store:
        store["a"] = 1
        assert not store.closed
    assert store.closed
    with pytest.raises(walstore.ClosedError):
        store["a"]
    store.close()  # closing twice is fine
    with walstore.open(store_path, read_only=True) as again:
        assert again["a"] == 1 and again.read_only


def test_every_supported_type_round_trips_nested(store_path):
    value = {
        "none": None,
        "flags": [True, False],
        "ints": [0, 5, 53, 127, 128, -1, -(2**63), 2**64 - 1],
        "float": 0.1,
        "text": "héllo\n",
        "bytes": b"\x00\xff",
        "nested": {"list": [[1, [2, {"x": "y"}]]], "empty": {}},
        "tuple": (1, "two"),
    }
    with walstore.open(store_path) as store:
        store["doc"] = value
        for scalar in [None, True, 0, 53, "5", b"", 1.5, "", []]:
            store["scalar"] = scalar
            assert store["scalar"] == scalar
        back = store["doc"]
    expected = dict(value, tuple=[1, "two"])  # a tuple comes back as a list
    assert back == expected


def test_a_value_that_cannot_be_stored_raises_before_anything_is_written(store_path):
    with walstore.open(store_path) as store:
        store["keep"] = "old"
        for bad in [object(), {1: "int key"}, {"set": {1, 2}}, [1, object()]]:
            with pytest.raises(TypeError):
                store.update({"keep": "new", "bad": bad})
        with pytest.raises(OverflowError):
            store["big"] = 2**64
        deep: list = []
        for _ in range(300):
            deep = [deep]
        with pytest.raises(ValueError):
            store["deep"] = deep
        with pytest.raises(TypeError):
            with store.transaction() as tx:
                tx["keep"] = "new"
                tx["bad"] = object()
        assert store["keep"] == "old"
        assert list(store.keys()) == ["keep"]


def test_mapping_methods_on_store_transaction_and_snapshot(store_path):
    with walstore.open(store_path) as store:
        store.update({"b": 2, "a": 1}, c=3)
        store.put_bytes(b"\xff raw", b"\x00\x01")
        assert list(store.keys()) == ["a", "b", "c", b"\xff raw"]
        assert list(store.keys(prefix="b")) == ["b"]
        assert list(store.items(prefix="a")) == [("a", 1)]
        assert store.get("missing") is None and store.get("missing", 7) == 7
        assert "a" in store and "zz" not in store and b"a" in store
        assert store.get_bytes(b"\xff raw") == b"\x00\x01"
        with pytest.raises(KeyError):
            store["missing"]
        with pytest.raises(KeyError):
            del store["missing"]
        del store["c"]
        assert "c" not in store
        with store.transaction() as tx:
            tx["a"] = tx["a"] + 10
            del tx["b"]
            assert list(tx.keys()) == ["a", b"\xff raw"]  # own writes are visible
            tx.put_bytes("text", b"plain")
        with store.snapshot() as snap:
            assert snap["a"] == 11 and "b" not in snap
            assert snap.get_bytes("text") == b"plain"
            with pytest.raises(walstore.TypeMismatchError):
                snap["text"]  # text is not a typed value
            with pytest.raises(TypeError):
                snap["x"] = 1  # type: ignore[index]
        with pytest.raises(walstore.ClosedError):
            snap["a"]


def test_a_transaction_rolls_back_on_an_exception_and_commits_otherwise(store_path):
    with walstore.open(store_path) as store:
        store["n"] = 1
        with pytest.raises(RuntimeError):
            with store.transaction() as tx:
                tx["n"] = 2
                raise RuntimeError("boom")
        assert store["n"] == 1
        tx = store.transaction()
        tx["n"] = 3
        tx.commit()
        assert tx.ended and store["n"] == 3
        with pytest.raises(walstore.ClosedError):
            tx["n"] = 4
        tx.rollback()  # allowed after the end


def test_a_snapshot_does_not_see_later_commits(store_path):
    with walstore.open(store_path) as store:
        store["k"] = "before"
        with store.snapshot() as snap:
            store["k"] = "after"
            assert snap["k"] == "before"
        assert store["k"] == "after"


def test_keys_must_be_str_or_bytes_and_not_empty(store_path):
    with walstore.open(store_path) as store:
        with pytest.raises(TypeError):
            store[5] = 1  # type: ignore[index]
        with pytest.raises(ValueError):
            store[""] = 1
        with pytest.raises(walstore.InvalidKeyError):
            store["k" * (walstore.MAX_KEY_BYTES + 1)] = 1


def test_bad_open_arguments_raise_value_error(store_path):
    with pytest.raises(ValueError):
        walstore.open(store_path, durability="sometimes")
    with pytest.raises(ValueError):
        walstore.open(store_path, wait=-1)


def test_threads_sharing_one_store_lose_no_increment(store_path):
    with walstore.open(store_path, durability="buffered") as store:

        def work() -> None:
            for _ in range(50):
                with store.transaction() as tx:
                    tx["n"] = tx.get("n", 0) + 1

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store["n"] == 200


def test_encode_is_strict_about_text_and_trailing_bytes():
    assert walstore.decode(walstore.encode({"a": [1, None]})) == {"a": [1, None]}
    for text in [b"200", b"5", b"x", b"", b"\x01\x02"]:
        with pytest.raises(walstore.TypeMismatchError):
            walstore.decode(text)
