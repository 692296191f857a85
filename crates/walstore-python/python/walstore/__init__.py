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
    List,
    NamedTuple,
    Optional,
    Tuple,
    Union,
)

from . import _native
from ._feed import ApplyStats, Changes, FeedMethods, FeedRecord, apply
from ._mapping import (
    Key,
    Snapshot,
    Transaction,
    _MISSING,
    _Reads,
    _key,
    _open_writes,
    _out_key,
    _pairs,
)
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

#: Longest key, in bytes.
MAX_KEY_BYTES: int = _native.MAX_KEY_BYTES
#: Longest value, in bytes (after encoding).
MAX_VALUE_BYTES: int = _native.MAX_VALUE_BYTES


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
        bytes of log since the last checkpoint, up to its last transaction with writes; ``runs``: sorted runs of snapshot files;
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
        """Makes this handle's commits durable, marks the log clean if no other handle (in any
        process) has the store open, and closes. Reports a failure (``StorageError``). Later
        calls raise ``ClosedError``; closing twice is fine."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    @property
    def read_only(self) -> bool:
        return self._native.read_only

    @property
    def holds_unfolded_log(self) -> bool:
        """Whether this handle read more of the log into memory of its own than a clean close
        leaves: a store a process left without closing (killed, or a power cut), opened
        read-only with no other handle. Every later read-only process that opens it alone reads
        that log again, until a read-write ``open`` folds it (once; ``walstore get`` and the
        other reading commands of the CLI do it after answering)."""
        return self._native.holds_unfolded_log

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
