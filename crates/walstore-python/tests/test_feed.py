"""The change feed from Python: Store.changes, consumers, retention, walstore.apply."""

from __future__ import annotations

import os
import signal
import threading

import pytest

import walstore

from conftest import unless_done_within
from walstore import FeedRecord

# Long enough for a slow CI machine; a record normally arrives within milliseconds.
WAIT = 60.0


def drain(changes: walstore.Changes) -> list:
    """Every record durable now."""
    records = []
    while (record := changes.try_next()) is not None:
        records.append(record)
    return records


def commit_five(store: walstore.Store) -> None:
    store.put_bytes("a", b"1")
    store.update({"b": 2})
    del store["a"]
    with store.transaction() as tx:
        tx.put_bytes("d2", b"y")
        tx.put_bytes(b"d\xff1", b"x")
    store.delete_range("d", "e")


def test_records_come_in_commit_order_as_stored_bytes(store_path):
    with walstore.open(store_path) as store:
        commit_five(store)
        changes = store.changes()
        records = drain(changes)
        assert [r.txn_id for r in records] == [1, 2, 3, 4, 5]
        assert records[0] == FeedRecord(1, [], [(b"a", b"1")])
        assert records[1].writes == [(b"b", walstore.encode(2))]
        assert records[2] == (3, [], [(b"a", None)])
        assert records[3].writes == [(b"d2", b"y"), (b"d\xff1", b"x")]
        assert records[4] == FeedRecord(5, [(b"d", b"e")], [])
        assert changes.position == 5
        assert changes.next(timeout=0) is None
        # A prefix clips range deletions; since= starts after a transaction.
        assert drain(store.changes("d", since=3)) == [
            FeedRecord(4, [], [(b"d2", b"y"), (b"d\xff1", b"x")]),
            FeedRecord(5, [(b"d", b"e")], []),
        ]
        assert drain(store.changes(b"zzz")) == []
        changes.close()
        with pytest.raises(walstore.ClosedError):
            changes.try_next()


def test_a_consumer_resumes_after_its_last_ack_when_the_store_is_reopened(store_path):
    with walstore.open(store_path) as store:
        store["before"] = 0
        assert store.register_consumer("indexer") == 1
        assert store.register_consumer("early", after=0) == 0
        for i in range(4):
            store[f"k{i}"] = i
        feed = store.consumer_changes("indexer")
        first, second = feed.next(timeout=WAIT), feed.next(timeout=WAIT)
        assert (first.txn_id, second.txn_id) == (2, 3)
        store.ack("indexer", second.txn_id)
        feed.close()
    with walstore.open(store_path) as store:
        assert store.consumer("indexer") == 3
        assert [r.txn_id for r in drain(store.consumer_changes("indexer"))] == [4, 5]
        assert store.feed_state()["consumers"] == {"early": 0, "indexer": 3}
        store.unregister_consumer("early")
        assert store.consumer("early") is None


def test_consumer_refusals_are_invalid_consumer_errors(store_path):
    with walstore.open(store_path) as store:
        store["a"] = 1
        store.register_consumer("c")
        for bad in (
            lambda: store.register_consumer("c"),
            lambda: store.register_consumer(""),
            lambda: store.ack("c", 99),
            lambda: store.ack("nobody", 1),
            lambda: store.unregister_consumer("nobody"),
            lambda: store.consumer_changes("nobody"),
        ):
            with pytest.raises(walstore.InvalidConsumerError) as caught:
                bad()
            assert isinstance(caught.value, ValueError)
            assert isinstance(caught.value, walstore.Error)
        with pytest.raises(walstore.InvalidConsumerError) as caught:
            store.ack("nobody", 1)
        assert caught.value.name == "nobody" and "registered" in caught.value.reason


