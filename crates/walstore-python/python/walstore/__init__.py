"""walstore: an embedded, transactional, crash-safe key-value store.

Several values change together or not at all; several threads and processes can do
read-modify-write on one store without losing an update; a kill, a full disk or a power cut
never leaves a torn file.

>>> import walstore
>>> with walstore.open("state") as store:                       # doctest: +SKIP
...     with store.transaction() as tx:   # commits at the end, rolls back on an exception
...         tx["server.url"] = "https://example.net"
...         tx["server.namespace"] = "prod"
...     store["hits"] = 1
...     list(store.items(prefix="server."))
[('server.namespace', 'prod'), ('server.url', 'https://example.net')]

Keys are ``str`` (stored as UTF-8) or ``bytes``. Values written with ``x[key] = value`` are
*typed*: None, bool, int (64-bit), float, str, bytes, list/tuple and dict with str keys,
nested, stored as MessagePack, the same bytes Rust's ``put_as`` writes and ``walstore get
--json`` prints as JSON. ``put_bytes``/``get_bytes`` store bytes as they are.

See docs/PYTHON.md in the walstore repository.
"""

from __future__ import annotations

import collections.abc
import errno
import os
import threading
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from . import _native
from ._feed import ApplyStats, Changes, FeedMethods, FeedRecord, apply
from ._errors import (
    BusyError,
    ClosedError,
    CorruptionError,
    Error,
    FeedGapError,
    ForkedError,
    InvalidConsumerError,
    InvalidKeyError,
    NestedTransactionError,
    NotAStoreError,
    PoisonedError,
    ReadOnlyError,
    StorageError,
    StoreNotFoundError,
    TypeMismatchError,
    UnsupportedFormatError,
    ValueTooLargeError,
)

__all__ = [
    "open",
    "verify",
    "apply",
    "Changes",
    "FeedRecord",
    "ApplyStats",
    "Store",
    "Transaction",
    "Snapshot",
    "Watch",
    "MergeStats",
    "CheckpointStats",
    "BackupStats",
    "encode",
    "decode",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "Error",
    "BusyError",
    "ClosedError",
    "CorruptionError",
    "FeedGapError",
    "ForkedError",
    "InvalidConsumerError",
    "InvalidKeyError",
    "NestedTransactionError",
    "NotAStoreError",
    "PoisonedError",
    "ReadOnlyError",
    "StorageError",
    "StoreNotFoundError",
    "TypeMismatchError",
    "UnsupportedFormatError",
    "ValueTooLargeError",
]

#: The package's version (the walstore crates' version).
__version__: str = _native.__version__

Key = Union[str, bytes]

#: Longest key, in bytes.
MAX_KEY_BYTES: int = _native.MAX_KEY_BYTES
#: Longest value, in bytes (after encoding).
MAX_VALUE_BYTES: int = _native.MAX_VALUE_BYTES

_MISSING: Any = object()

#: Entries fetched by the first page of a listing, and at most by a later one (each page is
#: four times the one before): the first ten keys of a large store cost one small page.
_FIRST_PAGE = 16
_MAX_PAGE = 4096


class MergeStats(NamedTuple):
    """One merge done by ``Store.compact()``."""

    #: Runs (sets of snapshot files, one per checkpoint or earlier merge) merged into one.
    runs_merged: int
    #: Snapshot files read.
    files_read: int
    #: Snapshot files written.
    files_written: int
    #: Bytes read from the merged runs.
    bytes_read: int
    #: Bytes written.
    bytes_written: int
    #: Whether the oldest run was merged, so deleted keys left the files for good.
    bottom: bool


class CheckpointStats(NamedTuple):
    """What ``Store.checkpoint()`` did."""

    #: Checkpoint generation after it.
    generation: int
    #: Last transaction folded into the snapshot files.
    txn_id: int
    #: Keys changed since the previous checkpoint.
    keys_changed: int
    #: Snapshot files written.
    files_written: int
    #: Snapshot files kept unchanged.
    files_kept: int
    #: Bytes written to snapshot files.
    bytes_written: int
    #: Log bytes folded.
    wal_bytes: int
    #: Wall time in microseconds.
    micros: int


