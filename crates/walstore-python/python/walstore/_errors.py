"""The exceptions of walstore, grouped by what the caller can do about them.

Defined in Python (not in the native module) because ``StorageError`` derives from both
``walstore.Error`` and ``OSError``; the native module looks these classes up by name.
"""

from __future__ import annotations

__all__ = [
    "Error",
    "BusyError",
    "CorruptionError",
    "PoisonedError",
    "ReadOnlyError",
    "ForkedError",
    "NotAStoreError",
    "StoreNotFoundError",
    "NestedTransactionError",
    "UnsupportedFormatError",
    "StorageError",
    "InvalidKeyError",
    "ValueTooLargeError",
    "TypeMismatchError",
    "ClosedError",
    "FeedGapError",
    "InvalidConsumerError",
]


class Error(Exception):
    """Base class of every walstore exception."""


class BusyError(Error, TimeoutError):
    """Another writer held the lock for longer than ``wait`` seconds: retry later. Also a
    ``TimeoutError``, as ``filelock.Timeout`` is."""


class CorruptionError(Error):
    """Durable bytes no longer check out. Nothing on disk was changed.

    ``file`` is the damaged file and ``offset`` the byte offset of the first damage found
    (``walstore verify STORE`` lists every damaged file; ``walstore.open(path, salvage=True)``
    reads what is intact).
    """

    def __init__(self, message: str, file: str, offset: int) -> None:
        super().__init__(message)
        self.file = file
        self.offset = offset


class PoisonedError(Error):
    """An earlier write or fsync failed; open the store again to continue."""


class ReadOnlyError(Error):
    """A write on a store opened with ``read_only=True``."""


class ForkedError(Error):
    """A store (or transaction) opened before ``fork()`` was used in the child: open it again."""


class NotAStoreError(Error):
    """The path holds something that is not a walstore store, or (``StoreNotFoundError``)
    nothing at all."""


class StoreNotFoundError(NotAStoreError, FileNotFoundError):
    """A store opened with ``read_only=True`` (or ``salvage=True``) does not exist: a
    ``NotAStoreError`` that is also a ``FileNotFoundError`` (``errno.ENOENT``, ``filename``)."""


class NestedTransactionError(Error, RuntimeError):
    """A write through the store (``store[k] = v``, ``update``, a second ``transaction()``,
    ``compact``...) in a thread that holds an open write transaction of the same store.

    Raised at once: the write would otherwise wait for a writer lock that this thread holds.
    Write through the open transaction (``tx[k] = v``) instead, or end it first. sqlite3 does
    the same for a second ``BEGIN`` on one connection."""


class UnsupportedFormatError(Error):
    """The store was written by a format version this build does not read."""


class StorageError(Error, OSError):
    """An operating-system I/O call failed; ``errno`` says why (``errno.ENOSPC``: disk full).

    After a failed write or sync the store is poisoned: open it again once the cause is fixed.
    """


class InvalidKeyError(Error, ValueError):
    """A key is empty or longer than ``walstore.MAX_KEY_BYTES``."""


class ValueTooLargeError(Error, ValueError):
    """A value is longer than ``walstore.MAX_VALUE_BYTES``."""


class TypeMismatchError(Error, ValueError):
    """A stored value is not a typed value (for example text written by ``walstore set``):
    read it with ``get_bytes``. Listings (``items()``, ``values()``, ``Watch``) do not raise
    it: they return such a value as ``bytes``."""


class ClosedError(Error, ValueError):
    """The store was closed, or the transaction or snapshot has ended."""


class FeedGapError(Error):
    """The change feed no longer holds the transactions asked for: a checkpoint folded them
    away and the store did not keep their log. ``wanted`` is the transaction asked for,
    ``oldest`` the oldest after it that the feed holds.

    Start over from a snapshot (``Store.backup`` gives a copy at a transaction id) and read
    the feed from that id; a registered consumer, or ``set_retention(keep_bytes=...)``, keeps
    the log for next time."""

    def __init__(self, message: str, wanted: int, oldest: int) -> None:
        super().__init__(message)
        self.wanted = wanted
        self.oldest = oldest


class InvalidConsumerError(Error, ValueError):
    """A change feed consumer operation was refused: an unknown, duplicate or invalid name
    (empty, over 128 bytes), or an ``ack`` that would move it back or past the newest commit.
    ``name`` and ``reason`` say which and why."""

    def __init__(self, message: str, name: str, reason: str) -> None:
        super().__init__(message)
        self.name = name
        self.reason = reason