def test_a_checkpoint_not_kept_makes_the_feed_raise_feed_gap(store_path):
    with walstore.open(store_path) as store:
        store["a"] = 1
        store.checkpoint()
        store["b"] = 2
        with pytest.raises(walstore.FeedGapError) as caught:
            store.changes(since=0).try_next()
        assert (caught.value.wanted, caught.value.oldest) == (1, 2)
        assert isinstance(caught.value, walstore.Error)
        assert [r.txn_id for r in drain(store.changes(since=1))] == [2]
        with pytest.raises(walstore.FeedGapError):
            store.register_consumer("late", after=0)


def test_retention_keeps_the_log_across_checkpoints(store_path):
    with walstore.open(store_path) as store:
        store.set_retention(keep_bytes=10**9)
        store["a"] = 1
        store.checkpoint()
        store["b"] = 2
        state = store.feed_state()
        assert state["keep_bytes"] == 10**9 and state["max_bytes"] == 1 << 30
        assert [(s["first_txn"], s["last_txn"]) for s in state["segments"]] == [(1, 1)]
        assert state["retained_bytes"] == state["segments"][0]["bytes"] > 0
        assert [r.txn_id for r in drain(store.changes())] == [1, 2]
        store.set_retention(max_age=60)
        assert store.feed_state()["max_age"] == 60.0
        assert store.feed_state()["keep_bytes"] == 10**9
        assert store.info()["feed"]["keep_bytes"] == 10**9
        with pytest.raises(ValueError):
            store.set_retention(max_age=-1)


def test_a_replica_made_by_apply_equals_its_source_and_replays_change_nothing(tmp_path):
    with walstore.open(tmp_path / "a") as source, walstore.open(tmp_path / "b") as replica:
        commit_five(source)
        records = drain(source.changes())
        stats = walstore.apply(replica, records)
        assert stats == walstore.ApplyStats(applied=5, skipped=0, position=5)
        assert list(replica.items_bytes()) == list(source.items_bytes())
        assert replica.applied_position() == 5
        last = replica.snapshot().txn_id
        assert walstore.apply(replica, records) == (0, 5, 5)
        assert replica.snapshot().txn_id == last, "nothing was committed"
        source["later"] = 1
        tail = drain(source.changes(since=3))
        assert walstore.apply(replica, [tuple(r) for r in tail]) == (1, 2, 6)
        assert list(replica.items_bytes()) == list(source.items_bytes())
        with pytest.raises(walstore.InvalidKeyError):
            walstore.apply(replica, [FeedRecord(7, [], [(b"", b"v")])])
        assert replica.applied_position() == 6


def test_a_blocking_iterator_wakes_on_a_commit_from_another_thread(store_path):
    with walstore.open(store_path) as store:
        store["old"] = 1
        changes = store.changes(since=1)
        waiting = threading.Event()
        got: list = []

        def consume() -> None:
            waiting.set()
            got.append(next(iter(changes)))

        reader = threading.Thread(target=consume)
        reader.start()
        assert waiting.wait(WAIT)
        # The reader waits with the GIL released: this thread runs and commits meanwhile.
        store.put_bytes("new", b"v")
        reader.join(WAIT)
        assert not reader.is_alive()
        assert got == [FeedRecord(2, [], [(b"new", b"v")])]
        assert changes.position == 2


def test_ctrl_c_interrupts_a_waiting_iterator(store_path, sigint_raises):
    with walstore.open(store_path) as store:
        changes = store.changes()
        # Only if the interrupt never came: a record ends the wait.
        with unless_done_within(WAIT, lambda: store.__setitem__("fallback", 1)):
            with pytest.raises(KeyboardInterrupt):
                threading.Thread(target=lambda: os.kill(os.getpid(), signal.SIGINT)).start()
                next(changes)


def test_closing_the_store_ends_a_waiting_iterator(store_path):
    store = walstore.open(store_path)
    changes = store.changes()
    closer = threading.Thread(target=store.close)
    closer.start()
    with pytest.raises(walstore.ClosedError):
        changes.next(timeout=WAIT)
    closer.join()
    with pytest.raises(walstore.ClosedError):
        store.changes()