class BackupStats(NamedTuple):
    """What ``Store.backup()`` copied."""

    #: Last transaction included.
    txn_id: int
    #: Keys copied.
    keys: int
    #: Bytes of keys and values copied.
    bytes: int
    #: Snapshot files written.
    files: int


def encode(value: Any) -> bytes:
    """The typed encoding of ``value`` (MessagePack; docs/VALUES.md).

    Raises ``TypeError`` for a type that cannot be stored, ``OverflowError`` for an int beyond
    64 bits.
    """
    return _native.encode(value)


def decode(data: bytes) -> Any:
    """The value of a typed encoding. Raises ``TypeMismatchError`` unless ``data`` is exactly
    one typed value (decimal text such as ``b"200"`` is not)."""
    return _native.decode(data)


def _key(key: Key) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"keys are str or bytes, not {type(key).__name__}")


def _out_key(raw: bytes) -> Key:
    """A stored key as Python sees it: ``str`` when it is UTF-8, else ``bytes``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _pairs(
    mapping: Union[Mapping[Key, Any], Iterable[Tuple[Key, Any]]], kwargs: Dict[str, Any]
) -> List[Tuple[bytes, bytes]]:
    if isinstance(mapping, collections.abc.Mapping):
        items: Iterable[Tuple[Key, Any]] = mapping.items()
    elif hasattr(mapping, "keys"):
        items = ((k, mapping[k]) for k in mapping.keys())  # type: ignore[index]
    else:
        items = mapping
    encoded = [(_key(k), encode(v)) for k, v in items]
    encoded.extend((_key(k), encode(v)) for k, v in kwargs.items())
    return encoded


def _successor(prefix: bytes) -> Optional[bytes]:
    """The first key after every key that starts with ``prefix`` (None: there is none)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _bounds(
    prefix: Optional[Key], start: Optional[Key], stop: Optional[Key]
) -> Tuple[Optional[bytes], Optional[bytes]]:
    """A listing's keys as a range: from the lower bound (included; None: the first key) to
    the upper (excluded; None: the last key)."""
    lo: Optional[bytes] = None
    hi: Optional[bytes] = None
    if prefix:
        lo = _key(prefix)
        hi = _successor(lo)
    if start is not None:
        s = _key(start)
        lo = s if lo is None else max(lo, s)
    if stop is not None:
        t = _key(stop)
        hi = t if hi is None else min(hi, t)
    return lo or None, hi


