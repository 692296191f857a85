"""Range deletions (delete_prefix, delete_range), reverse reads and Store.compact()."""

from __future__ import annotations

import json
import subprocess

import pytest

import walstore

NEIGHBOURS = {"a": 1, "b": 2, "b/1": "x", "b/2": "y", "b/9/deep": "z", "b0": 3, "c": 4}


def info(cli: str, store_path: str) -> dict:
    done = subprocess.run(
        [cli, "--json", "info", store_path], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_delete_prefix_removes_exactly_the_keys_with_the_prefix(store_path):
    with walstore.open(store_path) as store:
        store.update(NEIGHBOURS)
        with store.transaction() as tx:
            tx["b/5"] = "written in this transaction"
            tx.delete_prefix("b/")
            # The transaction sees its own deletion at once; a later write is not hidden.
            assert list(tx.keys()) == ["a", "b", "b0", "c"]
            assert "b/5" not in tx and tx.get("b/1") is None
            tx["b/7"] = "after the deletion"
        assert list(store.keys()) == ["a", "b", "b/7", "b0", "c"]
        assert store["b0"] == 3
        store.delete_prefix(b"b/")  # a transaction of its own; bytes work as well as str
        assert list(store.keys()) == ["a", "b", "b0", "c"]
        store.delete_prefix("nothing-here")  # no match is fine
    with walstore.open(store_path, read_only=True) as again:
        assert list(again.keys()) == ["a", "b", "b0", "c"]


def test_a_range_deletion_rolls_back_with_its_transaction(store_path):
    with walstore.open(store_path) as store:
        store.update(NEIGHBOURS)
        with pytest.raises(RuntimeError):
            with store.transaction() as tx:
                tx.delete_prefix("b")
                tx.delete_range()
                assert list(tx.keys()) == []
                raise RuntimeError("roll back")
        tx = store.transaction()
        tx.delete_range("a", "c")
        tx.rollback()
        assert list(store.keys()) == sorted(NEIGHBOURS)


def test_delete_range_excludes_the_end_and_none_leaves_a_side_open(store_path):
    with walstore.open(store_path) as store:
        store.update({f"k{i}": i for i in range(1, 6)})
        store["z"] = 26
        store.delete_range("k2", "k4")
        assert list(store.keys()) == ["k1", "k4", "k5", "z"]
        store.delete_range(start="k5")
        assert list(store.keys()) == ["k1", "k4"]
        store.delete_range(end="k4")
        assert list(store.keys()) == ["k4"]
        # An empty range removes nothing: the end not after the start, or an empty end.
        store.delete_range("k9", "k1")
        store.delete_range("k4", "k4")
        store.delete_range(end="")
        assert list(store.keys()) == ["k4"]
        # An empty start is the first key (keys are never empty).
        store.update({"a": 1, b"\x00bin": 2})
        store.delete_range("", "k")
        assert list(store.keys()) == ["k4"]
        store.put_bytes(b"\xff\xff", b"last")
        store.delete_range()
        assert list(store.keys()) == []


def test_bad_prefixes_and_bounds_raise_invalid_key_and_change_nothing(store_path):
    too_long = "k" * (walstore.MAX_KEY_BYTES + 1)
    with walstore.open(store_path) as store:
        store.update(NEIGHBOURS)
        with store.transaction() as tx:
            for call in [
                lambda: tx.delete_prefix(""),
                lambda: tx.delete_prefix(too_long),
                lambda: tx.delete_range(too_long, None),
                lambda: tx.delete_range(None, too_long),
            ]:
                with pytest.raises(walstore.InvalidKeyError):
                    call()
            with pytest.raises(ValueError):  # InvalidKeyError is also a ValueError
                tx.delete_prefix(b"")
            with pytest.raises(TypeError):
                tx.delete_prefix(5)  # type: ignore[arg-type]
            tx.delete_prefix("k" * walstore.MAX_KEY_BYTES)  # the longest key is a prefix
        with pytest.raises(walstore.InvalidKeyError):
            store.delete_prefix("")
        assert list(store.keys()) == sorted(NEIGHBOURS)
        tx = store.transaction()
        tx.commit()
        with pytest.raises(walstore.ClosedError):
            tx.delete_prefix("a")
        with pytest.raises(walstore.ClosedError):
            tx.delete_range()
    with walstore.open(store_path, read_only=True) as read_only:
        with pytest.raises(walstore.ReadOnlyError):
            read_only.delete_prefix("b/")
        with pytest.raises(walstore.ReadOnlyError):
            read_only.compact()
    with pytest.raises(walstore.ClosedError):
        store.compact()


def test_reverse_reads_list_keys_in_descending_byte_order_everywhere(store_path):
    with walstore.open(store_path) as store:
        store.update({"b": 2, "d": 4, "p/1": "x", "p/2": "y"})
        store.compact()  # some keys in the files, some only in the log
        store.update({"a": 1, "c": 3, "p/3": "z"})
        store.put_bytes(b"\xff", b"raw")
        store.discard("d")
        expected = ["a", "b", "c", "p/1", "p/2", "p/3", b"\xff"]
        assert list(store.keys()) == expected
        assert list(store.keys(reverse=True)) == expected[::-1]
        assert list(reversed(store)) == expected[::-1]
        assert list(store.keys("p/", reverse=True)) == ["p/3", "p/2", "p/1"]
        assert list(store.items(prefix="p/", reverse=True)) == [("p/3", "z"), ("p/2", "y"), ("p/1", "x")]
        assert list(store.values("p/", reverse=True)) == ["z", "y", "x"]
        assert list(store.items_bytes(reverse=True))[0] == (b"\xff", b"raw")
        assert list(store.keys("q", reverse=True)) == []
        with store.snapshot() as snap:
            store["e"] = 5  # after the snapshot: not in it
            assert list(snap.keys(reverse=True)) == expected[::-1]
            assert list(reversed(snap)) == expected[::-1]
        with store.transaction() as tx:
            tx["c2"] = "own write"
            tx.discard("b")
            tx.delete_prefix("p/")
            assert list(tx.keys(reverse=True)) == [b"\xff", "e", "c2", "c", "a"]
            assert list(tx.items("c", reverse=True)) == [("c2", "own write"), ("c", 3)]
            assert list(tx.items_bytes(reverse=True))[0] == (b"\xff", b"raw")
        with pytest.raises(TypeError):
            store.keys("p/", True)  # type: ignore[misc]  # reverse is keyword-only


def test_compact_merges_every_run_into_one_and_keeps_the_data(store_path, cli):
    with walstore.open(store_path) as store:
        first = store.compact()
        assert first == []  # nothing written yet: no runs
        store.update({f"doomed/{i:03}": "v" * 100 for i in range(200)})
        store["kept"] = 1
        once = store.compact()
        assert len(once) == 1 and once[0].runs_merged == 1, once
        store.delete_prefix("doomed/")
        store["later"] = 2
        merges = store.compact()
        assert len(merges) == 1, merges
        merge = merges[0]
        assert isinstance(merge, walstore.MergeStats)
        # The run of the first compaction and the run of the checkpoint before this merge.
        assert merge.runs_merged == 2 and merge.bottom is True
        assert merge.files_written >= 1
        assert merge.bytes_written < merge.bytes_read / 10, merge
        assert merge._asdict().keys() == {
            "runs_merged",
            "files_read",
            "files_written",
            "bytes_read",
            "bytes_written",
            "bottom",
        }
        assert list(store.items()) == [("kept", 1), ("later", 2)]
    answer = info(cli, store_path)
    assert answer["runs"] == 1, answer
    assert sum(f["entries"] for f in answer["snapshot_files"]) == 2, answer
    with walstore.open(store_path) as again:
        assert list(again.items()) == [("kept", 1), ("later", 2)]
