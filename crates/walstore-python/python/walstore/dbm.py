"""A drop-in for the standard library's ``dbm`` modules, over a walstore store.

``walstore.dbm.open(path, flag="r", mode=0o666)`` returns an object with the methods of the
standard ``dbm`` objects: ``d[key]``, ``d[key] = value``, ``del d[key]``, ``key in d``,
``len(d)``, ``keys()`` (a list), ``get``, ``setdefault``, ``firstkey``/``nextkey``, ``sync``,
``close``, and a context manager. Keys and values are ``bytes`` or ``str`` (stored as UTF-8);
they are returned as ``bytes``.

What it adds to ``dbm``: every change made through one object between two ``sync()`` calls
(or between the open and the first ``sync()``, or the last one and ``close()``) commits as
one atomic, durable transaction, and the object's own reads see its pending changes. A kill
or a power cut leaves the state of the last completed ``sync()``/``close()``, never a mix. So
a ``shelve`` program becomes crash-safe by changing its import::

    import shelve, walstore.dbm
    with shelve.Shelf(walstore.dbm.open("state", "c")) as shelf:
        shelf["settings"] = {"theme": "dark"}
        shelf["history"] = ["a", "b"]
    # both or neither, after any crash

``path`` is a store directory (``walstore.open``); other processes may use it at the same
time (each ``sync()`` is one transaction; the last one to commit a key wins). ``mode`` sets
the permissions of a directory created by ``"c"`` or ``"n"`` (less the umask), as ``dbm``
does for its files. The flags: ``"r"`` read-only (the store must exist), ``"w"`` read-write
(the store must exist), ``"c"`` read-write, created if missing, ``"n"`` read-write, always
empty at the start (its first ``sync()`` removes every key that was there); the ``"f"``,
``"s"`` and ``"u"`` modifiers of ``dbm.gnu`` are accepted and change nothing. Values are stored
as bytes (``put_bytes``), not as typed values.
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, Iterator, List, Optional, Union

import walstore as _walstore

__all__ = ["open", "error", "whichdb"]

Key = Union[str, bytes]


class error(OSError):  # noqa: N801  (named as the standard modules name it)
    """What ``walstore.dbm`` raises for a failed open or a closed or read-only object (an
    ``OSError``, as ``dbm.error[0]`` of the standard modules). Errors of the store itself are
    ``walstore.Error`` subclasses, raised as they are."""


def _bytes(value: Key, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes or str, not {type(value).__name__}")


def whichdb(path: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]) -> Optional[str]:
    """``"walstore.dbm"`` if ``path`` is a walstore store (a directory holding a
    ``MANIFEST``), else None: what ``dbm.whichdb`` would answer if it knew walstore."""
    directory = os.fsdecode(os.fspath(path))
    if os.path.isfile(os.path.join(directory, "MANIFEST")):
        return "walstore.dbm"
    return None


class _Database:
    """An open ``walstore.dbm`` database (see the module's docstring)."""

    def __init__(self, store: _walstore.Store, read_only: bool, cleared: bool) -> None:
        self._store: Optional[_walstore.Store] = store
        self._read_only = read_only
        # Changes since the last sync: a value, or None for a deletion.
        self._pending: Dict[bytes, Optional[bytes]] = {}
        # Whether every key that was stored before is to be removed ("n").
        self._cleared = cleared

    def _live(self) -> _walstore.Store:
        if self._store is None:
            raise error("the walstore.dbm object has been closed")
        return self._store

    def _writable(self) -> None:
        self._live()
        if self._read_only:
            raise error("the walstore.dbm object was opened read-only (flag 'r')")

    def _stored(self, key: bytes) -> Optional[bytes]:
        if key in self._pending:
            return self._pending[key]
        if self._cleared:
            return None
        return self._live().get_bytes(key)

    def __getitem__(self, key: Key) -> bytes:
        value = self._stored(_bytes(key, "key"))
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: Key, default: Optional[bytes] = None) -> Optional[bytes]:
        value = self._stored(_bytes(key, "key"))
        return default if value is None else value

    def __setitem__(self, key: Key, value: Key) -> None:
        raw_key, raw_value = _bytes(key, "key"), _bytes(value, "value")
        self._writable()
        if not raw_key:
            raise error("walstore keys cannot be empty")
        self._pending[raw_key] = raw_value

    def setdefault(self, key: Key, default: Key = b"") -> bytes:
        value = self._stored(_bytes(key, "key"))
        if value is not None:
            return value
        self[key] = default
        return _bytes(default, "value")

    def __delitem__(self, key: Key) -> None:
        raw = _bytes(key, "key")
        self._writable()
        if self._stored(raw) is None:
            raise KeyError(key)
        self._pending[raw] = None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, bytes, bytearray, memoryview)):
            return False
        return self._stored(_bytes(key, "key")) is not None

    def keys(self) -> List[bytes]:
        """Every key, in byte order, own pending changes included."""
        stored = set() if self._cleared else {
            _bytes(k, "key") for k in self._live().keys()
        }
        for key, value in self._pending.items():
            if value is None:
                stored.discard(key)
            else:
                stored.add(key)
        return sorted(stored)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.keys())

    def firstkey(self) -> Optional[bytes]:
        """The first key in byte order (None if there is none), as ``dbm.gnu`` has it."""
        keys = self.keys()
        return keys[0] if keys else None

    def nextkey(self, key: Key) -> Optional[bytes]:
        """The key after ``key`` in byte order (None after the last one)."""
        raw = _bytes(key, "key")
        return next((k for k in self.keys() if k > raw), None)

    def sync(self) -> None:
        """Commits every change since the last ``sync()`` as one durable transaction (all of
        them or, after a crash, none)."""
        store = self._live()
        if self._read_only or (not self._pending and not self._cleared):
            return
        with store.transaction(durability="immediate") as tx:
            if self._cleared:
                tx.delete_range()
            for key, value in self._pending.items():
                if value is None:
                    tx.discard(key)
                else:
                    tx.put_bytes(key, value)
        self._pending.clear()
        self._cleared = False

    def reorganize(self) -> None:
        """Commits pending changes, then compacts the store (as ``dbm.gnu``'s)."""
        self.sync()
        self._live().compact()

    def close(self) -> None:
        """Commits pending changes (as ``sync()``) and closes; closing twice is fine."""
        if self._store is None:
            return
        try:
            self.sync()
        finally:
            store, self._store = self._store, None
            store.close()

    def __enter__(self) -> "_Database":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # As the standard modules do, an object dropped without close() writes its changes.
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._store is None:
            return "<walstore.dbm database (closed)>"
        return f"<walstore.dbm database {self._store.path!r} ({len(self._pending)} pending)>"