def _entries(
    view: Any,
    prefix: Optional[Key],
    start: Optional[Key],
    stop: Optional[Key],
    reverse: bool,
    limit: Optional[int],
) -> Iterator[Tuple[bytes, bytes]]:
    """The ``(key, stored bytes)`` pairs of ``view`` (a native snapshot or transaction) in a
    listing's range, fetched a page at a time: a page starts after the last key of the one
    before, in the same view, so the listing sees one state however slowly it is read."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be None or >= 0, not {limit}")
    lo, hi = _bounds(prefix, start, stop)
    return _pages(view, lo, hi, reverse, limit)


def _pages(
    view: Any,
    lo: Optional[bytes],
    hi: Optional[bytes],
    reverse: bool,
    limit: Optional[int],
) -> Iterator[Tuple[bytes, bytes]]:
    lo_excl = False
    size = _FIRST_PAGE
    remaining = limit
    while remaining is None or remaining > 0:
        want = size if remaining is None else min(size, remaining)
        page = view.page(lo, lo_excl, hi, reverse, want)
        yield from page
        if len(page) < want:
            return
        if remaining is not None:
            remaining -= len(page)
        last = page[-1][0]
        if reverse:
            hi = last
        else:
            lo, lo_excl = last, True
        size = min(size * 4, _MAX_PAGE)


# Open write transactions by (store directory, thread): a write through a store in a thread
# that holds one of that store's transactions raises `NestedTransactionError` instead of
# waiting for itself. Only the thread that began a transaction adds or replaces its entry.
_open_writes: Dict[Tuple[str, int], "weakref.ReferenceType[Transaction]"] = {}


class _Reads(collections.abc.Mapping):  # type: ignore[type-arg]
    """The read methods shared by ``Store``, ``Transaction`` and ``Snapshot``.

    Listings (``keys``, ``values``, ``items``, ``items_bytes``, ``iter()``) are iterators that
    fetch and decode as they go, over one consistent state, in key order (descending with
    ``reverse=True``), limited to keys starting with ``prefix``, from ``start`` (included) to
    ``stop`` (excluded), and to ``limit`` entries.
    """

    # Compared and hashed by identity, as files and connections are (not by contents).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def _get(self, key: bytes) -> Optional[bytes]:
        raise NotImplementedError

    def _view(self) -> Any:
        """The native snapshot or transaction a listing pages through."""
        raise NotImplementedError

    def __getitem__(self, key: Key) -> Any:
        """The typed value of ``key``; ``KeyError`` if missing, ``TypeMismatchError`` if the
        stored bytes are not a typed value."""
        raw = self._get(_key(key))
        if raw is None:
            raise KeyError(key)
        return _native.decode(raw)

    def get(self, key: Key, default: Any = None) -> Any:
        """The typed value of ``key``, or ``default`` if missing."""
        raw = self._get(_key(key))
        return default if raw is None else _native.decode(raw)

    def get_bytes(self, key: Key) -> Optional[bytes]:
        """The stored bytes of ``key`` as they are, or None if missing."""
        return self._get(_key(key))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, bytes, bytearray, memoryview)):
            return False
        return self._get(_key(key)) is not None

    def __len__(self) -> int:
        """The number of keys (counted in one consistent state, without decoding)."""
        return self._view().count(None, None)

    def keys(  # type: ignore[override]
        self,
        prefix: Optional[Key] = None,
        *,
        reverse: bool = False,
        start: Optional[Key] = None,
        stop: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Key]:
        """An iterator of the keys, sorted by their bytes (see the class's docstring)."""
        pairs = _entries(self._view(), prefix, start, stop, reverse, limit)
        return (_out_key(k) for k, _ in pairs)

    def items(  # type: ignore[override]
        self,
        prefix: Optional[Key] = None,
        *,
        reverse: bool = False,
        start: Optional[Key] = None,
        stop: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Tuple[Key, Any]]:
        """An iterator of ``(key, value)`` pairs in key order. A value that is not a typed
        value (text set by ``walstore set``, bytes by ``put_bytes``) comes as ``bytes``."""
        pairs = _entries(self._view(), prefix, start, stop, reverse, limit)
        return ((_out_key(k), _native.decode_or_bytes(v)) for k, v in pairs)

    def values(  # type: ignore[override]
        self,
        prefix: Optional[Key] = None,
        *,
        reverse: bool = False,
        start: Optional[Key] = None,
        stop: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Any]:
        """An iterator of the values in key order (untyped ones as ``bytes``, as ``items``)."""
        pairs = _entries(self._view(), prefix, start, stop, reverse, limit)
        return (_native.decode_or_bytes(v) for _, v in pairs)

    def items_bytes(
        self,
        prefix: Optional[Key] = None,
        *,
        reverse: bool = False,
        start: Optional[Key] = None,
        stop: Optional[Key] = None,
        limit: Optional[int] = None,
    ) -> Iterator[Tuple[Key, bytes]]:
        """An iterator of ``(key, stored bytes)`` pairs in key order (nothing decoded)."""
        pairs = _entries(self._view(), prefix, start, stop, reverse, limit)
        return ((_out_key(k), v) for k, v in pairs)

    def __iter__(self) -> Iterator[Key]:
        return self.keys()

    def __reversed__(self) -> Iterator[Key]:
        return self.keys(reverse=True)


class Snapshot(_Reads):
    """A consistent, read-only view of the store as of the moment it began: every commit
    before (by any process), nothing after. Never blocks writers. A read-only mapping
    (``collections.abc.Mapping``) and a context manager."""

    def __init__(self, native: _native.NativeRead, path: str = "") -> None:
        self._native: Optional[_native.NativeRead] = native
        self._path = path
        self._txn_id = native.txn_id

    def _read(self) -> _native.NativeRead:
        if self._native is None:
            raise ClosedError("the snapshot has been closed")
        return self._native

    def _get(self, key: bytes) -> Optional[bytes]:
        return self._read().get(key)

    def _view(self) -> Any:
        return self._read()

    @property
    def txn_id(self) -> int:
        """Id of the last transaction this snapshot includes (0 for an empty store)."""
        return self._read().txn_id

    def close(self) -> None:
        """Releases the snapshot (later reads raise ``ClosedError``; iterators already made
        go on over their own reference)."""
        self._native = None

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._native is None else "open"
        return f"<walstore.Snapshot of {self._path!r} at txn {self._txn_id} ({state})>"


class Transaction(_Reads, collections.abc.MutableMapping):  # type: ignore[type-arg]
    """The one write transaction of the store at this moment, across threads and processes.

    Reads see the newest committed state plus this transaction's own writes. Used as
    ``with store.transaction() as tx:`` it commits when the block ends normally and rolls back
    when it raises. Outside a ``with`` block, call ``commit()`` or ``rollback()``. A
    ``collections.abc.MutableMapping``. While it is open, a write through the store in the
    thread that began it raises ``NestedTransactionError``: write through ``tx``.
    """

    def __init__(self, native: _native.NativeWrite, path: str = "") -> None:
        self._native = native
        self._path = path
        self._state = "open"
        self._slot: Optional[Tuple[str, int]] = None

    def _end(self, state: str) -> None:
        self._state = state
        slot, self._slot = self._slot, None
        if slot is not None:
            ref = _open_writes.get(slot)
            if ref is not None and ref() is self:
                _open_writes.pop(slot, None)

    def _get(self, key: bytes) -> Optional[bytes]:
        return self._native.get(key)

    def _view(self) -> Any:
        return self._native

    def __setitem__(self, key: Key, value: Any) -> None:
        self._native.put(_key(key), encode(value))

    def __delitem__(self, key: Key) -> None:
        raw = _key(key)
        if self._native.get(raw) is None:
            raise KeyError(key)
        self._native.delete(raw)

    def put_bytes(self, key: Key, data: bytes) -> None:
        """Sets ``key`` to ``data`` as it is (no encoding)."""
        self._native.put(_key(key), bytes(data))

    def discard(self, key: Key) -> None:
        """Removes ``key`` if present (no error if missing)."""
        self._native.delete(_key(key))

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """Removes ``key`` and returns its typed value; ``default`` (or ``KeyError``) if it is
        missing. ``TypeMismatchError`` (nothing removed) if the value is not typed."""
        raw = _key(key)
        data = self._native.get(raw)
        if data is None:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = _native.decode(data)
        self._native.delete(raw)
        return value

    def popitem(self) -> Tuple[Key, Any]:
        """Removes the first key (in key order) and returns ``(key, typed value)``;
        ``KeyError`` if there is none."""
        page = self._native.page(None, False, None, False, 1)
        if not page:
            raise KeyError("popitem(): the store is empty")
        raw, data = page[0]
        value = _native.decode(data)
        self._native.delete(raw)
        return _out_key(raw), value

    def setdefault(self, key: Key, default: Any = None) -> Any:
        """The typed value of ``key``; if missing, sets it to ``default`` and returns that."""
        raw = _key(key)
        data = self._native.get(raw)
        if data is not None:
            return _native.decode(data)
        self._native.put(raw, encode(default))
        return default

    def clear(self) -> None:
        """Removes every key (one range deletion)."""
        self._native.delete_range(None, None)

    def delete_prefix(self, prefix: Key) -> None:
        """Removes every key that starts with ``prefix`` (none is fine): one range deletion,
        one record in the log however many keys it covers. ``InvalidKeyError`` if ``prefix``
        is empty or longer than ``MAX_KEY_BYTES``."""
        self._native.delete_prefix(_key(prefix))

    def delete_range(self, start: Optional[Key] = None, end: Optional[Key] = None) -> None:
        """Removes every key from ``start`` (included) to ``end`` (excluded), in byte order:
        one range deletion. ``None`` (or an empty ``start``) leaves that side open, so
        ``delete_range()`` removes every key. An empty range (``end`` not after ``start``)
        removes nothing. ``InvalidKeyError`` if a bound is longer than ``MAX_KEY_BYTES``."""
        self._native.delete_range(
            None if start is None else _key(start), None if end is None else _key(end)
        )

    def update(self, mapping: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        """Sets every key of ``mapping`` (or of the ``(key, value)`` pairs) and ``kwargs``."""
        for key, data in _pairs(mapping, kwargs):
            self._native.put(key, data)

    def commit(self) -> None:
        """Commits every write at once, durably as the store's durability says. Ends the
        transaction, also when it fails (then nothing is acknowledged)."""
        try:
            self._native.commit()
        except BaseException:
            self._end("failed")
            raise
        self._end("committed")

    def rollback(self) -> None:
        """Discards every write and releases the writer lock (no error if already ended)."""
        self._native.rollback()
        if self._state == "open":
            self._end("rolled back")
        else:
            self._end(self._state)

    @property
    def ended(self) -> bool:
        """Whether the transaction was committed or rolled back."""
        return self._native.ended

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._native.ended:
            self._end(self._state)
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def __repr__(self) -> str:
        return f"<walstore.Transaction of {self._path!r} ({self._state})>"


class Watch:
    """The changes under a prefix committed after ``Store.watch`` was called, by any thread
    or process, as ``(key, value)`` tuples: ``value`` is None for a deletion, and ``bytes`` for
    a value that is not typed (as in ``items()``).

    Iterating blocks until the next change (``for key, value in store.watch("cfg."):``);
    ``next(timeout)`` waits at most ``timeout`` seconds and returns None if nothing changed.
    The GIL is released while waiting, and Ctrl-C raises ``KeyboardInterrupt`` within 0.1 s.
    Changes are coalesced: several commits between two looks report each changed key once,
    with its latest value, and a key changed and changed back is not reported. A context
    manager: ``close()`` at the end of the block.
    """

    def __init__(self, native: _native.NativeWatch, raw: bool) -> None:
        self._native = native
        self._raw = raw

    def _change(self, change: Optional[Tuple[bytes, Optional[bytes], int]]) -> Any:
        if change is None:
            return None
        key, value, _txn = change
        if value is not None and not self._raw:
            value = _native.decode_or_bytes(value)
        return (_out_key(key), value)

    def next(self, timeout: Optional[float] = None) -> Optional[Tuple[Key, Any]]:
        """The next change as ``(key, value)``, waiting at most ``timeout`` seconds (None:
        until one comes); None if none came in time."""
        return self._change(self._native.next(timeout))

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> Tuple[Key, Any]:
        change = self._change(self._native.next(None))
        assert change is not None  # without a timeout, next() returns only with a change
        return change

    @property
    def prefix(self) -> Key:
        """The watched prefix (``str`` when it is UTF-8)."""
        return _out_key(self._native.prefix)

    def close(self) -> None:
        """Ends the watch; later calls raise ``ClosedError`` (closing twice is fine)."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<walstore.Watch of {self.prefix!r} ({state})>"


class Store(FeedMethods, _Reads, collections.abc.MutableMapping):  # type: ignore[type-arg]
    """An open store; create it with ``walstore.open``. Safe to share between threads.

    A ``collections.abc.MutableMapping``: each mapping method runs in its own transaction
    (writes: ``pop``, ``setdefault``, ``popitem`` and ``clear`` are each atomic) or snapshot
    (reads; a listing reads one snapshot however long it is iterated). A context manager:
    ``close()`` at the end of the block. The change feed's methods (``changes``, consumers,
    retention) come from ``FeedMethods``.
    """

    def __init__(self, native: _native.NativeStore, path: str) -> None:
        self._native = native
        self.path = path
        self._ident = os.path.realpath(path)

    def _get(self, key: bytes) -> Optional[bytes]:
        return self._native.get(key)

    def _view(self) -> Any:
        return self._native.begin_read()

    def _not_nested(self) -> None:
        """``NestedTransactionError`` if this thread holds an open write transaction of this
        store (through this or another ``Store`` of the same directory)."""
        ref = _open_writes.get((self._ident, threading.get_ident()))
        tx = ref() if ref is not None else None
        if tx is not None and not tx.ended:
            raise NestedTransactionError(
                f"this thread holds an open write transaction of {self.path!r} ({tx!r}): "
                "write through it (tx[key] = value), or commit or roll it back first"
            )

    def _in_transaction(self, f: Callable[[Transaction], Any]) -> Any:
        with self.transaction() as tx:
            return f(tx)

    def transaction(self, *, durability: Optional[str] = None) -> Transaction:
        """Begins the write transaction, waiting for the writer lock as ``wait`` said
        (``BusyError`` after that; Ctrl-C and other signals are handled while waiting).
        ``durability`` overrides the store's for this one. ``NestedTransactionError`` at once
        if this thread already holds one of this store."""
        self._not_nested()
        tx = Transaction(self._native.begin_write(), self.path)
        if durability is not None:
            try:
                tx._native.set_durability(durability)
            except BaseException:
                tx.rollback()
                raise
        slot = (self._ident, threading.get_ident())
        _open_writes[slot] = weakref.ref(tx)
        tx._slot = slot
        return tx

    def snapshot(self) -> Snapshot:
        """A consistent read snapshot (a context manager)."""
        return Snapshot(self._native.begin_read(), self.path)

    def watch(self, prefix: Optional[Key] = None, *, raw: bool = False) -> Watch:
        """A ``Watch`` of the keys starting with ``prefix`` (every key if None or empty):
        the changes committed from now on, by any thread or process, as ``(key, value)``.
        Values are decoded as ``items()`` decodes them (bytes that are not a typed value come
        as ``bytes``), or are the stored bytes with ``raw=True``."""
        return Watch(self._native.watch(_key(prefix or b"")), raw)

    def __setitem__(self, key: Key, value: Any) -> None:
        self._not_nested()
        self._native.apply([(_key(key), encode(value))])

    def __delitem__(self, key: Key) -> None:
        self._in_transaction(lambda tx: tx.__delitem__(key))

    def put_bytes(self, key: Key, data: bytes) -> None:
        """Sets ``key`` to ``data`` as it is (no encoding), in a transaction of its own."""
        self._not_nested()
        self._native.apply([(_key(key), bytes(data))])

    def discard(self, key: Key) -> None:
        """Removes ``key`` if present (no error if missing), in a transaction of its own."""
        self._not_nested()
        self._native.apply([(_key(key), None)])

    def pop(self, key: Key, default: Any = _MISSING) -> Any:
        """``Transaction.pop`` in a transaction of its own."""
        return self._in_transaction(lambda tx: tx.pop(key, default))

    def popitem(self) -> Tuple[Key, Any]:
        """``Transaction.popitem`` (the first key) in a transaction of its own."""
        return self._in_transaction(lambda tx: tx.popitem())  # type: ignore[no-any-return]

    def setdefault(self, key: Key, default: Any = None) -> Any:
        """``Transaction.setdefault`` in a transaction of its own."""
        return self._in_transaction(lambda tx: tx.setdefault(key, default))

    def clear(self) -> None:
        """Removes every key, in a transaction of its own (one range deletion)."""
        self._in_transaction(lambda tx: tx.clear())

    def update(self, mapping: Any = (), **kwargs: Any) -> None:  # type: ignore[override]
        """Writes every key of ``mapping`` (or of the ``(key, value)`` pairs) and ``kwargs``
        in one transaction: all of them or none. Every value is encoded first, so a value
        that cannot be stored raises ``TypeError`` before anything is written."""
        pairs = _pairs(mapping, kwargs)
        self._not_nested()
        self._native.apply(pairs)

    def delete_prefix(self, prefix: Key) -> None:
        """``Transaction.delete_prefix`` in a transaction of its own."""
        self._in_transaction(lambda tx: tx.delete_prefix(prefix))

    def delete_range(self, start: Optional[Key] = None, end: Optional[Key] = None) -> None:
        """``Transaction.delete_range`` in a transaction of its own."""
        self._in_transaction(lambda tx: tx.delete_range(start, end))

    def compact(self) -> List[MergeStats]:
        """Checkpoints, then merges every sorted run of snapshot files into one, dropping
        deleted keys and overwritten values, so the files hold only live data. Readers and
        writers (threads and processes) go on meanwhile; the writer lock is waited for as
        ``wait`` says. Returns one ``MergeStats`` per merge: an empty list when the store has
        no data files, or when another handle (another process, or this store's own
        background checkpointer) was merging at that moment. The GIL is released."""
        self._not_nested()
        return [MergeStats(*merge) for merge in self._native.compact()]

    def checkpoint(self) -> CheckpointStats:
        """Folds every committed transaction into snapshot files and cuts the log back
        (``info()["wal_bytes"]`` is then 0). Waits for the writer lock as ``wait`` says; the
        GIL is released. A background thread does this on its own when the log passes 64 MiB."""
        self._not_nested()
        return CheckpointStats(*self._native.checkpoint())

    def backup(self, dest: Union[str, "os.PathLike[str]"]) -> BackupStats:
        """Writes a consistent copy of the store (one snapshot) to directory ``dest``, which
        must not exist or be empty (``NotAStoreError`` otherwise); ``dest`` then opens as a
        store. Writers go on meanwhile; the GIL is released."""
        return BackupStats(*self._native.backup(os.fspath(dest)))

    def info(self) -> Dict[str, Any]:
        """Sizes, generation and counters: the fields of ``walstore info --json`` (``wal_bytes``:
        bytes of log since the last checkpoint; ``runs``: sorted runs of snapshot files;
        ``snapshot_files``: ``{"name", "bytes", "entries"}`` dicts, newest run first; ``feed``:
        ``feed_state()``)."""
        info = dict(self._native.info())
        files = info["snapshot_files"]
        info["snapshot_files"] = [
            {"name": name, "bytes": size, "entries": entries} for name, size, entries in files
        ]
        info["snapshot_bytes"] = sum(size for _, size, _ in files)
        info["feed"] = self.feed_state()
        return info

    def sync(self) -> None:
        """Makes every commit made through this store durable (after ``buffered`` ones)."""
        self._native.sync()

    def close(self) -> None:
        """Makes this handle's commits durable, marks the log clean and closes. Reports a
        failure (``StorageError``). Later calls raise ``ClosedError``; closing twice is fine."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    @property
    def read_only(self) -> bool:
        return self._native.read_only

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            state = "closed"
        else:
            state = "open, read-only" if self.read_only else "open"
        return f"<walstore.Store {self.path!r} ({state})>"


def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    durability: str = "immediate",
    wait: Optional[float] = None,
    read_only: bool = False,
    salvage: bool = False,
) -> Store:
    """Opens the store in directory ``path``, creating it if missing (unless ``read_only``).

    ``durability``: ``"immediate"`` (a commit returns after ``fdatasync``: it survives a power
    cut) or ``"buffered"`` (it survives a crash of the process; ``sync()``/``close()`` make it
    durable). ``wait``: seconds to wait for the writer lock, here and in every write through
    the store (None: forever; 0: ``BusyError`` at once when another writer holds it); signal
    handlers run while waiting and Ctrl-C raises ``KeyboardInterrupt``. ``read_only``: no
    writes, nothing on disk changes (``StoreNotFoundError``, a ``FileNotFoundError``, if
    ``path`` does not exist). ``salvage``: open a damaged store read-only with every intact
    committed transaction (after a ``CorruptionError``).
    """
    fspath = os.fspath(path)
    try:
        native = _native.open_store(fspath, durability, wait, read_only, salvage)
    except NotAStoreError as error:
        if (read_only or salvage) and not os.path.lexists(fspath):
            raise StoreNotFoundError(errno.ENOENT, str(error), fspath) from None
        raise
    return Store(native, fspath)


def verify(path: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """Checks every checksum of every file of the store in ``path`` (as ``walstore verify``),
    with the GIL released; the store may be open meanwhile. Raises ``CorruptionError`` (with
    ``.file`` and ``.offset``) at the first damaged file, ``StoreNotFoundError`` if ``path``
    does not exist. Otherwise returns ``{"bytes_checked": n, "files": [{"name", "bytes",
    "note"}]}``, ``note`` naming a benign finding (a torn tail left by a crash) or None."""
    fspath = os.fspath(path)
    try:
        checked, files = _native.verify(fspath)
    except NotAStoreError as error:
        if not os.path.lexists(fspath):
            raise StoreNotFoundError(errno.ENOENT, str(error), fspath) from None
        raise
    return {
        "bytes_checked": checked,
        "files": [{"name": n, "bytes": b, "note": note} for n, b, note in files],
    }
