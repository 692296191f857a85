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
...     store.items(prefix="server.")
[('server.namespace', 'prod'), ('server.url', 'https://example.net')]

Keys are ``str`` (stored as UTF-8) or ``bytes``. Values written with ``x[key] = value`` are
*typed*: None, bool, int (64-bit), float, str, bytes, list/tuple and dict with str keys,
nested, stored as MessagePack, the same bytes Rust's ``put_as`` writes and ``walstore get
--json`` prints as JSON. ``put_bytes``/``get_bytes`` store bytes as they are.

See docs/PYTHON.md in the walstore repository.
"""

from __future__ import annotations

import os
from typing import (
    Any,
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
from ._errors import (
    BusyError,
    ClosedError,
    CorruptionError,
    Error,
    ForkedError,
    InvalidKeyError,
    NotAStoreError,
    PoisonedError,
    ReadOnlyError,
    StorageError,
    TypeMismatchError,
    UnsupportedFormatError,
    ValueTooLargeError,
)

__all__ = [
    "open",
    "Store",
    "Transaction",
    "Snapshot",
    "Watch",
    "MergeStats",
    "encode",
    "decode",
    "MAX_KEY_BYTES",
    "MAX_VALUE_BYTES",
    "Error",
    "BusyError",
    "ClosedError",
    "CorruptionError",
    "ForkedError",
    "InvalidKeyError",
    "NotAStoreError",
    "PoisonedError",
    "ReadOnlyError",
    "StorageError",
    "TypeMismatchError",
    "UnsupportedFormatError",
    "ValueTooLargeError",
]

Key = Union[str, bytes]

#: Longest key, in bytes.
MAX_KEY_BYTES: int = _native.MAX_KEY_BYTES
#: Longest value, in bytes (after encoding).
MAX_VALUE_BYTES: int = _native.MAX_VALUE_BYTES

_MISSING: Any = object()


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
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    encoded = [(_key(k), encode(v)) for k, v in items]
    encoded.extend((_key(k), encode(v)) for k, v in kwargs.items())
    return encoded


class _Reads:
    """The read methods shared by ``Store``, ``Transaction`` and ``Snapshot``."""

    def _get(self, key: bytes) -> Optional[bytes]:
        raise NotImplementedError

    def _scan(self, prefix: bytes, reverse: bool) -> List[Tuple[bytes, bytes]]:
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

    def __contains__(self, key: Key) -> bool:
        return self._get(_key(key)) is not None

    def keys(self, prefix: Optional[Key] = None, *, reverse: bool = False) -> List[Key]:
        """Keys (starting with ``prefix``), sorted by their bytes (descending if
        ``reverse``)."""
        return [_out_key(k) for k, _ in self._scan(_key(prefix or b""), reverse)]

    def items(
        self, prefix: Optional[Key] = None, *, reverse: bool = False
    ) -> List[Tuple[Key, Any]]:
        """``(key, typed value)`` pairs (keys starting with ``prefix``), sorted by key
        (descending if ``reverse``)."""
        return [
            (_out_key(k), _native.decode(v))
            for k, v in self._scan(_key(prefix or b""), reverse)
        ]

    def values(self, prefix: Optional[Key] = None, *, reverse: bool = False) -> List[Any]:
        """Typed values (of keys starting with ``prefix``), in key order (descending if
        ``reverse``)."""
        return [_native.decode(v) for _, v in self._scan(_key(prefix or b""), reverse)]

    def items_bytes(
        self, prefix: Optional[Key] = None, *, reverse: bool = False
    ) -> List[Tuple[Key, bytes]]:
        """``(key, stored bytes)`` pairs, sorted by key (descending if ``reverse``): for
        values not written typed."""
        return [(_out_key(k), v) for k, v in self._scan(_key(prefix or b""), reverse)]

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys())

    def __reversed__(self) -> Iterator[Key]:
        return iter(self.keys(reverse=True))


class Snapshot(_Reads):
    """A consistent, read-only view of the store as of the moment it began: every commit
    before (by any process), nothing after. Never blocks writers. A context manager."""

    def __init__(self, native: _native.NativeRead) -> None:
        self._native: Optional[_native.NativeRead] = native

    def _read(self) -> _native.NativeRead:
        if self._native is None:
            raise ClosedError("the snapshot has been closed")
        return self._native

    def _get(self, key: bytes) -> Optional[bytes]:
        return self._read().get(key)

    def _scan(self, prefix: bytes, reverse: bool) -> List[Tuple[bytes, bytes]]:
        return self._read().scan(prefix, reverse)

    @property
    def txn_id(self) -> int:
        """Id of the last transaction this snapshot includes (0 for an empty store)."""
        return self._read().txn_id

    def close(self) -> None:
        """Releases the snapshot (later reads raise ``ClosedError``)."""
        self._native = None

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class Transaction(_Reads):
    """The one write transaction of the store at this moment, across threads and processes.

    Reads see the newest committed state plus this transaction's own writes. Used as
    ``with store.transaction() as tx:`` it commits when the block ends normally and rolls back
    when it raises. Outside a ``with`` block, call ``commit()`` or ``rollback()``.
    """

    def __init__(self, native: _native.NativeWrite) -> None:
        self._native = native

    def _get(self, key: bytes) -> Optional[bytes]:
        return self._native.get(key)

    def _scan(self, prefix: bytes, reverse: bool) -> List[Tuple[bytes, bytes]]:
        return self._native.scan(prefix, reverse)

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

    def update(self, mapping: Any = (), **kwargs: Any) -> None:
        """Sets every key of ``mapping`` (or of the ``(key, value)`` pairs) and ``kwargs``."""
        for key, data in _pairs(mapping, kwargs):
            self._native.put(key, data)

    def commit(self) -> None:
        """Commits every write at once, durably as the store's durability says. Ends the
        transaction, also when it fails (then nothing is acknowledged)."""
        self._native.commit()

    def rollback(self) -> None:
        """Discards every write and releases the writer lock (no error if already ended)."""
        self._native.rollback()

    @property
    def ended(self) -> bool:
        """Whether the transaction was committed or rolled back."""
        return self._native.ended

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._native.ended:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()


class Watch:
    """The changes under a prefix committed after ``Store.watch`` was called, by any thread
    or process, as ``(key, value)`` tuples: ``value`` is None for a deletion.

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
            value = _native.decode(value)
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