def open(  # noqa: A001  (the dbm modules' name)
    file: Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"],
    flag: str = "r",
    mode: int = 0o666,
) -> _Database:
    """Opens the store in directory ``file`` as a dbm database (see the module's docstring).
    Raises ``walstore.dbm.error`` (an ``OSError``) if it is missing with ``"r"`` or ``"w"``,
    or if ``file`` is something else than a store with ``"r"``, ``"w"`` or ``"c"``."""
    path = os.fsdecode(os.fspath(file))
    if not flag or flag[0] not in "rwcn" or any(c not in "fsu" for c in flag[1:]):
        raise ValueError(f"flag must be 'r', 'w', 'c' or 'n' (with 'f', 's', 'u'), not {flag!r}")
    kind = flag[0]
    exists = os.path.lexists(path)
    if kind in "rw" and not exists:
        raise error(f"no walstore store at {path!r}; use flag 'c' or 'n' to create one")
    if kind == "n" and exists and whichdb(path) is None:
        # "n" always makes a new database: what is there is replaced, as dbm does.
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        exists = False
    if not exists:
        os.mkdir(path, (mode | ((mode & 0o444) >> 2)) & 0o777)  # x where r: a directory
    try:
        store = _walstore.open(path, read_only=kind == "r")
    except _walstore.NotAStoreError as e:
        raise error(str(e)) from e
    return _Database(store, read_only=kind == "r", cleared=kind == "n")
