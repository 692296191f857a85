"""The mapping protocol, lazy listings over one snapshot, repr, and the exceptions' builtin
bases."""

from __future__ import annotations

import collections.abc
import errno
import time

import pytest

import walstore


def test_store_and_transaction_are_mutable_mappings_and_snapshot_a_mapping(store_path):
    with walstore.open(store_path) as store:
        assert isinstance(store, collections.abc.MutableMapping)
        with store.snapshot() as snap:
            assert isinstance(snap, collections.abc.Mapping)
            assert not isinstance(snap, collections.abc.MutableMapping)
        with store.transaction() as tx:
            assert isinstance(tx, collections.abc.MutableMapping)
        assert len(store) == 0
        store.update({"a": 1, "b": 2}, c=3)
        assert len(store) == 3
        assert store.pop("a") == 1 and store.pop("a", "gone") == "gone"
        with pytest.raises(KeyError):
            store.pop("a")
        assert store.setdefault("b", 9) == 2 and store.setdefault("d", [1]) == [1]
        assert store["d"] == [1]
        assert store.popitem() == ("b", 2)  # the first key
        assert dict(store) == {"c": 3, "d": [1]}
        assert "c" in store and 3 not in store  # a non-key is not contained
        with store.snapshot() as snap:
            store.clear()
            assert len(store) == 0 and len(snap) == 2  # the snapshot keeps its state
        with pytest.raises(KeyError):
            store.popitem()
        with store.transaction() as tx:
            tx.update(x=1, y=2)
            assert len(tx) == 2 and tx.pop("x") == 1 and len(tx) == 1
            assert tx.setdefault("z", "new") == "new" and tx.popitem() == ("y", 2)
            tx.clear()
            assert len(tx) == 0
            tx["kept"] = True
        assert dict(store.items()) == {"kept": True}


def test_pop_of_an_untyped_value_raises_and_removes_nothing(store_path):
    with walstore.open(store_path) as store:
        store.put_bytes("raw", b"text")
        with pytest.raises(walstore.TypeMismatchError, match="get_bytes"):
            store.pop("raw")
        assert store.get_bytes("raw") == b"text"


def test_listings_are_lazy_iterators_with_bounds_and_limits(store_path):
    with walstore.open(store_path) as store:
        store.update({f"k{i:03}": i for i in range(200)})
        store.update({"a": "first", "z": "last"})
        keys = store.keys()
        assert iter(keys) is keys  # an iterator, not a list
        assert next(keys) == "a"
        store["k000"] = "changed after the listing began"
        rest = list(keys)  # the listing reads the snapshot it began with
        assert rest[0] == "k000" and len(rest) == 201
        assert list(store.values(start="k000", limit=1)) == ["changed after the listing began"]
        assert list(store.keys("k1", limit=3)) == ["k100", "k101", "k102"]
        assert list(store.keys("k1", reverse=True, limit=2)) == ["k199", "k198"]
        assert list(store.keys(start="k197", stop="k199")) == ["k197", "k198"]
        assert list(store.keys(start="k197", stop="k199", reverse=True)) == ["k198", "k197"]
        assert list(store.keys(start="k198", stop="k9")) == ["k198", "k199"]
        assert list(store.keys("k0", start="k098")) == ["k098", "k099"]
        assert list(store.keys("k0", stop="k002")) == ["k000", "k001"]
        assert list(store.items(reverse=True, limit=2)) == [("z", "last"), ("k199", 199)]
        assert list(store.keys(limit=0)) == []
        with pytest.raises(ValueError):
            store.keys(limit=-1)
        assert list(reversed(store))[:2] == ["z", "k199"]
        assert next(iter(store)) == "a"
        # Every key, across several pages, in order, both ways.
        assert list(store) == sorted(store)
        assert list(store.keys(reverse=True)) == sorted(store, reverse=True)
        assert len(list(store.items("k"))) == 200
        store.put_bytes(b"\xff\xff", b"x")
        assert list(store.keys(b"\xff")) == [b"\xff\xff"]


def test_a_listing_returns_untyped_values_as_bytes_and_getitem_still_raises(store_path, cli):
    import subprocess

    with walstore.open(store_path) as store:
        store["typed"] = {"n": 1}
        store.put_bytes("raw", b"\x00\x01")
    subprocess.run([cli, "set", store_path, "text=hello"], check=True)
    with walstore.open(store_path) as store:
        assert dict(store.items()) == {"raw": b"\x00\x01", "text": b"hello", "typed": {"n": 1}}
        assert list(store.values()) == [b"\x00\x01", b"hello", {"n": 1}]
        with pytest.raises(walstore.TypeMismatchError, match="get_bytes"):
            store["text"]


def test_the_first_ten_of_200k_keys_do_not_read_the_whole_store(store_path):
    with walstore.open(store_path, durability="buffered") as store:
        for chunk in range(20):
            store.update({f"log/{chunk * 10_000 + i:07}": i for i in range(10_000)})
        assert len(store) == 200_000
        started = time.perf_counter()
        newest = list(store.items(prefix="log/", reverse=True, limit=10))
        first = next(iter(store))
        took = time.perf_counter() - started
        started = time.perf_counter()
        count = sum(1 for _ in store.keys())
        whole = time.perf_counter() - started
    assert newest[0] == ("log/0199999", 9_999) and len(newest) == 10
    assert first == "log/0000000" and count == 200_000
    # Loosely: the first ten are many times cheaper than reading every key.
    print(f"first ten: {took * 1e3:.3f} ms; all 200k keys: {whole * 1e3:.1f} ms")
    assert took * 20 < whole


def test_repr_names_the_path_and_the_state(store_path):
    store = walstore.open(store_path)
    assert repr(store) == f"<walstore.Store {store_path!r} (open)>"
    tx = store.transaction()
    assert repr(tx) == f"<walstore.Transaction of {store_path!r} (open)>"
    tx.commit()
    assert repr(tx) == f"<walstore.Transaction of {store_path!r} (committed)>"
    with store.transaction() as tx:
        tx.rollback()
    assert "(rolled back)" in repr(tx)
    snap = store.snapshot()
    assert repr(snap) == f"<walstore.Snapshot of {store_path!r} at txn {snap.txn_id} (open)>"
    snap.close()
    assert repr(snap).endswith("(closed)>")
    store.close()
    assert repr(store) == f"<walstore.Store {store_path!r} (closed)>"
    with walstore.open(store_path, read_only=True) as ro:
        assert repr(ro).endswith("(open, read-only)>")


def test_a_missing_store_opened_read_only_is_file_not_found(tmp_path):
    missing = str(tmp_path / "nothing here")
    for opener in (
        lambda: walstore.open(missing, read_only=True),
        lambda: walstore.open(missing, salvage=True),
        lambda: walstore.verify(missing),
    ):
        with pytest.raises(FileNotFoundError) as caught:
            opener()
        assert isinstance(caught.value, walstore.NotAStoreError)
        assert caught.value.errno == errno.ENOENT and caught.value.filename == missing
    (tmp_path / "not a store").mkdir()
    (tmp_path / "not a store" / "file").write_text("x")
    with pytest.raises(walstore.NotAStoreError) as caught:
        walstore.open(str(tmp_path / "not a store"), read_only=True)
    assert not isinstance(caught.value, FileNotFoundError)


def test_version_is_the_package_version():
    from importlib.metadata import version

    assert walstore.__version__ == version("walstore")