class Store(_Reads):
    """An open store; create it with ``walstore.open``. Safe to share between threads.

    Mapping methods on the store run each in its own transaction (writes) or snapshot
    (reads). A context manager: ``close()`` at the end of the block.
    """

    def __init__(self, native: _native.NativeStore, path: str) -> None:
        self._native = native
        self.path = path

    def _get(self, key: bytes) -> Optional[bytes]:
        return self._native.get(key)

    def _scan(self, prefix: bytes, reverse: bool) -> List[Tuple[bytes, bytes]]:
        return self._native.scan(prefix, reverse)

    def transaction(self, *, durability: Optional[str] = None) -> Transaction:
        """Begins the write transaction, waiting for the writer lock as ``wait`` said
        (``BusyError`` after that). ``durability`` overrides the store's for this one."""
        tx = Transaction(self._native.begin_write())
        if durability is not None:
            try:
                tx._native.set_durability(durability)
            except BaseException:
                tx.rollback()
                raise
        return tx

    def snapshot(self) -> Snapshot:
        """A consistent read snapshot (a context manager)."""
        return Snapshot(self._native.begin_read())

    def watch(self, prefix: Optional[Key] = None, *, raw: bool = False) -> Watch:
        """A ``Watch`` of the keys starting with ``prefix`` (every key if None or empty):
        the changes committed from now on, by any thread or process, as ``(key, value)``.
        Values are decoded as ``store[key]`` decodes them (``TypeMismatchError`` for bytes
        that are not a typed value: that change is then skipped), or are the stored bytes
        with ``raw=True``."""
        return Watch(self._native.watch(_key(prefix or b"")), raw)

    def __setitem__(self, key: Key, value: Any) -> None:
        self._native.apply([(_key(key), encode(value))])

    def __delitem__(self, key: Key) -> None:
        with self.transaction() as tx:
            del tx[key]

    def put_bytes(self, key: Key, data: bytes) -> None:
        """Sets ``key`` to ``data`` as it is (no encoding), in a transaction of its own."""
        self._native.apply([(_key(key), bytes(data))])

    def discard(self, key: Key) -> None:
        """Removes ``key`` if present (no error if missing), in a transaction of its own."""
        self._native.apply([(_key(key), None)])

    def update(self, mapping: Any = (), **kwargs: Any) -> None:
        """Writes every key of ``mapping`` (or of the ``(key, value)`` pairs) and ``kwargs``
        in one transaction: all of them or none. Every value is encoded first, so a value
        that cannot be stored raises ``TypeError`` before anything is written."""
        self._native.apply(_pairs(mapping, kwargs))

    def delete_prefix(self, prefix: Key) -> None:
        """``Transaction.delete_prefix`` in a transaction of its own."""
        with self.transaction() as tx:
            tx.delete_prefix(prefix)

    def delete_range(self, start: Optional[Key] = None, end: Optional[Key] = None) -> None:
        """``Transaction.delete_range`` in a transaction of its own."""
        with self.transaction() as tx:
            tx.delete_range(start, end)

    def compact(self) -> List[MergeStats]:
        """Checkpoints, then merges every sorted run of snapshot files into one, dropping
        deleted keys and overwritten values, so the files hold only live data. Readers and
        writers (threads and processes) go on meanwhile; the writer lock is waited for as
        ``wait`` says. Returns one ``MergeStats`` per merge: an empty list when the store has
        no data files, or when another handle (another process, or this store's own
        background checkpointer) was merging at that moment."""
        return [MergeStats(*merge) for merge in self._native.compact()]

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
        state = "closed" if self.closed else "open"
        return f"<walstore.Store {self.path!r} ({state})>"


def open(
    path: Union[str, "os.PathLike[str]"],
    *,
    durability: str = "immediate",
    wait: Optional[float] = None,
    read_only: bool = False,
) -> Store:
    """Opens the store in directory ``path``, creating it if missing (unless ``read_only``).

    ``durability``: ``"immediate"`` (a commit returns after ``fdatasync``: it survives a power
    cut) or ``"buffered"`` (it survives a crash of the process; ``sync()``/``close()`` make it
    durable). ``wait``: seconds to wait for the writer lock (None: forever; 0: ``BusyError``
    at once when another writer holds it). ``read_only``: no writes, nothing on disk changes.
    """
    fspath = os.fspath(path)
    return Store(_native.open_store(fspath, durability, wait, read_only), fspath)
