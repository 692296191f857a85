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
    "UnsupportedFormatError",
    "StorageError",
    "InvalidKeyError",
    "ValueTooLargeError",
    "TypeMismatchError",
    "ClosedError",
]


class Error(Exception):
    """Base class of every walstore exception."""


class BusyError(Error):
    """Another writer held the lock for longer than ``wait`` seconds: retry later."""


class CorruptionError(Error):
    """Durable bytes no longer check out. Nothing on disk was changed.

    ``file`` is the damaged file and ``offset`` the byte offset of the first damage found
    (``walstore verify STORE`` lists every damaged file).
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
    """The path exists and holds something that is not a walstore store."""


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
    read it with ``get_bytes``."""


class ClosedError(Error, ValueError):
    """The store was closed, or the transaction or snapshot has ended."""
