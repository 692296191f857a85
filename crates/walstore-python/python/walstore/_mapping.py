"""The mapping half of walstore: key conversion, paged listings, and the read and write
views (``_Reads``, ``Snapshot``, ``Transaction``) that ``walstore.Store`` builds on.
Import them from ``walstore``, not from here."""

from __future__ import annotations

import collections.abc
import weakref
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import _native
from ._errors import ClosedError

Key = Union[str, bytes]

_MISSING: Any = object()

#: Entries fetched by the first page of a listing, and at most by a later one (each page is
#: four times the one before): the first ten keys of a large store cost one small page.
_FIRST_PAGE = 16
_MAX_PAGE = 4096

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
    encoded = [(_key(k), _native.encode(v)) for k, v in items]
    encoded.extend((_key(k), _native.encode(v)) for k, v in kwargs.items())
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
        self._native.put(_key(key), _native.encode(value))

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
        self._native.put(raw, _native.encode(default))
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
