"""The change feed: ``Store.changes`` and the consumer, retention and replica methods
(``FeedMethods``, a base of ``walstore.Store``), and ``walstore.apply``.

Records carry keys and values as ``bytes``, exactly as stored (never decoded), so that a
record read from one store applies unchanged to another.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

from . import _native
from ._mapping import Key, _key

#: A key and its value (None: deleted), or a range's start and excluded end (None: no end).
Pair = Tuple[bytes, Optional[bytes]]


class FeedRecord(NamedTuple):
    """One committed transaction's changes (under the feed's prefix).

    ``range_deletes``: ``(start, end)`` pairs, ``end`` excluded (None: to the last key),
    applied before the writes. ``writes``: ``(key, value)`` pairs in commit order, ``value``
    None for a delete."""

    txn_id: int
    range_deletes: List[Pair]
    writes: List[Pair]


class ApplyStats(NamedTuple):
    """What ``walstore.apply`` did: records applied, records skipped (at or below the
    replica's position), and the source transaction the replica has applied through."""

    applied: int
    skipped: int
    position: int


def _prefix(prefix: Optional[Key]) -> bytes:
    return _key(prefix or b"")


def _record(raw: Optional[Tuple[int, List[Pair], List[Pair]]]) -> Optional[FeedRecord]:
    return None if raw is None else FeedRecord(*raw)


class Changes:
    """The committed transactions after a given one, in commit order, made by any thread or
    process, one ``FeedRecord`` each; only durable commits (a ``buffered`` one once it was
    synced). Transactions without a change under the prefix are passed over.

    Iterating blocks until the next record (``for record in store.changes(since=n):``), with
    the GIL released; Ctrl-C raises ``KeyboardInterrupt`` within 0.1 s. ``next(timeout)``
    waits at most ``timeout`` seconds and returns None if nothing came; ``try_next()`` does
    not wait. ``position`` is the last transaction passed: a new feed ``since=position``
    resumes exactly here. A context manager: ``close()`` at the end of the block.
    """

    def __init__(self, native: _native.NativeChanges) -> None:
        self._native = native

    def next(self, timeout: Optional[float] = None) -> Optional[FeedRecord]:
        """The next record, waiting at most ``timeout`` seconds (None: until one comes);
        None if none came in time."""
        return _record(self._native.next(timeout))

    def try_next(self) -> Optional[FeedRecord]:
        """The next record if one is durable now, else None, without waiting."""
        return _record(self._native.next(0.0))

    def __iter__(self) -> "Changes":
        return self

    def __next__(self) -> FeedRecord:
        record = _record(self._native.next(None))
        assert record is not None  # without a timeout, next() returns only with a record
        return record

    @property
    def position(self) -> int:
        """The last transaction id passed (returned, or passed over): resume after it."""
        return self._native.position

    @property
    def prefix(self) -> bytes:
        return self._native.prefix

    def close(self) -> None:
        """Ends the feed; later calls raise ``ClosedError`` (closing twice is fine)."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __enter__(self) -> "Changes":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<walstore.Changes of {self.prefix!r} (closed)>"
        return f"<walstore.Changes of {self.prefix!r} at {self.position}>"


class FeedMethods:
    """The change feed's methods of ``walstore.Store`` (docs/PYTHON.md, "Change feed")."""

    _native: Any

    def _not_nested(self) -> None:  # pragma: no cover - Store's own is used
        pass

    def changes(self, prefix: Optional[Key] = b"", since: int = 0) -> Changes:
        """The changes to keys starting with ``prefix`` committed after transaction ``since``
        (0: from the first one the store holds). ``FeedGapError`` (when reading) if a
        checkpoint folded away transactions the store did not keep."""
        return Changes(_native.feed_changes(self._native, _prefix(prefix), since))

    def consumer_changes(self, name: str, prefix: Optional[Key] = b"") -> Changes:
        """The changes after consumer ``name``'s last acknowledged transaction
        (``InvalidConsumerError`` if it is not registered)."""
        return Changes(_native.feed_consumer_changes(self._native, name, _prefix(prefix)))

    def register_consumer(self, name: str, after: Optional[int] = None) -> int:
        """Registers consumer ``name`` (kept in the store, for every process), positioned
        after transaction ``after`` (None: after the newest commit); returns its position.
        Checkpoints keep the log it has not acknowledged (within the retention bounds)."""
        self._not_nested()
        return _native.feed_register(self._native, name, after)

    def ack(self, name: str, txn: int) -> None:
        """Consumer ``name`` has processed every transaction through ``txn`` (durable on
        return; never moves back, nor past the newest commit)."""
        self._not_nested()
        _native.feed_ack(self._native, name, txn)

    def unregister_consumer(self, name: str) -> None:
        """Removes consumer ``name``: the log kept only for it goes at the next checkpoint."""
        self._not_nested()
        _native.feed_unregister(self._native, name)

    def consumer(self, name: str) -> Optional[int]:
        """Consumer ``name``'s last acknowledged transaction, None if it is not registered."""
        return _native.feed_consumer(self._native, name)

    def set_retention(
        self,
        *,
        keep_bytes: Optional[int] = None,
        max_bytes: Optional[int] = None,
        max_age: Optional[float] = None,
    ) -> None:
        """Sets the fields of the retention policy given (the others are kept): sealed log
        kept whether or not a consumer needs it (``keep_bytes``), and the most kept even for
        consumers (``max_bytes``, ``max_age`` in seconds)."""
        self._not_nested()
        _native.feed_set_retention(self._native, keep_bytes, max_bytes, max_age)

    def feed_state(self) -> Dict[str, Any]:
        """The feed's durable state: ``keep_bytes``, ``max_bytes``, ``max_age`` (seconds),
        ``consumers`` (name: position), ``segments`` (dicts: ``generation``, ``first_txn``,
        ``last_txn``, ``bytes``, ``sealed_at``), ``applied`` (a replica's position or None)
        and ``retained_bytes``."""
        keep, most, age, consumers, segments, applied, retained = _native.feed_state(
            self._native
        )
        names = ("generation", "first_txn", "last_txn", "bytes", "sealed_at")
        return {
            "keep_bytes": keep,
            "max_bytes": most,
            "max_age": age,
            "consumers": dict(consumers),
            "segments": [dict(zip(names, s)) for s in segments],
            "applied": applied,
            "retained_bytes": retained,
        }

    def applied_position(self) -> int:
        """For a replica: the source transaction applied through (before any apply, this
        store's own last transaction: a backup of the source starts at the backup's)."""
        return _native.feed_applied_position(self._native)


RecordLike = Union[FeedRecord, Tuple[int, Iterable[Pair], Iterable[Pair]]]


def apply(store: FeedMethods, records: Iterable[RecordLike]) -> ApplyStats:
    """Applies records of another store's feed (``FeedRecord`` or ``(txn_id, range_deletes,
    writes)`` tuples, in the source's commit order) to ``store``, a replica, in one durable
    transaction; records at or below its position are skipped, so applying a stream twice
    changes nothing. ``records`` must end (take a finite part of a blocking ``Changes``)."""
    batch = [(int(t), list(rd), list(w)) for t, rd, w in records]
    store._not_nested()
    return ApplyStats(*_native.feed_apply(store._native, batch))
