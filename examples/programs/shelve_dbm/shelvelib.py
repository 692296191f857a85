"""The shelve programs' common part: the four documents of savelib.py (examples/programs/)
kept in a `shelve` over one of two dbm modules, named by argv[1]:

- `walstore`: `walstore.dbm` (the `walstore` package), a store directory argv[2]/shelf;
- `dumb`: the standard library's `dbm.dumb`, files argv[2]/shelf.dat, .dir and .bak.

Both programs are the same shelve program; only the dbm module differs (one import)."""

import os
import shelve
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from savelib import FILES, SAVES, document  # noqa: E402  (after the path is set)

KIND = sys.argv[1]
DIRECTORY = sys.argv[2]
PATH = os.path.join(DIRECTORY, "shelf")


def open_shelf(flag):
    """The shelf, over the dbm module KIND names."""
    if KIND == "walstore":
        import walstore.dbm

        return shelve.Shelf(walstore.dbm.open(PATH, flag))
    if KIND == "dumb":
        import dbm.dumb

        return shelve.Shelf(dbm.dumb.open(PATH, flag))
    raise SystemExit("argv[1] must be walstore or dumb, not %r" % KIND)


def save(shelf, n):
    """Save n: the four documents, then sync (the dbm's commit)."""
    for name in FILES:
        shelf[name] = document(name, n)
    shelf.sync()


__all__ = ["FILES", "SAVES", "KIND", "DIRECTORY", "open_shelf", "save", "document"]
